"""Benchmarks of aslnb: ``python -m benchmarks.run`` (see benchmarks/README.md)."""

"""Timing helpers of the benchmarks: call timers, the compiled-matmul ceiling and the speed probe."""
from __future__ import annotations

import statistics
import sys
import time
from typing import Any, Callable


def log(msg: str, verbose: bool) -> None:
    """A time-stamped progress line on stderr (when ``verbose``)."""
    if verbose:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rounded(x: float, nd: int = 2) -> float:
    """``x`` as a plain float rounded to ``nd`` digits (what results.json stores)."""
    return float(round(float(x), nd))


def time_calls(fn: Callable[[], Any], seconds: float, min_calls: int = 2) -> list[float]:
    """Seconds of each call of ``fn`` until ``seconds`` have passed (at least ``min_calls``)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


_MATMULS: dict[tuple[int, str], Callable[[], Any]] = {}


def matmul_times(n: int, dtype: str, seconds: float, min_calls: int) -> list[float]:
    """Seconds of each ``n x n`` matmul in ``dtype`` over about ``seconds`` (compiled and warmed once)."""
    import tensorflow as tf

    if (n, dtype) not in _MATMULS:
        a = tf.cast(tf.random.stateless_normal((n, n), seed=(1, 2)), dtype)
        b = tf.cast(tf.random.stateless_normal((n, n), seed=(3, 4)), dtype)
        f = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
        f(a, b).numpy()  # trace + warm-up
        _MATMULS[(n, dtype)] = lambda: f(a, b).numpy()
    return time_calls(_MATMULS[(n, dtype)], seconds, min_calls=min_calls)


def speed_probe(n: int = 1024, seconds: float = 0.25) -> float:
    """GFLOP/s of a float32 ``n x n`` matmul for about ``seconds``: how fast the machine is right now.

    Shared machines change speed for tens of seconds at a time (seen here: 205 GFLOP/s, then 161);
    the probe before each throughput round shows which rounds ran in a slow phase.
    """
    return rounded(2 * n**3 / min(matmul_times(n, "float32", seconds, 2)) / 1e9, 1)


def matmul_ceiling(n: int, seconds: float) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` matmul (2 n^3 flops) in float32 and bfloat16."""
    out: dict[str, Any] = {"n": n, "flops_per_matmul": 2 * n**3}
    for dt in ("float32", "bfloat16"):
        times = matmul_times(n, dt, seconds, 3)
        out[dt] = {"gflops": rounded(2 * n**3 / min(times) / 1e9, 1),
                   "gflops_median": rounded(2 * n**3 / statistics.median(times) / 1e9, 1), "calls": len(times)}
    return out


def timed_call(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


"""Notebook helpers: what exists only for the course's notebooks and report.

The library the notebooks teach (``aslnb.data``, ``aslnb.models``, ``aslnb.train``,
``aslnb.evaluate``, ``aslnb.predict``) never imports from here.
"""

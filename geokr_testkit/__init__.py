"""Fixture builders shared by ``tests/`` and ``benchmarks/``: tiny rasters and chip stores.

Not installed with the package (setup.cfg packages only ``pipeline``, ``training``
and ``catalogs``): it is development code, importable from the repository root.
Every store it builds goes through the public store contract (:mod:`pipeline.store`).
"""

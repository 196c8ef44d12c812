"""Benchmark harness of sqlsession (issue 4): ``python -m bench --help``.

Not part of the package: it measures ``SQLStore`` next to the raw drivers, sqlspec's and
advanced-alchemy's Litestar stores, Litestar's ``FileStore`` and ``RedisStore``, and writes
``docs/benchmarks.md`` and ``docs/benchmarks.png``.
"""

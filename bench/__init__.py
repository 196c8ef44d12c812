"""The benchmark of sqlsession (``python -m bench --help``); not part of the package. It writes
``docs/benchmarks.md`` and ``docs/benchmarks.png``."""

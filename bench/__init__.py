"""sqlsession's benchmark, not part of the package (``python -m bench --help``): docs/benchmarks.md, .png."""

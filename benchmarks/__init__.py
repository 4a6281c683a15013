"""Benchmarks for sqlops: a project generator and timed runs of the real CLI and loader.

They live apart from `tests/`: they take minutes, depend on the machine, and write their results
to `docs/benchmarks.md` instead of passing or failing a test run. See `benchmarks/README.md`.
"""

"""Benchmark scripts (run with `python -m`, not collected by pytest)."""

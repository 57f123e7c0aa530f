"""Benchmarks; each prints a table and writes results/<name>.json. Run as modules: python -m benchmarks.serving."""

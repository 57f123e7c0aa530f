"""The tests record their reliability figures with the benchmarks' recorder (one file for both)."""

from benchmarks.reliability import RELIABILITY_FILE, record_reliability

__all__ = ["RELIABILITY_FILE", "record_reliability"]

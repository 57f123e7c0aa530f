"""Histogram buckets shared by every part's metrics, so latencies from cameras and replicas line up in Grafana."""

LATENCY_BOUNDARIES_MS: list[float] = [1, 2.5, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500]
BATCH_BOUNDARIES: list[float] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]

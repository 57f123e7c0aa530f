"""Everything that is not real: the synthetic world with known truth, rendered clips, simulated RTSP cameras, the
simulated labelers and the bootstrap model trained on the world. The face, tests and benchmarks use it; no real
part (streaming, serving, labeling, learning, dashboards) imports it."""

"""Everything that is not real: the synthetic world with known truth (domains, scenes, clips, YOLO data sets), the
simulated RTSP cameras and their GStreamer server, the simulated labelers, the bootstrap model trained on the world,
and a local two-node Ray cluster. The face, tests and benchmarks use it; no real part imports it."""

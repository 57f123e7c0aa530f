"""The Ray Serve application: batched Detector replicas (the champion, and the shadow beside it on mirrored frames),
the inference backends (ONNX Runtime, Ultralytics), the Router ingress with the HTTP API, the WebSocket stream,
authentication and upload limits, result publishing and serving metrics. Hooks such as "a frame was answered" are
handed in by the face, so serving imports nothing from labeling, streaming or monitoring."""

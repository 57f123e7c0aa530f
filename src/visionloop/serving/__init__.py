"""The Ray Serve application: batched Detector replicas, the Router ingress and its HTTP API, serving metrics."""

"""What operators watch: drift of the frames and of the model's confidences (sampled, windowed, tested), the
rolling accuracy on randomly chosen labelled frames, and the alert conditions the dashboard and Prometheus share."""

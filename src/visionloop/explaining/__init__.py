"""SHAP explanations of single detections: the explainer (which pixels made the model see this box) and the worker
that answers the API's queued requests, off the hot path."""

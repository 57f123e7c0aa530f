"""Browser cameras over WebRTC: a gateway (aiortc) that takes a browser's camera in and sends detections back."""

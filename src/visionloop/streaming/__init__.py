"""Frame sources (RTSP/HTTP/file), the camera supervisor, workers and manager, and the WebRTC gateway."""

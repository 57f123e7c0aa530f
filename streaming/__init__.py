"""Frame sources (RTSP/HTTP/file), the camera supervisor and manager, the WebRTC gateway and the RTSP camera
simulator."""

"""Getting frames in: sources (RTSP, HTTP and files through PyAV), the camera supervisor (state machine, watchdog,
backoff, latest-frame buffer), camera workers and their manager, and the WebRTC gateway for browser cameras with its
page. Frames leave through the core's frame sinks, so streaming imports nothing from serving."""

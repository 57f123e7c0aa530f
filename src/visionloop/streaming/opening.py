"""Which source reads a camera URL: by its scheme, and for RTSP over TCP, by ``cameras.rtsp_client``."""

from __future__ import annotations

from urllib.parse import urlparse

from visionloop.core.redaction import redact
from visionloop.streaming.native_rtsp import NativeRtspSource
from visionloop.streaming.sources import FrameSource, SourceError, SourceOptions


def create_source(url: str, options: SourceOptions) -> FrameSource:
    """The source for ``url``; an unsupported scheme is a permanent error naming the supported ones."""
    scheme = urlparse(url).scheme.lower()
    try:
        cls = FrameSource._registry[scheme]
    except KeyError:
        known = ", ".join(sorted(s or "(a file path)" for s in FrameSource._registry))
        raise SourceError(f"unsupported URL scheme '{scheme}' in {redact(url)}; supported: {known}", True) from None
    if scheme == "rtsp" and options.rtsp_client == "native" and options.rtsp_transport == "tcp":
        return NativeRtspSource(url, options)
    return cls(url, options)

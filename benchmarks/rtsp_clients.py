"""How old a frame is when it comes out of the decoder, for each RTSP client, on the same live site camera.

The frame clock ages each decoded picture from the moment the camera sent it, so the two clients are compared on
what a user feels: FFmpeg's demuxer holds every H.264 frame until the next one starts; the native client decodes it
when its last packet arrives. Run alone: ``python -m benchmarks.rtsp_clients`` (a 4-camera site, 8 s per client).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from visionloop.core.frame_clock import read_frame_number
from visionloop.simulation.site.live import RenderedSite
from visionloop.streaming.buffers import to_bgr
from visionloop.streaming.opening import create_source
from visionloop.streaming.sources import SourceOptions

CLIENTS = ("native", "ffmpeg")
WARM_FRAMES = 10  # the first frames wait for the decoder's start: not a steady age


def decode_ages(site: RenderedSite, url: str, camera: str, seconds: float) -> dict[str, Any]:
    """Per client: decoded frames, and their age at decode (p50/p99/max, ms), read one after the other."""
    clock = site.clock(camera)
    figures: dict[str, Any] = {}
    for client in CLIENTS:
        source = create_source(url, SourceOptions(rtsp_client=client))
        ages: list[float] = []
        frames, until = 0, time.time() + seconds
        try:
            for decoded in source.frames():
                now = time.time()
                number = read_frame_number(to_bgr(decoded.picture))
                frames += 1
                if number is not None and frames > WARM_FRAMES:
                    ages.append((now - clock.sent_at(number)) * 1e3)
                if now >= until:
                    break
        finally:
            source.close()
        figures[client] = {
            "source": type(source).__name__,
            "frames": frames,
            "age_ms_p50": round(float(np.percentile(ages, 50)), 1) if ages else None,
            "age_ms_p99": round(float(np.percentile(ages, 99)), 1) if ages else None,
            "age_ms_max": round(max(ages), 1) if ages else None,
        }
    native, ffmpeg = figures["native"]["age_ms_p50"], figures["ffmpeg"]["age_ms_p50"]
    figures["saved_ms_p50"] = round(ffmpeg - native, 1) if native is not None and ffmpeg is not None else None
    return figures


def main() -> None:
    from rich.console import Console

    from benchmarks.own_var import benchmark_settings
    from visionloop.cli.site import render_site
    from visionloop.simulation.ray_cluster import free_port
    from visionloop.simulation.site import SiteSpec

    settings = benchmark_settings("rtsp-clients")
    site = RenderedSite(render_site(settings, SiteSpec(seed=200, cameras=4, seconds=30.0)))
    with site.serve(free_port()) as simulator:
        time.sleep(2.0)
        camera = site.cameras[0]
        Console().print(decode_ages(site, simulator.url(camera), camera, seconds=8.0))


if __name__ == "__main__":
    main()

"""A rendered site, live: its cameras served over RTSP from a shared epoch, their frame clocks, their truth.

site = RenderedSite(write_site(spec, domains_file, out_dir))
with site.serve(port) as simulator:            # frame n of every camera leaves at site.epoch + n / fps
    url = simulator.url("cam1")
    ...
    age = site.clock("cam1").age_s(result.source_frame, result.result_ts)
"""

from __future__ import annotations

import json
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from visionloop.core.frame_clock import FrameClock
from visionloop.simulation.rtsp_cameras import RtspSimulator, SimulatedCamera
from visionloop.simulation.site.spec import SiteSpec, read_site_json

LEAD_S = 1.0  # the epoch is this far after the server is asked to start: its first frame is not late


class RenderedSite:
    """A site written by :func:`write_site`, read from its ``site.json``."""

    def __init__(self, site_json: Path) -> None:
        self.path = site_json
        self.root = site_json.parent
        self.data: dict[str, Any] = read_site_json(site_json)
        self.spec = SiteSpec.model_validate(self.data["spec"])
        self.epoch: float | None = None

    @property
    def cameras(self) -> list[str]:
        """The cameras it serves."""
        return list(self.data["cameras"])

    @property
    def unseen(self) -> list[str]:
        """Viewpoints of the same domain that are never served (test sets of places the loop never saw)."""
        return list(self.data.get("unseen", {}))

    def video(self, camera: str) -> Path:
        return self.root / str(self._entry(camera)["video"])

    def _entry(self, camera: str) -> dict[str, Any]:
        entry = self.data["cameras"].get(camera) or self.data.get("unseen", {}).get(camera)
        if entry is None:
            raise KeyError(f"the site has no camera {camera!r} (it has {', '.join(self.cameras + self.unseen)})")
        return dict(entry)

    def serve(
        self, port: int, epoch: float | None = None, user: str | None = None, password: str | None = None
    ) -> RtspSimulator:
        """An RTSP simulator (not started: use it as a context manager or call ``start()``) serving every camera
        live from ``epoch`` (default: a moment after now)."""
        self.epoch = epoch if epoch is not None else time.time() + LEAD_S
        cameras = [
            SimulatedCamera(name, self.root / info["stream"], self.spec.fps, self.epoch)
            for name, info in self.data["cameras"].items()
        ]
        return RtspSimulator(cameras, port, user=user, password=password)

    def clock(self, camera: str) -> FrameClock:
        """When ``camera`` sends each frame (every camera of a site shares one epoch)."""
        if self.epoch is None:
            raise RuntimeError("the site is not being served: call serve() first")
        if camera not in self.data["cameras"]:
            raise KeyError(f"the site has no camera {camera!r} (it has {', '.join(self.cameras)})")
        return FrameClock(self.epoch, self.spec.fps)

    def truth(self, camera: str) -> list[dict[str, Any]]:
        """``camera``'s truth, one entry per frame number."""
        return self._truth[camera]

    @cached_property
    def _truth(self) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for name, info in {**self.data["cameras"], **self.data.get("unseen", {})}.items():
            with (self.root / info["truth"]).open(encoding="utf-8") as handle:
                out[name] = [json.loads(line) for line in handle if line.strip()]
        return out

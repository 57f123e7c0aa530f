"""A site's truth for whoever must know what a stored frame showed: the simulated labeler, the test sets.

A frame kept for labeling is named ``<camera id>-<seq>-<ms>`` and carries its frame clock in the picture, so its
truth is found exactly (camera, frame number), with no guessing by image similarity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from visionloop.core.frame_clock import read_frame_number
from visionloop.simulation.simulated_labeler import Box, KnownFrame, TruthLookup
from visionloop.simulation.site.live import RenderedSite


def known_frame(line: dict[str, Any], width: int, height: int) -> KnownFrame:
    """A truth.jsonl line as the labeler's known frame."""
    boxes: list[Box] = []
    for obj in line["objects"]:
        x1, y1, x2, y2 = (float(v) for v in obj["box"])
        boxes.append((int(obj["cls"]), (x1, y1, x2, y2)))
    return KnownFrame(code=0, width=width, height=height, boxes=boxes)


class SiteTruth:
    """The truth of a served site's cameras, by the camera ids the service knows them under."""

    def __init__(self, site: RenderedSite, camera_ids: dict[str, str]) -> None:
        """``camera_ids``: the service's camera id -> the site's camera name (``{"gate-1": "cam1"}``)."""
        self.site = site
        self._cameras = {camera_id.replace(":", "_"): name for camera_id, name in camera_ids.items()}

    def camera_of(self, frame_id: str) -> str | None:
        """The site camera a frame id belongs to (ids are ``<camera id>-<seq>-<ms>``)."""
        return self._cameras.get(frame_id.rsplit("-", 2)[0]) if frame_id.count("-") >= 2 else None

    def lookup(self, image: np.ndarray[Any, Any], frame_id: str = "") -> KnownFrame | None:
        camera = self.camera_of(frame_id)
        number = read_frame_number(image) if camera is not None else None
        truth = self.site.truth(camera) if camera is not None else []
        if number is None or number >= len(truth):
            return None
        spec = self.site.spec
        return known_frame(truth[number], spec.width, spec.height)


class FirstKnown:
    """Several truth sources asked in order (a site's cameras, then frames known by their look)."""

    def __init__(self, sources: list[TruthLookup]) -> None:
        self.sources = sources

    def lookup(self, image: np.ndarray[Any, Any], frame_id: str = "") -> KnownFrame | None:
        for source in self.sources:
            found = source.lookup(image, frame_id)
            if found is not None:
                return found
        return None

"""The explanation contract between the API (which queues a request) and the explanation worker (which answers).

A request names one detection of one kept frame; the worker's answer lands in a hash under the explanation's key
(model version, frame, box), so asking twice costs nothing and the dashboard polls one key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from visionloop.core.errors import VisionloopError


class ExplanationNotFound(VisionloopError):
    """The frame, the box or the explanation asked for is not (or no longer) kept (HTTP 404)."""


class ExplanationState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"


def explanation_key(model_version: str, frame_id: str, box_index: int) -> str:
    """Explanations are cached per (model version, frame, box)."""
    return f"{model_version}:{frame_id}:{box_index}"


@dataclass(frozen=True)
class ExplainRequest:
    """One detection to explain: the frame's bytes travel with it (kept frames are trimmed away soon)."""

    model_version: str
    frame_id: str
    box_index: int
    box: tuple[float, float, float, float]
    class_id: int
    image: bytes
    requested_by: str = "operator"

    @property
    def key(self) -> str:
        return explanation_key(self.model_version, self.frame_id, self.box_index)

    def to_fields(self) -> dict[str, str | bytes]:
        return {
            "key": self.key,
            "model_version": self.model_version,
            "frame_id": self.frame_id,
            "box_index": str(self.box_index),
            "box": json.dumps([round(float(v), 2) for v in self.box]),
            "class_id": str(self.class_id),
            "requested_by": self.requested_by,
            "jpeg": self.image,
        }

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> ExplainRequest:
        """From a stream entry (bytes keys and values, as redis-py returns them); raises ValueError when malformed."""

        def text(name: str) -> str:
            value = fields.get(name.encode(), fields.get(name))
            if value is None:
                raise ValueError(f"explanation request has no '{name}'")
            return value.decode() if isinstance(value, bytes) else str(value)

        image = fields.get(b"jpeg", fields.get("jpeg"))
        if not isinstance(image, bytes) or not image:
            raise ValueError("explanation request has no image")
        box = json.loads(text("box"))
        if not isinstance(box, list) or len(box) != 4:
            raise ValueError("explanation request's box is not [x1, y1, x2, y2]")
        x1, y1, x2, y2 = (float(v) for v in box)
        return cls(
            model_version=text("model_version"),
            frame_id=text("frame_id"),
            box_index=int(text("box_index")),
            box=(x1, y1, x2, y2),
            class_id=int(text("class_id")),
            image=image,
            requested_by=text("requested_by") if (b"requested_by" in fields or "requested_by" in fields) else "",
        )

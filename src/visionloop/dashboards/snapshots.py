"""Kept frames (a camera's latest snapshots: JPEG + result) and explanations, read from Redis."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from visionloop.core.streams import StreamNames
from visionloop.dashboards.errors import reading, text

EXPLANATIONS_LISTED = 20


def snapshot_cameras(client: redis.Redis, streams: StreamNames) -> list[str]:
    with reading("snapshot cameras"):
        members: set[Any] = client.smembers(streams.snapshot_cameras)  # type: ignore[assignment]
    return sorted(text(m) for m in members)


def snapshots(client: redis.Redis, streams: StreamNames, camera_id: str) -> list[dict[str, Any]]:
    """A camera's kept frames, newest first; entries that do not parse are skipped."""
    with reading(f"snapshots of {camera_id}"):
        raw: list[Any] = client.lrange(streams.snapshots(camera_id), 0, -1)  # type: ignore[assignment]
    out = []
    for value in raw:
        try:
            entry = json.loads(value)
        except ValueError:
            continue
        if isinstance(entry, dict) and "frame_id" in entry:
            out.append(entry)
    return out


def snapshot_jpeg(entry: dict[str, Any]) -> bytes:
    return base64.b64decode(entry.get("jpeg_b64", ""))


def snapshot_boxes(entry: dict[str, Any], class_names: list[str] | None = None) -> list[dict[str, Any]]:
    """The kept frame's boxes, each named from ``class_names`` when it has no name of its own."""
    boxes = (entry.get("result") or {}).get("detections", {}).get("boxes", [])
    names = class_names or []
    out = []
    for box in boxes:
        if not isinstance(box, dict) or len(box.get("xyxy", [])) != 4:
            continue
        class_id = box.get("class_id")
        if "class_name" not in box and isinstance(class_id, int) and 0 <= class_id < len(names):
            box = {**box, "class_name": names[class_id]}
        out.append(box)
    return out


def explanation(client: redis.Redis, streams: StreamNames, key: str) -> dict[str, Any] | None:
    """One explanation's state (with its overlay PNG once done), or None when unknown."""
    with reading("explanations"):
        raw = client.hget(streams.explanations, key)
    if raw is None:
        return None
    try:
        entry = json.loads(raw)  # type: ignore[arg-type]
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def recent_explanations(client: redis.Redis, streams: StreamNames, count: int = EXPLANATIONS_LISTED) -> list[Any]:
    """The latest explanations asked for, newest first, without their images."""
    with reading("explanations"):
        keys = list(dict.fromkeys(text(k) for k in client.lrange(streams.explain_order, 0, count - 1)))  # type: ignore[union-attr]
        values: list[Any] = client.hmget(streams.explanations, keys) if keys else []  # type: ignore[assignment]
    out = []
    for raw in values:
        if raw is None:
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entry.pop("overlay_png_b64", None)
            out.append(entry)
    return out


def overlay_png(entry: dict[str, Any], field: str = "overlay_png_b64") -> bytes | None:
    """The SHAP overlay (or, with ``field="preview_png_b64"``, the one-pass EigenCAM preview) as PNG bytes."""
    data = entry.get(field)
    return base64.b64decode(data) if data else None

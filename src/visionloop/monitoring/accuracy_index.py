"""The random control arm's labelled frames in the incoming folder: which they are, their camera, when captured."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from visionloop.learning.arms import META_DIR, RANDOM_ARM, SAMPLER_FIELD

CAMERA_FIELD = "camera_id"


def parse_frame_id(frame_id: str) -> tuple[str | None, float | None]:
    """(camera id, capture time in s) of a ``FrameResult.frame_id`` ('<camera>-<seq>-<ms>'); Nones otherwise."""
    parts = frame_id.rsplit("-", 2)
    if len(parts) == 3 and parts[0] and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[2]) / 1000
    return None, None


@dataclass(frozen=True)
class LabelledFrame:
    """A random-arm frame the harvester wrote: its files, camera and when it was captured (or labelled)."""

    frame_id: str
    camera_id: str | None
    captured: float
    image: Path
    label: Path
    stamp: tuple[int, int, int]  # the label file's (mtime ns, inode, size): a relabel changes it


def _stamp(stat: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file is rewritten, in place or (as the harvester does) by a rename."""
    return stat.st_mtime_ns, stat.st_ino, stat.st_size


@dataclass
class _MetaEntry:
    stamp: tuple[int, int, int]
    sampler: str
    camera_id: str | None


class RandomArmIndex:
    """The random arm's frames in the incoming folder; each meta file is read once (again only if rewritten)."""

    def __init__(self, incoming: Path) -> None:
        self.incoming = incoming
        self._meta: dict[str, _MetaEntry] = {}

    def _entry(self, frame_id: str, path: Path, stamp: tuple[int, int, int]) -> _MetaEntry:
        known = self._meta.get(frame_id)
        if known is not None and known.stamp == stamp:
            return known
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        camera = meta.get(CAMERA_FIELD)
        entry = _MetaEntry(stamp, str(meta.get(SAMPLER_FIELD) or ""), str(camera) if camera else None)
        self._meta[frame_id] = entry
        return entry

    def latest(self, limit: int) -> list[LabelledFrame]:
        """The ``limit`` most recently captured random-arm frames that have both an image and a label file."""
        meta_dir = self.incoming / META_DIR
        if not meta_dir.is_dir():
            return []
        frames: list[LabelledFrame] = []
        with os.scandir(meta_dir) as entries:
            for item in entries:
                if not item.name.endswith(".json"):
                    continue
                frame_id = item.name[: -len(".json")]
                with contextlib.suppress(OSError):
                    entry = self._entry(frame_id, Path(item.path), _stamp(item.stat()))
                    if entry.sampler == RANDOM_ARM:
                        found = self._frame(frame_id, entry)
                        if found is not None:
                            frames.append(found)
        frames.sort(key=lambda f: (f.captured, f.frame_id))
        return frames[-limit:] if limit > 0 else []

    def _frame(self, frame_id: str, entry: _MetaEntry) -> LabelledFrame | None:
        image = self.incoming / "images" / f"{frame_id}.jpg"
        label = self.incoming / "labels" / f"{frame_id}.txt"
        try:
            label_stat = label.stat()
        except OSError:
            return None
        if not image.is_file():
            return None
        camera, captured = parse_frame_id(frame_id)
        when = captured if captured is not None else label_stat.st_mtime
        return LabelledFrame(frame_id, entry.camera_id or camera, when, image, label, _stamp(label_stat))

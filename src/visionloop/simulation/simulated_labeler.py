"""A SIMULATED labeler for the demo, the tests and the benchmark: not a person.

It answers Label Studio tasks through the Label Studio API from the synthetic world's ground truth. A task's frame
is matched to a known frame (the world's still images and every frame of the simulated cameras' videos) by its
perceptual hash, and that frame's true boxes become the annotation, after an optional delay and with an optional
error rate (a box dropped or its class changed), to look like real labelers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from visionloop.labeling.edits import EditCount, count_edits, latest_prediction
from visionloop.labeling.gates import hamming, perceptual_hash
from visionloop.labeling.label_studio_client import LabelStudioClient
from visionloop.labeling.sync import FRAMES_DIR

Box = tuple[int, tuple[float, float, float, float]]  # class id, (x1, y1, x2, y2) in pixels


@dataclass(frozen=True)
class KnownFrame:
    code: int
    width: int
    height: int
    boxes: list[Box]


class TruthLookup(Protocol):
    def lookup(self, image: np.ndarray[Any, Any], frame_id: str = "") -> KnownFrame | None:
        """The truth of a stored frame (its picture, and its id ``<camera id>-<seq>-<ms>``), or None."""
        ...


class GroundTruthIndex:
    """Frames whose truth we know, looked up by perceptual hash."""

    def __init__(self, max_distance: int = 8) -> None:
        self.frames: list[KnownFrame] = []
        self.max_distance = max_distance

    def add(self, image: np.ndarray[Any, Any], boxes: list[Box]) -> None:
        self.frames.append(KnownFrame(perceptual_hash(image), image.shape[1], image.shape[0], boxes))

    def add_yolo_folder(self, root: Path) -> int:
        """Images with YOLO labels (``images/`` and ``labels/`` side by side)."""
        added = 0
        for image_path in sorted((root / "images").rglob("*.jpg")):
            label = root / "labels" / image_path.relative_to(root / "images").with_suffix(".txt")
            image = cv2.imread(str(image_path))
            if image is None or not label.is_file():
                continue
            h, w = image.shape[:2]
            boxes: list[Box] = []
            for line in label.read_text().splitlines():
                c, cx, cy, bw, bh = line.split()
                x, y, ww, hh = float(cx) * w, float(cy) * h, float(bw) * w, float(bh) * h
                boxes.append((int(c), (x - ww / 2, y - hh / 2, x + ww / 2, y + hh / 2)))
            self.add(image, boxes)
            added += 1
        return added

    def add_world_frames(self, frames: Iterable[tuple[np.ndarray[Any, Any], list[dict[str, Any]]]]) -> int:
        """Frames of a world video with their per-frame truth (``simulation.world.video.world_frames``)."""
        added = 0
        for image, labels in frames:
            self.add(image, [(int(b["class_id"]), tuple(b["xyxy"])) for b in labels])  # type: ignore[misc]
            added += 1
        return added

    def lookup(self, image: np.ndarray[Any, Any], frame_id: str = "") -> KnownFrame | None:
        """The known frame that looks most like ``image`` (its id does not matter here)."""
        if not self.frames:
            return None
        code = perceptual_hash(image)
        best = min(self.frames, key=lambda f: hamming(code, f.code))
        return best if hamming(code, best.code) <= self.max_distance else None


class SimulatedLabeler:
    """Annotates unlabelled tasks of one project with the truth of the matching known frame."""

    def __init__(
        self,
        client: LabelStudioClient,
        project_id: int,
        files_root: Path,
        truth: TruthLookup,
        class_names: Sequence[str],
        delay_s: float = 0.0,
        error_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._client, self._project, self._files_root = client, project_id, files_root
        self._truth, self._names = truth, list(class_names)
        self.delay_s, self.error_rate = delay_s, error_rate
        self._rng = random.Random(seed)
        self._unknown: set[int] = set()
        self.unmatched = 0
        self.edits = EditCount()  # what the answers changed of the pre-annotations (labeling.edits)

    def _annotation(self, frame: KnownFrame, width: int, height: int) -> list[dict[str, Any]]:
        sx, sy = width / frame.width, height / frame.height
        regions = []
        for class_id, (x1, y1, x2, y2) in frame.boxes:
            if self._rng.random() < self.error_rate:
                if self._rng.random() < 0.5:
                    continue  # a missed box
                class_id = self._rng.randrange(len(self._names))  # a wrong class
            regions.append(
                {
                    "from_name": "label",
                    "to_name": "image",
                    "type": "rectanglelabels",
                    "original_width": width,
                    "original_height": height,
                    "value": {
                        "x": 100 * x1 * sx / width,
                        "y": 100 * y1 * sy / height,
                        "width": 100 * (x2 - x1) * sx / width,
                        "height": 100 * (y2 - y1) * sy / height,
                        "rotation": 0,
                        "rectanglelabels": [self._names[class_id]],
                    },
                }
            )
        return regions

    def label_pending(self, limit: int = 50) -> int:
        """Annotate up to ``limit`` tasks that have no annotation yet; returns how many were answered."""
        items = [{"filter": "filter:tasks:total_annotations", "operator": "equal", "type": "Number", "value": 0}]
        answered = 0
        for task in self._client._query(self._project, items):
            if answered >= limit:
                break
            if int(task["id"]) in self._unknown:
                continue  # a frame it cannot know (another world, an older run): never blocks the tasks behind it
            frame_id = task.get("data", {}).get("frame_id")
            image = cv2.imread(str(self._files_root / FRAMES_DIR / f"{frame_id}.jpg")) if frame_id else None
            known = self._truth.lookup(image, frame_id) if image is not None and frame_id else None
            if image is None or known is None:
                self.unmatched += 1
                self._unknown.add(int(task["id"]))
                continue
            if self.delay_s:
                time.sleep(self.delay_s)
            regions = self._annotation(known, image.shape[1], image.shape[0])
            self.edits += count_edits(latest_prediction(task), regions)
            self._client.annotate(int(task["id"]), regions)
            answered += 1
        return answered


def load_sidecar(path: Path) -> list[list[dict[str, Any]]]:
    return [json.loads(line)["boxes"] for line in path.read_text().splitlines()]

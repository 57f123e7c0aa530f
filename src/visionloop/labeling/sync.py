"""Move review items into Label Studio and labels back out, losing nothing on either side.

Imports: an entry is acknowledged only after Label Studio returned its task id; the frame id -> task id map in
Redis makes a retry a no-op, and on a redelivery Label Studio itself is searched for the frame first (an import
may have succeeded right before a timeout). Unreachable or 5xx: left pending, reclaimed later; 4xx or too many
deliveries: dead-lettered with the reason.

Labels: webhooks arrive once and are never retried, so a reconciliation pass also reads every annotated task;
both paths go through one idempotent writer keyed by the annotation's id and update time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from visionloop.core.streams import StreamNames
from visionloop.labeling.edits import count_edits, latest_prediction
from visionloop.labeling.label_studio_client import LabelStudioClient, LabelStudioRejected, LabelStudioUnavailable
from visionloop.labeling.review_queue import Delivery, ReviewItem, ReviewQueue
from visionloop.learning.arms import frame_meta_path

log = logging.getLogger(__name__)
FRAMES_DIR = "frames"


@dataclass
class SyncReport:
    imported: int = 0
    already_imported: int = 0
    left_pending: int = 0
    dead_lettered: int = 0
    errors: list[str] = field(default_factory=list)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class LabelStudioImporter:
    def __init__(
        self,
        queue: ReviewQueue,
        client: LabelStudioClient,
        project_id: int,
        files_root: Path,
        store: redis.Redis,
        streams: StreamNames,
        class_names: Sequence[str],
    ) -> None:
        self._queue, self._client, self._project = queue, client, project_id
        self._files_root, self._redis, self._streams = files_root, store, streams
        self._class_names = list(class_names)

    @property
    def _imported_key(self) -> str:
        return self._streams.labeling_imported

    @property
    def _errors_key(self) -> str:
        return self._streams.labeling_last_error

    def run_once(self, count: int = 20, block_ms: int = 200) -> SyncReport:
        report = SyncReport()
        if not self._client.healthy():
            # Take nothing while Label Studio is away: a claim would count as a failed delivery, and a long
            # outage would push healthy frames to the dead-letter stream.
            report.errors.append("Label Studio is unreachable; the backlog waits in the review stream")
            return report
        for delivery in self._queue.take(count=count, block_ms=block_ms):
            if self._queue.should_give_up(delivery):
                reason = self._redis.hget(self._errors_key, delivery.entry_id)
                text = reason.decode() if isinstance(reason, bytes) else "unreadable entry"
                self._queue.dead_letter(delivery, f"gave up after {delivery.deliveries} deliveries: {text}")
                self._redis.hdel(self._errors_key, delivery.entry_id)
                report.dead_lettered += 1
                continue
            try:
                fresh = self._import(delivery)
            except LabelStudioUnavailable as exc:
                # Leave it pending: XAUTOCLAIM hands it back after min_idle_ms. Stop this round, Label Studio is away.
                self._redis.hset(self._errors_key, delivery.entry_id, str(exc))
                report.left_pending += 1
                report.errors.append(str(exc))
                break
            except LabelStudioRejected as exc:
                self._queue.dead_letter(delivery, f"Label Studio rejected the task: {exc}")
                report.dead_lettered += 1
                continue
            self._queue.ack(delivery)
            self._redis.hdel(self._errors_key, delivery.entry_id)
            if fresh:
                report.imported += 1
            else:
                report.already_imported += 1
        return report

    def _import(self, delivery: Delivery) -> bool:
        """True if a task was created now, False if the frame was already in Label Studio."""
        item = delivery.item
        assert item is not None
        if self._redis.hget(self._imported_key, item.frame_id):
            return False
        _atomic_write(self._files_root / FRAMES_DIR / f"{item.frame_id}.jpg", item.jpeg)
        if delivery.deliveries > 1:
            found = self._client.find_tasks_by_frame(self._project, item.frame_id)
            if found:
                self._redis.hset(self._imported_key, item.frame_id, found[0])
                return False
        task_id = self._client.import_task(self._project, self._task_data(item), [self._prediction(item)])
        self._redis.hset(self._imported_key, item.frame_id, task_id)
        return True

    def _task_data(self, item: ReviewItem) -> dict[str, Any]:
        return {
            "image": f"/data/local-files/?d={FRAMES_DIR}/{item.frame_id}.jpg",
            "frame_id": item.frame_id,
            "camera_id": item.result.camera_id,
            "capture_ts": item.result.capture_ts,
            "sampler": item.selection.sampler,
            "reason": item.selection.reason,
        }

    def _prediction(self, item: ReviewItem) -> dict[str, Any]:
        result = item.result
        detections = result.detections
        score = float(detections.confidence.mean()) if len(detections) else 0.0
        return {
            "model_version": result.model_version,
            "score": score,
            "result": detections.to_label_studio(result.frame_width, result.frame_height, self._class_names),
        }


def annotation_to_yolo(result: Sequence[dict[str, Any]], class_names: Sequence[str]) -> list[str]:
    """Label Studio rectangles (percent, top-left) -> YOLO lines in *our* class order (not its alphabetical one)."""
    lines = []
    for region in result:
        if region.get("type") != "rectanglelabels":
            continue
        value = region["value"]
        label = value["rectanglelabels"][0]
        if label not in class_names:
            log.warning("annotation uses unknown class %r; skipped", label)
            continue
        x, y, w, h = (value[k] / 100.0 for k in ("x", "y", "width", "height"))
        lines.append(f"{class_names.index(label)} {x + w / 2:.6f} {y + h / 2:.6f} {w:.6f} {h:.6f}")
    return lines


class LabelHarvester:
    """Writes finished annotations as YOLO label files (with their frames) into the incoming data folder."""

    def __init__(
        self,
        client: LabelStudioClient,
        project_id: int,
        files_root: Path,
        incoming: Path,
        store: redis.Redis,
        streams: StreamNames,
        class_names: Sequence[str],
    ) -> None:
        self._client, self._project = client, project_id
        self._files_root, self._incoming = files_root, incoming
        self._redis, self._streams, self._class_names = store, streams, list(class_names)

    @property
    def _seen_key(self) -> str:
        return self._streams.labeling_harvested

    def reconcile(self) -> int:
        """Read every annotated task; returns how many new or changed labels were written."""
        return sum(self.accept(task, self._latest(task)) for task in self._client.annotated_tasks(self._project))

    def handle_webhook(self, payload: dict[str, Any]) -> bool:
        """ANNOTATION_CREATED/UPDATED payloads carry the task and the annotation."""
        task, annotation = payload.get("task"), payload.get("annotation")
        if not isinstance(task, dict) or not isinstance(annotation, dict):
            return False
        return self.accept(task, annotation)

    @staticmethod
    def _latest(task: dict[str, Any]) -> dict[str, Any] | None:
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        return max(annotations, key=lambda a: (a.get("updated_at") or "", a["id"])) if annotations else None

    @staticmethod
    def _prediction_version(task: dict[str, Any]) -> str | None:
        """The model whose pre-annotation the labeler saw (the champion of the day), where the task says."""
        for prediction in task.get("predictions") or []:
            if isinstance(prediction, dict) and prediction.get("model_version"):
                return str(prediction["model_version"])
        return None

    def accept(self, task: dict[str, Any], annotation: dict[str, Any] | None) -> bool:
        if annotation is None:
            return False
        frame_id = task.get("data", {}).get("frame_id")
        if not frame_id:
            return False
        signature = f"{annotation['id']}:{annotation.get('updated_at') or ''}"
        previous: Any = self._redis.hget(self._seen_key, frame_id)
        if previous is not None and (previous.decode() if isinstance(previous, bytes) else previous) == signature:
            return False
        lines = annotation_to_yolo(annotation.get("result", []), self._class_names)
        data = task.get("data", {})
        # Written before the frame and its label, so a cut that sees the label also sees which arm it belongs to.
        meta = {
            "sampler": data.get("sampler") or "unknown",
            "task_id": task.get("id"),
            "camera_id": data.get("camera_id"),
            "model_version": self._prediction_version(task),
            "edits": count_edits(latest_prediction(task), annotation.get("result", [])).to_dict(),
        }
        _atomic_write(frame_meta_path(self._incoming, frame_id), json.dumps(meta).encode())
        frame = self._files_root / FRAMES_DIR / f"{frame_id}.jpg"
        if frame.is_file():
            _atomic_write(self._incoming / "images" / f"{frame_id}.jpg", frame.read_bytes())
        _atomic_write(
            self._incoming / "labels" / f"{frame_id}.txt", ("\n".join(lines) + "\n" if lines else "").encode()
        )
        self._redis.hset(self._seen_key, frame_id, signature)
        fields: dict[str, str] = {
            "frame_id": frame_id,
            "task_id": str(task.get("id")),
            "boxes": str(len(lines)),
            "ts": f"{time.time():.3f}",
            "annotation": json.dumps({"id": annotation["id"]}),
        }
        self._redis.xadd(self._streams.labels, fields)  # type: ignore[arg-type]
        return True

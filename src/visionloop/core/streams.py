"""Every Redis key and Ray actor name (all in one place), and the small helpers every producer shares."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from visionloop.core.explanations import explanation_key

__all__ = [
    "ACCURACY_STATE_FIELD",
    "StreamNames",
    "ensure_group",
    "event_fields",
    "explanation_key",
]  # the key also lives beside the explanation contract

# Ray names: the Serve application, and the named actors the parts find each other by.
SERVE_APP_NAME = "visionloop"
CHAMPION_DEPLOYMENT = "ChampionDetector"  # camera workers call it by this name (one hop, no Router)
WORKERS_DEPLOYMENT = "Workers"  # owns the background workers (visionloop.cli.composition)
CAMERA_MANAGER_ACTOR = "visionloop-camera-manager"
LABELING_WORKER_ACTOR = "visionloop-labeling"
WEBRTC_GATEWAY_ACTOR = "visionloop-webrtc-gateway"
LOOP_WORKER_ACTOR = "visionloop-loop"
DRIFT_MONITOR_ACTOR = "visionloop-drift-monitor"
# Field of the drift-state hash holding the random-arm accuracy report; camera ids cannot start with "_", so it
# never collides with a camera's scope (nor does the overall scope "_all").
ACCURACY_STATE_FIELD = "_accuracy"
EXPLAIN_WORKER_ACTOR = "visionloop-explain"


def camera_worker_actor(camera_id: str) -> str:
    return f"camera-{camera_id}"


def camera_host_actor(number: int) -> str:
    return f"camera-host-{number}"


@dataclass(frozen=True)
class StreamNames:
    """Every Redis key visionloop writes, under one prefix.

    ``results`` is trimmed by age; ``review`` holds the frames still on their way to Label Studio (an imported or
    dead-lettered entry leaves it, ``review_selected`` keeps the counts); ``events`` is the audit log (promotions,
    rollbacks, camera state changes).
    """

    prefix: str = "visionloop"

    @property
    def results(self) -> str:
        return f"{self.prefix}:results"

    @property
    def review(self) -> str:
        return f"{self.prefix}:review"

    @property
    def review_dead_letter(self) -> str:
        return f"{self.prefix}:review:dead"

    @property
    def review_selected(self) -> str:
        """Hash: frames ever queued for review, per sampler (the review stream itself forgets imported ones)."""
        return f"{self.prefix}:review:selected"

    @property
    def labels(self) -> str:
        return f"{self.prefix}:labels"

    @property
    def shadow_pairs(self) -> str:
        return f"{self.prefix}:shadow-pairs"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def cameras(self) -> str:
        """Hash of camera id -> camera spec (JSON), so a restart resumes the same cameras."""
        return f"{self.prefix}:cameras"

    @property
    def camera_hosts(self) -> str:
        """Hash of camera id -> the camera host running it (cameras.cameras_per_process > 1): a host that Ray
        restarts after a crash finds its cameras here."""
        return f"{self.prefix}:cameras:hosts"

    @property
    def cameras_meta(self) -> str:
        """Hash of facts about the camera list (whether it was seeded from the config file)."""
        return f"{self.prefix}:cameras:meta"

    # -- labeling ---------------------------------------------------------------------------------------------

    @property
    def labeling_webhooks(self) -> str:
        """Label Studio's webhook bodies, queued by the API for the labeling worker (a consumer group reads it)."""
        return f"{self.prefix}:labeling:webhooks"

    @property
    def labeling_imported(self) -> str:
        """Hash of frame id -> Label Studio task id: imports are idempotent by frame id."""
        return f"{self.prefix}:labeling:imported"

    @property
    def labeling_harvested(self) -> str:
        """Hash of task id -> annotation fingerprint: labels already turned into files."""
        return f"{self.prefix}:labeling:harvested"

    @property
    def labeling_last_error(self) -> str:
        return f"{self.prefix}:labeling:last-error"

    @property
    def labeling_since_cut(self) -> str:
        """Labels harvested since the last data set version was cut."""
        return f"{self.prefix}:labeling:since-cut"

    def labeling_webhook_registered(self, label_studio_url: str, project_id: int) -> str:
        return f"{self.prefix}:labeling:webhook:{label_studio_url}:{project_id}"

    # -- learning loop ----------------------------------------------------------------------------------------

    def loop_lock(self, job: str) -> str:
        """Held (SET NX, expiring, refreshed) by the loop worker training one challenger job."""
        return f"{self.prefix}:loop:lock:{job}"

    @property
    def loop_group(self) -> str:
        """Consumer group of the loop worker on the events stream."""
        return f"{self.prefix}-loop"

    # -- monitoring, explanations, the dashboard ----------------------------------------------------------------

    @property
    def drift_samples(self) -> str:
        """Compact summaries of sampled answered frames (capped): what the drift monitor reads."""
        return f"{self.prefix}:drift:samples"

    @property
    def drift(self) -> str:
        """One entry per evaluated window (per camera and ``_all``): statistics, p-values, alarm state (capped)."""
        return f"{self.prefix}:drift"

    @property
    def drift_state(self) -> str:
        """Hash of scope -> JSON of the monitor's latest view (alarm state, reference, accuracy)."""
        return f"{self.prefix}:drift:state"

    @property
    def drift_group(self) -> str:
        """Consumer group of the drift monitor on the drift-samples stream."""
        return f"{self.prefix}-drift"

    @property
    def alerts(self) -> str:
        """Hash of alert name -> JSON (state firing/resolved, since, message): the dashboard's banners."""
        return f"{self.prefix}:alerts"

    def snapshots(self, camera_id: str) -> str:
        """List of a camera's latest snapshots (JSON: frame JPEG as base64 + its result), newest first, capped."""
        return f"{self.prefix}:snapshots:{camera_id}"

    @property
    def snapshot_cameras(self) -> str:
        """Set of camera ids that have snapshots."""
        return f"{self.prefix}:snapshots:cameras"

    @property
    def explain_requests(self) -> str:
        """Explanations asked for (API -> explanation worker; a consumer group reads it)."""
        return f"{self.prefix}:explain:requests"

    @property
    def explain_group(self) -> str:
        return f"{self.prefix}-explain"

    @property
    def explanations(self) -> str:
        """Hash of explanation key -> JSON (state, heatmap, seconds); keys listed newest first in ``explain_order``."""
        return f"{self.prefix}:explain:results"

    @property
    def explain_order(self) -> str:
        return f"{self.prefix}:explain:order"

    def dedup(self, camera_id: str) -> str:
        """Recent perceptual hashes of a camera's selected frames (near-duplicate suppression)."""
        return f"{self.prefix}:dedup:{camera_id}"

    def rate(self, camera_id: str, minute: int) -> str:
        """Frames selected from a camera in one minute (the per-camera rate limit)."""
        return f"{self.prefix}:rate:{camera_id}:{minute}"

    def quota(self, class_name: str | int, hour: int) -> str:
        """Frames selected for a class in one hour (the per-class quota)."""
        return f"{self.prefix}:quota:{class_name}:{hour}"


def event_fields(kind: str, **payload: Any) -> dict[str, str]:
    """Fields of one audit event: its kind, when, and a JSON payload."""
    return {"kind": kind, "ts": f"{time.time():.6f}", "payload": json.dumps(payload, separators=(",", ":"))}


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) if missing; from id 0, so entries added before it are not lost."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def text(value: object) -> str:
    """A Redis value as text: clients answer bytes unless they were made to decode."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def review_queued_total(client: redis.Redis, streams: StreamNames) -> int:
    """Frames ever queued for review: the stream's own count of added entries (Redis 7), which deleting keeps."""
    try:
        info: Any = client.xinfo_stream(streams.review)
    except redis.ResponseError:  # no stream yet
        return 0
    added = info.get("entries-added")
    return int(added) if added is not None else int(info.get("length", 0))


def review_selected(client: redis.Redis, streams: StreamNames) -> dict[str, int]:
    """Frames ever queued for review, per sampler (``random`` is the control arm)."""
    counts: Any = client.hgetall(streams.review_selected)
    return dict(sorted((text(k), int(v)) for k, v in (counts or {}).items()))

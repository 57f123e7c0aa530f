"""The labeling worker: one Ray actor that runs the Label Studio side of the loop.

Each round it imports review items, handles webhook payloads the Router queued, re-reads every annotation every
``reconcile_interval_s`` (webhooks are fired once, without retry), and cuts a new data set version every
``cut_every`` new labels, announced on the events stream for the learning loop. Webhook payloads are read through a
consumer group (acknowledged and deleted once handled); cuts are incremental (``labeling.cuts``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from visionloop.core.errors import NotReadyError, VisionloopError
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames, ensure_group, event_fields
from visionloop.core.worker_runner import WorkerRunner
from visionloop.labeling.label_studio_client import LabelStudioClient, LabelStudioRejected, LabelStudioUnavailable
from visionloop.labeling.label_studio_server import LabelStudioServer
from visionloop.labeling.review_queue import ReviewQueue
from visionloop.labeling.sync import FRAMES_DIR, LabelHarvester, LabelStudioImporter

log = logging.getLogger(__name__)


# The background round waits this long for a doubtful frame (one that arrives is taken at once): an idle service
# wakes the worker, Redis and the metrics export less often (200 ms rounds took 0.03 of a core doing nothing).
SCHEDULED_BLOCK_MS = 1000


class LabelingWorker:
    def __init__(self, settings: Settings, redis_url: str, class_names: list[str]) -> None:
        self._settings = settings
        self._streams = StreamNames(settings.redis.stream_prefix)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=settings.redis.socket_timeout_s)
        self._class_names = class_names
        self._files_root = settings.var.label_studio_files
        self._incoming = settings.var.labels_incoming
        self._server: LabelStudioServer | None = None
        self._client: LabelStudioClient | None = None
        self._importer: LabelStudioImporter | None = None
        self._harvester: LabelHarvester | None = None
        outages = (LabelStudioUnavailable, LabelStudioRejected)  # Label Studio restarting: retried, not a bug
        self._runner = WorkerRunner("labeling", self._scheduled_sync, log=log, idle_s=0.5, transient=outages)
        self._last_reconcile = 0.0
        self._webhooks = WebhookInbox(self._redis, self._streams.labeling_webhooks)
        self._round = threading.Lock()  # the loop and an operator's "sync --once" must not interleave
        self._gauges: Any = None
        self.label_studio_url = ""
        self.project_id = 0

    @property
    def last_error(self) -> str | None:
        return self._runner.last_error

    @last_error.setter
    def last_error(self, message: str | None) -> None:
        self._runner.record_error(message)

    def start(self) -> dict[str, Any]:
        labeling = self._settings.labeling
        if labeling.label_studio_url:
            if labeling.label_studio_token is None:
                raise VisionloopError("labeling.label_studio_url is set: set labeling.label_studio_token too")
            url, token = labeling.label_studio_url, labeling.label_studio_token.get_secret_value()
        else:
            self._server = LabelStudioServer(
                self._settings.var.label_studio, labeling.label_studio_port, self._files_root
            ).start()
            url, token = self._server.url, self._server.account.token
        self.label_studio_url = url
        frames = self._files_root / FRAMES_DIR
        frames.mkdir(parents=True, exist_ok=True)
        self._client = LabelStudioClient(url, token)
        self.project_id = self._client.ensure_project(labeling.project_title, self._class_names, str(frames))
        self._register_webhook()
        queue = ReviewQueue(
            self._redis,
            self._streams,
            consumer="labeling-worker",
            max_deliveries=labeling.max_deliveries,
            min_idle_ms=int(labeling.reclaim_idle_s * 1000),
        )
        forgotten = queue.forget_acknowledged()
        if forgotten:
            log.info("review queue: %d entries imported earlier deleted (their frames are in Label Studio)", forgotten)
        self._importer = LabelStudioImporter(
            queue, self._client, self.project_id, self._files_root, self._redis, self._streams, self._class_names
        )
        self._harvester = LabelHarvester(
            self._client,
            self.project_id,
            self._files_root,
            self._incoming,
            self._redis,
            self._streams,
            self._class_names,
        )
        self._runner.start()
        return {"label_studio": url, "project_id": self.project_id}

    def _register_webhook(self) -> None:
        assert self._client is not None
        flag = self._streams.labeling_webhook_registered(self.label_studio_url, self.project_id)
        if self._redis.get(flag):
            return
        api = self._settings.api
        url = f"http://{api.host}:{api.port}/v1/labeling/webhook"
        self._client.add_webhook(self.project_id, url, self._settings.labeling.webhook_secret.get_secret_value())
        self._redis.set(flag, "1")

    def _scheduled_sync(self) -> None:
        """The thread's round: a sync, reconciling when reconcile_interval_s has passed."""
        due = time.monotonic() - self._last_reconcile >= self._settings.labeling.reconcile_interval_s
        # Half the Redis command timeout at most: a blocking read must not look like a dead server.
        block_ms = min(SCHEDULED_BLOCK_MS, int(self._settings.redis.socket_timeout_s * 500))
        self.sync_once(reconcile=due, block_ms=block_ms)

    def sync_once(self, reconcile: bool = True, cut: bool = False, block_ms: int = 200) -> dict[str, Any]:
        """One round: import, webhooks, (reconcile), cut a version if enough labels arrived (or now, with ``cut``:
        an operator who wants the loop to see the labels so far)."""
        if self._importer is None or self._harvester is None:
            raise NotReadyError("labeling is still starting (Label Studio is not ready yet); try again shortly")
        with self._round:
            report = self._importer.run_once(block_ms=block_ms)
            labelled = self._drain_webhooks()
            if reconcile:
                labelled += self._harvester.reconcile()
                self._last_reconcile = time.monotonic()
            version = self._maybe_cut_version(labelled, force=cut)
            self._export_metrics()
        return {
            "imported": report.imported,
            "dead_lettered": report.dead_lettered,
            "pending": report.left_pending,
            "labelled": labelled,
            "dataset_version": version,
        }

    def _drain_webhooks(self) -> int:
        assert self._harvester is not None
        harvester = self._harvester

        def handle(payload: dict[str, Any]) -> bool:
            if payload.get("action") not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
                return False
            try:
                return harvester.handle_webhook(payload)
            except (LookupError, TypeError, AttributeError, ValueError) as exc:
                # A malformed body would fail on every redelivery: drop it (reconciliation reads the task anyway).
                log.warning("dropping a malformed webhook payload: %s: %s", type(exc).__name__, exc)
                return False

        return self._webhooks.drain(handle)

    def _maybe_cut_version(self, new_labels: int, force: bool = False) -> str | None:
        from visionloop.labeling.cuts import IncrementalCutter
        from visionloop.learning.datasets import DatasetStore

        counter = self._streams.labeling_since_cut
        since = int(self._redis.incrby(counter, new_labels)) if new_labels else int(self._redis.get(counter) or 0)
        if since < self._settings.labeling.cut_every and not (force and since > 0):
            return None
        cutter = IncrementalCutter(
            DatasetStore(self._settings.var.datasets),
            self._settings.labeling.dataset_name,
            self._incoming,
            self._class_names,
            self._settings.data.split,
        )
        cut = cutter.cut(meta={"source": "label-studio", "project_id": self.project_id})
        self._redis.set(counter, 0)
        if cut is None:
            return None  # nothing new or changed on disk: the counted labels are in the latest version already
        self._redis.xadd(
            self._streams.events,
            event_fields(  # type: ignore[arg-type]
                "dataset_version_created", dataset=cut.version.ref, images=cut.images, source="label-studio"
            ),
        )
        return cut.version.ref

    def _export_metrics(self) -> None:
        """Queue and label counts as Ray gauges (served at the API's /metrics)."""
        from ray.util import metrics

        from visionloop.labeling.status import labeling_status

        if self._gauges is None:
            self._gauges = metrics.Gauge(
                "visionloop_labeling", "Labeling queue and label counts by kind.", tag_keys=("kind",)
            )
        report = labeling_status(self._redis, self._streams, by_reason=False)
        for kind in ("queued_total", "waiting", "pending", "backlog", "dead_lettered", "imported", "labelled"):
            self._gauges.set(float(report[kind]), tags={"kind": kind})

    def status(self) -> dict[str, Any]:
        return {
            "label_studio": self.label_studio_url,
            "project_id": self.project_id,
            "last_error": self.last_error,
            "running": self._runner.running,
            **self._runner.status(),  # rounds, errors, last_error_at, backoff_s
        }

    def stop(self) -> None:
        self._runner.stop(15)
        if self._client:
            self._client.close()
        if self._server:
            self._server.stop()


WEBHOOK_GROUP = "labeling"
WEBHOOK_CONSUMER = "labeling-worker"


class WebhookInbox:
    """Label Studio's webhook bodies, queued by the API (``XADD ... payload``), read through a consumer group.

    Label Studio fires a webhook once, so no entry may be lost, and a restart should not replay them all: the group
    keeps the read position in Redis (a restarted worker resumes where it was), an entry is acknowledged only after
    its handler returned (a crash before that leaves it pending, and this consumer's pending entries, read from id
    0, come first in every round), and an acknowledged entry is deleted in the same transaction, so the stream does
    not grow forever. Handling must be idempotent: an entry handled right before a crash is handled again.
    """

    def __init__(
        self, client: redis.Redis, stream: str, group: str = WEBHOOK_GROUP, consumer: str = WEBHOOK_CONSUMER
    ) -> None:
        self._redis, self._stream, self._group, self._consumer = client, stream, group, consumer
        self._group_ready = False

    def ensure_group(self) -> None:
        """Create the group (and the stream) if missing; from id 0, so entries queued before it are not lost."""
        if self._group_ready:
            return
        ensure_group(self._redis, self._stream, self._group)
        self._group_ready = True

    def drain(self, handle: Callable[[dict[str, Any]], bool], count: int = 100) -> int:
        """Hand each payload (entries left pending first, then new ones) to ``handle``; returns how many it took.

        An entry is acknowledged and deleted once ``handle`` returned; if it raises, that entry and the rest of the
        batch stay pending for the next round. Unreadable entries are logged and dropped.
        """
        self.ensure_group()
        accepted = 0
        for start in ("0", ">"):
            try:
                batch: Any = self._redis.xreadgroup(self._group, self._consumer, {self._stream: start}, count=count)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream was deleted (FLUSHDB): make the group again next round
                    self._group_ready = False
                raise
            for _, entries in batch or []:
                for entry_id, fields in entries:
                    payload = self._payload(entry_id, fields)
                    if payload is not None:
                        accepted += int(handle(payload))
                    self._done(entry_id)
        return accepted

    @staticmethod
    def _payload(entry_id: bytes | str, fields: dict[bytes, bytes] | None) -> dict[str, Any] | None:
        if not fields:
            return None  # pending, but deleted from the stream: nothing left to handle
        try:
            payload = json.loads(fields[b"payload"])
        except (KeyError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            log.warning("dropping unreadable webhook entry %r", entry_id)
            return None
        return payload

    def _done(self, entry_id: bytes | str) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, self._group, entry_id)
            pipe.xdel(self._stream, entry_id)
            pipe.execute()

"""The learning loop worker: new labels -> challenger -> gold gate -> shadow -> A/B -> (auto-)promotion.

One cycle (:meth:`LoopWorker.run_once`) first fine-tunes a challenger from the champion when enough new picked
labels exist, then replays the A/B of the current shadow against the champion on the latest labels. The face runs
the worker as a Ray actor (``visionloop up``); its thread reads the events stream through a consumer group and runs
a cycle for each ``dataset_version_created`` batch, acknowledging only after the cycle finished, so an entry a
killed worker was handling stays pending and the restarted worker handles it again.

A cycle is safe to repeat: a fine-tuning is named by a job key (champion, labels version, recipe); a registry
version carrying that key is reused, never trained or registered again, and a Redis lock keeps two workers from
training the same job at once. An A/B already decided for the same champion, shadow and labels is not replayed.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis

from visionloop.core import lifecycle
from visionloop.core.errors import VisionloopError
from visionloop.core.events import EventLog
from visionloop.core.registry import ModelRegistry, ModelVersion, Role
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames, ensure_group
from visionloop.core.worker_runner import WorkerRunner
from visionloop.learning.arms import counts_by_sampler, split_by_arm
from visionloop.learning.challenger import (
    JOB_META,
    LABELS_META,
    baseline_labels,
    build_training_set,
    champion_weights,
    find_job_version,
    fine_tune,
    job_key,
    new_label_count,
)
from visionloop.learning.datasets import DatasetStore, DatasetVersion
from visionloop.learning.gold_gate import GoldScorer, gold_gate, gold_sets
from visionloop.learning.job_lock import JobLock, LocalLock
from visionloop.learning.loop_overview import overview as overview  # its home before it had a module of its own
from visionloop.learning.quantize import int8_for
from visionloop.learning.registration import export_trained, register_trained
from visionloop.learning.shadow_ab import ShadowAB
from visionloop.learning.student import teacher_budget_s, train_student

log = logging.getLogger(__name__)

TRIGGER_EVENT = "dataset_version_created"
CONSUMER = "loop-worker"
BY = "auto"


class LoopState(StrEnum):
    IDLE = "idle"
    TRAINING = "training"
    EVALUATING = "evaluating"


class LoopWorker:
    """One learning loop; a plain class the face runs as a Ray actor (give it ``max_concurrency`` > 1 so that
    ``status`` answers while a cycle runs).

    ``redis_url`` None: a one-off cycle in this process without Redis (no events thread, no cross-worker lock;
    events wait in ``var/events.pending.jsonl``).
    """

    def __init__(
        self,
        settings: Settings,
        redis_url: str | None,
        *,
        lock_ttl_s: float = 30.0,
        on_stage: Callable[[str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._streams = StreamNames(settings.redis.stream_prefix)
        timeout = settings.redis.socket_timeout_s
        self._redis_client = redis.Redis.from_url(redis_url, socket_timeout=timeout) if redis_url else None
        # Blocking reads wait poll_interval_s on the server: their socket must wait longer than that.
        read_timeout = settings.loop.poll_interval_s + timeout
        self._reader_client = redis.Redis.from_url(redis_url, socket_timeout=read_timeout) if redis_url else None
        var = settings.var
        self._events = EventLog(redis_url, self._streams, var.events_pending)
        self._registry = ModelRegistry(var.models, on_swap=lambda kind, data: self._publish(kind, **data))
        self._store = DatasetStore(var.datasets)
        self._gold = GoldScorer(settings)
        self._lock_ttl_s = lock_ttl_s
        self._on_stage = on_stage
        self._ab = ShadowAB(settings, self._registry, self._store, self._gold, self._events, BY)
        self._cycle = threading.Lock()  # the thread and a manual run never overlap
        self._wake = threading.Event()
        self._requested: str | None = None
        # A quiet round keeps last_error: it tells the last failed cycle until a cycle succeeds.
        self._runner = WorkerRunner("learning-loop", self._poll, log=log, keep_error=True)
        self.state = LoopState.IDLE
        self.stage = ""
        self.last_job: str | None = None
        self.last_result: dict[str, Any] | None = None

    @property
    def last_error(self) -> str | None:
        return self._runner.last_error

    @last_error.setter
    def last_error(self, message: str | None) -> None:
        self._runner.record_error(message)

    @property
    def last_verdict(self) -> dict[str, Any] | None:
        return self._ab.last_verdict

    @property
    def _redis(self) -> redis.Redis:
        if self._redis_client is None:
            raise VisionloopError("the learning loop's event thread needs Redis (redis_url)")
        return self._redis_client

    @property
    def _reader(self) -> redis.Redis:
        if self._reader_client is None:
            raise VisionloopError("the learning loop's event thread needs Redis (redis_url)")
        return self._reader_client

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Join the consumer group (created from the start of the stream), take over entries another consumer left
        pending for longer than the lock ttl, and start the thread."""
        self._ensure_group()
        claimed = self._claim_stale()
        self._runner.start()
        return {"group": self._streams.loop_group, "consumer": CONSUMER, "reclaimed": claimed}

    def stop(self) -> None:
        self._wake.set()
        self._runner.stop(15)
        for client in (self._redis_client, self._reader_client):
            if client is not None:
                client.close()

    def request_run(self, trigger: str = "request") -> dict[str, Any]:
        """Queue a cycle for the thread and return at once."""
        self._requested = trigger
        self._wake.set()
        return {"queued": True, "state": self.state.value, "running": self._runner.started}

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "stage": self.stage,
            "running": self._runner.running,
            "queued": self._requested is not None,
            "last_job": self.last_job,
            "last_error": self.last_error,
            "last_verdict": self.last_verdict,
            "last_result": self.last_result,
            **self._runner.status(),  # rounds, errors, last_error_at, backoff_s
        }

    # -- the events stream --------------------------------------------------------------------------------------

    def _ensure_group(self) -> None:
        ensure_group(self._redis, self._streams.events, self._streams.loop_group)

    def _claim_stale(self) -> int:
        idle_ms = int(self._lock_ttl_s * 1000)
        claimed: Any = self._redis.xautoclaim(
            self._streams.events, self._streams.loop_group, CONSUMER, idle_ms, start_id="0-0", count=1000
        )
        return len(claimed[1]) if claimed else 0

    def _poll(self) -> None:
        """Entries left pending (by a crash, or a busy job) first, then new ones; a queued request last."""
        handled = self._handle(self._read("0", block_ms=None))
        if not handled:
            self._handle(self._read(">", block_ms=int(self._settings.loop.poll_interval_s * 1000)))
        trigger, self._requested = self._requested, None
        if trigger is not None:
            self._run_logged(trigger)
        self._wake.clear()

    def _read(self, start: str, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        if self._wake.is_set():
            block_ms = None
        batch: Any = self._reader.xreadgroup(
            self._streams.loop_group, CONSUMER, {self._streams.events: start}, count=100, block=block_ms
        )
        return [entry for _, entries in batch or [] for entry in entries]

    def _handle(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> bool:
        """One cycle for a batch holding any trigger; every entry acknowledged after it (none if the job is busy)."""
        if not entries:
            return False
        triggers = [fields for _, fields in entries if fields and fields.get(b"kind") == TRIGGER_EVENT.encode()]
        if triggers:
            payload = json.loads(triggers[-1].get(b"payload", b"{}"))
            summary = self._run_logged(f"event:{payload.get('dataset', '?')}")
            if summary is not None and summary.get("challenger", {}).get("status") == "busy":
                self._runner.wait(self._settings.loop.poll_interval_s)
                return True  # left pending: retried when the other worker's lock is released or expires
        self._redis.xack(self._streams.events, self._streams.loop_group, *[entry_id for entry_id, _ in entries])
        return True

    def _run_logged(self, trigger: str) -> dict[str, Any] | None:
        """A cycle whose failure is recorded (status, events stream) rather than raised: the entry is acknowledged,
        and the next labels version tries again."""
        try:
            return self.run_once(trigger)
        except VisionloopError as exc:
            log.error("learning loop cycle (%s) failed: %s", trigger, exc)
            self._publish("loop_failed", by=BY, trigger=trigger, error=str(exc), job=self.last_job)
            return None

    # -- one cycle ----------------------------------------------------------------------------------------------

    def run_once(self, trigger: str = "manual") -> dict[str, Any]:
        """One whole cycle; a JSON-able summary of what it did (``challenger``, ``ab``)."""
        with self._cycle:
            started = time.time()
            try:
                summary: dict[str, Any] = {"trigger": trigger, "started": started}
                summary["challenger"] = self._challenger_step()
                summary["ab"] = self._ab.run(self._latest_labels(), self._evaluating)
                summary["seconds"] = round(time.time() - started, 2)
                self.last_result, self.last_error = summary, None
                return summary
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                self._set_state(LoopState.IDLE, "")

    def _set_state(self, state: LoopState, stage: str) -> None:
        self.state, self.stage = state, stage
        if stage:
            log.info("learning loop: %s", stage)
            if self._on_stage:
                self._on_stage(stage)

    def _evaluating(self, stage: str) -> None:
        self._set_state(LoopState.EVALUATING, stage)

    def _epoch_done(self, epoch: int, total: int, row: dict[str, float]) -> None:
        """Progress of an in-process fine-tuning (a Ray task reports none back)."""
        self._set_state(LoopState.TRAINING, f"fine-tuning: epoch {epoch}/{total}, val mAP50 {row.get('map50', 0):.3f}")

    def _publish(self, kind: str, **payload: Any) -> None:
        self._events.publish(kind, **payload)

    def _latest_labels(self) -> DatasetVersion | None:
        versions = self._store.versions(self._settings.loop.labels_dataset)
        return versions[-1] if versions else None

    def _challenger_step(self) -> dict[str, Any]:
        champion = self._registry.champion()
        labels = self._latest_labels()
        if labels is None:
            return {"status": "no_labels", "labels_dataset": self._settings.loop.labels_dataset}
        key = job_key(self._settings, champion.version, labels.ref)
        self.last_job = key
        existing = find_job_version(self._registry, key)
        if existing is not None:
            return {"status": "reused", "job": key, "version": existing.version, **self._apply_gate(existing)}
        new = new_label_count(self._store, labels, baseline_labels(self._registry, champion))
        needed = self._settings.loop.min_new_labels
        base = {"job": key, "labels": labels.ref, "new_labels": new, "min_new_labels": needed}
        if new < needed:
            return {"status": "waiting", **base}
        champion_weights(champion)  # a clear error before any work
        lock_key = self._streams.loop_lock(key)
        lock = JobLock(self._redis, lock_key, self._lock_ttl_s) if self._redis_client else LocalLock(lock_key)
        if not lock.acquire():
            return {"status": "busy", **base}
        with lock.kept():
            return {**base, **self._train_and_register(champion, labels, key, lock)}

    def _train_and_register(
        self, champion: ModelVersion, labels: DatasetVersion, key: str, lock: JobLock
    ) -> dict[str, Any]:
        existing = find_job_version(self._registry, key)  # another worker may have finished it meanwhile
        if existing is not None:
            return {"status": "reused", "version": existing.version, **self._apply_gate(existing)}
        arms = split_by_arm(labels)
        training_set = build_training_set(self._store, self._settings, champion, labels, key, arms)
        runs = self._settings.var.runs
        runs.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=runs))  # per attempt: a killed one leaves its own folder
        self._set_state(LoopState.TRAINING, f"fine-tuning {key} from {champion.version} on {training_set.ref}")
        teacher = fine_tune(
            self._settings, champion, training_set.data_yaml, work, self._epoch_done, teacher_budget_s(self._settings)
        )
        if self._settings.loop.pseudo_labels or self._settings.loop.bn_adapt:
            self._set_state(LoopState.TRAINING, f"{key}: pseudo-labels of the unlabelled pool, then the student")
        result, adapted = train_student(
            self._settings, self._store, champion, training_set, teacher, key, work, fine_tune, self._epoch_done,
            avoid={image.image.stem for _, image in arms.random},
        )  # fmt: skip
        self._set_state(LoopState.EVALUATING, f"scoring {key} on the gold sets")
        onnx = export_trained(self._settings, result, work)
        int8 = int8_for(self._settings, onnx, training_set.data_yaml, work)
        served = int8 if int8 is not None and self._settings.serving.precision == "int8" else onnx
        golds = gold_sets(self._settings, self._store)
        candidate = {gold.ref: self._gold.score_file(served, gold, champion.class_names) for gold in golds}
        gate = gold_gate(candidate, self._gold.scores(champion, golds), self._settings.loop.max_gold_regression)
        lineage = {
            "parent": champion.version,
            LABELS_META: labels.ref,
            "training_dataset_version": training_set.ref,
            "label_counts": {"by_sampler": counts_by_sampler(labels), "arms": arms.counts()},
            "replay_images": training_set.manifest.get("replay_images", 0),
            "label_repeats": training_set.manifest.get("label_repeats", 1),
            "train_seconds_total": round(result.seconds, 1),
            **adapted,
            JOB_META: key,
            "gold": candidate,
            "gold_gate": gate.to_dict(),
        }
        if not lock.held():
            raise VisionloopError(f"job {key}: the training lock expired before registration; not registering")
        existing = find_job_version(self._registry, key)  # again, right before registering
        if existing is not None:
            return {"status": "reused", "version": existing.version, **self._apply_gate(existing)}
        architecture = str(champion.meta.get("architecture") or self._settings.model.architecture)
        version, _ = register_trained(
            self._settings,
            result,
            work,
            training_set.ref,
            training_set.data_yaml,
            architecture,
            champion.version,
            extra_meta=lineage,
            onnx=onnx,
            int8=int8,
        )
        self._gold.remember(version.version, candidate)
        self._publish("challenger_registered", by=BY, version=version.version, **lineage)
        return {
            "status": "trained",
            "version": version.version,
            **self._apply_gate(self._registry.get(version.version)),
        }

    def _apply_gate(self, version: ModelVersion) -> dict[str, Any]:
        """Shadow or reject a candidate by the gate result stored in its meta (a reused version decided once): the
        gate moves only a version the lifecycle lets become shadow."""
        gate = version.meta.get("gold_gate") or {}
        if not lifecycle.can_change(version.meta["role"], Role.SHADOW) or self._registry.decision(version.version):
            return {"role": version.meta.get("role"), "gate": gate}
        if gate.get("passed"):
            self._registry.set_pointer(Role.SHADOW, version.version, action="shadow", by=BY)
        else:
            self._registry.set_role(version.version, Role.REJECTED)
            self._publish("model_rejected", by=BY, version=version.version, stage="gold_gate", gate=gate)
        return {"role": self._registry.get(version.version).meta.get("role"), "gate": gate}

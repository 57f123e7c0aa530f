"""The learning loop with real Ultralytics (1 epoch, 64 px), a real Redis and a real Ray actor: a cycle trains and
registers a challenger with its lineage, never on the random arm; a repeated job registers once; a worker killed
mid-job (holding the job's lock, state "training") and restarted on the same var dir and Redis registers the
challenger exactly once."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import make_settings, wait_for
from visionloop.core.config import PACKAGE_ROOT
from visionloop.core.model_setup import registry_for
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.registry import Role
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames, event_fields
from visionloop.labeling.cuts import IncrementalCutter
from visionloop.learning.arms import frame_meta_path
from visionloop.learning.challenger import job_key
from visionloop.learning.datasets import DatasetStore, DatasetVersion, read_yolo_source, stratified_split
from visionloop.learning.loop import LoopWorker
from visionloop.simulation.world import load_domains, write_yolo_dataset

pytestmark = pytest.mark.integration
RANDOM, PICKED = 6, 10
# A loop small enough for a test: 1 epoch at 64 px on a handful of images (make_settings keyword arguments).
TINY_LOOP = {
    "LOOP__MIN_NEW_LABELS": "4",
    "LOOP__EPOCHS": "1",
    "LOOP__REPLAY_IMAGES": "6",
    "LOOP__POLL_INTERVAL_S": "0.3",
    "TRAINING__IMGSZ": "64",
    "TRAINING__BATCH": "4",
    "TRAINING__PATIENCE": "0",
    # The A/B's latency guard compares p99s timed on a dozen frames: one stall of a busy machine would reject. The
    # guard is unit-tested (test_ab_stats); here it is out of the way, so the decision shows the frame count rule.
    "AB__MAX_LATENCY_RATIO": "100",
}


def _world(domain: str, seed: int, count: int, out: Path) -> list[Any]:
    write_yolo_dataset(load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")[domain], seed, count, out, 96, 96)
    images, _, _ = read_yolo_source(out)
    return images


def _prepare(settings: Settings, tmp_path: Path) -> DatasetVersion:
    """Old data and a gold set of domain A, a champion trained 'on' the old data, labels of domain B by arm."""
    store = DatasetStore(settings.resolved_var_dir() / "datasets")
    registry = registry_for(settings)
    names = registry.champion().class_names
    old = store.create("world-A", stratified_split(_world("A", 3, 12, tmp_path / "a"), (0.5, 0.5, 0.0), 0), names)
    store.create("world-A-gold", {"val": _world("A", 4, 6, tmp_path / "gold")}, names)
    base = registry.champion()
    champion = registry.register(
        base.onnx_path, base.torch_path, {**base.meta, "dataset_version": old.ref, "source": "test"}
    )
    registry.set_pointer(Role.CHAMPION, champion.version)
    incoming = tmp_path / "incoming"
    for n, image in enumerate(_world("B", 5, RANDOM + PICKED, tmp_path / "b")):
        stem = f"frame-{n:03d}"
        meta = frame_meta_path(incoming, stem)
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"sampler": "random" if n < RANDOM else "least_confidence"}))
        for kind, source in (("images", image.image), ("labels", image.image.parent.parent / "labels")):
            (incoming / kind).mkdir(parents=True, exist_ok=True)
            if kind == "images":
                shutil.copyfile(source, incoming / kind / f"{stem}.jpg")
            else:
                shutil.copyfile(source / f"{image.image.stem}.txt", incoming / kind / f"{stem}.txt")
    cut = IncrementalCutter(store, "labels", incoming, names, (0.7, 0.2, 0.1)).cut(meta={"source": "test"})
    assert cut is not None
    return cut.version


@pytest.fixture
def loop_settings(var_dir: Path, redis_server: EmbeddedRedis, tmp_path: Path) -> tuple[Settings, DatasetVersion]:
    settings = make_settings(var_dir, REDIS__URL=redis_server.url, SERVING__IMGSZ="64", **TINY_LOOP)
    return settings, _prepare(settings, tmp_path)


def _loop_versions(settings: Settings, key: str) -> list[str]:
    return [v.version for v in registry_for(settings).versions() if v.meta.get("loop_job") == key]


def test_a_cycle_registers_a_challenger_once_with_its_lineage(loop_settings: tuple[Settings, DatasetVersion]) -> None:
    settings, labels = loop_settings
    registry = registry_for(settings)
    champion = registry.champion().version
    key = job_key(settings, champion, labels.ref)
    worker = LoopWorker(settings, settings.redis_url())
    try:
        first = worker.run_once("test")
        second = worker.run_once("test")
    finally:
        worker.stop()
    assert first["challenger"]["status"] == "trained", first
    version = first["challenger"]["version"]
    assert second["challenger"] == {**second["challenger"], "status": "reused", "version": version}
    assert _loop_versions(settings, key) == [version]

    meta = registry.get(version).meta
    assert meta["parent"] == champion and meta["labels_dataset_version"] == labels.ref
    assert meta["label_counts"]["arms"] == {"random": RANDOM, "picked": PICKED}
    assert set(meta["gold"]) == {"world-A-gold/v1"} and meta["gold_gate"]["passed"] is True
    training = DatasetStore(settings.resolved_var_dir() / "datasets").get(meta["training_dataset_version"])
    stems = {p.stem for p in (training.path / "images").rglob("*.jpg")}
    assert not stems & {f"frame-{n:03d}" for n in range(RANDOM)}  # the random arm is never trained on
    assert {f"frame-{n:03d}" for n in range(RANDOM, RANDOM + PICKED)} <= stems
    assert training.manifest["replay_images"] == 6

    assert registry.pointers()["shadow"] == version
    assert first["ab"]["status"] == "decided" and second["ab"]["status"] == "already_decided"
    decision = registry.decision(version)
    assert decision is not None and decision["random_arm_frames"] == RANDOM and decision["by"] == "auto"
    gold_frames = decision["decision_frames"]["gold"]
    assert gold_frames > 0 and decision["decision_frames"]["total"] == RANDOM + gold_frames  # pooled
    assert decision["bootstrap"]["n_frames"] == RANDOM + gold_frames
    assert decision["random_arm"]["bootstrap"]["n_frames"] == RANDOM
    assert decision["gold_sets_ab"]["world-A-gold/v1"]["frames"] == gold_frames
    assert decision["decision"] == "continue"  # far below ab.min_frames
    client = redis.Redis.from_url(settings.redis_url(), decode_responses=True)
    entries: Any = client.xrange(StreamNames(settings.redis.stream_prefix).events)
    kinds = [fields["kind"] for _, fields in entries]
    client.close()
    assert kinds.count("ab_decision") == 1 and kinds.count("challenger_registered") == 1


@pytest.fixture
def ray_cluster(loop_settings: tuple[Settings, DatasetVersion]) -> Iterator[Any]:
    from visionloop.core.ray_runtime import import_ray, init_ray

    init_ray(loop_settings[0])
    ray = import_ray()
    yield ray
    ray.shutdown()


def _hold_when_training() -> Callable[[str], None]:
    """A stage hook that holds the loop's thread for good once the job is taken (lock held, state "training"), so
    the worker is killed mid-job on every machine. Made in a function: Ray pickles a closure by value, where a
    module-level function would have to be imported from this test module in the actor's process."""

    def hold(stage: str) -> None:
        if stage.startswith("fine-tuning "):
            while True:
                time.sleep(1.0)

    return hold


def test_a_worker_killed_mid_training_and_restarted_registers_once(
    loop_settings: tuple[Settings, DatasetVersion], ray_cluster: Any
) -> None:
    ray = ray_cluster
    settings, labels = loop_settings
    key = job_key(settings, registry_for(settings).champion().version, labels.ref)
    streams = StreamNames(settings.redis.stream_prefix)
    client = redis.Redis.from_url(settings.redis_url(), decode_responses=True)
    client.xadd(streams.events, event_fields("dataset_version_created", dataset=labels.ref))  # type: ignore[arg-type]
    actor_class = ray.remote(LoopWorker).options(num_cpus=0, max_concurrency=4)

    doomed = actor_class.remote(settings, settings.redis_url(), lock_ttl_s=3.0, on_stage=_hold_when_training())
    ray.get(doomed.start.remote(), timeout=120)
    wait_for(lambda: ray.get(doomed.status.remote())["state"], lambda s: s == "training", timeout_s=120)
    ray.kill(doomed)  # held in its stage hook: killed before it could register, however fast this machine trains
    assert _loop_versions(settings, key) == []
    pending = client.xpending(streams.events, streams.loop_group)
    assert pending["pending"] >= 1  # the trigger stays pending for the next worker

    successor = actor_class.remote(settings, settings.redis_url(), lock_ttl_s=3.0)
    ray.get(successor.start.remote(), timeout=120)

    def done() -> dict[str, Any]:
        status: dict[str, Any] = ray.get(successor.status.remote())
        return {"versions": _loop_versions(settings, key), **status}

    wait_for(done, lambda s: s["versions"] and s["state"] == "idle" and s["last_result"], timeout_s=240, interval_s=1)
    time.sleep(2.0)  # a straggling task of the killed worker would register now, if it could
    assert len(_loop_versions(settings, key)) == 1
    assert client.xpending(streams.events, streams.loop_group)["pending"] == 0
    ray.get(successor.stop.remote(), timeout=30)
    client.close()


def test_a_cycle_learns_from_the_unlabelled_pool_with_repeated_labels(
    loop_settings: tuple[Settings, DatasetVersion], tmp_path: Path
) -> None:
    """With frames in the unlabelled pool, the challenger is a student: the teacher's pseudo-labels of the pool are a
    data set version of their own, named by the job, and the lineage says so; human labels appear label_repeats
    times in the training set."""
    settings, labels = loop_settings
    pool = settings.var.unlabelled / "cam-1"
    pool.mkdir(parents=True)
    for n, image in enumerate(_world("B", 9, 5, tmp_path / "pool")):
        shutil.copyfile(image.image, pool / f"{1_000_000 + n:015d}-{n}.jpg")
    settings = settings.model_copy(
        update={"loop": settings.loop.model_copy(update={"pseudo_labels": 4, "pseudo_keep": 0.05, "label_repeats": 2})}
    )
    key = job_key(settings, registry_for(settings).champion().version, labels.ref)
    worker = LoopWorker(settings, settings.redis_url())
    try:
        outcome = worker.run_once("test")
    finally:
        worker.stop()
    assert outcome["challenger"]["status"] == "trained", outcome
    meta = registry_for(settings).get(outcome["challenger"]["version"]).meta
    assert meta["pool_frames"] == 4 and meta["label_repeats"] == 2
    store = DatasetStore(settings.resolved_var_dir() / "datasets")
    pseudo = store.get(meta["pseudo_labels"]["version"])
    assert pseudo.manifest["loop_job"] == key and pseudo.manifest["counts"]["train"]["images"] == 4
    assert meta["pseudo_labels"]["frames"] == 4
    training = store.get(meta["training_dataset_version"])
    names = [p.stem for p in (training.path / "images" / "train").glob("*.jpg")]
    picked_train = [n for n in names if n.startswith("frame-") and "__copy" not in n]
    assert picked_train and all(f"{n}__copy1" in names for n in picked_train)
    assert not any(n.endswith("__copy2") for n in names)


def test_the_student_stage_prepares_ultralytics_in_a_fresh_process(
    loop_settings: tuple[Settings, DatasetVersion], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the service the teacher trains as a Ray task, so the loop worker's own process has never prepared
    Ultralytics when the student stage exports the teacher and pseudo-labels the pool."""
    from visionloop.core import offline
    from visionloop.learning.student import train_student
    from visionloop.learning.training import TrainResult

    settings, _ = loop_settings
    pool = settings.var.unlabelled / "cam-1"
    pool.mkdir(parents=True)
    for n, image in enumerate(_world("B", 11, 3, tmp_path / "pool")):
        shutil.copyfile(image.image, pool / f"{2_000_000 + n:015d}-{n}.jpg")
    registry = registry_for(settings)
    champion = registry.champion()
    store = DatasetStore(settings.resolved_var_dir() / "datasets")
    training_set = store.get(champion.meta["dataset_version"])
    teacher = TrainResult(champion.torch_path, 1, 1.0)
    monkeypatch.setattr(offline, "_prepared", None)  # as in the loop worker's actor
    student, meta = train_student(
        settings, store, champion, training_set, teacher, "job-x", tmp_path / "work", lambda *args: teacher
    )
    assert student.weights == champion.torch_path and meta["pseudo_labels"]["frames"] == 3

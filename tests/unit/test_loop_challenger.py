"""A challenger's recipe without training: the training set (replay + picked labels, never the random arm), new
label counts, the job key, the gold gate and the job lock."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from contextlib import ExitStack as DoesNotRaise
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import make_settings, wait_for
from tests.unit.test_loop_arms import NAMES, cut, harvest
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.registry import ModelRegistry, ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.challenger import (
    ChallengerError,
    baseline_labels,
    build_training_set,
    champion_weights,
    job_key,
    new_label_count,
    trained_stems,
)
from visionloop.learning.datasets import DatasetStore, read_images
from visionloop.learning.gold_gate import gold_gate, gold_sets, worst_gold
from visionloop.learning.job_lock import JobLock


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "var", LOOP__REPLAY_IMAGES="5")


def _champion(path: Path, dataset_version: str | None, **meta: Any) -> ModelVersion:
    return ModelVersion("v1", path, {"class_names": NAMES, "dataset_version": dataset_version, **meta})


def _old_data(store: DatasetStore, tmp_path: Path, count: int = 12) -> str:
    pool = tmp_path / "pool"
    for n in range(count):
        harvest(pool, f"old{n}", None)
    images = read_images(sorted((pool / "images").glob("*.jpg")), len(NAMES)).images
    return store.create("world-A", {"train": images[:8], "val": images[8:]}, NAMES).ref


def test_training_set_replays_old_data_and_every_picked_label_but_never_a_random_frame(
    tmp_path: Path, settings: Settings
) -> None:
    store = DatasetStore(settings.resolved_var_dir() / "datasets")
    old = _old_data(store, tmp_path)
    incoming = tmp_path / "incoming"
    for n in range(10):
        harvest(incoming, f"rand{n}", "random")
        harvest(incoming, f"pick{n}", "least_confidence" if n % 2 else "novelty")
    harvest(incoming, "legacy", None)
    labels = cut(store, incoming)
    version = build_training_set(store, settings, _champion(tmp_path, old), labels, "loop-abc")

    stems = {p.stem for p in (version.path / "images").rglob("*.jpg")}
    assert not {s for s in stems if s.startswith("rand")}
    assert {f"pick{n}" for n in range(10)} | {"legacy"} <= stems
    replayed = {s for s in stems if s.startswith("old")}
    assert len(replayed) == 5 == version.manifest["replay_images"]
    manifest = version.manifest
    assert manifest["loop_job"] == "loop-abc" and manifest["labels_dataset_version"] == labels.ref
    assert manifest["random_arm_excluded"] == 10
    # the same job reuses its version; the sample is seeded
    assert build_training_set(store, settings, _champion(tmp_path, old), labels, "loop-abc") == version
    again = build_training_set(store, settings, _champion(tmp_path, old), labels, "loop-other")
    assert {p.stem for p in (again.path / "images").rglob("*.jpg")} == stems
    assert trained_stems(version) <= stems


@pytest.mark.parametrize(
    ("first", "second", "baseline", "expected"),
    [
        ({"random": 3, "entropy": 4}, {}, None, 4),  # random frames never count
        ({"random": 3, "entropy": 4}, {"entropy": 2, "random": 5}, "labels/v1", 2),
        ({"entropy": 4}, {"random": 5}, "labels/v1", 0),
        ({"entropy": 4}, {"margin": 1}, "labels/v9", 5),  # baseline gone: everything is new
    ],
)
def test_new_labels_are_picked_frames_not_in_the_baseline(
    tmp_path: Path, first: dict[str, int], second: dict[str, int], baseline: str | None, expected: int
) -> None:
    store, incoming = DatasetStore(tmp_path / "datasets"), tmp_path / "incoming"
    for batch, tag in ((first, "a"), (second, "b")):
        for sampler, count in batch.items():
            for n in range(count):
                harvest(incoming, f"{tag}-{sampler}-{n}", sampler)
        if batch:
            latest = cut(store, incoming)
    assert new_label_count(store, latest, baseline) == expected


def test_baseline_is_the_newest_challenger_of_the_champion_else_the_champions_own_labels(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    champ = registry.register(onnx, None, {"labels_dataset_version": "labels/v1"})
    assert baseline_labels(registry, champ) == "labels/v1"
    registry.register(onnx, None, {"parent": champ.version, "loop_job": "j1", "labels_dataset_version": "labels/v2"})
    registry.register(onnx, None, {"parent": champ.version, "loop_job": "j2", "labels_dataset_version": "labels/v3"})
    registry.register(onnx, None, {"parent": champ.version, "labels_dataset_version": "labels/v9"})  # not the loop's
    assert baseline_labels(registry, registry.get(champ.version)) == "labels/v3"
    assert baseline_labels(registry, registry.register(onnx, None, {})) is None


def test_job_key_names_one_recipe(settings: Settings) -> None:
    key = job_key(settings, "v1", "labels/v2")
    assert key == job_key(settings, "v1", "labels/v2") and key.startswith("loop-")
    other = settings.model_copy(update={"loop": settings.loop.model_copy(update={"epochs": 99})})
    assert (
        len(
            {
                key,
                job_key(settings, "v2", "labels/v2"),
                job_key(settings, "v1", "labels/v3"),
                job_key(other, "v1", "labels/v2"),
            }
        )
        == 4
    )


def test_a_champion_without_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ChallengerError, match=r"no model\.pt"):
        champion_weights(_champion(tmp_path, None))


def test_class_mismatch_is_refused(tmp_path: Path, settings: Settings) -> None:
    store, incoming = DatasetStore(tmp_path / "datasets"), tmp_path / "incoming"
    harvest(incoming, "p", "entropy")
    labels = cut(store, incoming)
    champion = ModelVersion("v1", tmp_path, {"class_names": ["dog"], "dataset_version": None})
    with pytest.raises(ChallengerError, match="mislabel"):
        build_training_set(store, settings, champion, labels, "k")


@pytest.mark.parametrize(
    ("candidate", "champion", "passed", "expectation"),
    [
        ({"A-gold/v1": 0.78}, {"A-gold/v1": 0.80}, True, DoesNotRaise()),
        ({"A-gold/v1": 0.74}, {"A-gold/v1": 0.80}, False, DoesNotRaise()),
        ({"A-gold/v1": 0.90, "B-gold/v1": 0.20}, {"A-gold/v1": 0.80, "B-gold/v1": 0.40}, False, DoesNotRaise()),
        ({}, {}, True, DoesNotRaise()),  # no gold set: nothing to gate on
        ({}, {"A-gold/v1": 0.8}, None, pytest.raises(Exception, match="not scored")),
    ],
)
def test_gold_gate(
    candidate: dict[str, float],
    champion: dict[str, float],
    passed: bool | None,
    expectation: AbstractContextManager[Any],
) -> None:
    with expectation:
        result = gold_gate(candidate, champion, max_regression=0.05)
        assert result.passed is passed
        assert ("no gold set" in result.reason) == (not champion)


def test_worst_gold_is_the_set_the_candidate_loses_most_on() -> None:
    assert worst_gold({"a": 0.9, "b": 0.3}, {"a": 0.8, "b": 0.5}) == (0.5, 0.3, "b")
    assert worst_gold({}, {}) == (0.0, 0.0, None)


def test_gold_sets_are_the_gold_named_data_sets_unless_listed(tmp_path: Path, settings: Settings) -> None:
    store = DatasetStore(settings.resolved_var_dir() / "datasets")
    assert gold_sets(settings, store) == []
    pool = tmp_path / "pool"
    harvest(pool, "g", None)
    images = read_images(sorted((pool / "images").glob("*.jpg")), len(NAMES)).images
    for name in ("world-A-gold", "world-A", "world-B-gold", "world-B-gold"):
        store.create(name, {"val": images}, NAMES)
    assert [g.ref for g in gold_sets(settings, store)] == ["world-A-gold/v1", "world-B-gold/v2"]
    listed = settings.model_copy(
        update={"loop": settings.loop.model_copy(update={"gold_datasets": ["world-B-gold/v1"]})}
    )
    assert [g.ref for g in gold_sets(listed, store)] == ["world-B-gold/v1"]


def test_job_lock_excludes_a_second_worker_until_it_expires(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    # A ttl of 2 s, refreshed every 0.67 s: held past its ttl only if refreshed, and a stall of a second is no loss.
    first, second = JobLock(client, "t:lock", 2.0), JobLock(client, "t:lock", 2.0)
    assert first.acquire()
    with first.kept():
        assert not second.acquire()
        time.sleep(2.5)  # longer than the ttl: still held, so it was refreshed
        assert first.held() and not second.acquire()
    assert second.acquire()  # released at the end of the block
    dead = JobLock(client, "t:dead", 1.5)
    assert dead.acquire()
    successor = JobLock(client, "t:dead", 5)
    assert not successor.acquire()  # held until it expires...
    # ...which it does by itself, since a killed holder never refreshes (well within the wait; never, with no ttl)
    wait_for(successor.acquire, timeout_s=10, interval_s=0.05)
    assert not dead.held()
    dead.release()  # a stale holder cannot delete its successor's lock
    assert successor.held()
    client.close()

"""Arm bookkeeping: the harvester records each labelled frame's sampler next to it, every cut carries it into the
version's manifest, and the loop splits any labels version into the random control arm and the picked frames
(unknown, e.g. from an old manifest, is never random)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from visionloop.core.streams import StreamNames
from visionloop.labeling.cuts import IncrementalCutter
from visionloop.labeling.sync import FRAMES_DIR, LabelHarvester
from visionloop.learning.arms import LEDGER_KEY, RANDOM_ARM, UNKNOWN_ARM, frame_meta_path, samplers_of, split_by_arm
from visionloop.learning.datasets import DatasetStore, DatasetVersion, read_images

NAMES = ["circle", "square", "triangle"]


def harvest(incoming: Path, stem: str, sampler: str | None, label: str = "0 0.5 0.5 0.25 0.25\n") -> None:
    """What the harvester leaves for one frame: its meta (unless ``sampler`` is None), the image, the label."""
    if sampler is not None:
        path = frame_meta_path(incoming, stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"sampler": sampler}))
    (incoming / "images").mkdir(parents=True, exist_ok=True)
    (incoming / "labels").mkdir(parents=True, exist_ok=True)
    pixels = np.full((32, 32, 3), sum(map(ord, stem)) % 255, np.uint8)
    cv2.imwrite(str(incoming / "images" / f"{stem}.jpg"), pixels)
    (incoming / "labels" / f"{stem}.txt").write_text(label)


def cut(store: DatasetStore, incoming: Path, name: str = "labels") -> DatasetVersion:
    made = IncrementalCutter(store, name, incoming, NAMES, (0.6, 0.2, 0.2)).cut(meta={"source": "test"})
    assert made is not None
    return made.version


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"sampler": "random"}, RANDOM_ARM),
        ({"sampler": "least_confidence"}, "least_confidence"),
        ({"sampler": ""}, UNKNOWN_ARM),
        ({}, UNKNOWN_ARM),
        (None, UNKNOWN_ARM),  # no meta file at all (labels harvested before this bookkeeping)
        ("not json", UNKNOWN_ARM),
    ],
)
def test_cut_records_each_images_sampler(tmp_path: Path, meta: Any, expected: str) -> None:
    incoming = tmp_path / "incoming"
    harvest(incoming, "f1", None)
    if meta is not None:
        path = frame_meta_path(incoming, "f1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(meta if isinstance(meta, str) else json.dumps(meta))
    version = cut(DatasetStore(tmp_path / "datasets"), incoming)
    assert version.manifest[LEDGER_KEY]["f1.jpg"]["sampler"] == expected
    assert samplers_of(version) == {"f1": expected}


def test_split_by_arm_keeps_random_apart_and_counts_unknown_as_picked(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    for n in range(6):
        harvest(incoming, f"r{n}", "random")
        harvest(incoming, f"u{n}", "entropy")
    harvest(incoming, "old", None)
    store = DatasetStore(tmp_path / "datasets")
    first = cut(store, incoming)
    harvest(incoming, "late", "random")  # a second, incremental cut keeps the first cut's samplers
    second = cut(store, incoming)
    arms = split_by_arm(second)
    assert {i.image.stem for _, i in arms.random} == {f"r{n}" for n in range(6)} | {"late"}
    assert {i.image.stem for _, i in arms.picked} == {f"u{n}" for n in range(6)} | {"old"}
    assert arms.counts() == {"random": 7, "picked": 7}
    assert {split for split, _ in arms.random + arms.picked} <= {"train", "val", "test"}
    assert samplers_of(first)["old"] == UNKNOWN_ARM


def test_a_manifest_without_samplers_is_never_random(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    harvest(incoming, "a", None)
    harvest(incoming, "b", None)
    images = read_images(sorted((incoming / "images").glob("*.jpg")), len(NAMES)).images
    old = DatasetStore(tmp_path / "datasets").create(
        "labels", {"train": images}, NAMES, meta={LEDGER_KEY: {"a.jpg": {"stamp": "x"}}}
    )
    assert samplers_of(old) == {"a": UNKNOWN_ARM, "b": UNKNOWN_ARM}
    assert not split_by_arm(old).random


class FakeRedis:
    """The three commands the harvester uses."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.streams: dict[str, list[dict[str, str]]] = {}

    def hget(self, key: str, field: str) -> str | None:
        return self.hashes.get(key, {}).get(field)

    def hset(self, key: str, field: str, value: str) -> None:
        self.hashes.setdefault(key, {})[field] = value

    def xadd(self, key: str, fields: dict[str, str]) -> None:
        self.streams.setdefault(key, []).append(fields)


@pytest.mark.parametrize(
    ("data", "expected"),
    [({"sampler": "random"}, "random"), ({"sampler": "margin"}, "margin"), ({}, "unknown")],
)
def test_harvester_writes_the_sampler_beside_the_frame(tmp_path: Path, data: dict[str, str], expected: str) -> None:
    files, incoming = tmp_path / "files", tmp_path / "incoming"
    (files / FRAMES_DIR).mkdir(parents=True)
    cv2.imwrite(str(files / FRAMES_DIR / "cam-1.jpg"), np.zeros((16, 16, 3), np.uint8))
    harvester = LabelHarvester(None, 1, files, incoming, FakeRedis(), StreamNames("t"), NAMES)  # type: ignore[arg-type]
    task = {"id": 7, "data": {"frame_id": "cam-1", "camera_id": "cam", **data}, "predictions": []}
    assert harvester.accept(task, {"id": 1, "updated_at": "t1", "result": []})
    meta = json.loads(frame_meta_path(incoming, "cam-1").read_text())
    assert meta["sampler"] == expected and meta["task_id"] == 7
    assert (incoming / "labels" / "cam-1.txt").is_file() and (incoming / "images" / "cam-1.jpg").is_file()
    assert not any(p.suffix == ".tmp" for p in incoming.rglob("*"))
    assert os.listdir(incoming / "meta") == ["cam-1.json"]

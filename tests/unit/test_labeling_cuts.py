"""Incremental data set cuts from the incoming label folder: only new or rewritten files are read, every version
holds every label so far, images keep their split, and new ones are split by the fractions given."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest

import visionloop.labeling.cuts as cuts
from visionloop.labeling.cuts import IncrementalCutter
from visionloop.learning.datasets import DatasetStore, DatasetVersion, ReadReport, read_images, read_yolo_source

NAMES = ["circle", "square", "triangle"]


def _harvest(incoming: Path, stem: str, label: str, image: bool = True) -> None:
    """What the harvester does: the frame, then its label file, each written to a temporary name and renamed."""
    (incoming / "images").mkdir(parents=True, exist_ok=True)
    (incoming / "labels").mkdir(parents=True, exist_ok=True)
    if image:
        pixels = np.full((32, 32, 3), sum(map(ord, stem)) % 255, np.uint8)
        tmp = incoming / "images" / f"{stem}.jpg.tmp.jpg"
        cv2.imwrite(str(tmp), pixels)
        os.replace(tmp, incoming / "images" / f"{stem}.jpg")
    tmp = incoming / "labels" / f"{stem}.txt.tmp"
    tmp.write_text(label)
    os.replace(tmp, incoming / "labels" / f"{stem}.txt")


def _box(class_id: int) -> str:
    return f"{class_id} 0.500000 0.500000 0.250000 0.250000\n"


class ReadSpy:
    """Counts the incoming images (and label files) the cutter hands to the validating reader."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def __call__(self, images: Iterable[Path], num_classes: int, check_pixels: bool = True) -> ReadReport:
        images = list(images)
        self.read.extend(p.stem for p in images)
        return read_images(images, num_classes, check_pixels)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> ReadSpy:
    reader = ReadSpy()
    monkeypatch.setattr(cuts, "read_images", reader)
    return reader


def _splits(version: DatasetVersion) -> dict[str, str]:
    """Image stem -> split, from the files actually in the version."""
    return {p.stem: p.parent.name for p in (version.path / "images").rglob("*.jpg")}


def _label(version: DatasetVersion, stem: str) -> str:
    return next((version.path / "labels").rglob(f"{stem}.txt")).read_text()


def test_second_cut_reads_only_new_files_and_keeps_old_images_in_their_split(tmp_path: Path, spy: ReadSpy) -> None:
    incoming = tmp_path / "incoming"
    for n in range(10):
        _harvest(incoming, f"old{n}", _box(n % 3))
    cutter = IncrementalCutter(DatasetStore(tmp_path / "datasets"), "labels", incoming, NAMES, (0.7, 0.2, 0.1))
    first = cutter.cut(meta={"source": "test"})
    assert first is not None and first.version.ref == "labels/v1" and first.images == 10 and first.read == 10
    assert sorted(spy.read) == sorted(f"old{n}" for n in range(10))
    old_splits = _splits(first.version)

    spy.read.clear()
    for n in range(4):
        _harvest(incoming, f"new{n}", _box(n % 3) + _box(2))
    second = cutter.cut(meta={"source": "test"})
    assert second is not None and second.version.ref == "labels/v2"
    assert sorted(spy.read) == ["new0", "new1", "new2", "new3"]  # the ten earlier files were not read again
    assert second.read == 4 and second.images == 14

    splits = _splits(second.version)
    assert set(splits) == {f"old{n}" for n in range(10)} | {f"new{n}" for n in range(4)}
    assert {stem: splits[stem] for stem in old_splits} == old_splits
    for stem, split in old_splits.items():  # taken from v1 as they were: the same file, not a copy
        same = f"images/{split}/{stem}.jpg"
        assert os.path.samefile(first.version.path / same, second.version.path / same)
        assert first.version.manifest["files"][same] == second.version.manifest["files"][same]
    manifest = second.version.manifest
    assert second.version.verify() == [] and manifest["source"] == "test" and manifest["extends"] == "labels/v1"
    # The counts are those of the files now in the version, and the version is a whole, valid YOLO data set.
    images, names, report = read_yolo_source(second.version.data_yaml)
    assert names == NAMES and not report.bad and len(images) == 14
    for split in ("train", "val", "test"):
        in_split = [i for i in images if i.image.parent.name == split]
        per_class = Counter(c for i in in_split for c in i.classes)
        assert manifest["counts"][split]["images"] == len(in_split)
        assert manifest["counts"][split]["boxes"] == sum(per_class.values())
        assert manifest["counts"][split]["per_class"] == {str(k): v for k, v in sorted(per_class.items())}

    spy.read.clear()
    assert cutter.cut() is None and spy.read == []  # nothing new: no version, nothing read


def test_a_rewritten_label_is_read_again_and_replaces_the_old_one_in_its_split(tmp_path: Path, spy: ReadSpy) -> None:
    incoming = tmp_path / "incoming"
    for n in range(6):
        _harvest(incoming, f"f{n}", _box(0))
    cutter = IncrementalCutter(DatasetStore(tmp_path / "datasets"), "labels", incoming, NAMES, (0.5, 0.5, 0.0))
    first = cutter.cut()
    assert first is not None
    split = _splits(first.version)["f3"]

    spy.read.clear()
    _harvest(incoming, "f3", _box(1) + _box(2))  # the annotation was updated in Label Studio
    second = cutter.cut()
    assert second is not None and spy.read == ["f3"] and second.images == 6
    assert _splits(second.version)["f3"] == split
    assert _label(second.version, "f3") == _box(1) + _box(2)
    assert _label(first.version, "f3") == _box(0)  # the earlier version is untouched
    counts = second.version.manifest["counts"]
    assert sum(counts[s]["images"] for s in counts) == 6
    assert counts[split]["per_class"]["1"] == 1 and counts[split]["per_class"]["2"] == 1


def test_bad_files_are_skipped_listed_and_not_read_again_until_rewritten(tmp_path: Path, spy: ReadSpy) -> None:
    incoming = tmp_path / "incoming"
    for n in range(4):
        _harvest(incoming, f"ok{n}", _box(n % 3))
    _harvest(incoming, "badclass", "7 0.5 0.5 0.1 0.1\n")
    cutter = IncrementalCutter(DatasetStore(tmp_path / "datasets"), "labels", incoming, NAMES, (0.7, 0.2, 0.1))
    first = cutter.cut()
    assert first is not None and first.images == 4
    assert len(first.skipped) == 1 and "badclass.txt: line 1: class 7" in first.skipped[0]

    spy.read.clear()
    _harvest(incoming, "ok9", _box(1))
    second = cutter.cut()
    assert second is not None and spy.read == ["ok9"]
    assert second.version.manifest["skipped"] == first.skipped  # still listed, not read again

    spy.read.clear()
    _harvest(incoming, "ok2", "9 0.5 0.5 0.1 0.1\n")  # an image in the data set whose new label is unusable
    third = cutter.cut()
    assert third is not None and spy.read == ["ok2"] and third.images == 4
    assert "ok2" not in _splits(third.version) and third.version.verify() == []
    counts = third.version.manifest["counts"]
    assert sum(counts[s]["images"] for s in counts) == 4 and len(third.skipped) == 2


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.0), (0.7, 0.2, 0.1)])
def test_new_images_are_split_by_the_fractions_given(tmp_path: Path, fractions: tuple[float, float, float]) -> None:
    incoming = tmp_path / "incoming"
    for n in range(20):
        _harvest(incoming, f"a{n:02d}", _box(0))
    cutter = IncrementalCutter(DatasetStore(tmp_path / "datasets"), "labels", incoming, NAMES, fractions)
    first = cutter.cut()
    assert first is not None
    sizes = Counter(_splits(first.version).values())
    assert [sizes[s] for s in ("train", "val", "test")] == [round(20 * f) for f in fractions]

    for n in range(10):
        _harvest(incoming, f"b{n:02d}", _box(0))
    second = cutter.cut()
    assert second is not None
    new = Counter(split for stem, split in _splits(second.version).items() if stem.startswith("b"))
    assert [new[s] for s in ("train", "val", "test")] == [round(10 * f) for f in fractions]


def test_a_change_of_classes_starts_the_data_set_afresh(tmp_path: Path, spy: ReadSpy) -> None:
    incoming = tmp_path / "incoming"
    for n in range(4):
        _harvest(incoming, f"f{n}", _box(0))
    store = DatasetStore(tmp_path / "datasets")
    assert IncrementalCutter(store, "labels", incoming, NAMES, (0.5, 0.5, 0.0)).cut() is not None
    spy.read.clear()
    renamed = IncrementalCutter(store, "labels", incoming, [*NAMES, "star"], (0.5, 0.5, 0.0)).cut()
    assert renamed is not None and sorted(spy.read) == ["f0", "f1", "f2", "f3"]
    assert "extends" not in renamed.version.manifest and renamed.version.manifest["class_names"] == [*NAMES, "star"]

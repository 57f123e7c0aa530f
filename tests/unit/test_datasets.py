from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from visionloop.core.config import PACKAGE_ROOT
from visionloop.learning.datasets import (
    DatasetError,
    DatasetStore,
    LabelledImage,
    oversample_rare,
    read_yolo_source,
    stratified_split,
)
from visionloop.simulation.world import load_domains, write_yolo_dataset

DOMAIN_A = load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")["A"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pool")
    write_yolo_dataset(DOMAIN_A, 11, 60, root)
    return root


def _copy_source(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_split_is_stratified_and_deterministic(source: Path) -> None:
    images, names, report = read_yolo_source(source)
    assert len(images) == 60 and not report.bad and len(names) == 5
    first = stratified_split(images, (0.7, 0.2, 0.1), seed=3)
    second = stratified_split(images, (0.7, 0.2, 0.1), seed=3)
    assert {k: [i.image for i in v] for k, v in first.items()} == {k: [i.image for i in v] for k, v in second.items()}
    sizes = {k: len(v) for k, v in first.items()}
    assert sum(sizes.values()) == 60
    assert 38 <= sizes["train"] <= 46 and 9 <= sizes["val"] <= 15 and 3 <= sizes["test"] <= 9
    # No image in two splits.
    all_images = [i.image for v in first.values() for i in v]
    assert len(all_images) == len(set(all_images))
    # Every class that exists is in the training split.
    assert {c for i in first["train"] for c in i.classes} == {c for i in images for c in i.classes}


def test_versions_are_immutable_hashed_and_numbered(source: Path, tmp_path: Path) -> None:
    images, names, _ = read_yolo_source(source)
    store = DatasetStore(tmp_path / "datasets")
    first = store.create("shapes", stratified_split(images, (0.7, 0.2, 0.1), 0), names)
    second = store.create("shapes", stratified_split(images, (0.5, 0.5, 0.0), 0), names)
    assert (first.version, second.version) == ("v1", "v2")
    assert store.get("shapes").version == "v2" and store.get("shapes/v1").path == first.path
    manifest = first.manifest
    assert (
        manifest["counts"]["train"]["images"]
        + manifest["counts"]["val"]["images"]
        + manifest["counts"]["test"]["images"]
        == 60
    )
    assert len(manifest["files"]) == 120  # an image and a label each
    data = yaml.safe_load(first.data_yaml.read_text())
    assert data["names"] == dict(enumerate(names)) and Path(data["path"]) == first.path.resolve()
    label = next(iter(p for p in manifest["files"] if p.startswith("labels/train")))
    assert not os.stat(first.path / label).st_mode & 0o222  # read-only
    assert first.verify() == []
    (first.path / label).chmod(0o644)
    (first.path / label).write_text("0 0.5 0.5 0.1 0.1\n")
    assert first.verify() == [label]
    with pytest.raises(DatasetError, match="known: v1, v2"):
        store.get("shapes/v9")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("missing_label", "missing label file"),
        ("out_of_range", "outside the image"),
        ("unknown_class", "class 7 is not in data.yaml"),
        ("malformed", "expected 'class cx cy w h'"),
        ("corrupt_image", "corrupt or unreadable image"),
    ],
)
def test_bad_files_are_listed_or_skipped(source: Path, tmp_path: Path, damage: str, reason: str) -> None:
    root = _copy_source(source, tmp_path / "broken")
    image = sorted((root / "images").glob("*.jpg"))[4]
    label = root / "labels" / f"{image.stem}.txt"
    if damage == "missing_label":
        label.unlink()
    elif damage == "out_of_range":
        label.write_text("1 1.4 0.5 0.2 0.2\n")
    elif damage == "unknown_class":
        label.write_text("7 0.5 0.5 0.2 0.2\n")
    elif damage == "malformed":
        label.write_text("1 0.5 0.5\n")
    else:
        image.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DatasetError) as excinfo:
        read_yolo_source(root)
    assert reason in str(excinfo.value) and image.stem in str(excinfo.value)
    assert "skip_bad_files" in str(excinfo.value)
    images, _, report = read_yolo_source(root, skip_bad=True)
    assert len(images) == 59 and len(report.bad) == 1 and reason in report.bad[0][1]


def test_oversampling_lifts_rare_classes() -> None:
    def item(name: str, classes: list[int]) -> LabelledImage:
        rows = np.array([[c, 0.5, 0.5, 0.1, 0.1] for c in classes], float).reshape(-1, 5)
        return LabelledImage(Path(f"/x/images/{name}.jpg"), rows)

    train = [item(f"common{i}", [0, 0]) for i in range(10)] + [item("rare", [1])]
    boosted = oversample_rare(train, threshold=0.5)
    counts = Counter(c for image, _ in boosted for c in image.classes)
    assert counts[1] >= 10 and counts[0] == 20
    assert oversample_rare(train, 0.0) == [(i, 0) for i in train]


def test_gold_sets_put_everything_in_val(source: Path, tmp_path: Path) -> None:
    images, names, _ = read_yolo_source(source)
    gold = DatasetStore(tmp_path / "datasets").create("gold", stratified_split(images, (0.0, 1.0, 0.0), 0), names)
    counts = gold.manifest["counts"]
    assert counts["val"]["images"] == 60 and counts["train"]["images"] == 0
    data = yaml.safe_load(gold.data_yaml.read_text())
    assert data["val"] == "images/val"

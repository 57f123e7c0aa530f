"""Data set versions: validated YOLO data, immutable once written, with a manifest of file hashes.

``var/datasets/<name>/v<N>/`` holds ``images/{train,val,test}``, ``labels/...``, ``data.yaml`` and
``manifest.json``. Images and labels are made read-only; only Ultralytics' label caches may appear beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from visionloop.core.registry import publish_next_version, replace_file
from visionloop.learning.yolo_source import (
    IMAGE_SUFFIXES,
    DatasetError,
    LabelledImage,
    ReadReport,
    images_in,
    label_path_for,
    load_class_names,
    parse_labels,
    read_images,
    read_yolo_source,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "SPLITS",
    "DatasetError",
    "DatasetStore",
    "DatasetVersion",
    "LabelledImage",
    "ReadReport",
    "images_in",
    "label_path_for",
    "load_class_names",
    "oversample_rare",
    "read_images",
    "read_yolo_source",
    "sha256_of",
    "stratified_split",
]

SPLITS = ("train", "val", "test")
_VERSION_RE = re.compile(r"^v(\d+)$")


def stratified_split(
    images: Sequence[LabelledImage], fractions: tuple[float, float, float], seed: int
) -> dict[str, list[LabelledImage]]:
    """Split so every class appears in each split in proportion: stratify on each image's rarest class."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise DatasetError(f"split fractions {fractions} must be non-negative and sum to 1")
    frequency = Counter(c for image in images for c in image.classes)
    strata: dict[int, list[LabelledImage]] = {}
    for image in images:
        key = min(image.classes, key=lambda c: (frequency[c], c)) if image.classes else -1
        strata.setdefault(key, []).append(image)
    rng = np.random.default_rng(seed)
    out: dict[str, list[LabelledImage]] = {split: [] for split in SPLITS}
    for key in sorted(strata):
        members = sorted(strata[key], key=lambda item: item.image.name)
        order = rng.permutation(len(members))
        n_train = round(len(members) * fractions[0])
        n_val = round(len(members) * fractions[1])
        for rank, index in enumerate(order):
            split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            out[split].append(members[index])
    return out


def oversample_rare(train: list[LabelledImage], threshold: float) -> list[tuple[LabelledImage, int]]:
    """(image, copy number) pairs adding copies of images with rare classes until each reaches
    ``threshold`` x the most common class count. Copy 0 is the original."""
    counts = Counter(c for image in train for c in image.classes)
    if not counts or threshold <= 0:
        return [(image, 0) for image in train]
    target = threshold * max(counts.values())
    out = [(image, 0) for image in train]
    for class_id, count in sorted(counts.items()):
        holders = [image for image in train if class_id in image.classes]
        copies, copy_number = count, 1
        while copies < target and holders:
            for image in holders:
                if copies >= target:
                    break
                out.append((image, copy_number))
                copies += image.classes.count(class_id)
            copy_number += 1
    return out


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_COPY_RE = re.compile(r"__copy\d+$")


def _original_stem(rel: str) -> str:
    """The stem of the image a version file belongs to (oversampled copies included)."""
    return _COPY_RE.sub("", Path(rel).stem)


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _uncount(previous: dict[str, Any], label_rel: str, label: Path, num_classes: int) -> None:
    """Take a dropped label file of a base version off that version's counts (``previous``, changed in place)."""
    split = Path(label_rel).parent.name
    rows, _ = parse_labels(label, num_classes)
    classes = [int(c) for c in rows[:, 0]] if rows is not None else []
    entry = previous[split]
    entry["images"] -= 1
    entry["boxes"] -= len(classes)
    entry["oversampled_copies"] -= int(Path(label_rel).stem != _original_stem(label_rel))
    for class_id in classes:
        entry["per_class"][str(class_id)] -= 1
    entry["per_class"] = {k: v for k, v in entry["per_class"].items() if v > 0}


def _add_counts(counts: dict[str, Any], previous: dict[str, Any]) -> None:
    """Add the base's (remaining) counts to the new files' counts, split by split."""
    for split in SPLITS:
        old = previous.get(split) or {"images": 0, "boxes": 0, "per_class": {}, "oversampled_copies": 0}
        new = counts[split]
        per_class = Counter({int(k): int(v) for k, v in old["per_class"].items()})
        per_class.update({int(k): int(v) for k, v in new["per_class"].items()})
        counts[split] = {
            "images": old["images"] + new["images"],
            "boxes": old["boxes"] + new["boxes"],
            "per_class": {str(k): v for k, v in sorted(per_class.items()) if v > 0},
            "oversampled_copies": old["oversampled_copies"] + new["oversampled_copies"],
        }


@dataclass(frozen=True)
class DatasetVersion:
    name: str
    version: str
    path: Path

    @property
    def data_yaml(self) -> Path:
        return self.path / "data.yaml"

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(json.loads((self.path / "manifest.json").read_text(encoding="utf-8")))

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def verify(self) -> list[str]:
        """Files whose bytes no longer match the manifest (empty when intact)."""
        files: dict[str, str] = self.manifest["files"]
        return [
            rel
            for rel, digest in files.items()
            if not (self.path / rel).is_file() or sha256_of(self.path / rel) != digest
        ]


class DatasetStore:
    """Immutable data set versions under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def versions(self, name: str) -> list[DatasetVersion]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        numbered = []
        for child in folder.iterdir():
            match = _VERSION_RE.match(child.name)
            if match and (child / "manifest.json").is_file():
                numbered.append((int(match.group(1)), child))
        return [DatasetVersion(name, path.name, path) for _, path in sorted(numbered)]

    def get(self, ref: str) -> DatasetVersion:
        """'name' (latest version) or 'name/vN'."""
        name, _, version = ref.partition("/")
        versions = self.versions(name)
        if not versions:
            raise DatasetError(f"no data set named '{name}' under {self.root}")
        if not version:
            return versions[-1]
        for candidate in versions:
            if candidate.version == version:
                return candidate
        known = ", ".join(v.version for v in versions)
        raise DatasetError(f"data set '{name}' has no version '{version}' (known: {known})")

    def create(
        self,
        name: str,
        splits: dict[str, list[LabelledImage]],
        class_names: Sequence[str],
        meta: dict[str, Any] | None = None,
        oversample_threshold: float = 0.0,
        repeats: Mapping[Path, int] | None = None,
    ) -> DatasetVersion:
        """Write a new version atomically (staging dir + rename) and make its files read-only.

        ``repeats``: training images (by path) to hold this many times in all (copies named ``<stem>__copyN``)."""
        if not re.match(r"^[A-Za-z0-9_.-]+$", name):
            raise DatasetError(f"data set name '{name}' may only hold letters, digits, '_', '.' and '-'")
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            files, counts = self._write_splits(staging, splits, oversample_threshold, repeats)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._publish(name, staging, files, counts, class_names, meta)

    def extend(
        self,
        base: DatasetVersion,
        splits: dict[str, list[LabelledImage]],
        meta: dict[str, Any] | None = None,
        drop: Collection[str] = (),
    ) -> DatasetVersion:
        """A new version of ``base``'s data set: every image of ``base`` but those named (by stem) in ``drop`` or in
        ``splits``, plus ``splits`` (added, or replacing the image of the same stem, in the split given).

        A data set that grows by a few images per version (labels cut from Label Studio) would otherwise read,
        validate, copy and hash every earlier image again at each cut. ``base`` is immutable, validated and hashed,
        so its files are hard-linked (copied where links are impossible) with their manifest hashes, never read;
        only the label files of images it drops are read, to take them off the counts. No oversampling. (While the
        new version is published its files are briefly made writable, and a hard link shares that mode with
        ``base``: the bytes never change, and both end read-only.)
        """
        previous = base.manifest
        class_names = [str(n) for n in previous["class_names"]]
        gone = set(drop) | {image.image.stem for items in splits.values() for image in items}
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base.path.parent))
        try:
            files, counts = self._write_splits(staging, splits, 0.0)
            for rel, digest in previous["files"].items():
                if _original_stem(rel) in gone:
                    if rel.startswith("labels/"):
                        _uncount(previous["counts"], rel, base.path / rel, len(class_names))
                    continue
                _link_or_copy(base.path / rel, staging / rel)
                files[rel] = digest
            _add_counts(counts, previous["counts"])
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._publish(base.name, staging, files, counts, class_names, {"extends": base.ref, **(meta or {})})

    def _publish(
        self,
        name: str,
        staging: Path,
        files: dict[str, str],
        counts: dict[str, Any],
        class_names: Sequence[str],
        meta: dict[str, Any] | None,
    ) -> DatasetVersion:
        present = [s for s in SPLITS if counts.get(s, {}).get("images")]
        if not present:
            shutil.rmtree(staging, ignore_errors=True)
            raise DatasetError(f"data set '{name}': a version needs at least one image")
        folder = staging.parent
        data: dict[str, Any] = {"path": "", "names": dict(enumerate(class_names))}
        data["train"] = "images/train" if "train" in present else f"images/{present[0]}"
        data["val"] = "images/val" if "val" in present else f"images/{present[-1]}"
        if "test" in present:
            data["test"] = "images/test"

        def write_metadata(version: str, final: Path) -> None:
            data["path"] = str(final.resolve())
            replace_file(staging / "data.yaml", yaml.safe_dump(data, sort_keys=False))
            manifest = {
                "name": name,
                "version": version,
                "created": time.time(),
                "class_names": list(class_names),
                "counts": counts,
                "files": files,
                **(meta or {}),
            }
            replace_file(staging / "manifest.json", json.dumps(manifest, indent=2))

        version = publish_next_version(staging, folder, lambda: len(self.versions(name)) + 1, write_metadata)
        return DatasetVersion(name, version, folder / version)

    @staticmethod
    def _write_splits(
        staging: Path,
        splits: dict[str, list[LabelledImage]],
        oversample_threshold: float,
        repeats: Mapping[Path, int] | None = None,
    ) -> tuple[dict[str, str], dict[str, Any]]:
        files: dict[str, str] = {}
        counts: dict[str, Any] = {}
        for split in SPLITS:
            items = [(image, 0) for image in splits.get(split, [])]
            if split == "train" and oversample_threshold > 0:
                items = oversample_rare(splits.get(split, []), oversample_threshold)
            if split == "train" and repeats:
                next_copy = Counter(image.image for image, _ in items)
                for image in splits.get(split, []):
                    for _ in range(repeats.get(image.image, 1) - 1):
                        items.append((image, next_copy[image.image]))
                        next_copy[image.image] += 1
            (staging / "images" / split).mkdir(parents=True, exist_ok=True)
            (staging / "labels" / split).mkdir(parents=True, exist_ok=True)
            per_class: Counter[int] = Counter()
            for image, copy in items:
                stem = image.image.stem if copy == 0 else f"{image.image.stem}__copy{copy}"
                image_rel = f"images/{split}/{stem}{image.image.suffix.lower()}"
                label_rel = f"labels/{split}/{stem}.txt"
                shutil.copyfile(image.image, staging / image_rel)
                lines = [f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}" for r in image.labels]
                (staging / label_rel).write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
                files[image_rel] = sha256_of(staging / image_rel)
                files[label_rel] = sha256_of(staging / label_rel)
                per_class.update(image.classes)
            counts[split] = {
                "images": len(items),
                "boxes": int(sum(per_class.values())),
                "per_class": {str(k): v for k, v in sorted(per_class.items())},
                "oversampled_copies": sum(1 for _, copy in items if copy),
            }
        return files, counts

"""Data set versions: validated YOLO data, immutable once written, with a manifest of file hashes.

``var/datasets/<name>/v<N>/`` holds ``images/{train,val,test}``, ``labels/...``, ``data.yaml`` and
``manifest.json``. Images and labels are made read-only; only Ultralytics' label caches may appear beside them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from visionloop.errors import VisionloopError
from visionloop.registry import publish_next_version

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLITS = ("train", "val", "test")
_VERSION_RE = re.compile(r"^v(\d+)$")


class DatasetError(VisionloopError):
    """A data set is missing, malformed, or holds bad files (the message lists them)."""


@dataclass(frozen=True)
class LabelledImage:
    """One image and its YOLO labels (class, cx, cy, w, h normalised)."""

    image: Path
    labels: np.ndarray  # (N, 5) float64

    @property
    def classes(self) -> list[int]:
        return [int(c) for c in self.labels[:, 0]]


@dataclass
class ReadReport:
    images: list[LabelledImage] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)

    def describe_bad(self, limit: int = 20) -> str:
        lines = [f"  {path}: {reason}" for path, reason in self.bad[:limit]]
        if len(self.bad) > limit:
            lines.append(f"  ... and {len(self.bad) - limit} more")
        return "\n".join(lines)


def load_class_names(data_yaml: Path) -> list[str]:
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"cannot read '{data_yaml}': {exc}") from exc
    names = data.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise DatasetError(f"'{data_yaml}' has no 'names' list or mapping")


def _parse_labels(path: Path, num_classes: int) -> tuple[np.ndarray | None, str | None]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 5:
            return None, f"line {number}: expected 'class cx cy w h', got {len(parts)} fields"
        try:
            values = [float(p) for p in parts]
        except ValueError:
            return None, f"line {number}: not numbers: {line.strip()!r}"
        class_id = values[0]
        if class_id != int(class_id) or not 0 <= class_id < num_classes:
            return None, f"line {number}: class {parts[0]} is not in data.yaml ({num_classes} classes)"
        cx, cy, w, h = values[1:]
        if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1):
            return None, f"line {number}: box {cx} {cy} {w} {h} is outside the image (values must lie in [0, 1])"
        rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(-1, 5), None


def label_path_for(image: Path) -> Path:
    """YOLO convention: .../images/<sub>/x.jpg -> .../labels/<sub>/x.txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_images(images: Iterable[Path], num_classes: int, check_pixels: bool = True) -> ReadReport:
    """Validate each image and its label file; bad ones are reported with the reason, never silently used."""
    report = ReadReport()
    for image in sorted(images):
        label = label_path_for(image)
        if not label.is_file():
            report.bad.append((image, f"missing label file {label}"))
            continue
        labels, problem = _parse_labels(label, num_classes)
        if problem is not None or labels is None:
            report.bad.append((label, problem or "unreadable"))
            continue
        if check_pixels and cv2.imread(str(image), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
            report.bad.append((image, "corrupt or unreadable image"))
            continue
        report.images.append(LabelledImage(image, labels))
    return report


def images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def read_yolo_source(source: Path, skip_bad: bool = False) -> tuple[list[LabelledImage], list[str], ReadReport]:
    """Read a YOLO data set (a folder with data.yaml and images/, labels/), validating every file."""
    data_yaml = source / "data.yaml" if source.is_dir() else source
    root = data_yaml.parent
    if not data_yaml.is_file():
        raise DatasetError(f"no data.yaml at '{data_yaml}'")
    names = load_class_names(data_yaml)
    images = images_in(root / "images")
    if not images:
        raise DatasetError(f"no images under '{root / 'images'}'")
    report = read_images(images, len(names))
    if report.bad and not skip_bad:
        raise DatasetError(
            f"{len(report.bad)} bad file(s) in '{root}' (fix them, or set data.skip_bad_files to skip and count "
            f"them):\n{report.describe_bad()}"
        )
    return report.images, names, report


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
    ) -> DatasetVersion:
        """Write a new version atomically (staging dir + rename) and make its files read-only."""
        if not re.match(r"^[A-Za-z0-9_.-]+$", name):
            raise DatasetError(f"data set name '{name}' may only hold letters, digits, '_', '.' and '-'")
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            files, counts = self._write_splits(staging, splits, oversample_threshold)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        present = [s for s in SPLITS if splits.get(s)]
        data: dict[str, Any] = {"path": "", "names": dict(enumerate(class_names))}
        data["train"] = "images/train" if "train" in present else f"images/{present[0]}"
        data["val"] = "images/val" if "val" in present else f"images/{present[-1]}"
        if "test" in present:
            data["test"] = "images/test"

        def write_metadata(version: str, final: Path) -> None:
            data["path"] = str(final.resolve())
            (staging / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            manifest = {
                "name": name,
                "version": version,
                "created": time.time(),
                "class_names": list(class_names),
                "counts": counts,
                "files": files,
                **(meta or {}),
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")

        version = publish_next_version(staging, folder, lambda: len(self.versions(name)) + 1, write_metadata)
        return DatasetVersion(name, version, folder / version)

    @staticmethod
    def _write_splits(
        staging: Path, splits: dict[str, list[LabelledImage]], oversample_threshold: float
    ) -> tuple[dict[str, str], dict[str, Any]]:
        files: dict[str, str] = {}
        counts: dict[str, Any] = {}
        for split in SPLITS:
            items = [(image, 0) for image in splits.get(split, [])]
            if split == "train" and oversample_threshold > 0:
                items = oversample_rare(splits.get(split, []), oversample_threshold)
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

"""Reading YOLO data from disk: images and their label files, validated, with every bad file named.

Data set versions (``learning.datasets``) are cut from what this reads; so is every incremental cut of new labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from visionloop.core.errors import VisionloopError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


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


def parse_labels(path: Path, num_classes: int) -> tuple[np.ndarray | None, str | None]:
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
        labels, problem = parse_labels(label, num_classes)
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

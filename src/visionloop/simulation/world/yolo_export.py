"""Write still scenes as a YOLO data set (images, labels, data.yaml) with a ground-truth sidecar."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml

from visionloop.core.imaging import encode_jpeg
from visionloop.simulation.world.domain import Domain
from visionloop.simulation.world.scene import CLASS_NAMES, Scene, render_scene

JPEG_QUALITY = 92


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """One generator per image, so image i is the same whatever else was generated."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def yolo_row(class_id: int, box: Sequence[float], width: int, height: int) -> str:
    """One YOLO label line: class, centre and size relative to the image."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    return f"{class_id} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"


def yolo_lines(scene: Scene) -> list[str]:
    height, width = scene.image.shape[:2]
    return [yolo_row(c, box, width, height) for c, box in zip(scene.class_ids, scene.boxes, strict=True)]


def write_yolo_frame(out_dir: Path, stem: str, image: npt.NDArray[np.uint8], rows: Sequence[str]) -> None:
    """An image and its label lines as ``out_dir/images/<stem>.jpg`` and ``out_dir/labels/<stem>.txt``."""
    (out_dir / "images" / f"{stem}.jpg").write_bytes(encode_jpeg(image, JPEG_QUALITY))
    (out_dir / "labels" / f"{stem}.txt").write_text("\n".join(rows) + "\n" if rows else "")


def write_data_yaml(root: Path, train: str, val: str, test: str | None = None) -> Path:
    data = {"path": str(root.resolve()), "train": train, "val": val, "names": dict(enumerate(CLASS_NAMES))}
    if test:
        data["test"] = test
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def make_dataset_dirs(out_dir: Path) -> None:
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)


def write_labelled(out_dir: Path, stem: str, scene: Scene) -> None:
    """One scene as ``out_dir/images/<stem>.jpg`` and its YOLO label file (see :func:`make_dataset_dirs`)."""
    (out_dir / "images" / f"{stem}.jpg").write_bytes(encode_jpeg(scene.image, JPEG_QUALITY))
    (out_dir / "labels" / f"{stem}.txt").write_text("\n".join(yolo_lines(scene)) + "\n" if scene.boxes else "")


def write_yolo_dataset(
    domain: Domain,
    seed: int,
    images: int,
    out_dir: Path,
    height: int = 320,
    width: int = 320,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Render ``images`` scenes into ``out_dir/images`` and ``out_dir/labels``; returns data.yaml.

    The same seed gives the same bytes (JPEG encoding is deterministic for the same OpenCV build).
    """
    make_dataset_dirs(out_dir)
    with (out_dir / "ground_truth.jsonl").open("w", encoding="utf-8") as truth:
        for index in range(images):
            scene = render_scene(scene_rng(seed, index), domain, height, width)
            stem = f"{domain.name}_{seed}_{index:06d}"
            write_labelled(out_dir, stem, scene)
            truth.write(json.dumps({"image": f"images/{stem}.jpg", "boxes": scene.labels()}) + "\n")
            if progress:
                progress(1)
    return write_data_yaml(out_dir, "images", "images")


def write_clip_dataset(
    domain: Domain,
    seed: int,
    clips: int,
    frames_per_clip: int,
    stride: int,
    out_dir: Path,
    height: int = 320,
    width: int = 320,
) -> Path:
    """What a camera gives a labeler: ``clips`` moving scenes, ``frames_per_clip`` frames each, ``stride`` frames
    apart, so neighbours are near-duplicates; written as a YOLO data set like :func:`write_yolo_dataset`."""
    from visionloop.simulation.world.video import world_scenes

    make_dataset_dirs(out_dir)
    for clip in range(clips):
        scenes = world_scenes(domain, seed * 100_003 + clip, frames_per_clip * stride, height, width)
        for index, scene in enumerate(scenes):
            if index % stride == 0:
                write_labelled(out_dir, f"{domain.name}_{seed}_clip{clip:05d}_{index:04d}", scene)
    return write_data_yaml(out_dir, "images", "images")

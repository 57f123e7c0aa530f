from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import av
import numpy as np
import pytest

from visionloop.core.config import PACKAGE_ROOT
from visionloop.core.errors import ConfigError
from visionloop.simulation.world import CLASS_NAMES, load_domains, write_video, write_yolo_dataset
from visionloop.simulation.world.domain import Domain

DOMAINS = load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "data.yaml"):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_configured_domains_include_a_training_world_and_shifts() -> None:
    assert {"A", "B", "C"} <= set(DOMAINS)
    assert DOMAINS["B"].brightness[1] < DOMAINS["A"].brightness[0]  # B is darker than A, on purpose


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    write_yolo_dataset(DOMAINS["A"], 5, 6, tmp_path / "one")
    write_yolo_dataset(DOMAINS["A"], 5, 6, tmp_path / "two")
    write_yolo_dataset(DOMAINS["A"], 6, 6, tmp_path / "three")
    assert _tree_digest(tmp_path / "one") == _tree_digest(tmp_path / "two")
    assert _tree_digest(tmp_path / "one") != _tree_digest(tmp_path / "three")


def test_dataset_labels_are_valid_yolo_and_match_the_sidecar(tmp_path: Path) -> None:
    data_yaml = write_yolo_dataset(DOMAINS["B"], 1, 12, tmp_path, height=240, width=320)
    assert data_yaml.is_file()
    truth = [json.loads(line) for line in (tmp_path / "ground_truth.jsonl").read_text().splitlines()]
    assert len(truth) == 12 and sum(len(t["boxes"]) for t in truth) > 0
    for record in truth:
        stem = Path(record["image"]).stem
        rows = [line.split() for line in (tmp_path / "labels" / f"{stem}.txt").read_text().splitlines()]
        assert len(rows) == len(record["boxes"])
        for row, box in zip(rows, record["boxes"], strict=True):
            class_id, cx, cy, w, h = int(row[0]), *map(float, row[1:])
            assert class_id == box["class_id"] and box["class_name"] == CLASS_NAMES[class_id]
            assert 0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1
            x1, _, x2, _ = box["xyxy"]
            assert cx == pytest.approx((x1 + x2) / 2 / 320, abs=1e-4)


def test_every_class_appears(tmp_path: Path) -> None:
    write_yolo_dataset(DOMAINS["A"], 2, 40, tmp_path)
    seen = {int(line.split()[0]) for f in (tmp_path / "labels").glob("*.txt") for line in f.read_text().splitlines()}
    assert seen == set(range(len(CLASS_NAMES)))


def test_video_is_h264_with_smooth_motion_and_a_sidecar(tmp_path: Path) -> None:
    out = write_video(DOMAINS["A"], 3, seconds=1.0, fps=10, out_file=tmp_path / "clip.mp4", height=144, width=256)
    again = write_video(DOMAINS["A"], 3, seconds=1.0, fps=10, out_file=tmp_path / "again.mp4", height=144, width=256)
    assert out.read_bytes() == again.read_bytes()
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(frames) == 10 and frames[0].shape == (144, 256, 3)
    truth = [json.loads(line) for line in (tmp_path / "clip.mp4.jsonl").read_text().splitlines()]
    assert [t["frame"] for t in truth] == list(range(10))
    # Objects drift a few pixels per frame: the first box's centre never jumps.
    centres = [np.mean(np.reshape(t["boxes"][0]["xyxy"], (2, 2)), axis=0) for t in truth if t["boxes"]]
    steps = [np.linalg.norm(b - a) for a, b in itertools.pairwise(centres)]
    assert max(steps) < 20


@pytest.mark.parametrize(
    ("knobs", "message"),
    [({"scale": [0.5, 0.1]}, "scale"), ({"class_weights": [0, 0]}, "class_weights"), ({"glare": 1}, "glare")],
)
def test_bad_domain_knobs_are_errors(tmp_path: Path, knobs: dict[str, object], message: str) -> None:
    import yaml

    path = tmp_path / "domains.yaml"
    path.write_text(yaml.safe_dump({"X": knobs}))
    with pytest.raises(ConfigError, match=message):
        load_domains(path)
    with pytest.raises(ValueError):
        Domain(name="X", **knobs)  # type: ignore[arg-type]


def test_camera_pool_clips_hold_near_duplicate_neighbours_with_labels(tmp_path: Path) -> None:
    from visionloop.learning.yolo_source import read_yolo_source
    from visionloop.simulation.world import write_clip_dataset

    write_clip_dataset(DOMAINS["C"], 2, clips=3, frames_per_clip=4, stride=5, out_dir=tmp_path)
    items, _, _ = read_yolo_source(tmp_path)
    assert len(items) == 12 and all(len(item.labels) > 0 for item in items)
    by_clip = sorted(items, key=lambda item: item.image.name)
    first, neighbour, other = (by_clip[i].labels for i in (0, 1, 4))
    assert first.shape == neighbour.shape  # the same objects, a few pixels on
    assert np.abs(first[:, 1:3] - neighbour[:, 1:3]).max() < 0.1
    assert first.shape != other.shape or np.abs(first[:, 1:3] - other[:, 1:3]).max() > 0.1  # another scene

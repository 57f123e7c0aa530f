"""The unlabelled pool keeps a thin, bounded, recent sample of every camera's frames on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionloop.core.contracts import Detections, EncodedFrame, FrameResult, ModelRole
from visionloop.labeling.pool import UnlabelledPool, pool_frames, safe_name
from visionloop.learning.student import pool_sample


def offer(pool: UnlabelledPool, camera: str, ts: float, role: ModelRole = ModelRole.CHAMPION) -> None:
    image = np.full((24, 32, 3), int(ts) % 255, np.uint8)
    result = FrameResult(camera, int(ts * 10), ts, "v1", Detections.empty(), role=role)
    assert pool.offer(EncodedFrame(camera, b"", int(ts * 10), image=image), result) is None  # never kept for labeling


def test_one_frame_per_camera_per_interval_and_the_oldest_go_first(tmp_path: Path) -> None:
    pool = UnlabelledPool(tmp_path, every_s=1.0, max_frames=5)
    for step in range(20):
        offer(pool, "rtsp://user:secret@cam/1", 100.0 + step * 0.5)  # two frames a second
    offer(pool, "other", 100.0, role=ModelRole.SHADOW)  # the shadow's answers are not the site's frames
    kept = pool_frames(tmp_path)
    assert pool.written == 10 and len(kept) == 5
    assert [p.name.split("-")[0] for p in kept] == [f"{(105_000 + 1000 * i):015d}" for i in range(5)]
    assert all("secret" not in str(p) for p in kept) and safe_name("a/b:c").startswith("a_b_c-")
    assert safe_name("a/b") != safe_name("a:b")
    again = UnlabelledPool(tmp_path, every_s=1.0, max_frames=5)  # a restarted service keeps the bound
    offer(again, "cam", 500.0)
    assert len(pool_frames(tmp_path)) == 5


def test_a_sample_spreads_over_the_pool(tmp_path: Path) -> None:
    pool = UnlabelledPool(tmp_path, every_s=1.0, max_frames=100)
    for step in range(10):
        offer(pool, "a", 10.0 + step)
        offer(pool, "b", 10.5 + step)
    picked = pool_sample(tmp_path, 4)
    assert len(picked) == 4 and len({p.parent.name for p in picked}) == 2
    assert pool_sample(tmp_path, 50) == pool_frames(tmp_path) and pool_sample(tmp_path / "none", 3) == []


def test_frames_near_the_random_arm_stay_out_of_the_sample(tmp_path: Path) -> None:
    pool = UnlabelledPool(tmp_path, every_s=1.0, max_frames=100)
    for step in range(10):
        offer(pool, "a", 1_700_000_000.0 + step)
    random_arm = ["a-53-1700000004300", "cam_1-7-1700000008000"]  # frame ids: <camera>-<seq>-<capture ms>
    kept = {int(p.stem.split("-")[0]) for p in pool_sample(tmp_path, 50, avoid=random_arm)}
    assert kept == {1_700_000_000_000 + 1000 * s for s in (0, 1, 2, 3, 6)}

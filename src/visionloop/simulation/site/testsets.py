"""Test sets from the cameras themselves, because the operator's question is "did the loop fix my cameras?":

- **camera-own future**: the served cameras' frames from a window later than any frame offered for labeling;
- **unseen cameras**: other viewpoints of the same domain, never streamed;
- (gold A stays what it is: stills of the training world.)

Frames are decoded from the cameras' videos, so a test set holds what the cameras sent, and each is labelled from the
truth files. Each becomes an immutable data set version (all in ``val``, like a gold set), reused when the same site
and window were cut before.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from visionloop.learning.datasets import DatasetStore, DatasetVersion, stratified_split
from visionloop.learning.yolo_source import read_yolo_source
from visionloop.simulation.site.live import RenderedSite
from visionloop.simulation.world.yolo_export import make_dataset_dirs, write_data_yaml, write_yolo_frame, yolo_row

GOLD_SPLIT = (0.0, 1.0, 0.0)


def write_camera_frames(
    site: RenderedSite, cameras: Sequence[str], start_s: float, end_s: float, every_s: float, out_dir: Path
) -> int:
    """The frames of ``cameras`` from ``start_s`` to ``end_s``, one every ``every_s``, as decoded from their videos,
    with their truth as YOLO labels in ``out_dir``; returns how many."""
    spec = site.spec
    make_dataset_dirs(out_dir)
    step = max(1, round(every_s * spec.fps))
    wanted = set(range(round(start_s * spec.fps), min(spec.frames, round(end_s * spec.fps)), step))
    written = 0
    for camera in cameras:
        truth = site.truth(camera)
        with av.open(str(site.video(camera))) as video:
            for number, frame in enumerate(video.decode(video=0)):
                if number not in wanted:
                    continue
                image = np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)
                rows = [yolo_row(int(o["cls"]), o["box"], spec.width, spec.height) for o in truth[number]["objects"]]
                write_yolo_frame(out_dir, f"{camera}_{number:07d}", image, rows)
                written += 1
    write_data_yaml(out_dir, "images", "images")
    return written


def camera_test_set(
    store: DatasetStore,
    name: str,
    site: RenderedSite,
    cameras: Sequence[str],
    window: tuple[float, float],
    every_s: float,
) -> DatasetVersion:
    """A data set version of ``cameras``' frames in ``window`` (seconds of the site), reused when one of this recipe
    exists."""
    recipe = {"site": site.data["recipe"], "cameras": list(cameras), "window": list(window), "every_s": every_s}
    for version in reversed(store.versions(name)):
        if version.manifest.get("recipe") == recipe:
            return version
    with tempfile.TemporaryDirectory(prefix="visionloop-site-set-") as tmp:
        written = write_camera_frames(site, cameras, window[0], window[1], every_s, Path(tmp))
        if not written:
            raise ValueError(f"the window {window} of cameras {list(cameras)} holds no frame")
        items, names, _ = read_yolo_source(Path(tmp))
        splits = stratified_split(items, GOLD_SPLIT, 0)
        return store.create(name, splits, names, meta={"source": "site", "recipe": recipe})


def site_test_sets(
    store: DatasetStore, prefix: str, site: RenderedSite, labels_until_s: float, every_s: float = 2.0
) -> dict[str, DatasetVersion]:
    """``<prefix>-future`` (the served cameras after ``labels_until_s``) and, when the site has unseen cameras,
    ``<prefix>-unseen`` (all of their run)."""
    sets = {
        "future": camera_test_set(
            store, f"{prefix}-future", site, site.cameras, (labels_until_s, site.spec.seconds), every_s
        )
    }
    if site.unseen:
        sets["unseen"] = camera_test_set(
            store, f"{prefix}-unseen", site, site.unseen, (0.0, site.spec.seconds), every_s
        )
    return sets

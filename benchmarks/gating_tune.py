"""Motion gating's settings tried offline on a site's cameras: calls saved against mAP50 lost, for each candidate.

Every frame of each camera's video is decoded once (its Y plane for the motion detector, BGR for the model) and the
champion runs on every frame once. Each candidate gate then replays the frames: a frame it lets through keeps its
own detections, a frame it holds back shows the last detections that went (what a live application shows). mAP50
over every frame against the site's truth, ungated minus gated, is the cost; the share of frames held back is the
saving. Nothing is timed, so it runs in seconds per candidate and can cover a grid; ``make bench-pipeline`` then
measures the chosen default live.

Usage: python -m benchmarks.gating_tune [--cameras 4] [--seconds 60] [--shift-domain B]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path
from typing import Any

import av
import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from benchmarks.own_var import benchmark_settings
from visionloop.core.cameras import MotionGating
from visionloop.core.contracts import Detections
from visionloop.core.frame_clock import strip_height
from visionloop.core.model_setup import ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.settings import Settings
from visionloop.learning.ab_stats import FrameMatches, map50, match_frame
from visionloop.serving.app import resolve_serving_model
from visionloop.serving.backends import BackendOptions, create_backend
from visionloop.simulation.site import Shift, SiteSpec
from visionloop.simulation.site.live import RenderedSite
from visionloop.streaming import motion
from visionloop.streaming.motion import MotionGate

RESULTS = Path(__file__).resolve().parent / "results" / "gating_tune.json"
console = Console()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--shift-domain", default="B")
    parser.add_argument("--min-area", default="0.002,0.001,0.0005,0.0002")
    parser.add_argument("--threshold", default="20,12,8")
    parser.add_argument("--refresh-s", default="1.0,0.5")
    parser.add_argument("--alpha", default="0.2,0.05", help="how fast the motion background follows the picture")
    return parser.parse_args()


def decode(video: Path) -> tuple[list[np.ndarray[Any, Any]], list[np.ndarray[Any, Any]]]:
    """Every frame's grey (Y) plane and BGR picture."""
    greys, pictures = [], []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            picture = frame.to_ndarray(format="bgr24")
            plane = frame.planes[0]
            rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            greys.append(rows[:, : plane.width].copy())
            pictures.append(picture)
    return greys, pictures


def detect_all(settings: Settings, pictures: list[np.ndarray[Any, Any]]) -> list[Detections]:
    resolved = resolve_serving_model(settings)
    s = settings.serving
    options = BackendOptions(resolved.path, s.imgsz, s.conf_threshold, s.iou_threshold, s.max_detections, s.device,
                             os.cpu_count() or 1, tuple(resolved.class_names))  # fmt: skip
    backend = create_backend("onnxruntime", options)
    out: list[Detections] = []
    batch = s.max_batch_size
    for start in range(0, len(pictures), batch):
        out.extend(backend.predict(pictures[start : start + batch]).detections)
    return out


def _match(truth: dict[str, Any], held: Detections) -> FrameMatches:
    objects = truth["objects"]
    return match_frame([o["box"] for o in objects], [o["cls"] for o in objects], held.xyxy, held.confidence,
                       held.class_id)  # fmt: skip


def replay(
    spec: MotionGating, cameras: list[tuple[list[Any], list[Detections], list[dict[str, Any]]]], fps: int
) -> dict[str, Any]:
    """The gate's held mAP50 over every frame of every camera, and the share of frames it held back."""
    matches: list[FrameMatches] = []
    held_back = frames = 0
    for greys, detections, truth in cameras:
        gate = MotionGate(spec)
        held: Detections | None = None
        for number, grey in enumerate(greys):
            if gate.due(grey, number / fps):
                held = detections[number]
            else:
                held_back += 1
            frames += 1
            assert held is not None  # the first frame always goes
            matches.append(_match(truth[number], held))
    return {"map50": map50(matches), "calls_saved": held_back / frames, "frames": frames}


def main() -> None:
    args = parse_args()
    settings = benchmark_settings("gating")
    prepare_ultralytics(ultralytics_config_dir(settings))
    from visionloop.simulation.bootstrap import run_bootstrap

    run_bootstrap(settings, console)  # the bootstrap champion, in this benchmark's own var/ (installed once)
    from visionloop.cli.site import render_site

    shifts = tuple(Shift(camera=f"cam{i}", at_s=0.0, domain=args.shift_domain) for i in range(2, args.cameras + 1, 2))
    spec = SiteSpec(seed=201, cameras=args.cameras, seconds=args.seconds, fps=args.fps, shifts=shifts)
    site = RenderedSite(render_site(settings, spec))
    height = site.spec.height
    mask = [(0.0, 1.0 - strip_height(height) / height, 1.0, 1.0)]  # the frame clock changes every frame
    cameras = []
    for name in track(site.cameras, description="decoding and detecting every frame"):
        greys, pictures = decode(site.video(name))
        cameras.append((greys, detect_all(settings, pictures), site.truth(name)))
    ungated = replay(MotionGating(enabled=False), cameras, args.fps)
    rows = []
    grid = itertools.product(
        [float(v) for v in args.min_area.split(",")],
        [int(v) for v in args.threshold.split(",")],
        [float(v) for v in args.refresh_s.split(",")],
        [float(v) for v in args.alpha.split(",")],
    )
    for min_area, threshold, refresh_s, alpha in grid:
        gate = MotionGating(enabled=True, min_area=min_area, threshold=threshold, refresh_s=refresh_s, mask=mask)
        motion.BACKGROUND_ALPHA = alpha  # a module constant: tried here, chosen there
        found = replay(gate, cameras, args.fps)
        rows.append({"min_area": min_area, "threshold": threshold, "refresh_s": refresh_s, "alpha": alpha,
                     "calls_saved": found["calls_saved"], "map50": found["map50"],
                     "map50_cost": ungated["map50"] - found["map50"]})  # fmt: skip
    table = Table(title=f"motion gating offline: {args.cameras} cameras x {args.seconds:.0f} s, ungated mAP50 "
                  f"{ungated['map50']:.3f} over {ungated['frames']} frames")  # fmt: skip
    for column in ("min_area", "threshold", "refresh_s", "alpha", "calls saved", "mAP50", "cost"):
        table.add_column(column, justify="right")
    for row in sorted(rows, key=lambda r: (r["map50_cost"] > 0.01, -r["calls_saved"])):
        table.add_row(f"{row['min_area']:g}", str(row["threshold"]), f"{row['refresh_s']:g}", f"{row['alpha']:g}",
                      f"{row['calls_saved']:.3f}", f"{row['map50']:.3f}", f"{row['map50_cost']:+.4f}")  # fmt: skip
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"ungated": ungated, "candidates": rows, "site": spec.model_dump(mode="json")},
                                  indent=2))  # fmt: skip
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

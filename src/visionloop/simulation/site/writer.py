"""Write a site ahead of a run: per camera ``video.mp4`` (H.264), ``truth.jsonl`` (one line per frame) and the raw
stream the RTSP server sends live, plus ``site.json`` saying what it all is. Unseen cameras are written the same way
and listed apart: they are never served, only looked at by test sets.

Rendering costs tens of milliseconds a frame, so it happens here, before anything is measured, one process per
core; a directory that already holds the same recipe (spec and domains text) is reused as it is.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visionloop.simulation.site.encoding import INDEX_FILE, STREAM_FILE, VIDEO_FILE, H264Writer, remux_to_mp4
from visionloop.simulation.site.render import SiteCamera
from visionloop.simulation.site.spec import SiteSpec, read_site_json
from visionloop.simulation.world import CLASS_NAMES, load_domains

SITE_FILE, TRUTH_FILE = "site.json", "truth.jsonl"
Progress = Callable[[int], None]
_progress_queue: Any = None  # a worker process's queue of rendered-frame counts (set by the pool's initializer)


def _write_camera(spec_json: str, domains_file: str, name: str, out_dir: str) -> int:
    """Render one camera's frames into ``out_dir/name`` (written aside first, renamed when complete)."""
    spec = SiteSpec.model_validate_json(spec_json)
    camera = SiteCamera(spec, name, load_domains(Path(domains_file)))
    final = Path(out_dir) / name
    partial = Path(out_dir) / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    writer = H264Writer(partial / STREAM_FILE, spec.width, spec.height, spec.fps, spec.gop, spec.bitrate_kbps)
    with (partial / TRUTH_FILE).open("w", encoding="utf-8") as truth:
        for number in range(spec.frames):
            frame = camera.render(number)
            writer.write(frame.image)
            truth.write(json.dumps(frame.truth_line(), separators=(",", ":")) + "\n")
            if _progress_queue is not None and number % 30 == 29:
                _progress_queue.put(30)
    writer.close()
    remux_to_mp4(partial / STREAM_FILE, partial / VIDEO_FILE, spec.fps)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return spec.frames


def _init_worker(queue: Any) -> None:
    global _progress_queue
    _progress_queue = queue


def is_complete(out_dir: Path, recipe: str) -> bool:
    """Whether ``out_dir`` holds a finished rendering of ``recipe``."""
    path = out_dir / SITE_FILE
    if not path.is_file():
        return False
    data = read_site_json(path)
    cameras = [*data.get("cameras", {}), *data.get("unseen", {})]
    files = (VIDEO_FILE, STREAM_FILE, INDEX_FILE, TRUTH_FILE)
    return data.get("recipe") == recipe and all((out_dir / c / f).is_file() for c in cameras for f in files)


def write_site(
    spec: SiteSpec, domains_file: Path, out_dir: Path, progress: Progress | None = None, workers: int | None = None
) -> Path:
    """Render ``spec``'s streamed cameras into ``out_dir`` (reused when it already holds this recipe); returns the
    path of ``site.json``."""
    domains_text = domains_file.read_text(encoding="utf-8")
    recipe = spec.recipe_hash(domains_text)
    if is_complete(out_dir, recipe):
        return out_dir / SITE_FILE
    names = spec.camera_names() + spec.unseen_names()
    SiteCamera(spec, names[0], load_domains(domains_file))  # a missing domain fails here, before any work
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SITE_FILE).unlink(missing_ok=True)
    jobs = [(spec.model_dump_json(), str(domains_file), name, str(out_dir)) for name in names]
    started = time.time()
    workers = min(len(names), workers or os.cpu_count() or 1)
    if workers == 1:
        for job in jobs:
            _write_camera(*job)
            if progress:
                progress(spec.frames)
    else:
        _render_in_parallel(jobs, workers, spec.frames, progress)
    site = {
        "recipe": recipe,
        "spec": spec.model_dump(mode="json"),
        "class_names": list(CLASS_NAMES),
        "domains": {name: d.model_dump(mode="json") for name, d in load_domains(domains_file).items()},
        "cameras": {name: _camera_entry(spec, name) for name in spec.camera_names()},
        "unseen": {name: _camera_entry(spec, name) for name in spec.unseen_names()},
        "render_s": round(time.time() - started, 1),
    }
    (out_dir / SITE_FILE).write_text(json.dumps(site, indent=2), encoding="utf-8")
    return out_dir / SITE_FILE


def _camera_entry(spec: SiteSpec, name: str) -> dict[str, Any]:
    return {
        "viewpoint": spec.viewpoint(name),
        "frames": spec.frames,
        "shifts": [s.model_dump(mode="json") for s in spec.shifts_of(name)],
        "video": f"{name}/{VIDEO_FILE}",
        "truth": f"{name}/{TRUTH_FILE}",
        "stream": f"{name}/{STREAM_FILE}",
    }


def _render_in_parallel(
    jobs: list[tuple[str, str, str, str]], workers: int, frames: int, progress: Progress | None
) -> None:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: safe whatever threads the caller runs
    counts = context.Queue()
    with context.Pool(workers, initializer=_init_worker, initargs=(counts,)) as pool:
        pending = pool.starmap_async(_write_camera, jobs)
        reported = 0
        while not pending.ready() or not counts.empty():
            try:
                count = counts.get(timeout=0.5)
            except queue.Empty:  # nothing rendered in the last half second
                continue
            reported += count
            if progress:
                progress(count)
        pending.get()  # re-raises a worker's error
        if progress:
            progress(max(0, frames * len(jobs) - reported))

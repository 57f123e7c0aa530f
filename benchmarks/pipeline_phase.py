"""One phase of the pipeline benchmark: cameras of the site added to the running service for a while, then what
came out of it: frames processed and skipped, the latency the pipeline adds, glass-to-result ages, memory."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import httpx
import numpy as np
import redis

from benchmarks.ages import age_report, camera_ages_report
from benchmarks.process_memory import RssTracker
from visionloop.cli.service import VisionloopService
from visionloop.core.contracts import FrameResult
from visionloop.core.frame_clock import FrameClock
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.simulation.rtsp_cameras import RtspSimulator

# Per frame: camera decode, camera buffer wait, Detector batch wait, model, post-processing, and the remainder
# (the hop to the Detector and back, and publishing), from what each result carries and when Redis got it.
STAGES = ("decode", "queue", "batch", "inference", "post", "transport")
PHASE_LABEL = re.compile(r"^(p1|p2|cal|n\d+|x\d+|g\d+|u\d+)-")  # the benchmark's own cameras


def counters(api: httpx.Client, prefix: str = "") -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in api.get("/v1/cameras").json() if row["id"].startswith(prefix)}


def clear_benchmark_cameras(service: VisionloopService, settings: Settings) -> None:
    """Cameras of an interrupted run resume from Redis; remove them so they do not add load."""
    headers = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
    with httpx.Client(base_url=service.api_url, headers=headers, timeout=60) as api:
        for camera_id in counters(api):
            if PHASE_LABEL.match(camera_id):
                api.delete(f"/v1/cameras/{camera_id}")


def _streaming(api: httpx.Client, label: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = counters(api, f"{label}-")
        if all(r["state"] == "streaming" and r["frames_processed"] > 0 for r in rows.values()):
            return
        time.sleep(0.5)


def _results(
    client: redis.Redis, stream: str, label: str, start_id: str, end_id: str, clock: FrameClock | None
) -> dict[str, Any]:
    added: list[float] = []
    ages: list[float] = []
    by_camera: dict[str, list[float]] = {}
    predictions: dict[str, dict[int, Any]] = {}  # camera -> frame number -> its detections (gating's mAP50)
    unclocked = 0
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for entry_id, fields in client.xrange(stream, min=start_id, max=end_id):
        result = FrameResult.from_stream_fields(fields)
        if not result.camera_id.startswith(f"{label}-"):
            continue
        published = int(entry_id.split(b"-")[0]) / 1000.0
        total = (published - result.capture_ts) * 1e3
        added.append(total - result.latency.inference_ms)
        lat = result.latency
        values = (lat.decode_ms, lat.queue_ms, lat.batch_ms, lat.inference_ms, lat.post_ms)
        for stage, value in zip(STAGES[:-1], values, strict=True):
            stages[stage].append(value)
        # capture_ts is stamped after the camera's decode: the rest is the hops there and back, and publishing.
        stages["transport"].append(total - lat.queue_ms - lat.batch_ms - lat.inference_ms - lat.post_ms)
        if clock is not None and result.source_frame is not None:
            age = clock.age_s(result.source_frame, published)  # a result is there once it is on the stream
            ages.append(age)
            by_camera.setdefault(result.camera_id, []).append(age)
            predictions.setdefault(result.camera_id, {})[result.source_frame] = result.detections
        else:
            unclocked += 1
    return {"added": added, "stages": stages, "ages": ages, "by_camera": by_camera, "unclocked": unclocked,
            "predictions": predictions}  # fmt: skip


def _service_cpu(report: dict[str, Any]) -> float:
    """Cores the service used: every process of the tree but this one (the benchmark) and the RTSP simulator."""
    own = os.getpid()
    rows = report["processes"]
    return float(sum(r["cpu_cores"] or 0.0 for r in rows if r["pid"] != own and r["process"] != "rtsp_server.py"))


def run_phase(
    settings: Settings,
    service: VisionloopService,
    simulator: RtspSimulator,
    cameras: list[str],
    fps: int,
    target_fps: float,
    seconds: float,
    label: str,
    clock: FrameClock | None = None,
    sample_every_s: float = 5.0,
    warmup_s: float = 10.0,
    motion: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add ``cameras`` (as ``<label>-<name>``, with ``motion`` gating settings if given) to the running service,
    measure ``seconds``, remove them. The returned ``predictions`` (camera -> frame number -> detections) are
    kept out of the JSON by the caller."""
    headers = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
    client = redis.Redis.from_url(service.redis_url)
    stream = StreamNames(settings.redis.stream_prefix).results
    with httpx.Client(base_url=service.api_url, headers=headers, timeout=60) as api:
        for name in cameras:
            body: dict[str, Any] = {"id": f"{label}-{name}", "url": simulator.url(name), "target_fps": target_fps}
            if motion is not None:
                body["motion"] = motion
            api.post("/v1/cameras", json=body).raise_for_status()
        _streaming(api, label)
        time.sleep(3)  # settle
        start_rows, start_id = counters(api, f"{label}-"), f"{int(time.time() * 1000)}-0"
        tracker = RssTracker()
        rss_samples = [tracker.sample()]
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(min(sample_every_s, seconds - (time.monotonic() - started)))
            rss_samples.append(tracker.sample())
        elapsed = time.monotonic() - started
        end_rows, end_id = counters(api, f"{label}-"), f"{int(time.time() * 1000)}-0"
        for name in cameras:
            api.delete(f"/v1/cameras/{label}-{name}")
    found = _results(client, stream, label, start_id, end_id, clock)
    client.close()

    def delta(key: str) -> float:
        return sum(end_rows[k][key] - start_rows[k][key] for k in end_rows) / elapsed

    added = found["added"]
    return {
        "cameras": len(cameras),
        "target_fps_per_camera": target_fps,
        "offered_fps": len(cameras) * min(target_fps, fps),
        "processed_fps": delta("frames_processed"),
        "skipped_fps": delta("frames_skipped"),
        "added_latency_ms_p50": float(np.percentile(added, 50)) if added else None,
        "added_latency_ms_p99": float(np.percentile(added, 99)) if added else None,
        "stage_ms": {
            stage: {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))}
            for stage, v in found["stages"].items()
            if v
        },
        "glass_to_result": age_report(found["ages"], elapsed, found["unclocked"]) if clock else None,
        "per_camera": camera_ages_report(found["by_camera"], len(cameras), elapsed) if clock else None,
        "gated_fps": delta("frames_gated"),
        "rate_share_end": float(np.mean([row.get("rate_share", 1.0) for row in end_rows.values()])),
        "service_cpu_cores": _service_cpu(tracker.report(skip=0)),
        "predictions": found["predictions"],
        "window": (start_id, end_id),
        "rss_mb_start": rss_samples[0],
        "rss_mb_end": rss_samples[-1],
        "rss_mb_samples": rss_samples,
        "rss_per_process": tracker.report(skip=min(round(warmup_s / sample_every_s), len(rss_samples) - 1)),
        "seconds": elapsed,
    }

"""Cameras through the whole service: the API and CLI add them, results reach Redis, a restart resumes them.

The camera is a simulated site's (live, never repeating a frame): its results carry the frame number the camera
stamped in each picture, so their glass-to-result age is known."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import free_port, make_settings, wait_for
from visionloop.cli.service import VisionloopService
from visionloop.core.cameras import CameraSpec
from visionloop.core.contracts import FrameResult
from visionloop.core.layout import shipped_config
from visionloop.core.streams import StreamNames
from visionloop.simulation.site import SiteSpec
from visionloop.simulation.site.live import RenderedSite
from visionloop.simulation.site.writer import write_site

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer test-token-123"}


def ray_logs_dir() -> Path:
    import ray

    return Path(ray._private.worker._global_node.get_logs_dir_path())


def files_containing(roots: list[Path], secrets: list[bytes], skip: Path) -> list[str]:
    """Every file under ``roots`` (but not under ``skip``) whose bytes hold one of ``secrets``."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and skip not in path.parents:
                data = path.read_bytes()
                found += [f"{path}: {secret.decode()}" for secret in secrets if secret in data]
    return found


def test_cameras_through_the_api_cli_and_a_restart(module_var_dir: Path, tmp_path: Path) -> None:
    spec = SiteSpec(seed=7, cameras=1, seconds=300, width=320, height=180)
    site = RenderedSite(write_site(spec, shipped_config("domains.yaml"), tmp_path / "site"))
    # The drift sampler is an observer: camera frames reach it through the Router's observe_frames, after the
    # camera published its own results (one hop to the Detector).
    settings = make_settings(
        module_var_dir, cameras__stall_timeout_s="2", drift__enabled="true", drift__sample_interval_s="0.2"
    )
    with site.serve(free_port(), user="op", password="pa55-word") as simulator:
        url = simulator.url("cam1")
        with VisionloopService(settings) as service:
            api = httpx.Client(base_url=service.api_url, timeout=60)
            assert api.post("/v1/cameras", json={"id": "gate", "url": url}).status_code == 401
            bad = api.post("/v1/cameras", json={"id": "gate", "url": url, "colour": "red"}, headers=AUTH)
            assert bad.status_code == 422
            added = api.post("/v1/cameras", json={"id": "gate", "url": url, "target_fps": 10}, headers=AUTH)
            assert added.status_code == 201, added.text
            assert added.json()["url"].startswith("rtsp://***@") and "pa55" not in added.text
            assert api.post("/v1/cameras", json={"id": "gate", "url": url}, headers=AUTH).status_code == 409
            status = wait_for(
                lambda: api.get("/v1/cameras/gate").json(),
                lambda s: s["state"] == "streaming" and s["frames_processed"] >= 10,
                60,
            )
            assert {
                "id",
                "state",
                "frames_in",
                "frames_processed",
                "frames_skipped",
                "reconnects",
                "last_error",
            } <= set(status)
            client = redis.Redis.from_url(service.redis_url)
            stream = StreamNames(settings.redis.stream_prefix).results
            results = [FrameResult.from_stream_fields(f) for _, f in client.xrevrange(stream, count=50)]
            gate = [r for r in results if r.camera_id == "gate"]
            assert gate and gate[0].latency.decode_ms > 0 and gate[0].latency.inference_ms > 0
            assert gate[0].seq > 0 and abs(time.time() - gate[0].capture_ts) < 30
            clocked = [r for r in gate if r.source_frame is not None and r.result_ts is not None]
            assert len(clocked) == len(gate)  # every frame of a simulated camera carries its number
            ages = [site.clock("cam1").age_s(r.source_frame or 0, r.result_ts or 0.0) for r in clocked]
            assert all(0 < age < 30 for age in ages), ages
            assert status["results_dropped"] == 0  # Redis is up: no result may be lost
            drift_stream = StreamNames(settings.redis.stream_prefix).drift_samples
            samples = wait_for(lambda: client.xrange(drift_stream), lambda found: len(found) >= 2, 30)
            assert any(fields[b"camera_id"] == b"gate" for _, fields in samples)
            # Observing is best effort (a backlog full on a busy machine, or the first call failing, skips frames),
            # but most frames are seen.
            status = wait_for(lambda: api.get("/v1/cameras/gate").json(), lambda s: s["frames_processed"] >= 40, 60)
            assert status["frames_not_observed"] <= status["frames_processed"] // 4, status
            assert status["results_dropped"] == 0, status
            env = {
                **os.environ,
                "VISIONLOOP_API__PORT": str(settings.api.port),
                "VISIONLOOP_API__TOKEN": "test-token-123",
            }
            out = subprocess.run(
                [sys.executable, "-m", "visionloop.cli", "cameras", "status", "--json"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            listed = json.loads(out.stdout)
            assert [c["id"] for c in listed] == ["gate"] and "pa55" not in out.stdout
            assert api.get("/v1/cameras/nope").status_code == 404
            metrics = wait_for(
                lambda: api.get("/metrics").text, lambda text: "ray_visionloop_camera_frames_total{" in text, 60
            )
            assert 'camera="gate"' in metrics and "pa55" not in metrics
            assert "ray_visionloop_camera_state{" in metrics and "ray_visionloop_camera_latency_ms_bucket{" in metrics
            events = [json.loads(f[b"payload"]) for _, f in client.xrange(StreamNames().events)]
            assert any(e.get("camera_id") == "gate" and e.get("new") == "streaming" for e in events)
            assert all("pa55" not in json.dumps(e) for e in events)
            client.close()
            invalid = api.post("/v1/cameras", json={"id": "bad id!", "url": url, "fps": 1}, headers=AUTH)
            assert invalid.status_code == 422 and "pa55" not in invalid.text and "id" in invalid.text
            # A local file (any file the service can read, as video) is refused while cameras.allow_files is off,
            # and so is a URL no source can ever open: refused when added, never stored to fail at every start.
            for refused_url, says in [
                (str(tmp_path / "site" / "site.json"), "cameras.allow_files is off"),
                ("uD@o", "cameras.allow_files is off"),
                ("gopher://127.0.0.1/cam", "unsupported URL scheme 'gopher'"),
            ]:
                refused = api.post("/v1/cameras", json={"id": "odd", "url": refused_url}, headers=AUTH)
                assert refused.status_code == 422, refused.text
                (error,) = refused.json()["detail"]  # a 422 names its field, as FastAPI's own do
                assert error["loc"] == ["body", "url"] and says in error["msg"], error
            assert [row["id"] for row in api.get("/v1/cameras").json()] == ["gate"]
            # One stored before the check existed (a fuzz run left such cameras) is dropped at the next start.
            stale = CameraSpec(id="stale", url="uD@o").model_dump_json()
            redis.Redis.from_url(service.redis_url).hset(
                StreamNames(settings.redis.stream_prefix).cameras, "stale", stale
            )
            # Nothing the run wrote holds a credential: every Ray process's log and output, and var/ except
            # Redis's own data (the camera list must keep the URL to reconnect).
            leaks = files_containing(
                [ray_logs_dir(), module_var_dir], [b"pa55-word", b"test-token-123"], skip=module_var_dir / "redis"
            )
            assert leaks == []
        # A new service on the same Redis data resumes the camera without being told again.
        with VisionloopService(settings) as service:
            api = httpx.Client(base_url=service.api_url, timeout=60)
            wait_for(
                lambda: api.get("/v1/cameras").json(),
                lambda rows: [r["id"] for r in rows] == ["gate"] and rows[0]["frames_processed"] > 0,
                60,
            )
            stored = redis.Redis.from_url(service.redis_url).hkeys(StreamNames(settings.redis.stream_prefix).cameras)
            assert stored == [b"gate"]
            removed = api.delete("/v1/cameras/gate", headers=AUTH)
            assert removed.status_code == 200 and removed.json()["id"] == "gate"
            assert api.get("/v1/cameras").json() == []

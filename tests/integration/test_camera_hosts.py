"""Cameras sharing a process (cameras.cameras_per_process > 1) through the whole service: they fill hosts in order,
their frames reach the Detector gathered into shared calls, a killed host comes back with its cameras, and a host
whose last camera is removed goes away."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import free_port, make_settings, wait_for
from visionloop.cli.service import VisionloopService
from visionloop.core.contracts import FrameResult
from visionloop.core.layout import shipped_config
from visionloop.core.streams import StreamNames, camera_host_actor
from visionloop.simulation.site import SiteSpec
from visionloop.simulation.site.live import RenderedSite
from visionloop.simulation.site.writer import write_site

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer test-token-123"}


def _actor_exists(name: str) -> bool:
    import ray

    try:
        ray.get_actor(name)
    except ValueError:
        return False
    return True


def _processed(api: httpx.Client) -> dict[str, int]:
    return {row["id"]: row["frames_processed"] for row in api.get("/v1/cameras").json()}


def test_cameras_share_hosts_and_calls(module_var_dir: Path, tmp_path: Path) -> None:
    import ray

    spec = SiteSpec(seed=3, cameras=3, seconds=300, width=320, height=180)
    site = RenderedSite(write_site(spec, shipped_config("domains.yaml"), tmp_path / "site"))
    # A long gathering wait: while both cameras of a host send, each call waits for the other's frame, so the
    # sharing shows in every run whatever the cameras' phases (the default waits 4 ms at most).
    # No freshness governor: the long wait is the point here, not a load to shed.
    settings = make_settings(
        module_var_dir,
        cameras__cameras_per_process="2",
        cameras__batch_wait_ms="150",
        cameras__latency_budget_ms="0",
    )
    with site.serve(free_port()) as simulator, VisionloopService(settings) as service:
        api = httpx.Client(base_url=service.api_url, timeout=60)
        for name in ("cam1", "cam2", "cam3"):
            added = api.post(
                "/v1/cameras", json={"id": name, "url": simulator.url(name), "target_fps": 5}, headers=AUTH
            )
            assert added.status_code == 201, added.text
        rows = wait_for(
            lambda: api.get("/v1/cameras").json(),
            lambda rows: (
                len(rows) == 3 and all(r["state"] == "streaming" and r["frames_processed"] >= 15 for r in rows)
            ),
            90,
        )
        hosts = {row["id"]: row["host"] for row in rows}
        assert hosts == {"cam1": camera_host_actor(0), "cam2": camera_host_actor(0), "cam3": camera_host_actor(1)}
        shared = next(r for r in rows if r["id"] == "cam1")
        print(f"\nhost 0: {shared['batched_frames']} frames in {shared['batches']} calls")
        # Two cameras at 5 fps through one sink: most calls carry both cameras' frames.
        assert shared["batched_frames"] >= 30 and shared["batches"] <= 0.75 * shared["batched_frames"], shared
        client = redis.Redis.from_url(service.redis_url)
        stream = StreamNames(settings.redis.stream_prefix).results
        seen = {FrameResult.from_stream_fields(f).camera_id for _, f in client.xrevrange(stream, count=200)}
        assert seen == {"cam1", "cam2", "cam3"}
        # A host that dies is restarted by Ray and resumes its own cameras from Redis.
        ray.kill(ray.get_actor(camera_host_actor(0)), no_restart=False)
        before = _processed(api)
        wait_for(
            lambda: api.get("/v1/cameras").json(),
            lambda rows: (
                all(r.get("host") and r["state"] == "streaming" for r in rows)
                and all(r["frames_processed"] >= 10 for r in rows if r["id"] in ("cam1", "cam2"))
                and next(r for r in rows if r["id"] == "cam3")["frames_processed"] > before["cam3"]
            ),
            90,
            0.5,
        )
        # Removing a host's last camera ends the host; the others run on.
        assert api.delete("/v1/cameras/cam3", headers=AUTH).status_code == 200
        wait_for(lambda: _actor_exists(camera_host_actor(1)), lambda exists: not exists, 30)
        assert sorted(_processed(api)) == ["cam1", "cam2"]
        assert client.hgetall(StreamNames(settings.redis.stream_prefix).camera_hosts) == {
            b"cam1": camera_host_actor(0).encode(),
            b"cam2": camera_host_actor(0).encode(),
        }
        client.close()

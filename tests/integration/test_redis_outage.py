"""A Serve app whose Redis is away at start: it says so, keeps answering, loses no result when Redis returns."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import free_port, make_settings
from visionloop.cli.service import VisionloopService
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames
from visionloop.simulation.clips import render_clip_jpegs

pytestmark = pytest.mark.integration


def test_results_survive_a_redis_outage(module_var_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    settings = make_settings(module_var_dir, redis__url=f"redis://127.0.0.1:{port}/0", redis__socket_timeout_s="0.5")
    jpegs = render_clip_jpegs(frames=6, width=320, height=180, seed=2)
    auth = {"Authorization": "Bearer test-token-123"}
    with caplog.at_level(logging.ERROR), VisionloopService(settings) as service:
        assert service.redis_problem is not None  # said at start...
        assert "unreachable" in caplog.text and "buffered" in caplog.text
        with httpx.Client(base_url=service.api_url, timeout=30) as api:
            health = api.get("/v1/health").json()  # ...and in /v1/health
            assert health["status"] == "degraded" and health["redis"]["connected"] is False
            for data in jpegs:  # detection keeps working while Redis is away
                response = api.post(
                    "/v1/detect", params={"camera_id": "outage"}, files={"image": ("f.jpg", data)}, headers=auth
                )
                assert response.status_code == 200
            assert api.get("/v1/health").json()["redis"]["buffered"] == len(jpegs)
            with EmbeddedRedis(port, tmp_path / "redis") as server:
                client = redis.Redis.from_url(server.url)
                stream = StreamNames(settings.redis.stream_prefix).results
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and client.xlen(stream) < len(jpegs):
                    time.sleep(0.2)
                assert client.xlen(stream) == len(jpegs)
                health = api.get("/v1/health").json()
                # Redis is back; the cameras, whose list lives in Redis, were not started without it, and health
                # keeps saying so rather than "ok".
                assert health["status"] == "degraded" and health["missing"] == ["camera_manager"]
                assert health["redis"] | {"last_error": None} == {
                    "connected": True,
                    "buffered": 0,
                    "published": len(jpegs),
                    "dropped": 0,
                    "last_error": None,
                }
                client.close()

"""The HTTP API of a real Ray Serve app backed by a real Redis (one cluster for the whole module)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis

from tests.conftest import make_settings, wait_for
from visionloop.cli.service import VisionloopService
from visionloop.core.contracts import FrameResult
from visionloop.core.streams import StreamNames
from visionloop.simulation.clips import render_clip_jpegs

pytestmark = pytest.mark.integration
TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UPLOAD_LIMIT = 200_000


@pytest.fixture(scope="module")
def service(module_var_dir: Path) -> Iterator[VisionloopService]:
    settings = make_settings(module_var_dir, api__max_upload_bytes=str(UPLOAD_LIMIT), api__max_frames_per_request="6")
    with VisionloopService(settings) as svc:
        yield svc


@pytest.fixture(scope="module")
def api(service: VisionloopService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.api_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def results_stream(service: VisionloopService) -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(service.redis_url)
    yield client, StreamNames(service.settings.redis.stream_prefix).results
    client.close()


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    return render_clip_jpegs(frames=8, width=320, height=180, seed=1)


def _wait_for_stream(client: redis.Redis, stream: str, camera_id: str, count: int) -> list[FrameResult]:
    def published() -> list[FrameResult]:
        return [
            FrameResult.from_stream_fields(fields)
            for _, fields in client.xrange(stream)
            if fields[b"camera_id"] == camera_id.encode()
        ]

    return wait_for(published, lambda found: len(found) >= count, timeout_s=15)


def test_health_reports_model_and_redis(api: httpx.Client) -> None:
    body = api.get("/v1/health").json()
    assert body["status"] == "ok" and body["components"]["camera_manager"] == "ready"
    assert body["model"]["version"] == "v1" and body["model"]["backend"] == "onnxruntime"
    assert body["redis"]["connected"] is True


def test_models_lists_the_registry(api: httpx.Client) -> None:
    body = api.get("/v1/models").json()
    assert body["serving"]["champion"] == "v1"
    assert body["pointers"]["champion"] == "v1"
    assert [v["version"] for v in body["versions"]] == ["v1"]


def test_openapi_docs_are_served(api: httpx.Client) -> None:
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/detect", "/v1/detect/batch", "/v1/health", "/v1/models"} <= set(paths)


def test_detect_returns_a_frame_result_and_publishes_it(
    api: httpx.Client, jpegs: list[bytes], results_stream: tuple[redis.Redis, str]
) -> None:
    response = api.post(
        "/v1/detect", params={"camera_id": "it-single"}, files={"image": ("f.jpg", jpegs[0])}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["camera_id"], body["model_version"], body["role"]) == ("it-single", "v1", "champion")
    assert (body["frame_width"], body["frame_height"]) == (320, 180)
    assert set(body["latency_ms"]) == {"decode", "queue", "batch", "inference", "post"}
    assert body["latency_ms"]["inference"] > 0
    assert isinstance(body["detections"]["boxes"], list)
    client, stream = results_stream
    published = _wait_for_stream(client, stream, "it-single", 1)
    assert len(published) == 1 and published[0].seq == body["seq"]


def test_png_upload_works(api: httpx.Client) -> None:
    png = bytes(cv2.imencode(".png", np.full((90, 160, 3), 60, np.uint8))[1])
    response = api.post("/v1/detect", files={"image": ("f.png", png)}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["frame_width"] == 160


def test_batch_detects_each_image_and_reports_bad_ones(
    api: httpx.Client, jpegs: list[bytes], results_stream: tuple[redis.Redis, str]
) -> None:
    files = [("images", (f"{i}.jpg", data)) for i, data in enumerate(jpegs[:4])]
    files.insert(2, ("images", ("broken.jpg", jpegs[0][:40])))
    response = api.post("/v1/detect/batch", params={"camera_id": "it-batch"}, files=files, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errors"] == 1 and len(body["results"]) == 5
    assert "broken.jpg" in body["results"][2]["error"]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert _wait_for_stream(*results_stream, "it-batch", 4)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong-token"}, 401), ({"Authorization": TOKEN}, 401), (AUTH, 200)],
)
def test_detect_needs_the_token(api: httpx.Client, jpegs: list[bytes], headers: dict[str, str], status: int) -> None:
    response = api.post("/v1/detect", files={"image": ("f.jpg", jpegs[1])}, headers=headers)
    assert response.status_code == status


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"hello, I am text", "not a JPEG or PNG"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "corrupt or truncated JPEG"),
        (b"", "empty upload"),
    ],
)
def test_bad_images_are_400_naming_the_problem(api: httpx.Client, payload: bytes, fragment: str) -> None:
    response = api.post("/v1/detect", files={"image": ("bad.jpg", payload)}, headers=AUTH)
    assert response.status_code == 400
    assert fragment in response.json()["detail"] and "bad.jpg" in response.json()["detail"]


def test_missing_file_field_is_422(api: httpx.Client) -> None:
    assert api.post("/v1/detect", headers=AUTH).status_code == 422


def test_oversize_upload_is_413(api: httpx.Client) -> None:
    response = api.post("/v1/detect", files={"image": ("big.jpg", b"\xff\xd8\xff" + b"0" * UPLOAD_LIMIT)}, headers=AUTH)
    assert response.status_code == 413
    assert "max_upload_bytes" in response.json()["detail"]


def test_too_many_images_is_413(api: httpx.Client, jpegs: list[bytes]) -> None:
    files = [("images", (f"{i}.jpg", jpegs[i % len(jpegs)])) for i in range(7)]
    assert api.post("/v1/detect/batch", files=files, headers=AUTH).status_code == 413


def test_bad_camera_id_is_rejected(api: httpx.Client, jpegs: list[bytes]) -> None:
    response = api.post(
        "/v1/detect", params={"camera_id": "../../etc"}, files={"image": ("f.jpg", jpegs[0])}, headers=AUTH
    )
    assert response.status_code == 422


def test_metrics_are_scrapeable(api: httpx.Client, jpegs: list[bytes]) -> None:
    api.post("/v1/detect", files={"image": ("f.jpg", jpegs[2])}, headers=AUTH)
    # The names a Prometheus scrape sees (Ray's exporter adds 'ray_'; counters end in _total): the README's names.
    wanted = (
        "ray_visionloop_requests_total{",
        "ray_visionloop_request_latency_ms_bucket{",
        "ray_visionloop_batch_size_bucket{",
        "ray_visionloop_stage_latency_ms_bucket{",
        "ray_visionloop_frames_total{",
    )
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        text = api.get("/metrics").text
        if all(name in text for name in wanted):
            break
        time.sleep(2)
    for name in wanted:
        assert name in text, f"{name} missing from /metrics"
    assert 'stage="inference"' in text


def _stream_url(service: VisionloopService, camera_id: str) -> str:
    return service.api_url.replace("http://", "ws://") + f"/v1/stream?camera_id={camera_id}"


def test_stream_refuses_a_handshake_without_the_token(service: VisionloopService) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    for headers in ({}, {"Authorization": "Bearer wrong-token-1"}):
        with pytest.raises(InvalidStatus) as refused:
            connect(_stream_url(service, "ws-cam"), additional_headers=headers, open_timeout=30)
        assert refused.value.response.status_code == 403


def test_stream_answers_every_frame_in_order_and_publishes_them(
    service: VisionloopService, jpegs: list[bytes], results_stream: tuple[redis.Redis, str]
) -> None:
    from websockets.sync.client import connect

    frames = [jpegs[0], jpegs[1], b"\xff\xd8\xff not a jpeg", jpegs[2], b"x" * (UPLOAD_LIMIT + 1), jpegs[3]]
    with connect(_stream_url(service, "ws-cam"), additional_headers=AUTH, open_timeout=30, max_size=None) as ws:
        for frame in frames:  # all sent before any answer is read: the client runs ahead of the model
            ws.send(frame)
        ws.send("not a frame")
        answers = [json.loads(ws.recv(timeout=30)) for _ in range(len(frames) + 1)]
    refused = [a for a in answers if "index" not in a]
    assert len(refused) == 1 and "binary messages" in refused[0]["error"]
    by_index = sorted((a for a in answers if "index" in a), key=lambda a: a["index"])
    assert [a["index"] for a in by_index] == list(range(len(frames)))
    frame_answers = [a for a in answers if "index" in a]
    assert [a["index"] for a in frame_answers] == list(range(len(frames)))  # in the order they were sent
    assert "corrupt" in by_index[2]["error"] and "limit is" in by_index[4]["error"]
    good = [by_index[i] for i in (0, 1, 3, 5)]
    assert all(a["model_version"] == "v1" and a["camera_id"] == "ws-cam" for a in good)
    assert len({a["seq"] for a in good}) == 4
    client, stream = results_stream
    published = _wait_for_stream(client, stream, "ws-cam", 4)
    assert {r.seq for r in published} >= {a["seq"] for a in good}

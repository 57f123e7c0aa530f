"""The explanation worker against a real Redis, in-process (no Ray): answers, errors, the cache and its trimming.

The model is the test session's untrained champion: these tests check the worker's bookkeeping, not what the
explanation shows (tests/integration/test_explain_pointing.py does that with a trained model).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from tests.conftest import make_settings, wait_for
from visionloop.core.explanations import ExplainRequest, explanation_key
from visionloop.core.imaging import encode_jpeg
from visionloop.core.model_setup import registry_for
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.explaining.worker import ExplainWorker

STREAMS = StreamNames("visionloop")


@pytest.fixture
def settings(var_dir: Path, redis_server: EmbeddedRedis) -> Settings:
    return make_settings(var_dir, REDIS__URL=redis_server.url, EXPLAIN__MAX_EVALS="60", EXPLAIN__CACHE_SIZE="2")


@pytest.fixture
def client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def worker(settings: Settings, redis_server: EmbeddedRedis) -> Iterator[ExplainWorker]:
    worker = ExplainWorker(settings, redis_server.url, warm=False)
    yield worker
    worker.stop()


def frame_jpeg() -> bytes:
    frame = np.full((96, 128, 3), 70, np.uint8)
    cv2.circle(frame, (60, 50), 20, (40, 200, 240), -1)
    return encode_jpeg(frame, 90)


def request(settings: Settings, box_index: int = 0, jpeg: bytes | None = None, version: str = "") -> dict[str, Any]:
    version = version or registry_for(settings).champion().version
    image = frame_jpeg() if jpeg is None else jpeg
    return dict(ExplainRequest(version, "cam-1:42", box_index, (40, 30, 80, 70), 0, image, "operator").to_fields())


def answer(client: redis.Redis, key: str) -> dict[str, Any] | None:
    raw: Any = client.hget(STREAMS.explanations, key)
    return json.loads(raw) if raw else None


def as_stream_entry(fields: dict[str, Any]) -> dict[bytes, bytes]:
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def test_request_fields_round_trip_through_the_contract(settings: Settings) -> None:
    fields = request(settings, box_index=3)
    parsed = ExplainRequest.from_fields(as_stream_entry(fields))
    assert parsed.key == fields["key"] == explanation_key(parsed.model_version, "cam-1:42", 3)
    assert parsed.box == (40.0, 30.0, 80.0, 70.0) and parsed.class_id == 0 and parsed.image == fields["jpeg"]


def test_a_request_is_answered_then_served_from_the_cache(
    worker: ExplainWorker, settings: Settings, client: redis.Redis
) -> None:
    fields = request(settings)
    key = str(fields["key"])
    worker.start()
    client.xadd(STREAMS.explain_requests, fields)
    done = wait_for(lambda: answer(client, key), lambda a: a and a["state"] in ("done", "error"), timeout_s=120)
    assert done["state"] == "done", done
    assert done["error"] is None and done["key"] == key and done["box"] == [40.0, 30.0, 80.0, 70.0]
    assert 0 < done["evals"] <= 60 + 1 and done["seconds"] > 0
    x, y = done["peak"]
    assert 0 <= x < 128 and 0 <= y < 96
    overlay = cv2.imdecode(np.frombuffer(base64.b64decode(done["overlay_png_b64"]), np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape == (96, 128, 3)
    preview = cv2.imdecode(np.frombuffer(base64.b64decode(done["preview_png_b64"]), np.uint8), cv2.IMREAD_COLOR)
    assert preview.shape == (96, 128, 3)  # the EigenCAM preview, shown while SHAP runs
    assert client.lrange(STREAMS.explain_order, 0, -1) == [key.encode()]

    client.xadd(STREAMS.explain_requests, fields)  # the same detection again
    wait_for(lambda: worker.status()["cached"], lambda n: n == 1, timeout_s=30)
    assert worker.status()["handled"] == 1  # not computed twice
    assert answer(client, key) == done
    wait_for(
        lambda: client.xpending(STREAMS.explain_requests, STREAMS.explain_group)["pending"],
        lambda n: n == 0,
        timeout_s=10,
    )


def test_failures_are_stored_with_their_reason(worker: ExplainWorker, settings: Settings, client: redis.Redis) -> None:
    bad = request(settings, box_index=0, jpeg=b"\xff\xd8\xff\xe0 not really a jpeg")
    assert worker.handle(as_stream_entry(bad))["state"] == "error"
    stored = answer(client, str(bad["key"]))
    assert stored is not None and stored["state"] == "error" and "corrupt or truncated JPEG" in stored["error"]

    unknown = request(settings, box_index=1, version="v99")
    stored = worker.handle(as_stream_entry(unknown))
    assert stored["state"] == "error" and "'v99' is not in the registry" in stored["error"]
    assert answer(client, str(unknown["key"])) == stored

    malformed = as_stream_entry({"key": "x:y:0", "model_version": "v1"})
    assert "malformed explanation request" in worker.handle(malformed)["error"]
    assert worker.status()["failed"] == 3 and worker.status()["handled"] == 0


def test_the_cache_keeps_the_newest_answers(worker: ExplainWorker, settings: Settings, client: redis.Redis) -> None:
    keys = []
    for index in range(3):  # cache_size is 2; errors are answers too, and cheap
        fields = request(settings, box_index=index, jpeg=b"not an image")
        worker.handle(as_stream_entry(fields))
        keys.append(str(fields["key"]))
    assert client.lrange(STREAMS.explain_order, 0, -1) == [keys[2].encode(), keys[1].encode()]
    assert answer(client, keys[0]) is None
    assert answer(client, keys[1]) is not None and answer(client, keys[2]) is not None

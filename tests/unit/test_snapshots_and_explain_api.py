"""The frame observers' chain, the snapshot keeper and the API's side of explanations, against a real Redis."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from tests.conftest import make_settings
from visionloop.core.contracts import Detections, EncodedFrame, FrameResult, ModelRole
from visionloop.core.explanations import ExplainRequest, ExplanationNotFound
from visionloop.core.frames import ObserverChain, chain_observers, kept_frames
from visionloop.core.imaging import decode_image, encode_jpeg
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames
from visionloop.serving.explanations import explanation, kept_frame, queue_explanation, recent_explanations, request_for
from visionloop.serving.snapshots import SnapshotKeeper


def _frame(camera: str, seq: int, boxes: int = 2) -> tuple[EncodedFrame, FrameResult]:
    image = np.full((48, 64, 3), 90, np.uint8)
    detections = Detections(
        np.array([[4 + i, 4, 20 + i, 30] for i in range(boxes)], np.float32),
        np.full(boxes, 0.8, np.float32),
        np.arange(boxes, dtype=np.int64),
    )
    result = FrameResult(camera, seq, 1000.0 + seq, "v1", detections, frame_width=64, frame_height=48)
    return EncodedFrame(camera, encode_jpeg(image), seq, 1000.0 + seq), result


class Recorder:
    def __init__(self, answer: object = None, fail: bool = False) -> None:
        self.seen: list[int] = []
        self.answer, self.fail = answer, fail

    def offer(self, frame: EncodedFrame, result: FrameResult) -> object:
        self.seen.append(result.seq)
        if self.fail:
            raise RuntimeError("observer down")
        return self.answer


def test_the_chain_shows_every_observer_the_frame_and_keeps_the_first_answer() -> None:
    failing, selector, other = Recorder(fail=True), Recorder(answer="queued"), Recorder(answer="ignored")
    chain = ObserverChain([failing, selector, other])
    with pytest.raises(RuntimeError, match="observer down"):  # the Router counts it; the others still saw it
        chain.offer(*_frame("cam", 1))
    assert failing.seen == selector.seen == other.seen == [1]
    assert ObserverChain([Recorder(), selector, other]).offer(*_frame("cam", 2)) == "queued"
    assert ObserverChain([Recorder(answer=[]), selector]).offer(*_frame("cam", 3)) == "queued"  # [] kept nothing


def test_kept_frames_are_what_the_answer_names_held_frames_included() -> None:
    frame, result = _frame("cam", 5)
    assert kept_frames(None, frame, result) == [] and kept_frames([], frame, result) == []
    assert kept_frames("queued", frame, result) == [(frame, result)]  # the frame just offered
    earlier_frame, earlier = _frame("cam", 2)  # a stratum's frame, released when its window ended
    held = SimpleNamespace(jpeg=earlier_frame.encoded(), result=earlier)
    [(mirrored, its_result)] = kept_frames([held], frame, result)
    assert its_result is earlier and mirrored.seq == 2 and mirrored.data == earlier_frame.encoded()
    assert mirrored.camera_id == "cam" and mirrored.capture_ts == earlier.capture_ts
    assert chain_observers([]) is None


def test_snapshots_are_throttled_capped_and_newest_first(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    settings = make_settings(tmp_path, dashboard__snapshot_interval_s="0.05", dashboard__snapshots_per_camera="3")
    keeper = SnapshotKeeper(settings, redis_server.url)
    streams = StreamNames(settings.redis.stream_prefix)
    keeper.offer(*_frame("cam", 0))
    keeper.offer(*_frame("cam", 1))  # within the interval: not kept
    for seq in range(2, 7):
        asyncio.run(asyncio.sleep(0.06))
        keeper.offer(*_frame("cam", seq))
    shadow_frame, shadow_result = _frame("cam", 9)
    keeper.offer(shadow_frame, FrameResult(**{**shadow_result.__dict__, "role": ModelRole.SHADOW}))
    client = redis.Redis.from_url(redis_server.url)
    kept = [json.loads(raw) for raw in client.lrange(streams.snapshots("cam"), 0, -1)]
    assert [entry["result"]["seq"] for entry in kept] == [6, 5, 4]
    assert client.smembers(streams.snapshot_cameras) == {b"cam"}
    assert kept[0]["frame_id"] == _frame("cam", 6)[1].frame_id and kept[0]["jpeg_b64"]
    # A camera's frame comes as an array (no JPEG inside the cluster): the keeper stores it encoded all the same.
    frame, result = _frame("arr", 1)
    keeper.offer(EncodedFrame("arr", image=frame.decoded(), seq=1), result)
    (entry,) = [json.loads(raw) for raw in client.lrange(streams.snapshots("arr"), 0, -1)]
    assert decode_image(base64.b64decode(entry["jpeg_b64"])).shape == (48, 64, 3)


def test_an_explanation_is_queued_once_and_read_back(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    settings = make_settings(tmp_path, dashboard__snapshot_interval_s="0.01")
    streams = StreamNames(settings.redis.stream_prefix)
    SnapshotKeeper(settings, redis_server.url).offer(*_frame("cam", 3))
    frame_id = _frame("cam", 3)[1].frame_id

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        with pytest.raises(ExplanationNotFound, match="not among its kept frames"):
            await kept_frame(client, streams, "cam", "other-frame")
        entry = await kept_frame(client, streams, "cam", frame_id)
        with pytest.raises(ExplanationNotFound, match="no box 5"):
            request_for(entry, 5, "operator")
        request = request_for(entry, 1, "alice")
        first = await queue_explanation(client, streams, request)
        second = await queue_explanation(client, streams, request)
        assert first["state"] == second["state"] == "queued" and first["key"] == f"v1:{frame_id}:1"
        assert await client.xlen(streams.explain_requests) == 1  # asking again while queued adds nothing
        done = {**first, "state": "done", "overlay_png_b64": "xx", "seconds": 1.5}
        await client.hset(streams.explanations, request.key, json.dumps(done))
        assert (await queue_explanation(client, streams, request))["state"] == "done"
        assert await client.xlen(streams.explain_requests) == 1  # a done explanation is served, not recomputed
        assert (await explanation(client, streams, request.key))["seconds"] == 1.5
        listed = await recent_explanations(client, streams)
        assert listed[0]["key"] == request.key and "overlay_png_b64" not in listed[0]
        with pytest.raises(ExplanationNotFound):
            await explanation(client, streams, "v9:nothing:0")
        entries = await client.xrange(streams.explain_requests)
        parsed = ExplainRequest.from_fields(entries[0][1])
        assert parsed == request
        await client.aclose()

    asyncio.run(scenario())


def test_a_malformed_request_entry_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match="no image"):
        ExplainRequest.from_fields({b"key": b"k"})
    fields = ExplainRequest("v1", "f", 0, (1, 2, 3, 4), 0, b"\xff\xd8").to_fields()
    fields["box"] = "[1, 2]"
    with pytest.raises(ValueError, match="box"):
        ExplainRequest.from_fields(fields)

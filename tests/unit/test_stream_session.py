"""The WebSocket stream's session logic, driven through its receive/send seams (the endpoint is tested live in
tests/integration/test_serving_api.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from visionloop.core.contracts import Detections, EncodedFrame, FrameResult
from visionloop.serving.stream_session import TEXT_REFUSED, StreamLimits, StreamSession


def _result(frame: EncodedFrame) -> FrameResult:
    return FrameResult(frame.camera_id, len(frame.data), 0.0, "v1", Detections.empty())


class Client:
    """Feeds messages to the session and records its answers; ``gate`` holds the model until released."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in messages:
            self.inbox.put_nowait(message)
        self.answers: list[dict[str, Any]] = []
        self.calls: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send_json(self, answer: dict[str, Any]) -> None:
        self.answers.append(answer)

    async def process(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        self.calls.append(len(frames))
        await self.gate.wait()
        return [_result(f) if f.data != b"bad" else "corrupt JPEG" for f in frames]

    async def names(self, version: str) -> list[str]:
        return ["thing"]


def frame(size: int) -> dict[str, Any]:
    return {"type": "websocket.receive", "bytes": b"x" * size}


DISCONNECT = {"type": "websocket.disconnect"}
LIMITS = StreamLimits(max_frame_bytes=100, window=8, max_batch=8)


def run(client: Client, limits: StreamLimits = LIMITS) -> StreamSession:
    session = StreamSession("cam", client.receive, client.send_json, client.process, client.names, limits)
    asyncio.run(asyncio.wait_for(session.run(), 5))
    return session


def test_every_frame_is_answered_in_order_with_its_index() -> None:
    client = Client([frame(n) for n in range(1, 6)] + [DISCONNECT])
    session = run(client)
    assert [a["index"] for a in client.answers] == [0, 1, 2, 3, 4]
    assert [a["seq"] for a in client.answers] == [1, 2, 3, 4, 5]  # each answer belongs to its own frame
    assert session.answered == 5 and sum(client.calls) == 5


def test_frames_waiting_while_the_model_is_busy_go_in_one_call() -> None:
    client = Client([])

    async def scenario() -> None:
        session = StreamSession("cam", client.receive, client.send_json, client.process, client.names,
                                StreamLimits(100, 8, 4))  # fmt: skip
        client.gate.clear()
        task = asyncio.create_task(session.run())
        client.inbox.put_nowait(frame(1))
        await asyncio.sleep(0.05)  # the first frame is in the model, alone: nothing waited for company
        for n in range(2, 8):
            client.inbox.put_nowait(frame(n))
        await asyncio.sleep(0.05)
        client.gate.set()
        await asyncio.sleep(0.05)
        client.inbox.put_nowait(DISCONNECT)
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert client.calls[0] == 1
    assert client.calls[1] == 4  # the next call takes what queued meanwhile, up to max_batch
    assert sum(client.calls) == 7 and [a["index"] for a in client.answers] == list(range(7))


def test_bad_messages_get_an_error_and_the_stream_goes_on() -> None:
    client = Client(
        [frame(3), {"type": "websocket.receive", "text": "hello"}, frame(500),
         {"type": "websocket.receive", "bytes": b"bad"}, frame(4), DISCONNECT]
    )  # fmt: skip
    session = run(client)
    by_index = {a.get("index"): a for a in client.answers}
    assert {"error": TEXT_REFUSED} in client.answers
    assert [a["index"] for a in client.answers if "index" in a] == [0, 1, 2, 3]  # refusals keep their place
    assert "limit is 100" in by_index[1]["error"]
    assert by_index[2]["error"] == "corrupt JPEG"
    assert by_index[0]["seq"] == 3 and by_index[3]["seq"] == 4
    assert session.errors == 2 and session.answered == 2


def test_a_failing_model_call_answers_each_frame_with_the_reason() -> None:
    client = Client([frame(2), DISCONNECT])

    async def broken(frames: list[EncodedFrame]) -> list[FrameResult | str]:
        raise RuntimeError("replica restarting")

    session = StreamSession("cam", client.receive, client.send_json, broken, client.names, StreamLimits(100, 8, 8))
    asyncio.run(asyncio.wait_for(session.run(), 5))
    assert client.answers == [{"index": 0, "error": "not processed: RuntimeError: replica restarting"}]


def test_a_client_gone_with_a_full_window_does_not_hang_the_session() -> None:
    client = Client([frame(n) for n in range(1, 4)] + [DISCONNECT])
    client.gate.clear()  # the model never answers while the window is full
    run(client, StreamLimits(100, 2, 1))  # returns (within the 5 s bound of run)
    assert np.sum(client.calls) >= 1

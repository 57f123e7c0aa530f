"""The WebRTC gateway with an aiortc client in the same process (fast): frames in, annotated video and
detection messages out, bad offers refused, peers limited, and nothing left behind after 20 sessions."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import psutil
import pytest
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from tests.conftest import assert_no_leak, eventually, free_port, settled_count_async
from visionloop.core.contracts import Detections, EncodedFrame, FrameResult
from visionloop.core.settings import WebRTCSettings
from visionloop.simulation.clips import render_clip
from visionloop.streaming.webrtc.gateway import WebRTCGateway

pytestmark = pytest.mark.integration
TOKEN = "gateway-token-1"
BOX = (40.0, 30.0, 140.0, 120.0)


class WorldTrack(VideoStreamTrack):  # type: ignore[misc]
    """A synthetic camera: frames of the world, paced by aiortc's clock."""

    def __init__(self) -> None:
        super().__init__()
        self._frames = render_clip(frames=30, width=320, height=240, seed=4)
        self._index = 0

    async def recv(self) -> Any:
        import av

        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self._frames[self._index % len(self._frames)], format="bgr24")
        self._index += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


async def fake_detect(frames: list[EncodedFrame]) -> list[FrameResult | str]:
    detections = Detections(np.array([BOX], np.float32), np.array([0.9], np.float32), np.array([1]))
    return [FrameResult(f.camera_id, 1, f.capture_ts or 0.0, "fake-v1", detections) for f in frames]


async def fake_names() -> list[str]:
    return ["circle", "square"]


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[WebRTCGateway, str]]:
    settings = WebRTCSettings(max_peers=2, target_fps=15, idle_timeout_s=30)
    gw = WebRTCGateway(settings, TOKEN, fake_detect, fake_names)
    runner = web.AppRunner(gw.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield gw, f"http://127.0.0.1:{port}"
    await runner.cleanup()


class Client:
    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.messages: list[dict[str, Any]] = []
        self.frames: list[np.ndarray[Any, Any]] = []
        self.channel = self.pc.createDataChannel("detections")
        self.channel.on("message", lambda m: self.messages.append(json.loads(m)))
        self.pc.addTrack(WorldTrack())
        self._reader: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                self.frames.append(frame.to_ndarray(format="bgr24"))
                self.frames = self.frames[-5:]
        except MediaStreamError:
            return

    async def offer(self, url: str, token: str = TOKEN) -> aiohttp.ClientResponse:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{url}/v1/webrtc/offer",
                headers={"Authorization": f"Bearer {token}"},
                json={"sdp": self.pc.localDescription.sdp, "type": "offer"},
            )
            await response.read()
            if response.status == 200:
                answer = await response.json()
                await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            return response

    async def close(self) -> None:
        await self.pc.close()
        if self._reader:
            self._reader.cancel()
            with __import__("contextlib").suppress(asyncio.CancelledError):
                await self._reader


async def test_frames_in_detections_and_annotated_video_out(gateway: tuple[WebRTCGateway, str]) -> None:
    gw, url = gateway
    client = Client()
    response = await client.offer(url)
    assert response.status == 200
    assert await eventually(lambda: len(client.messages) >= 30, 20), f"{len(client.messages)} messages"
    message = client.messages[-1]
    assert message["model_version"] == "fake-v1" and message["server_latency_ms"] >= 0
    assert message["boxes"][0]["class_name"] == "square" and message["boxes"][0]["xyxy"] == list(BOX)
    assert message["capture_ts"] > 0 and "latency_ms" in message
    assert await eventually(lambda: len(client.frames) > 0 and client.frames[-1].shape == (240, 320, 3), 10)
    # The annotated video carries the box outline (drawn in the class colour) where the detector put it.
    edge = client.frames[-1][int(BOX[1]) + 20, int(BOX[0]) - 1 : int(BOX[0]) + 3].astype(int)
    inside = client.frames[-1][int(BOX[1]) + 20, int(BOX[0]) + 20].astype(int)
    assert np.abs(edge - np.array([151, 157, 255])).sum(axis=1).min() < 120, (edge, inside)
    (peer,) = gw.peers.values()
    assert peer.frames_in > 30 and peer.camera_id.startswith("webrtc:")
    await client.close()
    assert await eventually(lambda: not gw.peers, 10)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "offer"}, {}, 401),
        ({"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "offer"}, {"Authorization": "Bearer no"}, 401),
        ({"sdp": "hello", "type": "offer"}, {"Authorization": f"Bearer {TOKEN}"}, 400),
        ({"sdp": "v=0\r\nm=video garbage\r\n", "type": "offer"}, {"Authorization": f"Bearer {TOKEN}"}, 400),
        ({"type": "offer"}, {"Authorization": f"Bearer {TOKEN}"}, 400),
        ({"sdp": "v=0\r\nm=video 9\r\n", "type": "answer"}, {"Authorization": f"Bearer {TOKEN}"}, 400),
    ],
)
async def test_bad_offers_are_refused(
    gateway: tuple[WebRTCGateway, str], body: dict[str, str], headers: dict[str, str], status: int
) -> None:
    gw, url = gateway
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{url}/v1/webrtc/offer", json=body, headers=headers)
        assert response.status == status
        assert "detail" in await response.json()
    assert not gw.peers


async def test_not_json_is_400(gateway: tuple[WebRTCGateway, str]) -> None:
    _, url = gateway
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{url}/v1/webrtc/offer", data=b"\x00\x01", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status == 400


async def test_peer_limit_is_429(gateway: tuple[WebRTCGateway, str]) -> None:
    gw, url = gateway
    clients = [Client(), Client()]
    for client in clients:
        assert (await client.offer(url)).status == 200
    extra = Client()
    assert (await extra.offer(url)).status == 429
    for client in [*clients, extra]:
        await client.close()
    assert await eventually(lambda: not gw.peers, 10)


LEAK_SNAPSHOTS = (2, 11, 20)  # after the sessions that warm every code path, then twice 9 sessions more


def _threads_of_our_own() -> int:
    """Threads, less the event loop's default executor's: it starts its threads lazily, up to a bound set by the
    core count (so it grows for longer on a big machine), and never more than that bound, so it cannot leak."""
    return sum(1 for thread in threading.enumerate() if not thread.name.startswith("asyncio_"))


async def _resources(previous: tuple[float, float, float] | None) -> tuple[float, float, float]:
    """asyncio tasks, threads and RSS (MB); the counts once settled (closing peers end their tasks a moment later)."""
    gc.collect()
    tasks = await settled_count_async(lambda: len(asyncio.all_tasks()), previous[0] if previous else None)
    threads = await settled_count_async(_threads_of_our_own, previous[1] if previous else None)
    return tasks, threads, psutil.Process().memory_info().rss / 2**20


async def test_twenty_sessions_leave_no_tasks_peers_or_memory(gateway: tuple[WebRTCGateway, str]) -> None:
    gw, url = gateway
    snapshots: list[tuple[float, float, float]] = []
    for cycle in range(1, LEAK_SNAPSHOTS[-1] + 1):
        client = Client()
        assert (await client.offer(url)).status == 200
        assert await eventually(lambda c=client: len(c.messages) >= 2, 15), f"cycle {cycle}"  # type: ignore[misc]
        await client.close()
        assert await eventually(lambda: not gw.peers, 10), f"cycle {cycle}: peer not cleaned up"
        if cycle in LEAK_SNAPSHOTS:
            snapshots.append(await _resources(snapshots[-1] if snapshots else None))
    tasks, threads, rss = zip(*snapshots, strict=True)
    assert_no_leak("asyncio tasks", tasks, slack=1, noise=1)
    assert_no_leak("threads", threads, slack=1, noise=1)
    assert_no_leak("RSS (MB)", rss, slack=30, noise=15)


async def test_upload_fallback(gateway: tuple[WebRTCGateway, str]) -> None:
    _, url = gateway
    import cv2

    jpeg = cv2.imencode(".jpg", render_clip(frames=1, width=160, height=120)[0])[1].tobytes()
    async with aiohttp.ClientSession() as session:
        form = aiohttp.FormData()
        form.add_field("image", jpeg, filename="a.jpg", content_type="image/jpeg")
        response = await session.post(f"{url}/v1/detect", data=form, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        assert (await response.json())["detections"]["boxes"][0]["class_name"] == "square"
        response = await session.post(f"{url}/v1/detect", data=aiohttp.FormData({"x": "1"}))
        assert response.status == 401

"""The WebRTC gateway: a browser sends its camera, gets back the video with boxes drawn and detections as JSON.

Per peer: one task keeps the newest inbound frame (the browser never waits on the model), one task sends the
newest frame to the model at the target rate, draws the results on it for the outbound track and sends them on
the ``detections`` data channel. Everything of a peer is closed when it disconnects, fails or goes idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiohttp import web
from aiortc import VideoStreamTrack

from streaming.webrtc.annotate import draw_detections
from streaming.webrtc.ice import keep_candidates, restrict_host_addresses
from visionloop.contracts import EncodedFrame, FrameResult
from visionloop.errors import InvalidImageError
from visionloop.http_errors import BadRequest, PayloadTooLarge, TooManyRequests, Unauthorized, http_error
from visionloop.settings import WebRTCSettings

log = logging.getLogger(__name__)
PAGE_DIR = Path(__file__).with_name("page")
DetectFn = Callable[[list[EncodedFrame]], Awaitable[list[FrameResult | str]]]
NamesFn = Callable[[], Awaitable[list[str]]]
MAX_OFFER_BYTES = 64 * 1024


def error_response(exc: BaseException) -> web.Response:
    """``exc`` answered as the API answers it: the shared status and ``{"detail": message}``."""
    error = http_error(exc)
    return web.json_response({"detail": error.message}, status=error.status, headers=dict(error.headers))


class AnnotatedTrack(VideoStreamTrack):  # type: ignore[misc]
    """Outbound video: the newest annotated frame, re-sent while no new one is ready (aiortc paces it)."""

    def __init__(self) -> None:
        super().__init__()
        self._latest: np.ndarray[Any, Any] | None = None

    def push(self, image: np.ndarray[Any, Any]) -> None:
        self._latest = image

    async def recv(self) -> Any:
        pts, time_base = await self.next_timestamp()
        image = self._latest if self._latest is not None else np.zeros((240, 320, 3), np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class PeerSession:
    id: str
    pc: Any
    created: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    latest: Any = None
    latest_event: asyncio.Event = field(default_factory=asyncio.Event)
    channel: Any = None
    outbound: AnnotatedTrack = field(default_factory=AnnotatedTrack)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    frames_in: int = 0
    frames_processed: int = 0
    messages_sent: int = 0
    pending_mark: float | None = None

    @property
    def camera_id(self) -> str:
        return f"webrtc:{self.id}"


class WebRTCGateway:
    """Owns the peers; ``app()`` is the aiohttp application (page, offer endpoint, status)."""

    def __init__(
        self,
        settings: WebRTCSettings,
        token: str,
        detect: DetectFn,
        class_names: NamesFn,
        max_upload_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.settings = settings
        self._max_upload_bytes = max_upload_bytes
        self._token = token
        self._detect = detect
        self._class_names = class_names
        self.peers: dict[str, PeerSession] = {}
        self._names: list[str] = []
        restrict_host_addresses(settings.host_addresses)

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=max(MAX_OFFER_BYTES, self._max_upload_bytes))
        app.router.add_get("/", self._page)
        app.router.add_static("/static", PAGE_DIR)
        app.router.add_post("/v1/webrtc/offer", self._offer)
        app.router.add_get("/v1/webrtc/peers", self._status)
        app.router.add_get("/v1/webrtc/config", self._config)
        app.router.add_post("/v1/detect", self._detect_upload)
        app.on_shutdown.append(lambda _: self.close_all())
        return app

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PAGE_DIR / "index.html")

    async def _config(self, request: web.Request) -> web.Response:
        servers = [s.model_dump(exclude_none=True) for s in self.settings.ice_servers]
        return web.json_response({"iceServers": servers, "targetFps": self.settings.target_fps})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "id": p.id,
                    "state": p.pc.connectionState,
                    "frames_in": p.frames_in,
                    "frames_processed": p.frames_processed,
                    "messages_sent": p.messages_sent,
                }
                for p in self.peers.values()
            ]
        )

    async def _detect_upload(self, request: web.Request) -> web.Response:
        """The page's fallback for browsers without a camera: one image, same answer as the API's /v1/detect."""
        if not self._authorized(request):
            return error_response(Unauthorized())
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            return error_response(PayloadTooLarge.body(self._max_upload_bytes))
        upload = form.get("image")
        if not isinstance(upload, web.FileField):
            return error_response(BadRequest("send the image as multipart field 'image'"))
        (result,) = await self._detect([EncodedFrame("webrtc:upload", upload.file.read())])
        if isinstance(result, str):
            return error_response(InvalidImageError(f"image '{upload.filename}': {result}"))
        return web.json_response(result.to_dict(await self._names_for(result)))

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.encode(), self._token.encode())

    async def _offer(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(Unauthorized())
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return error_response(BadRequest("the offer must be JSON {sdp, type}"))
        if not isinstance(body, dict) or body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
            return error_response(BadRequest("the offer must be JSON {sdp, type: 'offer'}"))
        if "m=video" not in body["sdp"] or not body["sdp"].startswith("v=0"):
            return error_response(BadRequest("the SDP offer has no video section"))
        if len(self.peers) >= self.settings.max_peers:
            return error_response(TooManyRequests(f"the gateway already serves {self.settings.max_peers} peers"))
        try:
            answer = await self.connect(body["sdp"])
        except ValueError as exc:
            return error_response(BadRequest(f"malformed SDP offer: {exc}"))
        return web.json_response(answer)

    # -- peers ---------------------------------------------------------------------------------------------------

    async def connect(self, offer_sdp: str) -> dict[str, str]:
        """Answer an offer (ICE fully gathered: aiortc does not trickle) and start the peer's tasks."""
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

        servers = [RTCIceServer(**s.model_dump(exclude_none=True)) for s in self.settings.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        peer = PeerSession(uuid.uuid4().hex[:12], pc)
        self.peers[peer.id] = peer

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            if channel.label == "detections":
                peer.channel = channel

                @channel.on("message")  # type: ignore[untyped-decorator]
                def on_message(message: Any) -> None:
                    peer.last_activity = time.monotonic()
                    with contextlib.suppress(ValueError, TypeError, AttributeError):
                        data = json.loads(message)
                        if data.get("type") == "mark":
                            peer.pending_mark = float(data["t"])

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "video":
                pc.addTrack(peer.outbound)
                peer.tasks.append(asyncio.ensure_future(self._receive(peer, track)))
                peer.tasks.append(asyncio.ensure_future(self._process(peer)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed", "disconnected"):
                await self.close_peer(peer.id)

        try:
            sdp = keep_candidates(offer_sdp, self.settings.host_addresses)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError and others for bad SDP; close the half-made peer
            await self.close_peer(peer.id)
            raise ValueError(str(exc) or type(exc).__name__) from None
        peer.tasks.append(asyncio.ensure_future(self._watch_idle(peer)))
        answer = keep_candidates(pc.localDescription.sdp, self.settings.host_addresses)
        return {"sdp": answer, "type": pc.localDescription.type, "peer_id": peer.id}

    async def _receive(self, peer: PeerSession, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                peer.latest = (frame, time.time())
                peer.frames_in += 1
                peer.last_activity = time.monotonic()
                peer.latest_event.set()
        except MediaStreamError:
            await self.close_peer(peer.id)

    async def _process(self, peer: PeerSession) -> None:
        period = 1.0 / self.settings.target_fps
        while True:
            await peer.latest_event.wait()
            peer.latest_event.clear()
            started = time.monotonic()
            frame, received = peer.latest
            mark, peer.pending_mark = peer.pending_mark, None
            image = frame.to_ndarray(format="bgr24")
            decode_ms = (time.monotonic() - started) * 1e3
            sent = time.perf_counter()
            (result,) = await self._detect(  # the decoded array, not a JPEG: the Router is in the same cluster
                [EncodedFrame(peer.camera_id, image=image, capture_ts=received, decode_ms=decode_ms)]
            )
            server_ms = (time.perf_counter() - sent) * 1e3
            if isinstance(result, FrameResult):
                peer.frames_processed += 1
                names = await self._names_for(result)
                peer.outbound.push(draw_detections(image, result.detections, names))
                self._send(peer, result, names, server_ms, frame, mark)
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))

    async def _names_for(self, result: FrameResult) -> list[str]:
        if not self._names:
            self._names = list(await self._class_names())
        return self._names

    def _send(
        self,
        peer: PeerSession,
        result: FrameResult,
        names: Sequence[str],
        server_ms: float,
        frame: Any,
        mark: float | None,
    ) -> None:
        channel = peer.channel
        if channel is None or channel.readyState != "open":
            return
        message = {
            "type": "detections",
            "frame_ts": float(frame.time) if frame.time is not None else None,
            "capture_ts": result.capture_ts,
            "model_version": result.model_version,
            "server_latency_ms": round(server_ms, 2),
            "latency_ms": result.to_dict()["latency_ms"],
            "boxes": result.detections.to_dict(names)["boxes"],
            "mark": mark,
        }
        channel.send(json.dumps(message))
        peer.messages_sent += 1

    async def _watch_idle(self, peer: PeerSession) -> None:
        while peer.id in self.peers:
            await asyncio.sleep(1.0)
            if time.monotonic() - peer.last_activity > self.settings.idle_timeout_s:
                log.info("closing idle WebRTC peer %s", peer.id)
                await self.close_peer(peer.id)
                return

    async def close_peer(self, peer_id: str) -> None:
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return
        current = asyncio.current_task()
        for task in peer.tasks:
            if task is not current:
                task.cancel()
        for task in peer.tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await peer.pc.close()

    async def close_all(self) -> None:
        for peer_id in list(self.peers):
            await self.close_peer(peer_id)

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
from aiohttp.http_exceptions import HttpProcessingError
from aiortc import VideoStreamTrack

from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.errors import InvalidImageError
from visionloop.core.frame_errors import FrameError
from visionloop.core.http_errors import BadRequest, PayloadTooLarge, TooManyRequests, Unauthorized, http_error
from visionloop.core.imaging import check_frame_size
from visionloop.core.redaction import redact
from visionloop.core.settings import WebRTCSettings
from visionloop.streaming.webrtc.annotate import draw_detections
from visionloop.streaming.webrtc.ice import keep_candidates, restrict_host_addresses

log = logging.getLogger(__name__)
PAGE_DIR = Path(__file__).with_name("page")
DetectFn = Callable[[list[EncodedFrame]], Awaitable[list[FrameResult | str]]]
NamesFn = Callable[[], Awaitable[list[str]]]
MAX_OFFER_BYTES = 64 * 1024
MAX_MEDIA_SECTIONS = 4  # the page offers video and a data channel; more sections is no camera, only work for us
RECEIVING = ("recvonly", "sendrecv")  # the gateway's side of a video transceiver that brings frames in


def check_offer_sdp(sdp: str) -> str:
    """``sdp`` if it has the shape of a camera offer (v=0 first, one video section, few sections), else BadRequest:
    cheap line checks so an offer that cannot be one never costs a peer connection."""
    lines = sdp.splitlines()
    if not lines or lines[0].strip() != "v=0":
        raise BadRequest("the SDP offer must start with 'v=0'")
    media = [line for line in lines if line.startswith("m=")]
    videos = sum(1 for line in media if line.startswith("m=video "))
    if videos != 1:
        raise BadRequest(f"the SDP offer must have one video section (it has {videos})")
    if len(media) > MAX_MEDIA_SECTIONS:
        raise BadRequest(f"the SDP offer has {len(media)} media sections; the most is {MAX_MEDIA_SECTIONS}")
    return sdp


async def read_offer(request: web.Request) -> str:
    """The SDP of an offer request ``{sdp, type: 'offer'}``; PayloadTooLarge or BadRequest saying what is wrong.

    The body is read whole (the app's limit is the upload limit, far above an offer's) and then held to
    MAX_OFFER_BYTES, so a huge offer never reaches the SDP parser.
    """
    too_large = PayloadTooLarge(f"offer body larger than the {MAX_OFFER_BYTES}-byte limit")
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(raw) > MAX_OFFER_BYTES:
        raise too_large
    if request.content_type != "application/json":
        raise BadRequest(f"send the offer as Content-Type: application/json (not {request.content_type})")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser's stack
        raise BadRequest("the offer must be JSON {sdp, type}") from None
    if not isinstance(body, dict) or body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
        raise BadRequest("the offer must be JSON {sdp, type: 'offer'}")
    return check_offer_sdp(body["sdp"])


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
    frames_refused: int = 0
    frames_failed: int = 0  # frames whose detection call failed (the peer goes on)
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
                    "frames_failed": p.frames_failed,
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
        except (ValueError, LookupError, HttpProcessingError) as exc:  # no boundary, an unknown charset, bad headers
            return error_response(BadRequest(f"malformed form body: {getattr(exc, 'message', None) or exc}"))
        upload = form.get("image")
        if not isinstance(upload, web.FileField):
            return error_response(BadRequest("send the image as multipart field 'image'"))
        (result,) = await self._detect([EncodedFrame("webrtc:upload", upload.file.read())])
        if isinstance(result, str):
            return error_response(FrameError.read(result).exception(upload.filename or "upload"))
        return web.json_response(result.to_dict(await self._names_for(result)))

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.encode(), self._token.encode())

    async def _offer(self, request: web.Request) -> web.Response:
        try:
            if not self._authorized(request):
                raise Unauthorized()
            sdp = await read_offer(request)
            if len(self.peers) >= self.settings.max_peers:
                raise TooManyRequests(f"the gateway already serves {self.settings.max_peers} peers")
            try:
                answer = await self.connect(sdp)
            except ValueError as exc:
                raise BadRequest(f"malformed SDP offer: {exc}") from None
        except (BadRequest, PayloadTooLarge, TooManyRequests, Unauthorized) as exc:
            return error_response(exc)
        return web.json_response(answer)

    # -- peers ---------------------------------------------------------------------------------------------------

    async def connect(self, offer_sdp: str) -> dict[str, str]:
        """Answer an offer (ICE fully gathered: aiortc does not trickle) and start the peer's tasks."""
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

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
            await self._negotiate(pc, offer_sdp)
        except Exception as exc:  # aiortc raises ValueError and others for bad SDP; close the half-made peer
            await self.close_peer(peer.id)
            raise ValueError(str(exc) or type(exc).__name__) from None
        peer.tasks.append(asyncio.ensure_future(self._watch_idle(peer)))
        answer = keep_candidates(pc.localDescription.sdp, self.settings.host_addresses)
        return {"sdp": answer, "type": pc.localDescription.type, "peer_id": peer.id}

    async def _negotiate(self, pc: Any, offer_sdp: str) -> None:
        """Take the offer and make the answer; ValueError where no video would come in (a recvonly or inactive
        video section), which would hold a peer slot until the idle timeout for nothing."""
        from aiortc import RTCSessionDescription

        sdp = keep_candidates(offer_sdp, self.settings.host_addresses)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        if not any(t.kind == "video" and t.currentDirection in RECEIVING for t in pc.getTransceivers()):
            raise ValueError("the offer sends no video (its video section is recvonly or inactive)")

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
            if self._refuse_frame(peer, frame):
                continue
            image = frame.to_ndarray(format="bgr24")
            decode_ms = (time.monotonic() - started) * 1e3
            sent = time.perf_counter()
            try:  # the decoded array, not a JPEG: the Router is in the same cluster
                (result,) = await self._detect(
                    [EncodedFrame(peer.camera_id, image=image, capture_ts=received, decode_ms=decode_ms)]
                )
            except Exception as exc:  # a replica restarting: skip this frame, keep the peer's loop alive
                peer.frames_failed += 1
                log.warning("detection failed for peer %s: %s", peer.id, redact(str(exc)))
                await asyncio.sleep(period)
                continue
            server_ms = (time.perf_counter() - sent) * 1e3
            if isinstance(result, FrameResult):
                peer.frames_processed += 1
                names = await self._names_for(result)
                peer.outbound.push(draw_detections(image, result.detections, names))
                self._send(peer, result, names, server_ms, frame, mark)
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))

    def _refuse_frame(self, peer: PeerSession, frame: Any) -> bool:
        """Whether ``frame`` is of a size the detector must not get (checked before converting it): a peer may send
        any resolution its codec allows. Logged once per peer."""
        try:
            check_frame_size(frame.width, frame.height, peer.camera_id)
        except InvalidImageError as exc:
            if not peer.frames_refused:
                log.warning("WebRTC peer %s: %s", peer.id, exc)
            peer.frames_refused += 1
            return True
        return False

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
        try:
            await peer.pc.close()
        except Exception:  # aiortc fails closing some half-made connections (a malformed offer); nothing leaks
            log.debug("closing WebRTC peer %s failed", peer.id, exc_info=True)

    async def close_all(self) -> None:
        for peer_id in list(self.peers):
            await self.close_peer(peer_id)

"""The gateway as a Ray actor, so ``visionloop up`` starts it beside the Serve app (and a cluster can place it)."""

from __future__ import annotations

from typing import Any

from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.frames import ServeFrameSink
from visionloop.core.settings import Settings


class GatewayActor:
    """Runs the aiohttp app of :class:`WebRTCGateway` on this actor's event loop."""

    def __init__(self) -> None:
        self._runner: Any = None
        self._gateway: Any = None

    async def start(self, settings: Settings, sink: ServeFrameSink) -> str:
        from aiohttp import web

        from visionloop.streaming.webrtc.gateway import WebRTCGateway

        async def detect(frames: list[EncodedFrame]) -> list[FrameResult | str]:
            return await sink.send_async(frames)

        self._gateway = WebRTCGateway(
            settings.webrtc,
            settings.api.token.get_secret_value(),
            detect,
            sink.class_names,
            settings.api.max_upload_bytes,
        )
        self._runner = web.AppRunner(self._gateway.app())
        await self._runner.setup()
        await web.TCPSite(self._runner, settings.webrtc.host, settings.webrtc.port).start()
        return f"http://{settings.webrtc.host}:{settings.webrtc.port}/"

    async def peers(self) -> int:
        return len(self._gateway.peers) if self._gateway else 0

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

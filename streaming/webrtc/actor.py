"""The gateway as a Ray actor, so ``visionloop up`` starts it beside the Serve app (and a cluster can place it)."""

from __future__ import annotations

from typing import Any

from visionloop.contracts import EncodedFrame, FrameResult
from visionloop.settings import Settings

GATEWAY_NAME = "visionloop-webrtc-gateway"


class GatewayActor:
    """Runs the aiohttp app of :class:`WebRTCGateway` on this actor's event loop."""

    def __init__(self) -> None:
        self._runner: Any = None
        self._gateway: Any = None

    async def start(self, settings: Settings, app_name: str) -> str:
        from aiohttp import web
        from ray import serve

        from streaming.webrtc.gateway import WebRTCGateway

        router = serve.get_app_handle(app_name)

        async def detect(frames: list[EncodedFrame]) -> list[FrameResult | str]:
            result: list[FrameResult | str] = await router.process_frames.remote(frames)
            return result

        async def class_names() -> list[str]:
            names: list[str] = await router.class_names.remote()
            return names

        self._gateway = WebRTCGateway(
            settings.webrtc, settings.api.token.get_secret_value(), detect, class_names, settings.api.max_upload_bytes
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

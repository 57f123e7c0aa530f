"""One client's WebSocket stream: frames in as binary messages, one JSON answer per frame, in order.

A request per frame pays HTTP's per-request cost every time; a stream pays it once. The client may send ahead of
the answers (up to ``window`` frames held here; past that the server stops reading, so TCP pushes back). Frames
that arrived while the previous call was in the model go to the Detector together in the next call: no batch
waits for frames that are not there, and a busy connection still batches.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from visionloop.core.contracts import EncodedFrame, FrameResult

Process = Callable[[list[EncodedFrame]], Awaitable[list[FrameResult | str]]]
ClassNames = Callable[[str], Awaitable[list[str]]]
TEXT_REFUSED = "frames are binary messages (JPEG or PNG bytes); text messages are not read"


@dataclass(frozen=True)
class StreamLimits:
    max_frame_bytes: int
    window: int  # frames received and not yet answered
    max_batch: int  # frames sent to the Detector in one call


class StreamSession:
    """Reads frames from ``receive`` and writes answers with ``send_json`` until the client goes away."""

    def __init__(
        self,
        camera_id: str,
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send_json: Callable[[dict[str, Any]], Awaitable[None]],
        process: Process,
        class_names: ClassNames,
        limits: StreamLimits,
    ) -> None:
        self._camera_id = camera_id
        self._receive = receive
        self._send_json = send_json
        self._process = process
        self._class_names = class_names
        self._limits = limits
        # (index, frame bytes, or the reason it was refused): refusals wait their turn, so answers stay in order.
        self._inbox: asyncio.Queue[tuple[int, bytes | str] | None] = asyncio.Queue(maxsize=limits.window)
        self.frames_in = 0
        self.answered = 0
        self.errors = 0

    async def run(self) -> None:
        """Serve the connection; returns when the client disconnects (frames already received are answered)."""
        answering = asyncio.create_task(self._answer())
        try:
            await self._read()
        finally:
            try:
                self._inbox.put_nowait(None)
            except asyncio.QueueFull:  # gone with a full window: its results are published, nobody is listening
                answering.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):  # the client may be gone already
                await answering

    async def _read(self) -> None:
        while True:
            message = await self._receive()
            if message.get("type") == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                await self._send_json({"error": TEXT_REFUSED})
                continue
            index = self.frames_in
            self.frames_in += 1
            limit = self._limits.max_frame_bytes
            refused = f"frame of {len(data)} bytes; the limit is {limit}" if len(data) > limit else None
            await self._inbox.put((index, refused or data))

    async def _answer(self) -> None:
        while True:
            first = await self._inbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._limits.max_batch and not self._inbox.empty():
                item = self._inbox.get_nowait()
                if item is None:
                    await self._inbox.put(None)  # answer this batch, then stop
                    break
                batch.append(item)
            frames = [EncodedFrame(self._camera_id, data) for _, data in batch if isinstance(data, bytes)]
            try:
                answers = iter(await self._process(frames) if frames else [])
            except Exception as exc:  # a replica restarting: say so per frame, keep the stream open
                answers = iter([f"not processed: {type(exc).__name__}: {exc}"] * len(frames))
            for index, data in batch:
                result = next(answers) if isinstance(data, bytes) else data
                await self._send_json(await self._reply(index, result))

    async def _reply(self, index: int, result: FrameResult | str) -> dict[str, Any]:
        if isinstance(result, str):
            self.errors += 1
            return {"index": index, "error": result}
        self.answered += 1
        return {"index": index, **result.to_dict(await self._class_names(result.model_version))}

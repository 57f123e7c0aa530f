"""Frame sources through PyAV: RTSP(S), HTTP (MJPEG, HLS) and files, always with open and read timeouts.

PyAV facts that shape this module (measured): when an RTSP server dies the decode loop simply ends; when it hangs
PyAV blocks for ever unless ``timeout`` is set (``stimeout`` is silently ignored); probing defaults cost ~4.8 s
per open, ``analyzeduration=500000`` + ``probesize=65536`` bring it to ~0.5 s; ``fflags=nobuffer`` drops the
packets read while probing (a file's first second or more), so only live streams use it. Damaged H.264 makes
``packet.decode()`` raise on single packets mid-stream: those packets are skipped and counted, not fatal.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlparse

from visionloop.core.errors import VisionloopError
from visionloop.core.redaction import redact

log = logging.getLogger(__name__)
# Packets in a row that fail to decode before the stream counts as broken (about 3 s at 30 fps).
MAX_BAD_PACKETS_IN_A_ROW = 90
# Decoder threads per stream, fixed instead of FFmpeg's default (cores + 1): which damaged packets fail and which are
# concealed depends on the thread count, so a fixed one decodes a stream the same way on every machine; and frame
# threading holds threads - 1 frames back, so a 16-core default would add 16 frames of latency to a live camera.
# 3 is what FFmpeg chose on the 2-core machines the service was measured on.
DECODE_THREADS = 3
# Live streams decode without frame threading: with 3 threads it held 2 frames back (measured: 2 packets fed and no
# frame out, on the site's H.264), 133 ms of age at 15 fps before anything else. Slice threading (or one thread)
# hands each frame out as its packet is decoded; a 640x360 frame decodes in about 5 ms on one core. Files, where
# only throughput counts, keep frame threading.
LIVE_THREAD_TYPE = "SLICE"
LOW_DELAY_FLAG = 1 << 19  # AV_CODEC_FLAG_LOW_DELAY: the "low_delay" flag the container path sets by option


def configure_decoder(stream: Any, threads: int, live: bool) -> None:
    """Decoder threads of a PyAV video stream: a fixed count, and no frame threading for a live stream."""
    stream.thread_type = LIVE_THREAD_TYPE if live else "AUTO"
    if stream.codec_context is not None:  # None when the header names no known decoder: decode() says so
        stream.codec_context.thread_count = threads


def live_decoder(codec: str, threads: int) -> Any:
    """A PyAV decoder for packets read outside a container, set up as a live stream's (slice threads only, and
    every frame handed out as soon as it is decoded)."""
    import av

    decoder = av.CodecContext.create(codec, "r")
    decoder.thread_type = LIVE_THREAD_TYPE
    decoder.thread_count = threads
    decoder.flags |= LOW_DELAY_FLAG
    return decoder


class SourceError(VisionloopError):
    """A source failed; ``permanent`` errors (bad credentials, wrong path, not a video) need an operator."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(redact(message))
        self.permanent = permanent


@dataclass(frozen=True)
class SourceOptions:
    rtsp_transport: str = "tcp"
    open_timeout_s: float = 5.0
    read_timeout_s: float = 2.0
    loop_files: bool = True
    file_fps: float | None = None  # pace file reading (None: as fast as the buffer takes frames)
    decode_threads: int = DECODE_THREADS  # 0: FFmpeg's choice by core count (decodes differ between machines)
    rtsp_client: str = "native"  # "native": H.264 over RTSP/TCP by visionloop's own client; "ffmpeg": PyAV's

    def __post_init__(self) -> None:
        if self.rtsp_client not in ("native", "ffmpeg"):
            raise ValueError(f"rtsp_client must be 'native' or 'ffmpeg', got {self.rtsp_client!r}")
        if self.decode_threads < 0:
            raise ValueError(f"decode_threads must be >= 0 (0: FFmpeg's choice), got {self.decode_threads}")


@dataclass(frozen=True)
class DecodedFrame:
    """A decoded picture as the decoder gave it (an ``av.VideoFrame``, or an array that is already BGR): it becomes a
    BGR array only where it is used (``CapturedFrame.image``), so the frames a live camera skips never pay for it."""

    picture: Any
    decode_ms: float


# What a camera's refusal means, whichever client met it (FFmpeg's HTTP errors, the native client's RTSP status).
STATUS_MEANINGS = {
    401: "authentication failed (401): check the camera's user and password",
    403: "access forbidden (403): the camera refused this user",
    404: "stream not found (404): check the path in the camera URL",
}


def classify(exc: BaseException) -> SourceError:
    """Turn PyAV/OS errors into a SourceError saying what is wrong and whether retrying can help."""
    import av

    text = redact(str(exc))
    permanent_kinds: list[tuple[type[BaseException], str]] = [
        (av.error.HTTPUnauthorizedError, STATUS_MEANINGS[401]),
        (av.error.HTTPForbiddenError, STATUS_MEANINGS[403]),
        (av.error.HTTPNotFoundError, STATUS_MEANINGS[404]),
        (av.error.InvalidDataError, "not a video stream (the data could not be decoded)"),
        (FileNotFoundError, "file not found"),
        (IsADirectoryError, "path is a directory, not a video"),
    ]
    for kind, meaning in permanent_kinds:
        if isinstance(exc, kind):
            return SourceError(f"{meaning}: {text}", permanent=True)
    if isinstance(exc, ConnectionRefusedError):
        return SourceError(f"connection refused (is the camera up?): {text}", permanent=False)
    if isinstance(exc, TimeoutError | av.error.ExitError):
        return SourceError(f"timed out waiting for the camera: {text}", permanent=False)
    return SourceError(f"{type(exc).__name__}: {text}", permanent=False)


class FrameSource(ABC):
    """Opens a stream and yields decoded BGR frames; subclasses register the URL schemes they handle."""

    schemes: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type[FrameSource]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for scheme in cls.schemes:
            FrameSource._registry[scheme] = cls

    def __init__(self, url: str, options: SourceOptions) -> None:
        self.url = url
        self.options = options
        self.corrupt_packets = 0  # packets skipped because they could not be decoded
        self.last_corruption: str | None = None

    @property
    @abstractmethod
    def live(self) -> bool:
        """Live sources drop frames when behind; recorded ones are read in full."""

    @abstractmethod
    def frames(self) -> Iterator[DecodedFrame]:
        """Open and yield frames until the stream ends (raises SourceError on failure)."""

    @abstractmethod
    def close(self) -> None: ...

    def _decode(self, packet: Any, decoder: Any = None) -> list[Any] | None:
        """The packet's frames (unconverted ``av.VideoFrame``), or None (counted) for corrupt data: a bad packet costs
        its own frames (the decoder conceals until the next keyframe), never the camera. ``decoder``: a codec context
        of one's own, for packets read outside a container."""
        import av

        try:
            return list(packet.decode() if decoder is None else decoder.decode(packet))
        except (av.error.FFmpegError, ValueError, MemoryError) as exc:
            self._corrupt(f"{type(exc).__name__}: {exc}")
            return None

    def _corrupt(self, reason: str) -> None:
        self.corrupt_packets += 1
        self.last_corruption = redact(reason)
        if self.corrupt_packets == 1:
            log.warning("camera source %s: skipping corrupt data: %s", redact(self.url), self.last_corruption)


class _Pacer:
    """Reads a file at its target rate; a live stream sets its own pace (period 0)."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._next_at = time.monotonic()

    def wait(self) -> None:
        if self.period_s:
            self._next_at += self.period_s
            time.sleep(max(0.0, self._next_at - time.monotonic()))


class PyAVSource(FrameSource):
    schemes = ("rtsp", "rtsps", "http", "https", "file", "")

    def __init__(self, url: str, options: SourceOptions) -> None:
        super().__init__(url, options)
        self._container: Any = None

    @property
    def live(self) -> bool:
        scheme = urlparse(self.url).scheme.lower()
        return scheme not in ("", "file")

    def _open(self) -> Any:
        import av

        target = urlparse(self.url).path if urlparse(self.url).scheme == "file" else self.url
        if not self.live and os.path.isfile(target) and os.path.getsize(target) == 0:  # FFmpeg says "invalid data"
            raise SourceError(f"the file is empty: {redact(self.url)}", permanent=True)
        options = {"analyzeduration": "500000", "probesize": "65536", "flags": "low_delay"}
        if self.live:
            options["fflags"] = "nobuffer"  # on a file it would drop the frames read while probing
            micros = str(int(self.options.read_timeout_s * 1_000_000))
            options.update({"timeout": micros, "rw_timeout": micros})
            if urlparse(self.url).scheme.lower().startswith("rtsp"):
                options["rtsp_transport"] = self.options.rtsp_transport
        try:
            container = av.open(
                target,
                options=options,
                timeout=(self.options.open_timeout_s, self.options.read_timeout_s),
                metadata_errors="replace",  # a corrupt title must not make a readable video unreadable
            )
        except Exception as exc:  # PyAV raises many unrelated types; classify them all
            raise self._failure(exc) from None
        if not container.streams.video:
            tracks = ", ".join(sorted({stream.type for stream in container.streams})) or "none"
            container.close()
            raise SourceError(f"no video track in {redact(self.url)} (its tracks: {tracks})", permanent=True)
        return container

    def _failure(self, exc: BaseException) -> SourceError:
        """What an error before the first frame means. Retrying a file reads the same bytes, so a file that cannot
        be read needs an operator whatever the cause; a live stream's errors are classified."""
        error = classify(exc)
        if self.live or error.permanent:
            return error
        return SourceError(f"cannot read the file: {error}", permanent=True)

    def frames(self) -> Iterator[DecodedFrame]:
        while True:
            self._container = self._open()
            try:
                delivered, corrupt = yield from self._read(self._container)
            except SourceError:
                raise
            except Exception as exc:  # as above: classify whatever PyAV raises mid-stream
                raise classify(exc) from None
            finally:
                self.close()
            if not self.live:
                self._check_pass(delivered, corrupt)
            if self.live or not self.options.loop_files:
                return  # a live stream that ends means the camera went away; the supervisor reconnects

    def _read(self, container: Any) -> Generator[DecodedFrame, None, tuple[int, int]]:
        """One pass over the stream, skipping corrupt packets; returns the frames delivered and packets skipped."""
        corrupt_before = self.corrupt_packets
        stream = container.streams.video[0]
        configure_decoder(stream, self.options.decode_threads, self.live)
        pacer = _Pacer(1.0 / self.options.file_fps if (self.options.file_fps and not self.live) else 0.0)
        packets, delivered, bad_in_a_row = container.demux(stream), 0, 0
        while (packet := self._next_packet(packets, delivered)) is not None:
            started = time.perf_counter()
            images = self._decode(packet)
            if images is None:
                bad_in_a_row += 1
                if bad_in_a_row >= MAX_BAD_PACKETS_IN_A_ROW:
                    raise SourceError(
                        f"the stream is corrupt: {bad_in_a_row} packets in a row could not be decoded "
                        f"(last: {self.last_corruption})",
                        permanent=not self.live,
                    )
                continue
            bad_in_a_row = 0
            decode_ms = (time.perf_counter() - started) * 1e3 / max(1, len(images))
            for image in images:
                yield DecodedFrame(image, decode_ms)
                delivered += 1
                pacer.wait()
        return delivered, self.corrupt_packets - corrupt_before

    def _next_packet(self, packets: Iterator[Any], delivered: int) -> Any | None:
        """The next packet, or None at the end. A read error after frames have flowed is damage, not a wrong
        URL: a live camera reconnects, a file plays what could be read (and loops)."""
        try:
            return next(packets)
        except StopIteration:
            return None
        except Exception as exc:  # PyAV's demuxers raise assorted types on damaged data
            if not delivered:
                raise self._failure(exc) from None
            if self.live:
                raise SourceError(f"the stream broke off: {classify(exc)}", permanent=False) from None
            self._corrupt(f"the file cannot be read past this point: {type(exc).__name__}: {exc}")
            return None

    def _check_pass(self, delivered: int, corrupt: int) -> None:
        """Stop a file that would loop on nothing: no frame at all, or fewer frames than undecodable packets (what
        plays is then mostly the decoder concealing the damage). Retrying reads the same bytes, so it is permanent."""
        if not delivered and not corrupt:
            raise SourceError(f"no video frame in {redact(self.url)} (its video track is empty)", permanent=True)
        if corrupt > delivered:
            raise SourceError(
                f"the file is corrupt: {corrupt} packets could not be decoded, {delivered} frames could "
                f"(last error: {self.last_corruption})",
                permanent=True,
            )

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # closing a broken stream may raise again; nothing more to do
                return

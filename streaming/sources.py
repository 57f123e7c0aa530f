"""Frame sources through PyAV: RTSP(S), HTTP (MJPEG, HLS) and files, always with open and read timeouts.

PyAV facts that shape this module (measured): when an RTSP server dies the decode loop simply ends; when it hangs
PyAV blocks for ever unless ``timeout`` is set (``stimeout`` is silently ignored); probing defaults cost ~4.8 s
per open, ``analyzeduration=500000`` + ``probesize=65536`` bring it to ~0.5 s.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt

from visionloop.errors import VisionloopError
from visionloop.redaction import redact


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


@dataclass(frozen=True)
class DecodedFrame:
    image: npt.NDArray[np.uint8]
    decode_ms: float


def classify(exc: BaseException) -> SourceError:
    """Turn PyAV/OS errors into a SourceError saying what is wrong and whether retrying can help."""
    import av

    text = redact(str(exc))
    permanent_kinds: list[tuple[type[BaseException], str]] = [
        (av.error.HTTPUnauthorizedError, "authentication failed (401): check the camera's user and password"),
        (av.error.HTTPForbiddenError, "access forbidden (403): the camera refused this user"),
        (av.error.HTTPNotFoundError, "stream not found (404): check the path in the camera URL"),
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

    @property
    @abstractmethod
    def live(self) -> bool:
        """Live sources drop frames when behind; recorded ones are read in full."""

    @abstractmethod
    def frames(self) -> Iterator[DecodedFrame]:
        """Open and yield frames until the stream ends (raises SourceError on failure)."""

    @abstractmethod
    def close(self) -> None: ...


def create_source(url: str, options: SourceOptions) -> FrameSource:
    scheme = urlparse(url).scheme.lower()
    try:
        cls = FrameSource._registry[scheme]
    except KeyError:
        known = ", ".join(sorted(s or "(a file path)" for s in FrameSource._registry))
        raise SourceError(f"unsupported URL scheme '{scheme}' in {redact(url)}; supported: {known}", True) from None
    return cls(url, options)


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
        options = {"analyzeduration": "500000", "probesize": "65536", "fflags": "nobuffer", "flags": "low_delay"}
        if self.live:
            micros = str(int(self.options.read_timeout_s * 1_000_000))
            options.update({"timeout": micros, "rw_timeout": micros})
            if urlparse(self.url).scheme.lower().startswith("rtsp"):
                options["rtsp_transport"] = self.options.rtsp_transport
        try:
            container = av.open(
                target, options=options, timeout=(self.options.open_timeout_s, self.options.read_timeout_s)
            )
        except Exception as exc:  # PyAV raises many unrelated types; classify them all
            raise classify(exc) from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"no video stream in {redact(self.url)}", permanent=True)
        return container

    def frames(self) -> Iterator[DecodedFrame]:
        while True:
            self._container = self._open()
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"
            period = 1.0 / self.options.file_fps if (self.options.file_fps and not self.live) else 0.0
            next_at = time.monotonic()
            try:
                for packet in self._container.demux(stream):
                    started = time.perf_counter()
                    for frame in packet.decode():
                        image = frame.to_ndarray(format="bgr24")
                        yield DecodedFrame(image, (time.perf_counter() - started) * 1e3)
                        if period:
                            next_at += period
                            time.sleep(max(0.0, next_at - time.monotonic()))
                        started = time.perf_counter()
            except Exception as exc:  # as above: classify whatever PyAV raises mid-stream
                raise classify(exc) from None
            finally:
                self.close()
            if self.live or not self.options.loop_files:
                return  # a live stream that ends means the camera went away; the supervisor reconnects

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # closing a broken stream may raise again; nothing more to do
                return

"""How frames travel between the parts without the parts importing each other.

- A ``FrameSink`` takes a camera's frames and returns, per frame, its result or an error. Cameras (streaming) send
  into one; serving answers. ``DetectorFrameSink`` is the camera path: one Ray hop to the champion Detector with
  the frames as arrays, results published to Redis from the camera's own process, and the frames shown to the
  Router's observers afterwards, off the latency path. ``ServeFrameSink`` goes through the Router (the browser
  gateway uses it). Both are plain data, so they travel to camera actors; handles are made where they are used.
- A ``FrameObserver`` is told about every answered frame (the labeling selector is one). The face builds it and
  hands the factory to serving, so serving never imports the part that observes.
- ``DetectorCalls`` and ``IngressCalls`` are what the sinks call on serving's deployments through Ray handles;
  ``remote_call`` names the method by the Protocol's own function, and serving is checked against the Protocols, so a
  rename on either side fails the type check instead of a camera at run time.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from visionloop.core.bus import BusSpec
from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.results import BackgroundPublisher, ResultPublisher
from visionloop.core.settings import Settings, TrackingSettings
from visionloop.core.streams import CHAMPION_DEPLOYMENT, SERVE_APP_NAME
from visionloop.core.tracking import CameraTrackers

log = logging.getLogger(__name__)

FrameReplies = list[FrameResult | str]


class FrameSink(Protocol):
    def send(self, frames: Sequence[EncodedFrame]) -> FrameReplies:
        """Detect ``frames`` and publish their results; one result (or error message) per frame, in order."""

    def counters(self) -> dict[str, int]:
        """What the sink lost or holds (results dropped, buffered; frames not shown to observers)."""

    def close(self, timeout_s: float) -> None:
        """Write what is still buffered (at most ``timeout_s``) and let go of connections."""


class DetectorCalls(Protocol):
    """What the camera sink calls on the champion Detector deployment."""

    async def detect_frames(self, frames: list[EncodedFrame]) -> FrameReplies:
        """Results (or an error message) for ``frames``, in order; arrays skip the decode."""
        ...


class IngressCalls(Protocol):
    """What the sinks call on the Serve application's ingress (the Router)."""

    async def process_frames(self, frames: list[EncodedFrame]) -> FrameReplies:
        """Detect ``frames`` through the champion, publish their results and show them to the observers."""
        ...

    async def wants_frames(self) -> bool:
        """Whether answered camera frames are worth sending to ``observe_frames`` (an observer or a shadow)."""
        ...

    async def observe_frames(self, frames: list[EncodedFrame], results: FrameReplies) -> None:
        """Show frames a camera already had answered to the observers and the shadow mirror."""
        ...

    async def class_names(self) -> list[str]:
        """Class names of the serving champion."""
        ...


P = ParamSpec("P")
R = TypeVar("R")


def remote_call(
    handle: Any, method: Callable[Concatenate[Any, P], Awaitable[R]], *args: P.args, **kwargs: P.kwargs
) -> Any:
    """``handle.<method>.remote(*args)`` for a Protocol's method: its name comes from the Protocol and mypy checks the
    arguments against it. Returns Ray's response (``.result(timeout_s=...)``, or await it)."""
    return getattr(handle, method.__name__).remote(*args, **kwargs)


class FrameObserver(Protocol):
    def offer(self, frame: EncodedFrame, result: FrameResult) -> object:
        """Look at one answered frame (off the response path); may keep it, e.g. for labeling. The answer says
        what was kept (see :func:`kept_frames`): the Router mirrors those frames to the shadow too
        (``shadow.mirror_selected``), so the frames people label have both models' answers."""


class KeptFrame(Protocol):
    """A frame an observer kept, as it kept it (the labeling selector's queued item): JPEG bytes and the result."""

    @property
    def jpeg(self) -> bytes: ...

    @property
    def result(self) -> FrameResult: ...


def kept_frames(answer: object, frame: EncodedFrame, result: FrameResult) -> list[tuple[EncodedFrame, FrameResult]]:
    """The frames an observer's answer says it kept. None or an empty sequence: none. A sequence of kept frames:
    those, which may be earlier frames (a labeling stratum holds its most doubtful frame until its window ends).
    Any other answer: the frame just offered."""
    if answer is None:
        return []
    if isinstance(answer, list | tuple):
        kept: Sequence[KeptFrame] = answer
        return [
            (EncodedFrame(k.result.camera_id, k.jpeg, k.result.seq, capture_ts=k.result.capture_ts), k.result)
            for k in kept
        ]
    return [(frame, result)]


# Built inside the serving replica (it may hold connections): (settings, redis_url) -> observer.
FrameObserverFactory = Callable[[Settings, str], FrameObserver]


class CameraThrottle:
    """At most one frame per camera every ``interval_s`` (observers that keep a sample of the frames use it).

    ``now`` is the caller's clock (capture time, or a monotonic clock); a clock that went back (a source restarted)
    lets the frame through. The memory is bounded: past ``max_cameras`` ids it starts over."""

    def __init__(self, interval_s: float, max_cameras: int = 10_000) -> None:
        self.interval_s = interval_s
        self.max_cameras = max_cameras
        self._last: dict[str, float] = {}

    def due(self, camera_id: str, now: float) -> bool:
        last = self._last.get(camera_id)
        if last is not None and 0 <= now - last < self.interval_s:
            return False
        if len(self._last) >= self.max_cameras:
            self._last.clear()
        self._last[camera_id] = now
        return True


def kept_anything(answer: object) -> bool:
    return answer is not None and not (isinstance(answer, list | tuple) and not answer)


class ObserverChain:
    """Several observers shown the same frame in order; one failing does not keep the frame from the others.

    The answer is the first that kept something (the labeling selector's), so shadow mirroring keeps its meaning."""

    def __init__(self, observers: Sequence[FrameObserver]) -> None:
        self.observers = list(observers)

    def offer(self, frame: EncodedFrame, result: FrameResult) -> object:
        kept: object = None
        failure: Exception | None = None
        for observer in self.observers:
            try:
                answer = observer.offer(frame, result)
            except Exception as exc:  # the others still see the frame; the Router counts and logs the failure
                failure = failure or exc
                continue
            kept = answer if not kept_anything(kept) else kept
        if failure is not None:
            raise failure
        return kept


def chain_observers(factories: Sequence[FrameObserverFactory]) -> FrameObserverFactory | None:
    """One factory building every observer of ``factories`` (None when there are none)."""
    chosen = list(factories)
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]

    def build(settings: Settings, redis_url: str) -> FrameObserver:
        return ObserverChain([factory(settings, redis_url) for factory in chosen])

    return build


class ServeFrameSink:
    """Frames to the Serve application's ingress (``process_frames``), found by the application's name."""

    def __init__(self, app_name: str = SERVE_APP_NAME, timeout_s: float = 30.0) -> None:
        self.app_name = app_name
        self.timeout_s = timeout_s
        self._handle: Any = None

    def __reduce__(self) -> tuple[type[ServeFrameSink], tuple[str, float]]:
        return (ServeFrameSink, (self.app_name, self.timeout_s))  # the handle is remade where it is used

    def _ingress(self) -> Any:
        if self._handle is None:
            from ray import serve

            self._handle = serve.get_app_handle(self.app_name)
        return self._handle

    def send(self, frames: Sequence[EncodedFrame]) -> FrameReplies:
        call = remote_call(self._ingress(), IngressCalls.process_frames, list(frames))
        replies: FrameReplies = call.result(timeout_s=self.timeout_s)
        return replies

    async def send_async(self, frames: Sequence[EncodedFrame]) -> FrameReplies:
        replies: FrameReplies = await remote_call(self._ingress(), IngressCalls.process_frames, list(frames))
        return replies

    def counters(self) -> dict[str, int]:
        return {}  # the Router publishes and counts

    def close(self, timeout_s: float) -> None:
        return None

    async def class_names(self) -> list[str]:
        """Class names of the model that answers (browsers label their boxes with them)."""
        names: list[str] = await remote_call(self._ingress(), IngressCalls.class_names)
        return names


@dataclass(frozen=True)
class ResultTarget:
    """Where and how results are written: the bus (Redis Streams, or Kafka with ``bus.kind: kafka``) with the
    results stream or topic on it, and the in-memory buffer for outages."""

    bus: BusSpec
    buffer_size: int

    @classmethod
    def from_settings(cls, settings: Settings, redis_url: str) -> ResultTarget:
        """A ConfigError here if ``bus.kind`` is kafka and the Kafka extra is missing (before any camera starts)."""
        return cls(BusSpec.from_settings(settings, redis_url), settings.redis.result_buffer_size)

    def publisher(self, on_drop: Callable[[int], None] | None = None) -> ResultPublisher:
        return ResultPublisher.on_bus(self.bus.open(), self.bus.results, self.buffer_size, on_drop)


REPLICA_LOSS_RETRIES = 1


def replica_lost(exc: BaseException) -> bool:
    """Whether a Serve call failed because its replica died or became unreachable (worth one more try elsewhere),
    rather than because of the frames."""
    from ray import exceptions

    return isinstance(exc, exceptions.RayActorError | exceptions.ActorUnavailableError)


class DetectorFrameSink:
    """Camera frames straight to the champion Detector: one Ray hop per call, arrays through the object store.

    The two hops of old (camera -> Router -> Detector) cost 10-20 ms each under load. Here the camera's process
    publishes the results itself (a background publisher: buffered, retrying, bounded) and then hands the frames to
    the Router's ``observe_frames`` from a background thread, gathered into one call every ``observe_every_s``, so
    labeling and shadow mode see the frames without adding to the camera's latency or its CPU per frame.
    """

    def __init__(
        self,
        target: ResultTarget,
        app_name: str = SERVE_APP_NAME,
        deployment: str = CHAMPION_DEPLOYMENT,
        timeout_s: float = 30.0,
        observe_backlog: int = 32,
        observe_every_s: float = 0.5,
        tracking: TrackingSettings | None = None,
    ) -> None:
        self.target = target
        self.tracking = tracking
        self._trackers = CameraTrackers.from_settings(tracking) if tracking is not None else None
        self.app_name = app_name
        self.deployment = deployment
        self.timeout_s = timeout_s
        self.observe_backlog = observe_backlog
        self.observe_every_s = observe_every_s
        self._lock = threading.Lock()
        self._tracking_lock = threading.Lock()
        self._ready = False
        self._detector: Any = None
        self._router: Any = None
        self._publisher: BackgroundPublisher | None = None
        self._observe: queue.Queue[tuple[list[EncodedFrame], FrameReplies] | None] | None = None
        self.observe_dropped = 0
        self.replica_retries = 0

    def __reduce__(
        self,
    ) -> tuple[type[DetectorFrameSink], tuple[ResultTarget, str, str, float, int, float, TrackingSettings | None]]:
        return (
            DetectorFrameSink,
            (self.target, self.app_name, self.deployment, self.timeout_s, self.observe_backlog, self.observe_every_s,
             self.tracking),
        )  # fmt: skip

    def _start(self) -> None:
        if self._ready:  # every frame comes through here: no lock once started
            return
        with self._lock:
            if self._ready:
                return
            from ray import serve

            self._detector = serve.get_deployment_handle(self.deployment, self.app_name)
            self._router = serve.get_app_handle(self.app_name)
            wants = bool(remote_call(self._router, IngressCalls.wants_frames).result(timeout_s=self.timeout_s))
            if self._publisher is None:
                self._publisher = BackgroundPublisher(self.target.publisher)
            if wants and self._observe is None:
                self._observe = queue.Queue(maxsize=self.observe_backlog)
                threading.Thread(target=self._forward, name="observe-forward", daemon=True).start()
            self._ready = True

    def send(self, frames: Sequence[EncodedFrame]) -> FrameReplies:
        self._start()
        assert self._publisher is not None
        batch = list(frames)
        results = self._detect(batch)
        if self._trackers is not None:  # one camera's frames, in order: its tracks follow them
            with self._tracking_lock:  # a camera host sends from several threads
                results = self._trackers.tag(results)
        self._publisher.publish(r for r in results if isinstance(r, FrameResult))
        if self._observe is not None:
            try:
                self._observe.put_nowait((batch, results))
            except queue.Full:
                self.observe_dropped += len(batch)
        return results

    def _detect(self, batch: list[EncodedFrame]) -> FrameReplies:
        """The Detector's answers; a call whose replica died under it goes once more, to a live replica (Serve
        routes it), so a lost replica costs the camera no frames where another one runs."""
        for attempt in range(REPLICA_LOSS_RETRIES + 1):
            try:
                call = remote_call(self._detector, DetectorCalls.detect_frames, batch)
                results: FrameReplies = call.result(timeout_s=self.timeout_s)
                return results
            except Exception as exc:
                if attempt == REPLICA_LOSS_RETRIES or not replica_lost(exc):
                    raise
                self.replica_retries += 1
                log.warning("a Detector replica died with %d frames in flight; sending them again", len(batch))
        raise AssertionError("unreachable")

    def _forward(self) -> None:
        """Show answered frames to the Router's observers, gathered for up to ``observe_every_s`` into one call: a
        Serve call costs the camera's process milliseconds of CPU, the observers need no hurry. The backlog bounds
        the memory; frames beyond it are counted, not queued."""
        assert self._observe is not None
        closing = False
        while not closing:
            item = self._observe.get()
            if item is None:
                return
            frames, results = list(item[0]), list(item[1])
            deadline = time.monotonic() + self.observe_every_s
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    more = self._observe.get(timeout=remaining)
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                frames += more[0]
                results += more[1]
            try:
                remote_call(self._router, IngressCalls.observe_frames, frames, results).result(timeout_s=self.timeout_s)
            except Exception as exc:  # labeling or shadow mode away: the camera's results are already published
                self.observe_dropped += len(frames)
                log.warning("could not show %d frames to the observers: %s", len(frames), exc)

    def counters(self) -> dict[str, int]:
        status = self._publisher.status() if self._publisher is not None else {}
        return {
            "results_dropped": int(status.get("dropped", 0)),
            "results_buffered": int(status.get("buffered", 0)),
            "frames_not_observed": self.observe_dropped,
            "replica_retries": self.replica_retries,
        }

    def close(self, timeout_s: float) -> None:
        if self._observe is not None:
            with contextlib.suppress(queue.Full):
                self._observe.put_nowait(None)
        if self._publisher is not None:
            self._publisher.close(timeout_s)

"""How frames travel between the parts without the parts importing each other.

- A ``FrameSink`` takes a camera's encoded frames and returns, per frame, its result or an error. Cameras
  (streaming) send into one; the serving Router is the one that answers. ``ServeFrameSink`` reaches it through
  Ray Serve by application name: plain data, so it travels to camera actors, with the handle made where it is used.
- A ``FrameObserver`` is told about every answered frame (the labeling selector is one). The face builds it and
  hands the factory to serving, so serving never imports the part that observes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from visionloop.contracts import EncodedFrame, FrameResult
from visionloop.settings import Settings
from visionloop.streams import SERVE_APP_NAME

FrameReplies = list[FrameResult | str]


class FrameSink(Protocol):
    def send(self, frames: Sequence[EncodedFrame]) -> FrameReplies:
        """Detect ``frames`` and publish their results; one result (or error message) per frame, in order."""


class FrameObserver(Protocol):
    def offer(self, frame: EncodedFrame, result: FrameResult) -> object:
        """Look at one answered frame (off the response path); may keep it, e.g. for labeling. An answer other
        than None means the frame was kept (the selector returns what it queued): the Router then mirrors it to the
        shadow too (``shadow.mirror_selected``), so the frames people label have both models' answers."""


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


class ObserverChain:
    """Several observers shown the same frame in order; one failing does not keep the frame from the others.

    The answer is the first non-None one (the labeling selector's), so shadow mirroring keeps its meaning."""

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
            kept = answer if kept is None else kept
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
        replies: FrameReplies = self._ingress().process_frames.remote(list(frames)).result(timeout_s=self.timeout_s)
        return replies

    async def send_async(self, frames: Sequence[EncodedFrame]) -> FrameReplies:
        replies: FrameReplies = await self._ingress().process_frames.remote(list(frames))
        return replies

    async def class_names(self) -> list[str]:
        """Class names of the model that answers (browsers label their boxes with them)."""
        names: list[str] = await self._ingress().class_names.remote()
        return names

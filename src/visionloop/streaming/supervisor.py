"""The camera supervisor: a watchdog that owns the restart policy, and capture attempts that only capture.

Each connection attempt runs in its own short-lived thread that opens the source and pushes frames into the
buffer until the stream ends or fails. The watchdog thread starts attempts, notices stalls (no frame for
``stall_timeout_s``), and decides what happens next: reconnect now, back off with jitter, or mark the camera
FAILED for errors that retrying cannot fix.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from visionloop.core.redaction import redact
from visionloop.streaming.buffers import CapturedFrame, FrameBuffer
from visionloop.streaming.opening import create_source
from visionloop.streaming.sources import DecodedFrame, FrameSource, SourceError, SourceOptions
from visionloop.streaming.state import CameraState, StateMachine, Transition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    stall_timeout_s: float = 3.0
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 2.0
    backoff_jitter: float = 0.2
    failed_retry_s: float = 30.0
    healthy_after_s: float = 10.0  # streaming this long resets the backoff

    def backoff(self, attempt: int, rng: random.Random) -> float:
        delay = min(self.backoff_max_s, self.backoff_initial_s * (2 ** max(0, attempt - 1)))
        return float(delay * (1 + rng.uniform(-self.backoff_jitter, self.backoff_jitter)))


@dataclass
class Counters:
    frames_in: int = 0
    reconnects: int = 0
    attempts: int = 0
    last_frame_mono: float = 0.0
    last_error: str | None = None
    corrupt_packets: int = 0  # packets skipped as undecodable (damaged H.264), over all attempts
    last_corruption: str | None = None


class CameraSupervisor:
    """Keeps one camera streaming into ``buffer`` until ``stop()``."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        buffer: FrameBuffer,
        options: SourceOptions,
        policy: RestartPolicy,
        on_transition: Callable[[Transition], None] | None = None,
        wanted: Callable[[float], bool] | None = None,
    ) -> None:
        self.camera_id = camera_id
        # Whether a frame decoded at a wall-clock time will be sent (its rate, motion gating): only those are worth
        # converting ahead of the sender.
        self._wanted = wanted
        self._url = url
        self._buffer = buffer
        self._options = options
        self._policy = policy
        self._on_transition = on_transition
        self.state = StateMachine(on_change=self._changed)
        self.counters = Counters()
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._attempt_thread: threading.Thread | None = None
        self._attempt_error: SourceError | None = None
        self._seq = 0
        # The jitter's seed must be the same in every process: hash() of a str changes with PYTHONHASHSEED.
        self._rng = random.Random(zlib.crc32(camera_id.encode()))

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._watchdog = threading.Thread(target=self._watch, name=f"watchdog-{self.camera_id}", daemon=True)
        self._watchdog.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._buffer.close()
        for thread in (self._watchdog, self._attempt_thread):
            if thread is not None:
                thread.join(timeout_s)
        if self.state.state is not CameraState.STOPPED:
            self.state.to(CameraState.STOPPED, "stopped")

    @property
    def alive(self) -> bool:
        """Whether the watchdog runs (False before start and after stop): a status that reads "streaming" from a
        dead watchdog would be a lie, so the worker reports this too."""
        return self._watchdog is not None and self._watchdog.is_alive()

    def _changed(self, transition: Transition) -> None:
        log.info(
            "camera %s: %s -> %s %s",
            self.camera_id,
            transition.old.value,
            transition.new.value,
            transition.reason,
            extra={"camera_id": self.camera_id},
        )
        if self._on_transition:
            try:
                self._on_transition(transition)
            except Exception as exc:  # a listener (metrics, events) failing must not stop the watchdog mid-transition
                log.warning("camera %s: a state listener failed: %s", self.camera_id, redact(repr(exc)))

    # -- the capture attempt: only captures --------------------------------------------------------------------

    def _capture(self) -> None:
        source: FrameSource | None = None
        corrupt_before = self.counters.corrupt_packets
        try:
            source = create_source(self._url, self._options)
            for decoded in source.frames():
                if self._stop.is_set():
                    return
                self._count_corruption(source, corrupt_before)
                self._push(decoded)
            self._attempt_error = SourceError("the stream ended (camera closed the connection)", permanent=False)
        except SourceError as exc:
            self._attempt_error = exc
        except Exception as exc:  # a bug or an unexpected library error must not kill the watchdog
            self._attempt_error = SourceError(f"{type(exc).__name__}: {redact(str(exc))}", permanent=False)
        finally:
            if source is not None:
                self._count_corruption(source, corrupt_before)
                source.close()

    def _push(self, decoded: DecodedFrame) -> None:
        now = time.monotonic()
        self.counters.frames_in += 1
        self.counters.last_frame_mono = now
        self._seq += 1
        frame = CapturedFrame(decoded.picture, self._seq, time.time(), decoded.decode_ms, now)
        wanted = self._wanted is None or self._wanted(frame.capture_ts)
        if wanted and not len(self._buffer):  # the next frame to go unless the sender is behind: convert it here
            with contextlib.suppress(Exception):  # one that cannot be converted is the sender's to count
                _ = frame.image
        self._buffer.put(frame, timeout_s=self._policy.stall_timeout_s)

    def _count_corruption(self, source: FrameSource, before: int) -> None:
        self.counters.corrupt_packets = before + source.corrupt_packets
        if source.last_corruption:
            self.counters.last_corruption = source.last_corruption

    # -- the watchdog: owns the restart policy -----------------------------------------------------------------

    def _watch(self) -> None:
        """Run the restart loop. A bug in it leaves the camera FAILED with the reason, tried again after
        ``failed_retry_s``: never a watchdog that died silently behind a state that still reads "streaming"."""
        while not self._stop.is_set():
            try:
                self._restart_loop()
            except Exception as exc:
                reason = redact(f"camera supervisor error: {type(exc).__name__}: {exc}")
                log.error("camera %s: %s", self.camera_id, reason)
                log.debug("camera %s: supervisor error", self.camera_id, exc_info=True)  # may hold credentials
                self.counters.last_error = reason
                self._force_failed(reason)
                self._stop.wait(self._policy.failed_retry_s)

    def _force_failed(self, reason: str) -> None:
        state = self.state.state
        if state in (CameraState.FAILED, CameraState.STOPPED):
            return
        if state is CameraState.BACKOFF:
            self.state.to(CameraState.CONNECTING, "recovering from a supervisor error")
        self.state.to(CameraState.FAILED, reason)

    def _restart_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._run_attempt()
            if self._stop.is_set():
                break
            error = self._attempt_error or SourceError("capture ended", permanent=False)
            self.counters.last_error = str(error)
            streamed_for = time.monotonic() - self.state.since if self.state.state is CameraState.STREAMING else 0.0
            failures = 1 if streamed_for >= self._policy.healthy_after_s else failures + 1
            if error.permanent:
                self.state.to(CameraState.FAILED, str(error))
                wait = self._policy.failed_retry_s
            else:
                if self.state.state is CameraState.STALLED:
                    self.state.to(CameraState.BACKOFF, "reconnecting after a stall")
                else:
                    self.state.to(CameraState.BACKOFF, str(error))
                wait = self._policy.backoff(failures, self._rng)
            if self._stop.wait(wait):
                break
            self.counters.reconnects += 1

    def _run_attempt(self) -> None:
        self.state.to(CameraState.CONNECTING, f"attempt {self.counters.attempts + 1}")
        self.counters.attempts += 1
        self._attempt_error = None
        started = time.monotonic()
        self.counters.last_frame_mono = 0.0
        thread = threading.Thread(target=self._capture, name=f"capture-{self.camera_id}", daemon=True)
        self._attempt_thread = thread
        thread.start()
        open_budget = self._options.open_timeout_s + self._policy.stall_timeout_s
        while thread.is_alive() and not self._stop.is_set():
            thread.join(0.1)
            last = self.counters.last_frame_mono
            now = time.monotonic()
            if last and self.state.state is CameraState.CONNECTING:
                self.counters.last_error = None
                self.state.to(CameraState.STREAMING, "frames arriving")
            quiet_for = now - (last or started)
            budget = self._policy.stall_timeout_s if last else open_budget
            if quiet_for > budget and self.state.state in (CameraState.STREAMING, CameraState.CONNECTING):
                # The capture thread is blocked in a read; PyAV's read timeout will end it shortly.
                self.state.to(CameraState.STALLED, f"no frame for {quiet_for:.1f} s")
            elif last and quiet_for < budget and self.state.state is CameraState.STALLED:
                self.state.to(CameraState.CONNECTING, "frames again")
                self.state.to(CameraState.STREAMING, "frames arriving")

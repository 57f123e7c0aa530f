"""A camera worker: one Ray actor per camera, so cameras spread over the nodes of a cluster.

It supervises the stream (streaming.supervisor) and runs a sender loop that sends each new frame as soon as it
is decoded, as an array (no JPEG inside the cluster), to the champion Detector through the frame sink, which
publishes the results. A live camera faster than its target rate is thinned by capture time (no clock of our own
to wait for); a model slower than the camera means frames are skipped (and counted), never queued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from visionloop.core.cameras import CameraSpec
from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.frame_clock import read_frame_number
from visionloop.core.frames import FrameSink
from visionloop.core.redaction import redact
from visionloop.core.settings import CameraSettings
from visionloop.streaming.buffers import BufferMode, CapturedFrame, FrameBuffer
from visionloop.streaming.governor import FreshnessGovernor
from visionloop.streaming.motion import MotionGate
from visionloop.streaming.sources import SourceOptions
from visionloop.streaming.state import Transition
from visionloop.streaming.supervisor import CameraSupervisor, RestartPolicy

log = logging.getLogger(__name__)
LATENCY_WINDOW = 300
# Status counters that also go to the visionloop_camera_frames metric (as increments since the last status).
REPORTED_COUNTERS = ("frames_in", "frames_processed", "frames_skipped", "frames_gated", "reconnects")


class CameraRuntime:
    """Everything of one camera except Ray: testable with any ``send`` function."""

    def __init__(
        self,
        spec: CameraSpec,
        settings: CameraSettings,
        send: Any,
        on_transition: Any = None,
        on_latency: Any = None,
        governor: FreshnessGovernor | None = None,
    ) -> None:
        self.spec = spec
        # Shared by the cameras of a host (they share its CPU and its calls); a camera on its own has its own.
        self.governor = governor or FreshnessGovernor(settings.latency_budget_ms, min_scale=settings.min_rate_share)
        self._on_latency = on_latency
        self.settings = settings
        self._send = send
        self._on_transition = on_transition
        live_mode = spec.mode == "latest" or (
            spec.mode == "auto" and "://" in spec.url and not spec.url.startswith("file://")
        )
        self.buffer = FrameBuffer(BufferMode.LATEST if live_mode else BufferMode.EVERY, settings.buffer_size)
        options = SourceOptions(
            rtsp_transport=spec.transport,
            open_timeout_s=settings.open_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            loop_files=spec.loop,
            file_fps=None if live_mode else spec.target_fps,
            rtsp_client=settings.rtsp_client,
        )
        policy = RestartPolicy(
            stall_timeout_s=settings.stall_timeout_s,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            failed_retry_s=settings.failed_retry_s,
        )
        self.motion = MotionGate(spec.motion)
        self.supervisor = CameraSupervisor(
            spec.id, spec.url, self.buffer, options, policy, self._transition, wanted=self._will_send
        )
        self.frames_processed = 0
        self.frames_failed = 0
        self.send_errors = 0
        self.frames_lost = 0  # frames whose model call failed (a replica lost mid-call, Serve away)
        self.last_send_error: str | None = None
        self._latency_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._processed_at: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._last_sent_capture = float("-inf")
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name=f"sender-{spec.id}", daemon=True)

    def start(self) -> None:
        self.supervisor.start()
        self._sender.start()

    def stop(self) -> None:
        self._stop.set()
        self.supervisor.stop()
        self._sender.join(10)

    def _transition(self, transition: Transition) -> None:
        if self._on_transition:
            self._on_transition(self.spec.id, transition)

    def _frame(self, frame: CapturedFrame) -> EncodedFrame:
        image = frame.image  # converted here, for the frames that are sent only
        return EncodedFrame(
            camera_id=self.spec.id,
            image=image,
            seq=frame.seq,
            capture_ts=frame.capture_ts,
            decode_ms=frame.decode_ms + frame.convert_ms,
            queue_ms=(time.monotonic() - frame.queued_at) * 1e3,
            source_frame=read_frame_number(image),
        )

    def _min_gap_s(self) -> float:
        """Least capture-time gap between two frames sent: the period at the governed rate, less a fifth for jitter."""
        return 0.8 / self.governor.fps(self.spec.target_fps)

    def _will_send(self, capture_ts: float) -> bool:
        """Whether a frame decoded now would be sent if nothing newer came first: due by the camera's rate, and not
        subject to motion gating (which decides on the sender's side, before any conversion)."""
        if self.buffer.mode is not BufferMode.LATEST:
            return True
        due = capture_ts - self._last_sent_capture >= self._min_gap_s()
        return due and not self.motion.spec.enabled

    def _due(self, frames: list[CapturedFrame]) -> list[CapturedFrame]:
        """The frames to send now. A live camera sends only its newest frame, and only once the target period has
        passed since the last one sent (by capture time, with a fifth of a period of slack for jitter): frames are
        sent the moment they arrive instead of waiting for a tick of a clock out of phase with the camera."""
        if self.buffer.mode is not BufferMode.LATEST or not frames:
            return frames
        newest = frames[-1]
        self.buffer.skipped += len(frames) - 1
        if newest.capture_ts - self._last_sent_capture < self._min_gap_s():
            self.buffer.skipped += 1
            return []
        self._last_sent_capture = newest.capture_ts
        return [newest]

    def _until_due(self) -> float:
        """Seconds before a live camera's next frame can be due (0: now). The sender sleeps them instead of waking
        for every decoded frame only to skip it: at a reduced rate most frames are not due."""
        if self.buffer.mode is not BufferMode.LATEST:
            return 0.0
        return max(0.0, self._last_sent_capture + self._min_gap_s() - time.time())

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            if (wait := self._until_due()) > 0:
                self._stop.wait(min(wait, 0.2))
                continue
            frames = self._due(self.buffer.take(self.settings.max_frames_per_call, timeout_s=0.2))
            encoded = self._encoded([frame for frame in frames if self._moved(frame)])
            if not encoded:
                continue
            try:
                results = self._send(encoded)
            except Exception as exc:  # the Detector may be restarting; count it and keep going
                self.send_errors += 1
                self.frames_lost += len(encoded)
                self.last_send_error = redact(f"{type(exc).__name__}: {exc}")
                self._stop.wait(0.5)
                continue
            self._record(results)

    def _moved(self, frame: CapturedFrame) -> bool:
        """Whether motion gating lets the frame go (always, without gating; a picture it cannot read goes too, and
        the conversion counts it)."""
        if not self.motion.spec.enabled:
            return True
        try:
            grey = frame.gray()
        except Exception:  # the sender's conversion will fail on it as well, and count it
            return True
        return self.motion.due(grey, frame.capture_ts)

    def _encoded(self, frames: list[CapturedFrame]) -> list[EncodedFrame]:
        """The frames to send, converted; a frame that cannot be converted is counted as failed, not sent."""
        out: list[EncodedFrame] = []
        for frame in frames:
            try:
                out.append(self._frame(frame))
            except Exception as exc:  # whatever PyAV raises for a picture it cannot convert: the sender lives on
                self.frames_failed += 1
                self.last_send_error = redact(f"frame {frame.seq} could not be converted: {exc}")
        return out

    def _record(self, results: list[FrameResult | str]) -> None:
        now = time.time()
        for result in results:
            if isinstance(result, str):
                self.frames_failed += 1
                continue
            self.frames_processed += 1
            latency_ms = (now - result.capture_ts) * 1e3
            self._latency_ms.append(latency_ms)
            self.governor.observe(latency_ms)
            if self._on_latency:
                self._on_latency(self.spec.id, latency_ms)
            self._processed_at.append(time.monotonic())

    def status(self) -> dict[str, Any]:
        counters = self.supervisor.counters
        recent = [t for t in self._processed_at if t > time.monotonic() - 5.0]
        latencies = np.array(self._latency_ms) if self._latency_ms else None
        return {
            "id": self.spec.id,
            "url": self.spec.redacted_url(),
            "state": self.supervisor.state.state.value,
            "state_since": self.supervisor.state.since,
            "state_reason": redact(self.supervisor.state.reason),
            "alive": self.supervisor.alive and self._sender.is_alive(),  # both threads of the camera run
            "frames_in": counters.frames_in,
            "frames_processed": self.frames_processed,
            "frames_skipped": self.buffer.skipped,
            "frames_gated": self.motion.gated,
            "rate_share": self.governor.scale,
            "motion": self.motion.last_share,
            "frames_failed": self.frames_failed,
            "frames_lost": self.frames_lost,
            "reconnects": counters.reconnects,
            "corrupt_packets": counters.corrupt_packets,
            "last_corruption": counters.last_corruption,
            "last_error": counters.last_error or self.last_send_error,
            "fps": len(recent) / 5.0,
            "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies is not None else None,
            "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies is not None else None,
        }


class CameraReporter:
    """What the cameras of one process tell outside: state changes to the metrics and the manager's events, and
    their status counters to the frames metric, as increments since the last status (a worker has one camera, a
    host several)."""

    def __init__(self, events: Any = None) -> None:
        from visionloop.streaming.metrics import CameraMetrics

        self.metrics = CameraMetrics.create()
        self._events = events
        self._reported: dict[str, dict[str, int]] = {}

    def transition(self, camera_id: str, transition: Transition) -> None:
        self.metrics.state(camera_id, transition.new.value)
        if self._events is not None:
            self._events.camera_state.remote(
                camera_id, transition.old.value, transition.new.value, redact(transition.reason)
            )

    def counted(self, camera_id: str, status: dict[str, Any]) -> dict[str, Any]:
        """``status``, after adding what its counters gained since the camera's last status to the metric."""
        reported = self._reported.setdefault(camera_id, dict.fromkeys(REPORTED_COUNTERS, 0))
        for key, last in reported.items():
            if status[key] > last:
                self.metrics.count(camera_id, key, status[key] - last)
                reported[key] = status[key]
        return status

    def forget(self, camera_id: str) -> None:
        self._reported.pop(camera_id, None)


class CameraWorker:
    """The Ray actor around a CameraRuntime (created with ``ray.remote`` by the manager)."""

    def __init__(self, spec: dict[str, Any], settings: dict[str, Any], sink: FrameSink, events: Any = None) -> None:
        self._spec = CameraSpec(**spec)
        self._sink = sink
        self._reporter = CameraReporter(events)
        self._runtime = CameraRuntime(
            self._spec,
            CameraSettings(**settings),
            self._send,
            self._reporter.transition,
            self._reporter.metrics.latency,
        )
        self._runtime.start()

    def _send(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        return self._sink.send(frames)

    def status(self) -> dict[str, Any]:
        return self._reporter.counted(self._spec.id, {**self._runtime.status(), **self._sink.counters()})

    def stop(self) -> dict[str, Any]:
        self._runtime.stop()
        self._sink.close(5.0)  # results still buffered reach Redis before the actor goes
        return self.status()

"""Multi-object tracking by detection, one tracker per camera: every published box gets a ``track_id``.

The association is ByteTrack's (Zhang et al., ECCV 2022) without its Kalman filter: confident boxes are matched to
the live tracks first, then the leftover tracks take the doubtful boxes (which keeps an object tracked through a
frame where the detector hesitates), and only confident boxes start tracks. A track's next position is predicted
from its last velocity. Matching is greedy on IoU, which at camera frame rates, where boxes move a few pixels a
frame, gives the Hungarian answer at a fraction of its cost and with numpy alone.

A tracker also says how much the detector *flickers*: tracks that start or end between neighbouring frames, or
whose class changes. A frame where the model's view of the scene flickers is one worth a human's label (Temporal
Coherence AL, ICCV-W 2019), and a box a track follows over many frames is one a pseudo-label can trust.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from visionloop.core.boxes import box_iou, greedy_match
from visionloop.core.contracts import Detections, FrameResult
from visionloop.core.settings import TrackingSettings

NO_TRACK = -1


@dataclass
class Track:
    track_id: int
    box: npt.NDArray[np.float32]
    class_id: int
    velocity: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(4, np.float32))
    hits: int = 1
    missed: int = 0
    class_changes: int = 0

    def predicted(self) -> npt.NDArray[np.float32]:
        return np.asarray(self.box + self.velocity * (1 + self.missed), np.float32)

    def update(self, box: npt.NDArray[np.float32], class_id: int) -> None:
        self.velocity = np.asarray((box - self.box) / (1 + self.missed), np.float32)
        self.box = np.asarray(box, np.float32)
        if class_id != self.class_id:
            self.class_changes += 1
            self.class_id = class_id
        self.hits += 1
        self.missed = 0


@dataclass(frozen=True)
class TrackedFrame:
    """One frame's association: a track id per box (NO_TRACK for doubtful boxes no track took), the hits of each
    box's track so far, and the frame's flicker: tracks born, lost or switching class here."""

    track_ids: npt.NDArray[np.int64]
    track_hits: npt.NDArray[np.int64]
    born: int
    lost: int
    class_switches: int

    @property
    def flicker(self) -> float:
        """Flicker events per box of the frame (0 for a scene the detector sees steadily)."""
        return (self.born + self.lost + self.class_switches) / max(1, len(self.track_ids))


class Tracker:
    """One camera's tracks. ``high``: the confidence from which a box may start a track; ``low``: the lowest a box
    may have to continue one; ``max_missed``: frames a track survives unseen (a short occlusion)."""

    def __init__(
        self, high: float = 0.5, low: float = 0.1, match_iou: float = 0.3, max_missed: int = 15, settle_hits: int = 3
    ) -> None:
        self.high, self.low, self.match_iou, self.max_missed = high, low, match_iou, max_missed
        self.settle_hits = settle_hits
        self._tracks: list[Track] = []
        self._next_id = 1

    @property
    def live(self) -> int:
        return len(self._tracks)

    def update(self, xyxy: npt.NDArray[np.float32], confidence: npt.NDArray[np.float32],
               class_id: npt.NDArray[np.int32]) -> TrackedFrame:  # fmt: skip
        """Associate one frame's boxes with the tracks; returns what each box became."""
        boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
        conf = np.asarray(confidence, np.float32).reshape(-1)
        classes = np.asarray(class_id).reshape(-1)
        ids = np.full(len(boxes), NO_TRACK, np.int64)
        hits = np.zeros(len(boxes), np.int64)
        switches = 0
        unmatched = list(range(len(self._tracks)))
        for band in (np.nonzero(conf >= self.high)[0], np.nonzero((conf >= self.low) & (conf < self.high))[0]):
            if not len(band) or not unmatched:
                continue
            predicted = np.stack([self._tracks[t].predicted() for t in unmatched])
            taken: set[int] = set()
            for row, col in greedy_match(box_iou(predicted, boxes[band]), self.match_iou):
                track, det = self._tracks[unmatched[row]], int(band[col])
                before = track.class_changes
                track.update(boxes[det], int(classes[det]))
                switches += track.class_changes - before
                ids[det], hits[det] = track.track_id, track.hits
                taken.add(row)
            unmatched = [t for row, t in enumerate(unmatched) if row not in taken]
        born = 0
        for index in np.nonzero((ids == NO_TRACK) & (conf >= self.high))[0]:
            det = int(index)
            track = Track(self._next_id, boxes[det].copy(), int(classes[det]))
            self._next_id += 1
            self._tracks.append(track)
            ids[det], hits[det] = track.track_id, 1
            born += 1
        lost = 0
        for position in unmatched:
            track = self._tracks[position]
            track.missed += 1
            if track.missed == 1 and track.hits < self.settle_hits:
                lost += 1  # a track that vanishes the frame after it began: the detector flickered
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return TrackedFrame(ids, hits, born, lost, switches)


class CameraTrackers:
    """A tracker per camera id, for a sink that sees many cameras (the Router) or one (a camera's sink).

    Cameras silent for ``idle_s`` are forgotten, so ids that come and go (browsers) do not pile up.
    """

    def __init__(
        self,
        high: float = 0.5,
        low: float = 0.1,
        match_iou: float = 0.3,
        max_missed: int = 15,
        idle_s: float = 60.0,
    ) -> None:
        self._options = (high, low, match_iou, max_missed)
        self.idle_s = idle_s
        self._trackers: dict[str, tuple[Tracker, float]] = {}

    def __len__(self) -> int:
        return len(self._trackers)

    def tracked(self, camera_id: str, detections: Detections, now: float) -> tuple[Detections, float]:
        """``detections`` with their track ids, and the frame's flicker, from the camera's tracker."""
        self._forget_idle(now)
        entry = self._trackers.get(camera_id)
        tracker = entry[0] if entry is not None else Tracker(*self._options)
        self._trackers[camera_id] = (tracker, now)
        frame = tracker.update(detections.xyxy, detections.confidence, detections.class_id)
        return replace(detections, track_id=frame.track_ids), frame.flicker

    def tag(self, results: Sequence[FrameResult | str], now: float | None = None) -> list[FrameResult | str]:
        """Each result with its boxes' track ids and its flicker (error strings pass through), in order."""
        now = time.monotonic() if now is None else now
        out: list[FrameResult | str] = []
        for result in results:
            if isinstance(result, str):
                out.append(result)
                continue
            detections, flicker = self.tracked(result.camera_id, result.detections, now)
            out.append(replace(result, detections=detections, flicker=flicker))
        return out

    def _forget_idle(self, now: float) -> None:
        stale = [cid for cid, (_, seen) in self._trackers.items() if now - seen > self.idle_s]
        for camera_id in stale:
            del self._trackers[camera_id]

    @classmethod
    def from_settings(cls, tracking: TrackingSettings) -> CameraTrackers | None:
        if not tracking.enabled:
            return None
        return cls(tracking.high, tracking.low, tracking.match_iou, tracking.max_missed, tracking.idle_s)

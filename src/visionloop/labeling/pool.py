"""The unlabelled pool: a bounded, recent sample of every camera's frames, kept for the loop to adapt to.

Humans label a few hundred frames; a challenger also learns from the thousands nobody labels (pseudo-labels and
batch-norm statistics, learning.adaptation). This observer keeps at most one frame per camera every
``loop.pool_every_s`` of capture time as a JPEG under ``<var>/unlabelled/<camera>/`` and, past ``loop.pool_frames``,
deletes the oldest, so the pool follows the site as it is now. It never keeps a frame for labeling (answers None).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import deque
from pathlib import Path

from visionloop.core.contracts import EncodedFrame, FrameResult, ModelRole
from visionloop.core.frames import CameraThrottle
from visionloop.core.redaction import redact
from visionloop.core.settings import Settings

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(camera_id: str) -> str:
    """A folder name for a camera id: credentials redacted, odd characters replaced, a short hash of the id keeping
    two ids that read alike apart."""
    digest = hashlib.sha256(camera_id.encode()).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', redact(camera_id))[:60]}-{digest}"


def pool_frames(root: Path) -> list[Path]:
    """Every frame of the pool, oldest first (names start with the capture time in milliseconds)."""
    if not root.is_dir():
        return []
    return sorted(root.glob("*/*.jpg"), key=lambda p: p.name)


class UnlabelledPool:
    def __init__(self, root: Path, every_s: float, max_frames: int, jpeg_quality: int = 90) -> None:
        self.root, self.max_frames, self.jpeg_quality = root, max_frames, jpeg_quality
        self._throttle = CameraThrottle(every_s)
        self._kept: deque[Path] = deque(pool_frames(root))  # the pool survives a restart, still bounded
        self.written = 0

    def offer(self, frame: EncodedFrame, result: FrameResult) -> None:
        if result.role is not ModelRole.CHAMPION or not self._throttle.due(result.camera_id, result.capture_ts):
            return None
        target = self.root / safe_name(result.camera_id) / f"{int(result.capture_ts * 1000):015d}-{result.seq}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(frame.encoded(self.jpeg_quality))
        partial.replace(target)  # the loop never reads half a frame
        self._kept.append(target)
        self.written += 1
        while len(self._kept) > self.max_frames:
            self._kept.popleft().unlink(missing_ok=True)
        return None


def build_pool(settings: Settings, redis_url: str) -> UnlabelledPool:
    """The pool the settings describe (``redis_url`` unused: the factory signature of frame observers)."""
    loop = settings.loop
    return UnlabelledPool(settings.var.unlabelled, loop.pool_every_s, loop.pool_frames, settings.cameras.jpeg_quality)

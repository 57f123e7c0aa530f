"""Redis stream names (all in one place) and the small helpers every producer shares."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StreamNames:
    """Every Redis key visionloop writes, under one prefix.

    ``results`` is capped (approximate MAXLEN); ``review`` is never trimmed silently; ``events`` is the audit log
    (promotions, rollbacks, camera state changes).
    """

    prefix: str = "visionloop"

    @property
    def results(self) -> str:
        return f"{self.prefix}:results"

    @property
    def review(self) -> str:
        return f"{self.prefix}:review"

    @property
    def review_dead_letter(self) -> str:
        return f"{self.prefix}:review:dead"

    @property
    def labels(self) -> str:
        return f"{self.prefix}:labels"

    @property
    def shadow_pairs(self) -> str:
        return f"{self.prefix}:shadow-pairs"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def cameras(self) -> str:
        """Hash of camera id -> camera spec (JSON), so a restart resumes the same cameras."""
        return f"{self.prefix}:cameras"


def event_fields(kind: str, **payload: Any) -> dict[str, str]:
    """Fields of one audit event: its kind, when, and a JSON payload."""
    return {"kind": kind, "ts": f"{time.time():.6f}", "payload": json.dumps(payload, separators=(",", ":"))}

"""The sanity gate before shadowing: a candidate may not forget the old domain.

Every gold set (a data set whose images are all in 'val', never trained on) scores the candidate and the champion
with the same evaluation code; a candidate more than ``loop.max_gold_regression`` below the champion on any set
never becomes the shadow. Scores are cached per (model version, gold version): both are immutable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionloop.core.registry import ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.datasets import DatasetError, DatasetStore, DatasetVersion
from visionloop.learning.evaluation import serving_map50

log = logging.getLogger(__name__)
GOLD_SUFFIX = "-gold"


def gold_sets(settings: Settings, store: DatasetStore) -> list[DatasetVersion]:
    """``loop.gold_datasets`` (refs), or the latest version of every data set named '*-gold'."""
    if settings.loop.gold_datasets:
        return [store.get(ref) for ref in settings.loop.gold_datasets]
    if not store.root.is_dir():
        return []
    names = sorted(p.name for p in store.root.iterdir() if p.is_dir() and p.name.endswith(GOLD_SUFFIX))
    return [versions[-1] for versions in (store.versions(n) for n in names) if versions]


def served_file(settings: Settings, model: ModelVersion) -> Path:
    """The file the service loads for ``model`` at serving.precision: the gate and the A/B score what would be
    served, so an int8 challenger is held against the champion as served, not against its fp32 file."""
    if settings.serving.precision == "int8" and model.int8_path.is_file():
        return model.int8_path
    return model.onnx_path


class GoldScorer:
    """gold mAP50 of registry versions (the file served at serving.precision), once per (version, gold set)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache: dict[tuple[str, str], float] = {}

    def remember(self, version: str, scores: dict[str, float]) -> None:
        for ref, value in scores.items():
            self._cache[(version, ref)] = float(value)

    def score(self, model: ModelVersion, gold: DatasetVersion) -> float:
        key = (model.version, gold.ref)
        if key not in self._cache:
            self._cache[key] = self.score_file(served_file(self._settings, model), gold, model.class_names)
        return self._cache[key]

    def score_file(self, onnx: Path, gold: DatasetVersion, class_names: list[str]) -> float:
        return float(serving_map50(self._settings, onnx, gold.data_yaml, class_names))

    def scores(self, model: ModelVersion, golds: list[DatasetVersion]) -> dict[str, float]:
        return {gold.ref: self.score(model, gold) for gold in golds}


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    per_set: dict[str, dict[str, float]] = field(default_factory=dict)  # ref -> {candidate, champion, delta}

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "gold": self.per_set}


def gold_gate(candidate: dict[str, float], champion: dict[str, float], max_regression: float) -> GateResult:
    """Pass when, on every gold set, the candidate's mAP50 is at least the champion's minus ``max_regression``.

    No gold set: nothing to gate on; the candidate passes and the reason says so (the A/B's gold guard is then
    blind too).
    """
    if not champion:
        return GateResult(
            True, "no gold set found: nothing to gate on (name gold sets '*-gold' or set loop.gold_datasets)"
        )
    per_set: dict[str, dict[str, float]] = {}
    failed = []
    for ref in sorted(champion):
        if ref not in candidate:
            raise DatasetError(f"the candidate was not scored on gold set {ref}")
        delta = candidate[ref] - champion[ref]
        per_set[ref] = {"candidate": candidate[ref], "champion": champion[ref], "delta": delta}
        if delta < -max_regression:
            failed.append(f"{ref}: {candidate[ref]:.4f} vs champion {champion[ref]:.4f} ({delta:+.4f})")
    if failed:
        return GateResult(False, f"gold mAP50 fell by more than {max_regression}: " + "; ".join(failed), per_set)
    return GateResult(True, f"gold mAP50 within {max_regression} of the champion on {len(per_set)} set(s)", per_set)


def worst_gold(candidate: dict[str, float], champion: dict[str, float]) -> tuple[float, float, str | None]:
    """(champion, candidate, ref) on the gold set where the candidate loses most: the A/B's gold guard compares
    that pair, so forgetting one domain cannot hide behind a mean over several. (0, 0, None) without gold sets."""
    shared = sorted(set(candidate) & set(champion))
    if not shared:
        return 0.0, 0.0, None
    ref = min(shared, key=lambda r: (candidate[r] - champion[r], r))
    return champion[ref], candidate[ref], ref

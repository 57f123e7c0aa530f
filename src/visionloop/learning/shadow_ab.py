"""The A/B step of a learning cycle: the current shadow replayed against the champion on the latest labels.

Decided once per (champion, shadow, labels): a verdict already recorded for the same three is not replayed. The
verdict goes to the registry (``decisions.json``, what a promotion without force checks) and the events stream; a
PROMOTE verdict promotes at once when ``loop.auto_promote`` is on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from visionloop.core.events import EventLog
from visionloop.core.promotion import promote
from visionloop.core.registry import ModelRegistry, ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.ab_replay import replay_ab
from visionloop.learning.arms import picked_stems, split_by_arm
from visionloop.learning.challenger import JOB_META, LABELS_META, trained_stems
from visionloop.learning.datasets import DatasetError, DatasetStore, DatasetVersion
from visionloop.learning.evaluation import split_images
from visionloop.learning.gold_gate import GoldScorer, gold_sets, worst_gold


class ShadowAB:
    """The shadow-against-champion replay of the loop worker (``by`` names who decides in the audit trail)."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        store: DatasetStore,
        gold: GoldScorer,
        events: EventLog,
        by: str,
    ) -> None:
        self._settings, self._registry, self._store = settings, registry, store
        self._gold, self._events, self._by = gold, events, by
        self.last_verdict: dict[str, Any] | None = None

    def run(self, labels: DatasetVersion | None, on_stage: Callable[[str], None]) -> dict[str, Any]:
        """The step's summary (``status``: no_shadow, no_labels, already_decided or decided)."""
        pointers = self._registry.pointers()
        if pointers["shadow"] is None or pointers["champion"] is None:
            return {"status": "no_shadow"}
        champion, shadow = self._registry.get(pointers["champion"]), self._registry.get(pointers["shadow"])
        if labels is None:
            return {"status": "no_labels"}
        previous = self._registry.decision(shadow.version)
        if previous and previous.get("champion") == champion.version and previous.get(LABELS_META) == labels.ref:
            return {"status": "already_decided", "decision": previous.get("decision"), "shadow": shadow.version}
        on_stage(f"A/B replay of {shadow.version} against {champion.version}")
        verdict = self._replay(champion, shadow, labels)
        self._registry.record_decision(shadow.version, verdict)
        self._events.publish(
            "ab_decision", by=self._by, champion=champion.version, shadow=shadow.version, verdict=verdict
        )
        self.last_verdict = {"shadow": shadow.version, "decision": verdict["decision"], "reason": verdict["reason"]}
        summary: dict[str, Any] = {"status": "decided", "shadow": shadow.version, "decision": verdict["decision"]}
        if self._settings.loop.auto_promote and verdict["decision"] == "promote":
            summary["promotion"] = promote(self._registry, self._events, shadow.version, by=self._by)
        return summary

    def _replay(self, champion: ModelVersion, shadow: ModelVersion, labels: DatasetVersion) -> dict[str, Any]:
        arms = split_by_arm(labels)
        golds = gold_sets(self._settings, self._store)
        self._gold.remember(shadow.version, shadow.meta.get("gold") or {})
        gold = worst_gold(self._gold.scores(shadow, golds), self._gold.scores(champion, golds))
        gold_frames = {g.ref: split_images(g.data_yaml, "val")[0] for g in golds}
        result = replay_ab(self._settings, champion, shadow, arms, self._trained_on(shadow, labels), gold, gold_frames)
        return {
            **result.to_dict(),
            "by": self._by,
            "champion": champion.version,
            "shadow": shadow.version,
            LABELS_META: labels.ref,
            "arms": arms.counts(),
            "gold_sets": [g.ref for g in golds] or "none found: the gold guard compares nothing",
        }

    def _trained_on(self, shadow: ModelVersion, labels: DatasetVersion) -> set[str]:
        """Stems the shadow learnt from; for a shadow without loop lineage, every picked frame (so the biased arm
        holds only frames it surely did not see)."""
        ref = shadow.meta.get("training_dataset_version") if shadow.meta.get(JOB_META) else None
        if ref:
            try:
                return trained_stems(self._store.get(str(ref)))
            except DatasetError:
                pass
        return picked_stems(labels)

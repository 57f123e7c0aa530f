"""Promote, reject, roll back: the rules, the rollback stack and the audit events, on a real registry folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionloop.core.events import EventLog
from visionloop.core.promotion import PromotionRefused, history, promote, reject, rollback
from visionloop.core.registry import ModelRegistry, Role
from visionloop.core.streams import StreamNames


@pytest.fixture()
def registry(tmp_path: Path) -> ModelRegistry:
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    registry = ModelRegistry(tmp_path / "models")
    for _ in range(3):
        registry.register(tmp_path / "model.onnx", None, meta={})
    registry.set_pointer(Role.CHAMPION, "v1")
    registry.set_pointer(Role.SHADOW, "v2")
    return registry


@pytest.fixture()
def events(tmp_path: Path) -> EventLog:
    return EventLog(None, StreamNames(), tmp_path / "events.jsonl")  # no Redis: events wait in the file


def published(tmp_path: Path) -> list[tuple[str, dict[str, object]]]:
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    return [(e["kind"], json.loads(e["payload"])) for e in map(json.loads, lines)]


VERDICT = {"decision": "promote", "reason": "CI clears 0", "bootstrap": {"difference": 0.1, "ci_low": 0.05,
           "ci_high": 0.15, "n_frames": 250}, "mcnemar": {"p_value": 0.01}}  # fmt: skip


def test_a_promotion_needs_a_promote_verdict_or_force(registry: ModelRegistry, events: EventLog) -> None:
    with pytest.raises(PromotionRefused, match="no PROMOTE verdict"):
        promote(registry, events, by="alice")
    registry.record_decision("v2", {**VERDICT, "decision": "continue"})
    with pytest.raises(PromotionRefused, match="last verdict: continue"):
        promote(registry, events)
    assert registry.pointers() == {"champion": "v1", "shadow": "v2"}
    forced = promote(registry, events, by="alice", force=True)
    assert forced["forced"] and registry.pointers() == {"champion": "v2", "shadow": None}


def test_promote_then_rollback_returns_to_the_previous_champion(
    tmp_path: Path, registry: ModelRegistry, events: EventLog
) -> None:
    registry.record_decision("v2", VERDICT)
    promote(registry, events, by="alice")
    assert registry.get("v1").meta["role"] == "retired" and registry.get("v2").meta["role"] == "champion"
    registry.record_decision("v3", VERDICT)
    promote(registry, events, "v3", by="auto")
    assert registry.previous_champions() == ["v1", "v2"]
    assert rollback(registry, events, by="bob")["to"] == "v2"
    assert rollback(registry, events, by="bob")["to"] == "v1"
    assert registry.pointers()["champion"] == "v1"
    assert registry.get("v3").meta["role"] == "rejected" and registry.get("v2").meta["role"] == "rejected"
    with pytest.raises(PromotionRefused, match="nothing to roll back to"):
        rollback(registry, events)
    kinds = [(kind, payload.get("by"), payload.get("to")) for kind, payload in published(tmp_path)]
    assert ("model_promoted", "alice", "v2") in kinds and ("model_promoted", "auto", "v3") in kinds
    assert kinds[-1] == ("model_rolled_back", "bob", "v1")
    promoted = next(p for k, p in published(tmp_path) if k == "model_promoted")
    assert promoted["ab"] == {"decision": "promote", "reason": "CI clears 0", "difference": 0.1,
                              "ci": [0.05, 0.15], "n_frames": 250, "mcnemar_p": 0.01}  # fmt: skip
    changes = history(registry)["changes"]
    assert [(c["action"], c["to"]) for c in changes if c["pointer"] == "champion"][-3:] == [
        ("promote", "v3"), ("rollback", "v2"), ("rollback", "v1")]  # fmt: skip


def test_a_rejected_shadow_stops_and_is_never_promoted_without_force(registry: ModelRegistry, events: EventLog) -> None:
    registry.record_decision("v2", VERDICT)
    reject(registry, events, "v2", by="alice")
    assert registry.pointers() == {"champion": "v1", "shadow": None}
    with pytest.raises(PromotionRefused, match="rejected"):
        promote(registry, events, "v2")
    with pytest.raises(PromotionRefused, match="roll back instead"):
        reject(registry, events, "v1")
    promote(registry, events, "v2", force=True)
    assert registry.pointers()["champion"] == "v2"


def test_nothing_to_promote_is_a_clear_error(registry: ModelRegistry, events: EventLog) -> None:
    registry.set_pointer(Role.SHADOW, None)
    with pytest.raises(PromotionRefused, match="no shadow is running"):
        promote(registry, events)
    with pytest.raises(PromotionRefused, match="already the champion"):
        promote(registry, events, "v1", force=True)

"""The model lifecycle table, and the registry and the promotion actions holding to it on a real registry folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionloop.core import lifecycle
from visionloop.core.contracts import ModelRole
from visionloop.core.errors import RegistryError
from visionloop.core.events import EventLog
from visionloop.core.lifecycle import IllegalRoleChange
from visionloop.core.promotion import PromotionRefused, promote, reject, rollback
from visionloop.core.registry import ModelRegistry
from visionloop.core.streams import StreamNames

C, S, P, R, X = (ModelRole.CANDIDATE, ModelRole.SHADOW, ModelRole.CHAMPION, ModelRole.RETIRED, ModelRole.REJECTED)
ALLOWED, FORCED, NO = "allowed", "forced", "refused"

# Every (from, to) pair: what the code did before the table was written down, nothing more.
TABLE = [
    (C, S, ALLOWED),  # the gold gate passed
    (C, P, ALLOWED),  # a first champion (bootstrap, models init, a first training), or promoted
    (C, R, NO),
    (C, X, ALLOWED),  # the gold gate failed, or an operator rejected it
    (S, C, ALLOWED),  # replaced by another shadow, or cleared
    (S, P, ALLOWED),  # promoted
    (S, R, NO),
    (S, X, ALLOWED),
    (P, C, NO),
    (P, S, NO),
    (P, R, ALLOWED),  # replaced
    (P, X, NO),  # rolled back instead: retired, then rejected
    (R, C, NO),
    (R, S, NO),
    (R, P, ALLOWED),  # rolled back to
    (R, X, ALLOWED),  # rolled back from
    (X, C, NO),
    (X, S, NO),
    (X, P, FORCED),  # a forced promotion, a rollback to it
    (X, R, NO),
]


@pytest.mark.parametrize(("old", "new", "expected"), TABLE)
def test_the_table(old: ModelRole, new: ModelRole, expected: str) -> None:
    assert lifecycle.can_change(old, new) == (expected == ALLOWED)
    assert lifecycle.can_change(old, new, force=True) == (expected != NO)
    assert lifecycle.needs_force(old, new) == (expected == FORCED)
    assert (lifecycle.refusal("v7", old, new) is None) == (expected == ALLOWED)
    if expected == NO:
        with pytest.raises(IllegalRoleChange, match=rf"v7 cannot go from {old.value} to {new.value} \(from {old}: "):
            lifecycle.check_change("v7", old, new, force=True)
    else:
        lifecycle.check_change("v7", old.value, new.value, force=True)  # the registry's strings work too


def test_the_table_covers_every_pair_and_staying_put_is_never_a_change() -> None:
    assert len(TABLE) == len(ModelRole) * (len(ModelRole) - 1)
    for role in ModelRole:
        assert lifecycle.transition(role, role) is None and lifecycle.refusal("v1", role, role) is None
        lifecycle.check_change("v1", role, role)
    assert {(t.old, t.new) for t in lifecycle.TRANSITIONS} == {(o, n) for o, n, e in TABLE if e != NO}
    assert all(t.action for t in lifecycle.TRANSITIONS)


def test_errors_name_the_version_the_roles_and_the_allowed_targets() -> None:
    with pytest.raises(IllegalRoleChange) as refused:
        lifecycle.check_change("v3", "champion", "rejected")
    assert str(refused.value) == (
        "model version v3 cannot go from champion to rejected (from champion: retired (replaced by another champion))"
    )
    assert isinstance(refused.value, RegistryError)
    with pytest.raises(IllegalRoleChange, match=r"v3 is rejected: rejected -> champion needs force \(promoted by"):
        lifecycle.check_change("v3", X, P)
    with pytest.raises(RegistryError, match=r"unknown model role 'king' in the registry \(known: candidate, "):
        lifecycle.check_change("v3", "king", P)


@pytest.mark.parametrize(
    ("pointer", "current", "demoted"),
    [(P, P, R), (S, S, C), (P, X, X), (S, X, X)],  # a rejected version stays rejected when its pointer moves
)
def test_demotion(pointer: ModelRole, current: ModelRole, demoted: ModelRole) -> None:
    assert lifecycle.demotion(pointer, current) is demoted


# -- the registry holds to it ----------------------------------------------------------------------------------------


@pytest.fixture()
def registry(tmp_path: Path) -> ModelRegistry:
    """v1 champion, v2 shadow, v3 candidate."""
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    registry = ModelRegistry(tmp_path / "models")
    for _ in range(3):
        registry.register(tmp_path / "model.onnx", None, meta={})
    registry.set_pointer(P, "v1")
    registry.set_pointer(S, "v2")
    return registry


@pytest.fixture()
def events(tmp_path: Path) -> EventLog:
    return EventLog(None, StreamNames(), tmp_path / "events.jsonl")


def roles(registry: ModelRegistry) -> dict[str, str]:
    return {v.version: str(v.meta["role"]) for v in registry.versions()}


def test_set_role_refuses_an_illegal_change_and_writes_nothing(registry: ModelRegistry) -> None:
    registry.set_role("v3", X)
    before = (registry.root / "roles.json").read_text()
    with pytest.raises(IllegalRoleChange, match=r"model version v1 cannot go from champion to rejected"):
        registry.set_role("v1", X)
    with pytest.raises(IllegalRoleChange, match=r"v3 cannot go from rejected to retired"):
        registry.set_role("v3", R)
    with pytest.raises(RegistryError, match=r"champion is a pointer: use set_pointer"):
        registry.set_role("v3", P)
    assert (registry.root / "roles.json").read_text() == before
    registry.set_role("v3", X)  # staying put is no change


def test_set_pointer_checks_every_role_before_it_writes(registry: ModelRegistry) -> None:
    registry.set_role("v3", X)
    files = {name: (registry.root / name).read_text() for name in ("pointers.json", "roles.json", "history.jsonl")}
    with pytest.raises(IllegalRoleChange, match=r"v3 cannot go from rejected to shadow"):
        registry.set_pointer(S, "v3")
    with pytest.raises(IllegalRoleChange, match=r"v3 is rejected: rejected -> champion needs force"):
        registry.set_pointer(P, "v3")
    assert {name: (registry.root / name).read_text() for name in files} == files  # nothing half done
    registry.set_pointer(P, "v3", force=True)
    assert registry.pointers() == {"champion": "v3", "shadow": "v2"}
    assert roles(registry) == {"v1": "retired", "v2": "shadow", "v3": "champion"}


def test_a_new_version_starts_as_a_candidate_even_with_a_role_copied_in_its_meta(registry: ModelRegistry) -> None:
    champion = registry.get("v1")
    copy = registry.register(champion.onnx_path, None, meta={**champion.meta, "source": "copy"})
    assert copy.meta["role"] == "candidate"
    assert "role" not in json.loads((copy.path / "meta.json").read_text())
    registry.set_pointer(S, copy.version)  # candidate -> shadow, not champion -> shadow


# -- every path of promote / reject / rollback on the table ----------------------------------------------------------

PROMOTE = {"decision": "promote", "reason": "CI clears 0"}


def test_promote_reject_and_rollback_walk_the_table(registry: ModelRegistry, events: EventLog) -> None:
    registry.record_decision("v2", PROMOTE)
    promote(registry, events)  # shadow -> champion, champion -> retired
    assert roles(registry) == {"v1": "retired", "v2": "champion", "v3": "candidate"}
    reject(registry, events, "v1")  # a retired one may be rejected too
    with pytest.raises(PromotionRefused, match=r"v2 cannot go from champion to rejected .*: roll back instead"):
        reject(registry, events, "v2")
    rollback(registry, events)  # back to v1, rejected while retired: a rollback overrides that; v2 rolled back from
    assert registry.pointers()["champion"] == "v1"
    assert roles(registry) == {"v1": "champion", "v2": "rejected", "v3": "candidate"}
    with pytest.raises(PromotionRefused, match=r"v2 is rejected: rejected -> champion needs force .*pass force"):
        promote(registry, events, "v2")
    promote(registry, events, "v2", force=True)
    reject(registry, events, "v3")  # a candidate
    assert roles(registry) == {"v1": "retired", "v2": "champion", "v3": "rejected"}


def test_a_candidate_with_a_promote_verdict_needs_no_force(registry: ModelRegistry, events: EventLog) -> None:
    registry.record_decision("v3", PROMOTE)  # judged as a shadow once, then replaced by v2
    promote(registry, events, "v3")
    assert roles(registry) == {"v1": "retired", "v2": "shadow", "v3": "champion"}


def test_the_gold_gate_moves_only_what_may_become_shadow() -> None:
    # learning.loop's gate asks the table: only a candidate is shadowed or rejected by it.
    assert [role for role in ModelRole if lifecycle.can_change(role, S)] == [C]
    assert lifecycle.can_change(C, X)


def test_the_champion_stack() -> None:
    assert lifecycle.champion_stack(["v1"], "v2", "v3", rollback=False) == ["v1", "v2"]
    assert lifecycle.champion_stack(["v1", "v2"], "v3", "v2", rollback=True) == ["v1"]
    with pytest.raises(RegistryError, match="v1 is not the champion before v3"):
        lifecycle.champion_stack(["v1", "v2"], "v3", "v1", rollback=True)

"""The model lifecycle: the roles a registry version moves through and which moves are allowed, as data.

One table, checked in one place (:func:`check_change`, which the registry calls for every role it writes), so the
registry, the promotion actions and the learning loop cannot disagree on what may happen to a model (the pattern of
``streaming/state.py``). Staying in a role is never a change. The table is what the code did before it was written
down: the loop's gold gate, promote / reject / rollback, the pointer swaps that demote, and the first champions of
the bootstrap, ``models init`` and a first training.
"""

from __future__ import annotations

from dataclasses import dataclass

from visionloop.core.contracts import ModelRole
from visionloop.core.errors import RegistryError


class IllegalRoleChange(RegistryError):
    """A role change the lifecycle does not allow (or allows only with force); the message names the allowed ones."""


@dataclass(frozen=True)
class RoleChange:
    old: ModelRole
    new: ModelRole
    action: str  # what makes the change, in the operator's words
    forced: bool = False  # only by an explicit act that overrides the verdicts (promote --force, a rollback)


_C, _S, _P, _R, _X = (
    ModelRole.CANDIDATE,
    ModelRole.SHADOW,
    ModelRole.CHAMPION,
    ModelRole.RETIRED,
    ModelRole.REJECTED,
)

TRANSITIONS: tuple[RoleChange, ...] = (
    RoleChange(_C, _S, "the gold gate passed"),
    RoleChange(_C, _X, "rejected (the gold gate failed, or an operator)"),
    RoleChange(_C, _P, "promoted, or made the first champion (bootstrap, models init, a first training)"),
    RoleChange(_S, _P, "promoted"),
    RoleChange(_S, _C, "replaced by another shadow, or the shadow cleared"),
    RoleChange(_S, _X, "rejected"),
    RoleChange(_P, _R, "replaced by another champion"),
    RoleChange(_R, _P, "rolled back to, or promoted again"),
    RoleChange(_R, _X, "rolled back from, or rejected by an operator"),
    # A rejected model serves again only when someone overrides the verdict: a forced promotion, a rollback to it
    # (rejected while retired), the bootstrap taking its own model back from an untrained champion.
    RoleChange(_X, _P, "promoted by force, or rolled back to", forced=True),
)

_BY_PAIR: dict[tuple[ModelRole, ModelRole], RoleChange] = {(t.old, t.new): t for t in TRANSITIONS}

ALLOWED: dict[ModelRole, frozenset[ModelRole]] = {
    role: frozenset(t.new for t in TRANSITIONS if t.old is role) for role in ModelRole
}

# What a version becomes when the pointer it held moves to another version.
DEMOTED: dict[ModelRole, ModelRole] = {ModelRole.CHAMPION: ModelRole.RETIRED, ModelRole.SHADOW: ModelRole.CANDIDATE}


def role_of(value: str | None) -> ModelRole:
    """A role read from the registry's files; none recorded is a candidate (what a new version starts as)."""
    if value is None:
        return ModelRole.CANDIDATE
    try:
        return ModelRole(value)
    except ValueError:
        known = ", ".join(r.value for r in ModelRole)
        raise RegistryError(f"unknown model role '{value}' in the registry (known: {known})") from None


def transition(old: ModelRole | str, new: ModelRole | str) -> RoleChange | None:
    """The table's row for ``old`` -> ``new``; None when the table has none (staying put included)."""
    return _BY_PAIR.get((role_of(old), role_of(new)))


def can_change(old: ModelRole | str, new: ModelRole | str, *, force: bool = False) -> bool:
    """Whether ``old`` -> ``new`` is a change the table makes (with ``force`` where it needs it)."""
    found = transition(old, new)
    return found is not None and (force or not found.forced)


def needs_force(old: ModelRole | str, new: ModelRole | str) -> bool:
    found = transition(old, new)
    return found is not None and found.forced


def refusal(version: str, old: ModelRole | str, new: ModelRole | str, *, force: bool = False) -> str | None:
    """Why ``version`` may not go from ``old`` to ``new``; None when it may (or stays where it is)."""
    old, new = role_of(old), role_of(new)
    if old is new or can_change(old, new, force=force):
        return None
    found = _BY_PAIR.get((old, new))
    if found is not None:
        return f"model version {version} is {old.value}: {old.value} -> {new.value} needs force ({found.action})"
    targets = ", ".join(f"{t.new.value} ({t.action})" for t in TRANSITIONS if t.old is old) or "nothing"
    return f"model version {version} cannot go from {old.value} to {new.value} (from {old.value}: {targets})"


def check_change(version: str, old: ModelRole | str, new: ModelRole | str, *, force: bool = False) -> None:
    """Raise :class:`IllegalRoleChange` unless the table allows ``old`` -> ``new`` (staying put always is)."""
    reason = refusal(version, old, new, force=force)
    if reason is not None:
        raise IllegalRoleChange(reason)


def demotion(pointer: ModelRole, current: ModelRole | str) -> ModelRole:
    """The role of a version whose ``pointer`` (champion or shadow) moved away; a rejected one stays rejected."""
    current = role_of(current)
    return current if current is ModelRole.REJECTED else DEMOTED[pointer]


def champion_stack(stack: list[str], previous: str | None, new: str | None, rollback: bool) -> list[str]:
    """The champions a rollback returns to, after a champion change: a new champion pushes the old one; a rollback
    pops the one it returns to."""
    if not rollback:
        return [*stack, previous] if previous else stack
    if not stack or stack[-1] != new:
        raise RegistryError(f"{new} is not the champion before {previous}")
    return stack[:-1]

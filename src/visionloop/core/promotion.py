"""Promote, reject and roll back: the operator's (or the loop's) decisions on the registry pointers, audited.

Each action changes the pointers (serving follows them: every Detector replica watches ``pointers.json``) and puts
one event on the events stream saying who acted (a named API token, 'cli:<user>' or 'auto'), when, the versions and
the A/B statistics the action rested on. The CLI, the API and the loop worker all call these functions, so the
rules are the same whichever way an operator acts. Which role may follow which is the lifecycle's table
(:mod:`core.lifecycle`); what is added here is the operator's side: a verdict to promote on, a predecessor to roll
back to.
"""

from __future__ import annotations

from typing import Any

from visionloop.core import lifecycle
from visionloop.core.contracts import ModelRole
from visionloop.core.errors import RegistryError
from visionloop.core.events import EventLog
from visionloop.core.registry import ModelRegistry


class PromotionRefused(RegistryError):
    """The action is not allowed as asked (no PROMOTE verdict, nothing to roll back to); the message says why."""


def _snapshot(verdict: dict[str, Any] | None) -> dict[str, Any] | None:
    """The numbers an audit reader needs from a verdict (the full verdict stays in decisions.json)."""
    if verdict is None:
        return None
    boot = verdict.get("bootstrap", {})
    return {
        "decision": verdict.get("decision"),
        "reason": verdict.get("reason"),
        "difference": boot.get("difference"),
        "ci": [boot.get("ci_low"), boot.get("ci_high")],
        "n_frames": boot.get("n_frames"),
        "mcnemar_p": verdict.get("mcnemar", {}).get("p_value"),
    }


def promote(
    registry: ModelRegistry, events: EventLog, version: str | None = None, by: str = "operator", force: bool = False
) -> dict[str, Any]:
    """Make ``version`` (default: the shadow) the champion.

    Without ``force`` the version's last A/B verdict must be PROMOTE: promoting on a hunch is possible, but it is
    recorded as forced. A version whose role may become champion only by force (a rejected one) needs it too.
    """
    target = version or registry.pointers()["shadow"]
    if target is None:
        raise PromotionRefused("nothing to promote: no version given and no shadow is running")
    model = registry.get(target)
    champion = registry.pointers()["champion"]
    if target == champion:
        raise PromotionRefused(f"{target} is already the champion")
    verdict = registry.decision(target)
    if not force:
        refused = lifecycle.refusal(target, model.meta["role"], ModelRole.CHAMPION)
        if refused is not None:
            raise PromotionRefused(f"{refused}; pass force to promote it anyway")
        if verdict is None or verdict.get("decision") != "promote":
            last = "none yet" if verdict is None else f"{verdict.get('decision')}: {verdict.get('reason')}"
            raise PromotionRefused(
                f"{target} has no PROMOTE verdict from the A/B (last verdict: {last}); pass force to promote it anyway"
            )
    registry.set_pointer(ModelRole.CHAMPION, target, action="promote", by=by, force=force)
    record = {"by": by, "from": champion, "to": target, "forced": force, "ab": _snapshot(verdict)}
    events.publish("model_promoted", **record)
    return {"action": "promote", **record, "pointers": registry.pointers()}


def rollback(registry: ModelRegistry, events: EventLog, by: str = "operator") -> dict[str, Any]:
    """Return to the champion before the current one; the current one is marked rejected (it lost in production)."""
    previous = registry.previous_champions()
    champion = registry.pointers()["champion"]
    if not previous or champion is None:
        raise PromotionRefused("nothing to roll back to: the champion has no predecessor in the pointer history")
    target = previous[-1]
    registry.set_pointer(ModelRole.CHAMPION, target, action="rollback", by=by, rollback=True)
    registry.set_role(champion, ModelRole.REJECTED)
    record = {"by": by, "from": champion, "to": target}
    events.publish("model_rolled_back", **record)
    return {"action": "rollback", **record, "pointers": registry.pointers()}


def reject(registry: ModelRegistry, events: EventLog, version: str, by: str = "operator") -> dict[str, Any]:
    """Mark a candidate, the shadow or a retired version rejected (a shadow stops running); the champion is rolled
    back, not rejected."""
    refused = lifecycle.refusal(version, registry.get(version).meta["role"], ModelRole.REJECTED)
    pointers = registry.pointers()
    if version == pointers["champion"] or refused is not None:  # the champion leaves by a rollback, which rejects it
        raise PromotionRefused(f"{refused or f'{version} is the champion'}: roll back instead of rejecting it")
    if version == pointers["shadow"]:
        registry.set_pointer(ModelRole.SHADOW, None, action="reject", by=by)
    registry.set_role(version, ModelRole.REJECTED)
    record = {"by": by, "version": version, "ab": _snapshot(registry.decision(version))}
    events.publish("model_rejected", **record)
    return {"action": "reject", **record, "pointers": registry.pointers()}


def history(registry: ModelRegistry, limit: int | None = 50) -> dict[str, Any]:
    """Pointer changes (newest last), the rollback stack and each version's role and last verdict."""
    versions = []
    for model in registry.versions():
        verdict = registry.decision(model.version)
        versions.append({"version": model.version, "role": model.meta.get("role"), "ab": _snapshot(verdict)})
    return {
        "pointers": registry.pointers(),
        "previous_champions": registry.previous_champions(),
        "changes": registry.history(limit),
        "versions": versions,
    }

"""Champion, shadow, lineage and the A/B numbers, from the API's ``/v1/models`` answer (registry meta in it)."""

from __future__ import annotations

from typing import Any

LINEAGE_DEPTH = 20


def versions_by_name(models: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(v["version"]): v for v in models.get("versions", []) if isinstance(v, dict) and "version" in v}


def lineage(models: dict[str, Any], version: str | None) -> list[str]:
    """``version``, its parent, the parent's parent...: the chain of fine-tunes back to the first model."""
    known = versions_by_name(models)
    chain: list[str] = []
    current = version
    while current and current not in chain and len(chain) < LINEAGE_DEPTH:
        chain.append(current)
        parent = known.get(current, {}).get("parent")
        current = str(parent) if parent else None
    return chain


def ab_summary(models: dict[str, Any], version: str | None) -> dict[str, Any] | None:
    """The paired statistics of the version's last A/B verdict, flat; None when it has none."""
    verdict = versions_by_name(models).get(version or "", {}).get("ab")
    if not isinstance(verdict, dict):
        return None
    boot = verdict.get("bootstrap") or {}
    mcnemar = verdict.get("mcnemar") or {}
    return {
        "decision": verdict.get("decision"),
        "reason": verdict.get("reason"),
        "map50_difference": boot.get("difference"),
        "ci_low": boot.get("ci_low"),
        "ci_high": boot.get("ci_high"),
        "champion_map50": boot.get("champion_map50"),
        "challenger_map50": boot.get("challenger_map50"),
        "n_frames": boot.get("n_frames", mcnemar.get("n_frames")),
        "mcnemar_p": mcnemar.get("p_value"),
        "frames_needed": verdict.get("frames_needed"),
        "decided": verdict.get("ts"),
    }


def version_row(models: dict[str, Any], version: str | None) -> dict[str, Any]:
    """What the page shows about one version: role, parent, data set, gold mAP50 per gold set, how it was made."""
    meta = versions_by_name(models).get(version or "", {})
    gold = meta.get("gold") if isinstance(meta.get("gold"), dict) else {}
    metrics = meta.get("metrics") or {}
    if not gold and meta.get("gold_dataset") and isinstance(metrics, dict) and isinstance(metrics.get("map50"), float):
        gold = {str(meta["gold_dataset"]): metrics["map50"]}  # the bootstrap model: scored on its gold set at training
    return {
        "version": version,
        "role": meta.get("role"),
        "parent": meta.get("parent"),
        "source": meta.get("source"),
        "dataset": meta.get("dataset_version"),
        "gold mAP50": ", ".join(f"{k} {float(v):.3f}" for k, v in (gold or {}).items() if isinstance(v, int | float)),
        "created": meta.get("created"),  # Unix time; the page formats it
    }

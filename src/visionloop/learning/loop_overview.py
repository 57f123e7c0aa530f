"""Where the learning loop stands, read from the registry and the data sets alone (no worker, no Redis needed)."""

from __future__ import annotations

from typing import Any

from visionloop.core.registry import ModelRegistry
from visionloop.core.settings import Settings
from visionloop.learning.arms import counts_by_sampler
from visionloop.learning.challenger import LABELS_META, baseline_labels, find_job_version, job_key, new_label_count
from visionloop.learning.datasets import DatasetStore


def overview(settings: Settings) -> dict[str, Any]:
    """The pointers, the latest labels, how many of them are new to the champion, and the job they make."""
    registry, store = ModelRegistry(settings.var.models), DatasetStore(settings.var.datasets)
    pointers = registry.pointers()
    out: dict[str, Any] = {"pointers": pointers, "min_new_labels": settings.loop.min_new_labels}
    versions = store.versions(settings.loop.labels_dataset)
    if pointers["champion"] is None or not versions:
        return {**out, "labels": versions[-1].ref if versions else None}
    champion, labels = registry.get(pointers["champion"]), versions[-1]
    key = job_key(settings, champion.version, labels.ref)
    done = find_job_version(registry, key)
    decision = registry.decision(pointers["shadow"]) if pointers["shadow"] else None
    out.update(
        labels=labels.ref,
        label_counts=counts_by_sampler(labels),
        new_labels=new_label_count(store, labels, baseline_labels(registry, champion)),
        job=key,
        job_version=done.version if done else None,
        shadow_decision={k: decision.get(k) for k in ("decision", "reason", "ts", LABELS_META)} if decision else None,
    )
    return out

"""Settings of explaining: SHAP explanations of single detections."""

from __future__ import annotations

from pydantic import Field

from visionloop.core.settings.base import StrictModel


class ExplainSettings(StrictModel):
    """SHAP explanations of single detections (off the hot path, cached)."""

    enabled: bool = Field(default=True, description="Run the explanation worker with the service.")
    max_evals: int = Field(
        default=400, ge=50, description="Masked images SHAP's Partition explainer may score for one explanation."
    )
    batch_size: int = Field(default=50, gt=0, description="Masked images scored per model call.")
    mask_value: int = Field(default=128, ge=0, le=255, description="Grey level hiding a masked region.")
    iou_match: float = Field(
        default=0.5, ge=0, le=1, description="Least IoU of a raw candidate with the box for it to count."
    )
    num_cpus: float = Field(
        default=0.0,
        ge=0,
        description="CPUs Ray reserves for the worker. It runs niced, so it yields without a reservation; one would "
        "take CPU away from training tasks on a small machine.",
    )
    nice: int = Field(default=10, ge=0, le=19, description="Niceness of the worker: it yields to the hot path.")
    cache_size: int = Field(default=200, gt=0, description="Explanations kept in Redis (oldest dropped).")

"""Settings of monitoring: drift and accuracy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from visionloop.core.settings.base import StrictModel

DriftTest = Literal["appearance_mmd", "confidence_ks", "confidence_psi", "class_chi2", "count_ks", "box_size_ks"]
DEFAULT_ALARM_TESTS: tuple[DriftTest, ...] = ("appearance_mmd", "confidence_ks", "confidence_psi")


class DriftSettings(StrictModel):
    """Drift and accuracy monitoring: sampled frames summarised, windows compared with a reference window."""

    enabled: bool = Field(default=True, description="Sample answered frames and run the drift monitor.")
    sample_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="Least time between two sampled frames of one camera (consecutive video frames are near "
        "copies; sampling sparsely keeps a window's frames close to independent).",
    )
    window_size: int = Field(default=60, ge=10, description="Sampled frames per window (per camera and overall).")
    alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Family-wise false-alarm rate of one window: the p-values of every test are Bonferroni-combined.",
    )
    psi_threshold: float = Field(default=0.25, gt=0, description="PSI of confidences above this also counts as drift.")
    persistence: int = Field(
        default=3, gt=0, description="Windows in a row in drift before the alarm is raised (and it clears alike)."
    )
    permutations: int = Field(default=200, ge=20, description="Permutations of the MMD test of frame appearance.")
    min_appearance_shift: float = Field(
        default=0.2,
        ge=0,
        description="Least shift of the mean appearance (noise-corrected) for the MMD test to count: frames of one "
        "scene are not exchangeable (objects move), so a significant but tiny shift is not drift.",
    )
    alarm_tests: list[DriftTest] = Field(
        default_factory=lambda: list(DEFAULT_ALARM_TESTS),
        min_length=1,
        description="Tests whose drift raises the alarm (the Bonferroni factor counts these). The content tests "
        "(class_chi2: the class mix, count_ks: objects per frame, box_size_ks: box sizes) are still computed and "
        "shown, but by default raise none: on a site's cameras they follow the traffic (busy and quiet stretches, "
        "the same objects over many frames), not the domain.",
    )
    samples_maxlen: int = Field(default=20_000, gt=0, description="Approximate cap of the drift-samples stream.")
    samples_retention_s: float = Field(
        default=300.0,
        ge=0,
        description="Drift samples older than this leave their stream (the monitor reads them within seconds; the "
        "latency alert looks 300 s back), so its memory is the sampling rate times this. 0: by samples_maxlen alone.",
    )
    results_maxlen: int = Field(default=5_000, gt=0, description="Approximate cap of the drift stream (windows).")
    accuracy_window: int = Field(
        default=200, ge=10, description="Latest random-arm labelled frames the rolling accuracy is computed on."
    )
    min_accuracy_frames: int = Field(
        default=20, ge=1, description="Random-arm labels needed before accuracy is reported."
    )
    poll_interval_s: float = Field(default=1.0, gt=0, description="How often the monitor reads new samples.")

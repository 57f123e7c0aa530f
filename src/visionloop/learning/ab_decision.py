"""Promote, reject or keep shadowing: the A/B decision from the paired statistics plus two guards.

The decision is a pure function of numbers so that it can be replayed and audited: :class:`ABVerdict` carries the
decision, the reason in words and every number it rests on (``to_dict()`` is JSON for the audit log).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from visionloop.core.settings import ABSettings
from visionloop.learning.ab_stats import BootstrapResult, FrameMatches, McNemarResult, mcnemar, paired_bootstrap


class Decision(StrEnum):
    PROMOTE = "promote"
    REJECT = "reject"
    CONTINUE = "continue"


@dataclass(frozen=True)
class Guards:
    """What accuracy on shadow frames does not show: speed (p99 latency) and the fixed gold set (no forgetting)."""

    champion_p99_latency_ms: float
    challenger_p99_latency_ms: float
    champion_gold_map50: float
    challenger_gold_map50: float

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")


@dataclass(frozen=True)
class ABVerdict:
    decision: Decision
    reason: str
    bootstrap: BootstrapResult
    mcnemar: McNemarResult
    guards: Guards
    latency_ok: bool
    gold_ok: bool
    frames_needed: int | None  # an estimate of further labelled frames (CONTINUE only); None: no estimate
    settings: ABSettings

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "reason": self.reason,
            "bootstrap": asdict(self.bootstrap),
            "mcnemar": asdict(self.mcnemar),
            "guards": asdict(self.guards),
            "latency_ok": self.latency_ok,
            "gold_ok": self.gold_ok,
            "frames_needed": self.frames_needed,
            "frames_needed_is_estimate": self.frames_needed is not None,
            "settings": self.settings.model_dump(mode="json"),
        }


def frames_to_settle(bootstrap: BootstrapResult, min_gain: float) -> int | None:
    """Estimated total frames at which the CI would settle, if the mean difference stayed where it is.

    The CI half-width shrinks like 1/sqrt(n): h(n') = h * sqrt(n / n'). Promotion needs d - h(n') > min_gain and
    rejection d + h(n') < 0, so n' = n * (h / margin)^2. None when neither can happen at this difference
    (0 <= d <= min_gain) or there is nothing to scale. An estimate: d itself will move as frames arrive.
    """
    d, n = bootstrap.difference, bootstrap.n_frames
    half = (bootstrap.ci_high - bootstrap.ci_low) / 2
    if n == 0:
        return None
    if d > min_gain:
        margin = d - min_gain
    elif d < 0:
        margin = -d
    else:
        return None
    return max(n, math.ceil(n * (half / margin) ** 2))


def decide(bootstrap: BootstrapResult, stats: McNemarResult, guards: Guards, settings: ABSettings) -> ABVerdict:
    """PROMOTE when the CI's lower bound clears min_gain and both guards hold; REJECT when a guard fails or the CI
    lies below 0; otherwise CONTINUE (always while fewer than min_frames frames are labelled).

    Guards are checked first: a challenger that is too slow or forgets the gold set is rejected however accurate it
    is on shadow frames. McNemar does not gate: it is reported as a check at the operating threshold, while the
    decision rests on mAP50, the number the champion was chosen by.
    """
    n = bootstrap.n_frames
    latency_limit = guards.champion_p99_latency_ms * settings.max_latency_ratio
    latency_ok = guards.challenger_p99_latency_ms <= latency_limit
    gold_floor = guards.champion_gold_map50 - settings.max_gold_regression
    gold_ok = guards.challenger_gold_map50 >= gold_floor
    ci = f"mAP50 difference {bootstrap.difference:+.4f}, {bootstrap.confidence:.0%} CI [{bootstrap.ci_low:+.4f}, "
    ci += f"{bootstrap.ci_high:+.4f}] on {n} frames"

    def verdict(decision: Decision, reason: str, needed: int | None = None) -> ABVerdict:
        return ABVerdict(decision, reason, bootstrap, stats, guards, latency_ok, gold_ok, needed, settings)

    failed = []
    if not latency_ok:
        failed.append(
            f"challenger p99 latency {guards.challenger_p99_latency_ms:.1f} ms exceeds {latency_limit:.1f} ms "
            f"({settings.max_latency_ratio} x champion's {guards.champion_p99_latency_ms:.1f} ms)"
        )
    if not gold_ok:
        failed.append(
            f"challenger gold mAP50 {guards.challenger_gold_map50:.4f} is below {gold_floor:.4f} (champion's "
            f"{guards.champion_gold_map50:.4f} - {settings.max_gold_regression})"
        )
    if failed:
        return verdict(Decision.REJECT, "guard failed: " + "; ".join(failed) + f" ({ci})")
    total = frames_to_settle(bootstrap, settings.min_gain)
    if n < settings.min_frames:
        needed = max(total or 0, settings.min_frames) - n
        return verdict(
            Decision.CONTINUE,
            f"only {n} of the {settings.min_frames} labelled frames needed before deciding ({ci}); estimated "
            f"{needed} more frames",
            needed,
        )
    if bootstrap.ci_low > settings.min_gain:
        return verdict(Decision.PROMOTE, f"CI lower bound clears min_gain {settings.min_gain} and guards hold ({ci})")
    if bootstrap.ci_high < 0:
        return verdict(Decision.REJECT, f"challenger is worse: CI upper bound below 0 ({ci})")
    if total is None:
        return verdict(
            Decision.CONTINUE,
            f"undecided ({ci}); at this difference more frames would not clear min_gain {settings.min_gain} "
            "nor show the challenger worse, so no estimate of frames needed",
        )
    needed = max(total - n, 1)
    return verdict(Decision.CONTINUE, f"undecided ({ci}); estimated {needed} more frames at this difference", needed)


def run_ab(
    champion: Sequence[FrameMatches],
    challenger: Sequence[FrameMatches],
    guards: Guards,
    settings: ABSettings,
    operating_threshold: float,
    strata: Sequence[int] | None = None,
) -> ABVerdict:
    """Both statistics on the cached per-frame matches, then :func:`decide`. ``strata``: sizes of the evaluation
    sets the frames come in, consecutively, for a bootstrap where each set weighs the same (ab_stats)."""
    boot = paired_bootstrap(
        champion, challenger, settings.bootstrap_resamples, settings.confidence, settings.seed, strata
    )
    return decide(boot, mcnemar(champion, challenger, operating_threshold), guards, settings)

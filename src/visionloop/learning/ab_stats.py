"""Paired statistics of a champion/challenger A/B on the same human-labelled frames.

Both models see the same frames, so the comparison is paired: every resample and every test works on frame pairs,
which cancels the frame-to-frame difficulty that dominates an unpaired comparison. Matching and AP are Ultralytics'
validator code (``match_predictions`` at IoU 0.5, ``ap_per_class``), as in :mod:`learning.evaluation`, so the mAP50
here is the number the rest of visionloop reports. Each model's matches are computed once per frame and cached in a
:class:`FrameMatches`; the bootstrap only re-indexes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from visionloop.core.offline import require_prepared

MATCH_IOU = 0.5

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _frozen(array: npt.ArrayLike, dtype: type[Any]) -> Any:
    out = np.array(array, dtype=dtype)  # a copy: the cache must not change under a caller's later writes
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class FrameMatches:
    """One model's predictions on one labelled frame, matched once against the frame's ground truth.

    Predictions are sorted by descending confidence; ``tp[i]`` says prediction ``i`` matched a ground-truth box of
    its class at IoU >= 0.5. Those, the confidences, the predicted and the target classes are exactly what
    Ultralytics' ``ap_per_class`` takes, so any subset of frames can be scored without matching again.
    """

    tp: BoolArray
    confidence: FloatArray
    pred_class: IntArray
    target_class: IntArray

    def correct_at(self, threshold: float) -> bool:
        """The frame's outcome at an operating threshold, for McNemar.

        Correct means every ground-truth box is matched (IoU >= 0.5, right class) by a prediction with confidence
        >= ``threshold`` and no prediction at or above ``threshold`` is left unmatched (no false alarm). Reading it
        off the cached flags is exact because Ultralytics matches greedily in descending confidence: predictions
        below the threshold are matched after every one above it and cannot change their flags.
        """
        kept = self.tp[self.confidence >= threshold]
        return bool(kept.all()) and int(kept.sum()) == len(self.target_class)


def match_frame(
    truth_xyxy: npt.ArrayLike,
    truth_class: npt.ArrayLike,
    pred_xyxy: npt.ArrayLike,
    pred_confidence: npt.ArrayLike,
    pred_class: npt.ArrayLike,
) -> FrameMatches:
    """Match one model's predictions on one frame with Ultralytics' validator matching at IoU 0.5.

    Pass every prediction down to a low confidence (as for mAP), not only those above the operating threshold.
    Needs :func:`visionloop.offline.prepare_ultralytics` first (importing Ultralytics would otherwise go online).
    """
    t_xyxy = np.asarray(truth_xyxy, np.float32).reshape(-1, 4)
    t_cls = np.asarray(truth_class, np.int64).reshape(-1)
    p_xyxy = np.asarray(pred_xyxy, np.float32).reshape(-1, 4)
    p_conf = np.asarray(pred_confidence, np.float64).reshape(-1)
    p_cls = np.asarray(pred_class, np.int64).reshape(-1)
    if len(t_xyxy) != len(t_cls):
        raise ValueError(f"{len(t_xyxy)} ground-truth boxes but {len(t_cls)} classes")
    if not len(p_xyxy) == len(p_conf) == len(p_cls):
        raise ValueError(f"predictions disagree: {len(p_xyxy)} boxes, {len(p_conf)} confidences, {len(p_cls)} classes")
    order = np.argsort(-p_conf, kind="stable")
    p_xyxy, p_conf, p_cls = p_xyxy[order], p_conf[order], p_cls[order]
    tp = np.zeros(len(p_cls), bool)
    if len(t_cls) and len(p_cls):
        require_prepared()
        import torch
        from ultralytics.engine.validator import BaseValidator
        from ultralytics.utils.metrics import box_iou

        validator = BaseValidator.__new__(BaseValidator)  # only its matching method is used
        validator.iouv = torch.tensor([MATCH_IOU])  # type: ignore[assignment]
        iou = box_iou(torch.from_numpy(t_xyxy), torch.from_numpy(p_xyxy))
        correct = validator.match_predictions(torch.from_numpy(p_cls), torch.from_numpy(t_cls), iou)
        tp = correct.cpu().numpy()[:, 0].astype(bool)
    return FrameMatches(
        _frozen(tp, np.bool_), _frozen(p_conf, np.float64), _frozen(p_cls, np.int64), _frozen(t_cls, np.int64)
    )


class _Stacked:
    """All frames' cached matches concatenated once, so a resample is two gathers instead of a Python loop."""

    def __init__(self, frames: Sequence[FrameMatches]) -> None:
        self.n_frames = len(frames)
        self.tp = np.concatenate([f.tp for f in frames]) if frames else np.zeros(0, bool)
        self.conf = np.concatenate([f.confidence for f in frames]) if frames else np.zeros(0)
        self.pred_cls = np.concatenate([f.pred_class for f in frames]) if frames else np.zeros(0, np.int64)
        self.target_cls = np.concatenate([f.target_class for f in frames]) if frames else np.zeros(0, np.int64)
        self.n_pred = np.array([len(f.tp) for f in frames], np.int64)
        self.n_target = np.array([len(f.target_class) for f in frames], np.int64)
        self.pred_start = np.concatenate([[0], np.cumsum(self.n_pred)[:-1]]).astype(np.int64)
        self.target_start = np.concatenate([[0], np.cumsum(self.n_target)[:-1]]).astype(np.int64)

    def map50(self, indices: npt.NDArray[np.intp] | None = None) -> float:
        if indices is None:
            return _ap50(self.tp, self.conf, self.pred_cls, self.target_cls)
        rows = _rows(self.pred_start[indices], self.n_pred[indices])
        targets = _rows(self.target_start[indices], self.n_target[indices])
        return _ap50(self.tp[rows], self.conf[rows], self.pred_cls[rows], self.target_cls[targets])


def _rows(starts: IntArray, counts: IntArray) -> IntArray:
    """Row numbers of the concatenated ranges [start, start + count), in order (repeats allowed)."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)


def _ap50(tp: BoolArray, conf: FloatArray, pred_cls: IntArray, target_cls: IntArray) -> float:
    """Ultralytics' mAP50: mean AP over the classes present in the targets (0.0 when there are none)."""
    if len(target_cls) == 0:
        return 0.0
    require_prepared()
    from ultralytics.utils.metrics import ap_per_class

    ap = ap_per_class(tp[:, None], conf, pred_cls, target_cls)[5]
    return float(ap[:, 0].mean()) if len(ap) else 0.0


def map50(frames: Sequence[FrameMatches], indices: npt.ArrayLike | None = None) -> float:
    """mAP50 of one model over a subset of frames (frame indices, repeats allowed), from the cached matches."""
    picked = None if indices is None else np.asarray(indices, np.intp).reshape(-1)
    return _Stacked(frames).map50(picked)


def _check_pairs(champion: Sequence[FrameMatches], challenger: Sequence[FrameMatches]) -> None:
    if len(champion) != len(challenger):
        raise ValueError(f"unpaired: {len(champion)} champion frames, {len(challenger)} challenger frames")
    for index, (a, b) in enumerate(zip(champion, challenger, strict=True)):
        if not np.array_equal(np.sort(a.target_class), np.sort(b.target_class)):
            raise ValueError(f"frame {index}: the two models were matched against different ground truth")


@dataclass(frozen=True)
class BootstrapResult:
    """The mAP50 difference (challenger - champion) on all frames and its paired percentile CI."""

    difference: float
    ci_low: float
    ci_high: float
    champion_map50: float
    challenger_map50: float
    n_frames: int
    resamples: int
    confidence: float
    seed: int


def paired_bootstrap(
    champion: Sequence[FrameMatches],
    challenger: Sequence[FrameMatches],
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    strata: Sequence[int] | None = None,
) -> BootstrapResult:
    """Paired bootstrap of the mAP50 difference: each resample draws frame indices with replacement and scores
    BOTH models on those same indices, so the CI reflects model difference, not which frames happened to be drawn.
    mAP is not a mean of per-frame numbers, hence a bootstrap rather than a t-interval.

    ``strata``: sizes of consecutive groups of frames (evaluation sets: the site's random arm, each gold set).
    Then the difference is the mean over the non-empty groups of each group's mAP50 difference, and frames are
    resampled within their group: every set weighs the same however many frames it holds, so 200 gold frames of
    the old domain do not drown the few dozen frames of the site the cameras see now."""
    _check_pairs(champion, challenger)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(champion)
    a, b = _Stacked(champion), _Stacked(challenger)
    if n == 0:
        return BootstrapResult(0.0, 0.0, 0.0, 0.0, 0.0, 0, resamples, confidence, seed)
    sizes = [n] if strata is None else [int(k) for k in strata]
    if sum(sizes) != n or min(sizes) < 0:
        raise ValueError(f"strata sizes {sizes} do not add up to the {n} frames")
    starts = np.cumsum([0, *sizes])[:-1]
    groups = [np.arange(start, start + size) for start, size in zip(starts, sizes, strict=True) if size]

    def scores(picks: list[npt.NDArray[np.intp]]) -> tuple[float, float]:
        if len(picks) == 1:
            return a.map50(picks[0]), b.map50(picks[0])
        return (float(np.mean([a.map50(p) for p in picks])), float(np.mean([b.map50(p) for p in picks])))

    champ, chall = (a.map50(), b.map50()) if strata is None else scores(groups)
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for r in range(resamples):
        picks = [group[rng.integers(0, len(group), size=len(group))] for group in groups]
        one, other = scores(picks)
        diffs[r] = other - one
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return BootstrapResult(chall - champ, float(low), float(high), champ, chall, n, resamples, confidence, seed)


@dataclass(frozen=True)
class McNemarResult:
    """Discordant frame pairs at the operating threshold and the exact two-sided McNemar p-value.

    ``b``: frames the champion got right and the challenger wrong; ``c``: the other way round.
    """

    b: int
    c: int
    p_value: float
    n_frames: int
    threshold: float


def mcnemar(champion: Sequence[FrameMatches], challenger: Sequence[FrameMatches], threshold: float) -> McNemarResult:
    """Exact McNemar test on per-frame outcomes (see :meth:`FrameMatches.correct_at`).

    Under no difference each discordant frame is a fair coin, so the exact test is a two-sided binomial test of
    ``c`` successes in ``b + c`` trials at p = 0.5; concordant frames carry no information.
    """
    from scipy.stats import binomtest

    _check_pairs(champion, challenger)
    first = np.array([f.correct_at(threshold) for f in champion], bool)
    second = np.array([f.correct_at(threshold) for f in challenger], bool)
    b, c = int((first & ~second).sum()), int((~first & second).sum())
    p_value = float(binomtest(c, b + c, 0.5).pvalue) if b + c else 1.0
    return McNemarResult(b, c, p_value, len(first), threshold)


def mcnemar_sample_size(discordant: float, difference: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Frames a paired McNemar design needs (Connor 1987), for sizing ``ab.min_frames``.

    ``discordant``: share of frames where exactly one model is right (p10 + p01); ``difference``: p01 - p10, the
    net share the challenger wins. n = (z_(1-alpha/2) sqrt(psi) + z_power sqrt(psi - delta^2))^2 / delta^2.
    """
    from scipy.stats import norm

    if not 0 < abs(difference) <= discordant <= 1:
        raise ValueError("need 0 < |difference| <= discordant <= 1")
    z_alpha, z_power = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    root = z_alpha * discordant**0.5 + z_power * (discordant - difference**2) ** 0.5
    return int(np.ceil(root**2 / difference**2))

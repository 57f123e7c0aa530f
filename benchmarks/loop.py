"""Learning-loop benchmark: one whole cycle through the real service after a domain shift, then decision trials.

The champion is the bootstrap model (domain A). A simulated site's four live RTSP cameras show the shift domain
(objects come and go; no frame repeats); the Router's selector sends frames to the local Label Studio, where the
SIMULATED labeler answers from the site's truth until ``--labels`` labels (the random control arm included) are
spent. The labeling worker cuts one data set
version from them; the loop worker reacts: it fine-tunes a challenger from the champion, gates it on the A gold set,
runs it as the shadow, takes the A/B decision and (``loop.auto_promote``) promotes it. The shift's gold set is
generated apart, where the loop cannot see it: it only measures, beside the cameras' own test sets: the site's
frames after the last one offered for labeling (``camera_*``) and its two unseen viewpoints (``unseen_*``).

Then ``decision_trials``: 20 seeded draws of ``ab.min_frames`` labelled frames of the shift (a pool the models were
not trained on); on each, the A/B decision for three pairs: the cycle's challenger vs the old champion (should
promote), a model fine-tuned on the challenger's data with 30% wrong labels vs the challenger (should not), and the
champion vs itself (should not).

Usage: python -m benchmarks.loop [--shift-domain B] [--labels 300] [--seed 0] [--trials 20]
Honours VISIONLOOP_WORLD__DOMAINS_FILE. Writes benchmarks/results/loop.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import cv2
from rich.console import Console

from benchmarks.loop_cycle import cycle_site, run_cycle, seed_var
from benchmarks.loop_report import decision_of, write_report
from benchmarks.loop_trials import (
    WRONG_LABEL_RATE,
    camera_oracle,
    corrupted_copy,
    decision_trials,
    fine_tune,
    map50,
    oracle,
    shift_sets,
)
from benchmarks.own_var import benchmark_settings
from visionloop.core.layout import VarLayout
from visionloop.core.model_setup import ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.learning.datasets import DatasetStore
from visionloop.simulation.bootstrap import run_bootstrap
from visionloop.simulation.site.testsets import site_test_sets

console = Console()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shift-domain", default="B")
    parser.add_argument("--labels", type=int, default=300, help="Label budget, the random arm included.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=None, help="Fine-tuning epochs (default: loop.epochs).")
    parser.add_argument(
        "--random-rate", type=float, default=None, help="labeling.random_rate during the cycle (default: the setting)."
    )
    parser.add_argument("--labeling-timeout-s", type=float, default=900, help="Stop labeling after this long.")
    parser.add_argument("--cycle-timeout-s", type=float, default=2400)
    parser.add_argument(
        "--site-seconds", type=float, default=600.0, help="Length of the site; labeling stops 120 s before its end."
    )
    parser.add_argument(
        "--trials-on",
        choices=("site", "stills"),
        default="site",
        help="Decision trials on the site's unseen cameras (default) or on stills of the shift domain.",
    )
    return parser.parse_args()


def recovery(score: float, shifted: float, oracle: float) -> float | None:
    """The share of the oracle's gain over the shifted champion that ``score`` recovers (None: no gain to recover)."""
    gap = oracle - shifted
    return round((score - shifted) / gap, 4) if gap > 0 else None


def main() -> None:
    args = parse_args()
    base = benchmark_settings("loop")
    prepare_ultralytics(ultralytics_config_dir(base))
    epochs = args.epochs or base.loop.epochs
    console.print("Bootstrap champion (trained once, cached under var/)...")
    boot = run_bootstrap(base, console).version
    store = DatasetStore(base.var.datasets)
    gold_a = store.get(boot.meta["gold_dataset"])

    var = VarLayout(base.resolved_var_dir() / "bench-loop" / f"{args.shift_domain}-s{args.seed}")
    registry, champion = seed_var(base, var, boot, store)

    measure = base.model_copy(
        update={"paths": base.paths.model_copy(update={"var_dir": base.resolved_var_dir() / "bench-cache"})}
    )
    gold_shift, pool = shift_sets(measure, args.shift_domain, args.seed)
    pre_shift = map50(base, champion.onnx_path, gold_a)
    shifted = map50(base, champion.onnx_path, gold_shift)
    console.print(f"champion {champion.version}: A gold mAP50 {pre_shift:.3f}, {args.shift_domain} gold {shifted:.3f}")
    oracle_map50, oracle_cached = oracle(
        measure, champion, args.shift_domain, args.seed, epochs, gold_shift, measure.resolved_var_dir() / "oracle"
    )
    console.print(
        f"oracle (1,000 labelled {args.shift_domain} frames): {oracle_map50:.3f}"
        + (" (cached)" if oracle_cached else "")
    )

    site = cycle_site(base, args)
    cycle = run_cycle(base, args, var.root, f"{gold_a.name}/{gold_a.version}", site)
    after_champion = registry.champion()
    after = map50(base, after_champion.onnx_path, gold_shift)
    after_a = map50(base, after_champion.onnx_path, gold_a)
    cameras = site_test_sets(DatasetStore(measure.var.datasets), f"bench-loop-{args.shift_domain}-s{args.seed}", site,
                             cycle["labels_until_s"] + 5.0)  # fmt: skip
    tests = {"camera": cameras["future"], "unseen": cameras["unseen"]}
    on_cameras = {
        f"{kind}_{when}_map50": round(map50(base, model.onnx_path, tests[kind]), 4)
        for kind in tests
        for when, model in (("shifted", champion), ("after", after_champion))
    }
    camera_oracle_scores, camera_oracle_cached = camera_oracle(
        base, champion, site, cycle["labels_until_s"], epochs, tests, measure.resolved_var_dir() / "oracle"
    )
    for kind in tests:
        on_cameras[f"{kind}_oracle_map50"] = round(camera_oracle_scores[kind], 4)
        on_cameras[f"{kind}_recovery"] = recovery(
            on_cameras[f"{kind}_after_map50"], on_cameras[f"{kind}_shifted_map50"], camera_oracle_scores[kind]
        )
    candidate = cycle["candidate"]
    candidate_meta = (candidate or {}).get("meta", {})
    result: dict[str, Any] = {
        "shift_domain": args.shift_domain,
        "seed": args.seed,
        "domains_file": str(base.domains_file()),
        "epochs": epochs,
        "labels_budget": args.labels,
        "random_rate": base.labeling.random_rate if args.random_rate is None else args.random_rate,
        "pre_shift_map50": round(pre_shift, 4),
        "shifted_map50": round(shifted, 4),
        "oracle_map50": round(oracle_map50, 4),
        "oracle_cached": oracle_cached,
        "after_map50": round(after, 4),
        "after_a_map50": round(after_a, 4),
        "forgetting": round(pre_shift - after_a, 4),
        "champion_after": after_champion.version,
        "recovery": recovery(after, shifted, oracle_map50),
        "labels_used": cycle["labels_used"],
        "edits_used": cycle["edits_used"],
        "labelling_s": cycle["labelling_s"],
        "cycle_s": cycle["cycle_s"],
        "training_s": candidate_meta.get("train_seconds"),
        "decision": decision_of(candidate),
        "candidate": candidate,
        "shadow_comparison": cycle["shadow"].get("comparison"),
        **on_cameras,
        "camera_oracle_cached": camera_oracle_cached,
        "camera_test_sets": {kind: version.ref for kind, version in cameras.items()},
        "labels_until_s": cycle["labels_until_s"],
    }
    if candidate is not None:
        challenger = registry.get(candidate["version"])
        result["challenger_map50"] = round(map50(base, challenger.onnx_path, gold_shift), 4)
        for kind in ("camera", "unseen"):  # what the challenger itself reached, promoted or not
            score = map50(base, challenger.onnx_path, tests[kind])
            result[f"challenger_{kind}_map50"] = round(score, 4)
            result[f"challenger_{kind}_recovery"] = recovery(
                score, on_cameras[f"{kind}_shifted_map50"], camera_oracle_scores[kind]
            )
        data = DatasetStore(var.datasets).get(challenger.meta["dataset_version"])
        with tempfile.TemporaryDirectory(prefix="bench-worse-") as tmp:
            noisy = corrupted_copy(data, base.model.class_names, WRONG_LABEL_RATE, args.seed, Path(tmp) / "data")
            worse = fine_tune(base, champion.torch_path, noisy, Path(tmp) / "run", epochs)
            models = {"champion": champion.onnx_path, "challenger": challenger.onnx_path, "worse": worse}
            gold_scores = {name: map50(base, path, gold_a) for name, path in models.items()}
            trials_pool = cameras["unseen"] if args.trials_on == "site" else pool
            result["decision_trials"] = decision_trials(base, models, gold_scores, trials_pool, args.trials, args.seed)
            result["decision_trials"]["pool"] = trials_pool.ref
            result["decision_trials"]["a_gold_map50"] = {k: round(v, 4) for k, v in gold_scores.items()}
            result["right_promotions"] = result["decision_trials"]["right_promotions"]
            result["false_promotions"] = (
                result["decision_trials"]["false_promotions_worse"]
                + result["decision_trials"]["false_promotions_identical"]
            )
    write_report(result, args.shift_domain, args.trials)


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()

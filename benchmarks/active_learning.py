"""Active-learning benchmark: gold mAP50 on a shifted domain per labels spent, the service's sampler vs random.

Start from the bootstrap model (trained on domain A); shift to each ``--shift-domain`` (B and C by default, read
from the world's domains file, so ``VISIONLOOP_WORLD__DOMAINS_FILE`` brings scenarios of your own). For every seed
and both arms, spend the same label budgets on one pool of that domain: (a) the frames the service's own composite
sampler picks (``labeling.selector.build_sampler``, ranked greedily over the pool with ``CompositeSampler.pick``),
(b) frames picked at random. Labels come from the world's ground truth (what the simulated labeler answers).

Each round continues fine-tuning from the previous round's weights, on every label bought so far plus replayed
domain-A images, for a fixed number of optimiser steps (so small budgets are not starved). Both arms of a seed share
the pool, the gold set and the recipe. Per step: the mean over seeds and a 95% t-interval; ``label_saving`` on the
mean curves with a bootstrap CI over seeds (benchmarks.al_stats). Writes benchmarks/results/active_learning.json
and a plot beside it.

Usage: python -m benchmarks.active_learning [--shift-domain B --shift-domain C] [--seeds 3] [--pool 400]
       [--steps 25,50,100] [--iterations 40] [--gold 300]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from benchmarks.al_stats import cost_saving, label_saving, mean_and_ci, saving_ci
from benchmarks.own_var import benchmark_settings
from visionloop.core.contracts import Detections, FrameResult
from visionloop.core.errors import ConfigError
from visionloop.core.model_setup import registry_for, ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.labeling.selector import build_sampler
from visionloop.learning.datasets import LabelledImage, read_yolo_source
from visionloop.learning.evaluation import predict_all, read_bgr, serving_map50
from visionloop.learning.export import export_onnx
from visionloop.learning.training import train
from visionloop.simulation.world import Domain, load_domains, write_clip_dataset, write_yolo_dataset

RESULTS = Path(__file__).resolve().parent / "results" / "active_learning.json"
ARMS = ("composite", "random")
STREAM_CAMERAS = 4  # --stream: the site's cameras the pool comes from
console = Console()


@dataclass(frozen=True)
class Scenario:
    """One seed of one shift: the pool to buy labels from, the gold set, replay images, the class names."""

    domain: str
    seed: int
    pool: list[LabelledImage]
    gold_yaml: Path
    replay: list[LabelledImage]
    names: list[str]


@dataclass(frozen=True)
class Recipe:
    steps: list[int]
    iterations: int
    replay_ratio: float


def domain_named(settings: Any, domain: str) -> Domain:
    domains = load_domains(settings.domains_file())
    if domain not in domains:
        raise ConfigError(f"no domain '{domain}' in {settings.domains_file()}; it has: {', '.join(sorted(domains))}")
    return domains[domain]


def world(settings: Any, domain: str, seed: int, images: int, out: Path) -> tuple[list[LabelledImage], list[str]]:
    write_yolo_dataset(domain_named(settings, domain), seed, images, out)
    items, names, _ = read_yolo_source(out)
    return items, names


def camera_pool(settings: Any, domain: str, seed: int, images: int, clip_frames: int, out: Path) -> list[LabelledImage]:
    """A pool as cameras give it: moving scenes, ``clip_frames`` near-duplicate frames of each (5 frames apart)."""
    write_clip_dataset(domain_named(settings, domain), seed, max(1, images // clip_frames), clip_frames, 5, out)
    return read_yolo_source(out)[0]


def stream_pool(settings: Any, domain: str, seed: int, images: int, out: Path) -> list[LabelledImage]:
    """A pool as a site's cameras produce it: STREAM_CAMERAS cameras of ``domain`` (each its viewpoint and traffic),
    one frame a second of each, from the start of the site on, with the truth of every frame."""
    from visionloop.simulation.site import SiteCamera, SiteSpec
    from visionloop.simulation.world.yolo_export import make_dataset_dirs, write_data_yaml, write_yolo_frame, yolo_row

    seconds = max(1, images // STREAM_CAMERAS)
    spec = SiteSpec(seed=seed, cameras=STREAM_CAMERAS, domain=domain, seconds=seconds)
    domains = load_domains(settings.domains_file())
    make_dataset_dirs(out)
    for name in spec.camera_names():
        camera = SiteCamera(spec, name, domains)
        for second in range(seconds):
            frame = camera.render(second * spec.fps)
            rows = [yolo_row(o.class_id, o.box, spec.width, spec.height) for o in frame.objects]
            write_yolo_frame(out, f"{name}_{frame.number:07d}", frame.image, rows)
    write_data_yaml(out, "images", "images")
    return read_yolo_source(out)[0]


def build_scenario(
    settings: Any,
    domain: str,
    seed: int,
    pool_size: int,
    gold_size: int,
    work: Path,
    clip_frames: int = 1,
    stream: bool = False,
) -> Scenario:
    """``clip_frames`` 1: a pool of independent stills; more: a camera-like pool of clips; ``stream``: the frames a
    site's cameras produced (gold stays stills)."""
    base = 100_000 * (seed + 1)  # far from the bootstrap's own seeds, different per seed
    pool, names = world(settings, domain, base + 1, pool_size, work / "pool")
    if stream:
        pool = stream_pool(settings, domain, base + 5, pool_size, work / "stream")
    elif clip_frames > 1:
        pool = camera_pool(settings, domain, base + 4, pool_size, clip_frames, work / "clips")
    gold_dir = work / "gold"
    world(settings, domain, base + 2, gold_size, gold_dir)
    gold_yaml = gold_dir / "data.yaml"
    gold_yaml.write_text(
        yaml.safe_dump({"path": str(gold_dir), "train": "images", "val": "images", "names": dict(enumerate(names))})
    )
    replay, _ = world(settings, "A", base + 3, pool_size // 2, work / "replay")
    return Scenario(domain, seed, pool, gold_yaml, replay, names)


def pool_kind(args: Any) -> str:
    if args.stream:
        return f"a site's stream ({STREAM_CAMERAS} cameras, one frame a second each)"
    return "stills" if args.clip_frames <= 1 else f"camera clips of {args.clip_frames} frames"


def data_yaml(work: Path, train_items: list[LabelledImage], val_dir: Path, names: list[str]) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "train.txt").write_text("\n".join(str(i.image) for i in train_items) + "\n")
    path = work / "data.yaml"
    path.write_text(
        yaml.safe_dump(
            {"path": str(work), "train": "train.txt", "val": str(val_dir), "names": dict(enumerate(names))},
            sort_keys=False,
        )
    )
    return path


def served_results(settings: Any, model_onnx: Path, items: list[LabelledImage], names: list[str]) -> list[FrameResult]:
    """What the service would answer for each frame: boxes at the serving confidence threshold."""
    results = []
    for found in predict_all(model_onnx, items, names, settings.serving.imgsz, "onnxruntime"):
        keep = found.confidence >= settings.serving.conf_threshold
        scores = None if found.class_scores is None else found.class_scores[keep]
        kept = Detections(found.xyxy[keep], found.confidence[keep], found.class_id[keep], class_scores=scores)
        results.append(FrameResult("pool", 0, 0.0, "bench", kept))
    return results


class Arm:
    """One arm's label buying: the composite sampler keeps its memory across rounds, as in the service."""

    def __init__(self, name: str, settings: Any, seed: int) -> None:
        self.name, self.settings = name, settings
        self.rng = random.Random(seed)
        self.sampler = build_sampler(settings, threshold=0.0, random_rate=0.0, seed=seed)

    def buy(self, model_onnx: Path, candidates: list[LabelledImage], k: int, names: list[str]) -> list[LabelledImage]:
        if self.name == "random":
            return self.rng.sample(candidates, k)
        results = served_results(self.settings, model_onnx, candidates, names)
        frames = [(result, read_bgr(item.image)) for result, item in zip(results, candidates, strict=True)]
        return [candidates[i] for i in self.sampler.pick(frames, k)]


def fine_tune(
    settings: Any, start: Path, train_items: list[LabelledImage], scenario: Scenario, recipe: Recipe, out: Path
) -> Path:
    """``recipe.iterations`` optimiser steps from ``start`` on the given images; returns the new weights."""
    batch = settings.training.batch
    epochs = max(1, math.ceil(recipe.iterations / math.ceil(len(train_items) / batch)))
    training = settings.training.model_copy(
        update={"epochs": epochs, "lr0": 0.001, "warmup_epochs": 0.0, "patience": 0, "close_mosaic": 0}
    )
    gold_images = scenario.gold_yaml.parent / "images"
    result = train(
        start,
        data_yaml(out, train_items, gold_images, scenario.names),
        training,
        out,
        ultralytics_config_dir(settings),
        overrides={"val": False},
    )
    return result.weights


def gold_map50(settings: Any, model_onnx: Path, scenario: Scenario) -> float:
    return serving_map50(settings, model_onnx, scenario.gold_yaml, scenario.names)


def run_arm(name: str, settings: Any, start_pt: Path, scenario: Scenario, recipe: Recipe, work: Path) -> dict[str, Any]:
    arm = Arm(name, settings, scenario.seed)
    replay_rng = random.Random(scenario.seed)
    bought: list[LabelledImage] = []
    weights, onnx = start_pt, export_onnx(start_pt, settings.serving.imgsz, work / f"{name}-start.onnx")
    curve, boxes = [], []
    for budget in recipe.steps:
        taken = {i.image for i in bought}
        candidates = [i for i in scenario.pool if i.image not in taken]
        bought += arm.buy(onnx, candidates, budget - len(bought), scenario.names)
        replay_count = min(len(scenario.replay), round(recipe.replay_ratio * len(bought)))
        replay = replay_rng.sample(scenario.replay, replay_count)
        step = work / f"{name}-{budget}"
        weights = fine_tune(settings, weights, bought + replay, scenario, recipe, step)
        onnx = export_onnx(weights, settings.serving.imgsz, step / "model.onnx")
        curve.append(gold_map50(settings, onnx, scenario))
        boxes.append(sum(len(i.labels) for i in bought))
        console.print(
            f"  {scenario.domain} seed {scenario.seed} {name}: {budget} labels ({boxes[-1]} boxes) "
            f"-> gold mAP50 {curve[-1]:.3f}"
        )
    return {"map50": curve, "boxes": boxes}


def summarise(labels: list[float], runs: list[dict[str, Any]]) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    for arm in ARMS:
        rows = [[run["start_map50"], *run[arm]["map50"]] for run in runs]
        mean, low, high = mean_and_ci(rows)
        arms[arm] = {
            "mean": mean,
            "ci_low": low,
            "ci_high": high,
            "boxes_mean": np.mean([run[arm]["boxes"] for run in runs], axis=0).tolist(),
        }
    sampler_rows = [[run["start_map50"], *run["composite"]["map50"]] for run in runs]
    random_rows = [[run["start_map50"], *run["random"]["map50"]] for run in runs]
    low, high = saving_ci(labels, sampler_rows, random_rows)
    composite, random = arms["composite"], arms["random"]
    return {
        "arms": arms,
        "label_saving": label_saving(labels, composite["mean"], random["mean"]),
        # the same on the boxes drawn: a labeler's time grows with boxes, and the sampler buys crowded frames
        "box_saving": cost_saving(
            [0.0, *composite["boxes_mean"]], composite["mean"], [0.0, *random["boxes_mean"]], random["mean"]
        ),
        "label_saving_ci": [low, high],
        "per_seed_label_saving": [label_saving(labels, s, r) for s, r in zip(sampler_rows, random_rows, strict=True)],
    }


def print_domain(domain: str, labels: list[float], summary: dict[str, Any]) -> None:
    table = Table(title=f"gold mAP50 on domain {domain} per labels spent (mean and 95% CI over seeds)")
    for column in ("labels", "composite", "random", "boxes c/r"):
        table.add_column(column, justify="right")
    c, r = summary["arms"]["composite"], summary["arms"]["random"]
    for i, labels_spent in enumerate(labels):
        boxes = "" if i == 0 else f"{c['boxes_mean'][i - 1]:.0f}/{r['boxes_mean'][i - 1]:.0f}"
        table.add_row(
            f"{labels_spent:.0f}",
            f"{c['mean'][i]:.3f} [{c['ci_low'][i]:.3f}, {c['ci_high'][i]:.3f}]",
            f"{r['mean'][i]:.3f} [{r['ci_low'][i]:.3f}, {r['ci_high'][i]:.3f}]",
            boxes,
        )
    console.print(table)
    low, high = summary["label_saving_ci"]
    console.print(
        f"domain {domain}: label_saving {summary['label_saving']:.3f} (95% CI [{low:.3f}, {high:.3f}]); "
        f"counted in boxes drawn: {summary['box_saving']:.3f}"
    )


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = result["domains"]
    fig, axes = plt.subplots(1, len(domains), figsize=(5 * len(domains), 4), squeeze=False)
    for ax, (domain, summary) in zip(axes[0], domains.items(), strict=True):
        for arm, colour in zip(ARMS, ("tab:blue", "tab:grey"), strict=True):
            data = summary["arms"][arm]
            ax.plot(result["labels"], data["mean"], marker="o", color=colour, label=arm)
            ax.fill_between(result["labels"], data["ci_low"], data["ci_high"], color=colour, alpha=0.2)
        ax.set_title(f"A -> {domain}: label saving {summary['label_saving']:.2f}")
        ax.set_xlabel("labels (images)")
        ax.set_ylabel("gold mAP50")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shift-domain", action="append", dest="domains", help="repeat for several (default B, C)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=400)
    parser.add_argument("--gold", type=int, default=300)
    parser.add_argument("--steps", default="25,50,100")
    parser.add_argument("--iterations", type=int, default=40, help="optimiser steps per round")
    parser.add_argument("--replay", type=float, default=0.25, help="domain-A images replayed per label bought")
    parser.add_argument(
        "--stream", action="store_true", help="the pool is what a simulated site's cameras produced (one frame/s)"
    )
    parser.add_argument(
        "--clip-frames", type=int, default=1, help="1: a pool of independent stills; N: camera clips of N frames"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    domains = args.domains or ["B", "C"]
    recipe = Recipe([int(s) for s in args.steps.split(",")], args.iterations, args.replay)
    settings = benchmark_settings("active-learning")
    prepare_ultralytics(ultralytics_config_dir(settings))
    from visionloop.simulation.bootstrap import run_bootstrap

    run_bootstrap(settings, console)
    start_pt = registry_for(settings).champion().torch_path
    labels = [0.0, *map(float, recipe.steps)]
    started = time.monotonic()
    result: dict[str, Any] = {
        "start_model": str(start_pt),
        "domains_file": str(settings.domains_file()),
        "seeds": args.seeds,
        "pool": args.pool,
        "pool_kind": pool_kind(args),
        "gold_images": args.gold,
        "iterations_per_round": args.iterations,
        "replay_per_label": args.replay,
        "labels": labels,
        "sampler": settings.labeling.model_dump(
            mode="json", include={"sampler_weights", "aggregate", "diversity", "class_balance", "diversity_scale"}
        ),
        "domains": {},
    }
    for domain in domains:
        runs = []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory(prefix=f"bench-al-{domain}-{seed}-") as tmp:
                scenario = build_scenario(
                    settings, domain, seed, args.pool, args.gold, Path(tmp), args.clip_frames, args.stream
                )
                start_onnx = export_onnx(start_pt, settings.serving.imgsz, Path(tmp) / "start.onnx")
                run: dict[str, Any] = {"seed": seed, "start_map50": gold_map50(settings, start_onnx, scenario)}
                for arm in ARMS:
                    run[arm] = run_arm(arm, settings, start_pt, scenario, recipe, Path(tmp))
                runs.append(run)
        summary = summarise(labels, runs)
        result["domains"][domain] = {"runs": runs, **summary}
        print_domain(domain, labels, summary)
    result["seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    console.print(f"{result['seconds']:.0f} s; wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

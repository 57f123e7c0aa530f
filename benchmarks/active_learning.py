"""Active-learning benchmark: mAP50 on the shifted domain's gold set per labels spent, composite sampler vs random.

Start from the bootstrap model (trained on domain A), shift to domain B, and spend the same label budget twice:
(a) frames picked by the composite sampler, (b) frames picked at random. After each step the model is fine-tuned
from the bootstrap weights on every label bought so far; labels come from the world's ground truth (the simulated
labeler's source). Prints both curves and ``label_saving`` = 1 - (labels the composite sampler needed to reach
random's final mAP50) / (labels random spent).

Usage: python -m benchmarks.active_learning [--pool 600] [--steps 50,100,200] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from labeling.samplers import CompositeSampler
from learning.datasets import LabelledImage, read_yolo_source
from learning.evaluation import evaluate, predict_all
from learning.export import export_onnx
from learning.training import train
from simulation.world import load_domains, write_yolo_dataset
from visionloop.config import load_settings
from visionloop.contracts import FrameResult
from visionloop.model_setup import registry_for, ultralytics_config_dir
from visionloop.offline import prepare_ultralytics

RESULTS = Path(__file__).resolve().parent / "results" / "active_learning.json"
console = Console()


def world(settings: Any, domain: str, seed: int, images: int, out: Path) -> tuple[list[LabelledImage], list[str]]:
    write_yolo_dataset(load_domains(settings.domains_file())[domain], seed, images, out)
    items, names, _ = read_yolo_source(out)
    return items, names


def data_yaml(work: Path, train_items: list[LabelledImage], val_dir: Path, names: list[str]) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "train.txt").write_text("\n".join(str(i.image) for i in train_items) + "\n")
    path = work / "data.yaml"
    path.write_text(
        yaml.safe_dump(
            {"path": str(work), "train": "train.txt", "val": str(val_dir / "images"), "names": dict(enumerate(names))},
            sort_keys=False,
        )
    )
    return path


def pick_composite(
    model_onnx: Path, pool: list[LabelledImage], taken: set[Path], k: int, names: list[str], settings: Any
) -> list[LabelledImage]:
    candidates = [item for item in pool if item.image not in taken]
    predictions = predict_all(model_onnx, candidates, names, settings.serving.imgsz, "onnxruntime")
    sampler = CompositeSampler(
        settings.labeling.sampler_weights,
        threshold=0.0,
        random_rate=0.0,
        options={"confidence_band": {"threshold": settings.serving.conf_threshold}},
    )
    scored = []
    for item, detections in zip(candidates, predictions, strict=True):
        keep = detections.confidence >= 0.05  # the candidates a labeler would be shown
        kept = type(detections)(
            detections.xyxy[keep],
            detections.confidence[keep],
            detections.class_id[keep],
            None if detections.class_scores is None else detections.class_scores[keep],
        )
        result = FrameResult("pool", 0, 0.0, "bench", kept)
        image = cv2.imread(str(item.image))
        selection = sampler.select(result, image)
        scored.append((selection.score if selection else 0.0, item, result, image))
    chosen = []
    for _, item, result, image in sorted(scored, key=lambda row: -row[0]):
        chosen.append(item)
        sampler.observe_selected(result, image)  # novelty: later picks avoid what was just bought
        if len(chosen) == k:
            break
    return chosen


def run_arm(
    name: str,
    settings: Any,
    bootstrap_pt: Path,
    pool: list[LabelledImage],
    val_dir: Path,
    gold_yaml: Path,
    steps: list[int],
    epochs: int,
    names: list[str],
    work: Path,
) -> list[dict[str, float]]:
    rng = random.Random(0)
    bought: list[LabelledImage] = []
    taken: set[Path] = set()
    current_onnx = export_onnx(bootstrap_pt, settings.serving.imgsz, work / f"{name}-start.onnx")
    curve = []
    training = settings.training.model_copy(
        update={"epochs": epochs, "lr0": 0.001, "warmup_epochs": 0.0, "patience": 0}
    )
    for budget in steps:
        need = budget - len(bought)
        if name == "composite":
            new = pick_composite(current_onnx, pool, taken, need, names, settings)
        else:
            new = rng.sample([i for i in pool if i.image not in taken], need)
        bought += new
        taken |= {i.image for i in new}
        step_dir = work / f"{name}-{budget}"
        result = train(
            bootstrap_pt,
            data_yaml(step_dir, bought, val_dir, names),
            training,
            step_dir,
            ultralytics_config_dir(settings),
        )
        current_onnx = export_onnx(result.weights, settings.serving.imgsz, step_dir / "model.onnx")
        scored = evaluate(
            current_onnx,
            gold_yaml,
            "val",
            settings.serving.conf_threshold,
            settings.serving.imgsz,
            ultralytics_config_dir(settings),
            class_names=names,
        )
        curve.append({"labels": float(budget), "map50": scored.map50})
        console.print(f"  {name}: {budget} labels -> gold mAP50 {scored.map50:.3f}")
    return curve


def labels_to_reach(curve: list[dict[str, float]], target: float) -> float | None:
    previous = (0.0, curve[0]["map50"])
    for point in curve:
        if point["map50"] >= target:
            (l0, m0), (l1, m1) = previous, (point["labels"], point["map50"])
            return l1 if m1 == m0 else l0 + (target - m0) * (l1 - l0) / (m1 - m0)
        previous = (point["labels"], point["map50"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=600)
    parser.add_argument("--steps", default="50,100,200")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    settings = load_settings()
    prepare_ultralytics(ultralytics_config_dir(settings))
    from simulation.bootstrap import run_bootstrap

    run_bootstrap(settings, console)
    bootstrap_pt = registry_for(settings).champion().torch_path
    with tempfile.TemporaryDirectory(prefix="bench-al-") as tmp:
        work = Path(tmp)
        pool, names = world(settings, "B", 500, args.pool, work / "pool")
        world(settings, "B", 700, 100, work / "val")
        gold_dir = work / "gold"
        world(settings, "B", 10_500, 200, gold_dir)
        (gold_dir / "data.yaml").write_text(
            yaml.safe_dump({"path": str(gold_dir), "train": "images", "val": "images", "names": dict(enumerate(names))})
        )
        start_onnx = export_onnx(bootstrap_pt, settings.serving.imgsz, work / "start.onnx")
        start = evaluate(
            start_onnx,
            gold_dir / "data.yaml",
            "val",
            settings.serving.conf_threshold,
            settings.serving.imgsz,
            ultralytics_config_dir(settings),
            class_names=names,
        ).map50
        console.print(f"bootstrap model on domain B gold: mAP50 {start:.3f}")
        curves = {
            arm: [
                {"labels": 0.0, "map50": start},
                *run_arm(
                    arm,
                    settings,
                    bootstrap_pt,
                    pool,
                    work / "val",
                    gold_dir / "data.yaml",
                    steps,
                    args.epochs,
                    names,
                    work,
                ),
            ]
            for arm in ("composite", "random")
        }
    random_final = curves["random"][-1]["map50"]
    needed = labels_to_reach(curves["composite"], random_final)
    saving = None if needed is None else 1.0 - needed / curves["random"][-1]["labels"]
    result = {
        "domain_shift": "A -> B",
        "pool": args.pool,
        "epochs_per_step": args.epochs,
        "curves": curves,
        "random_final_map50": random_final,
        "composite_labels_to_reach_it": needed,
        "label_saving": saving,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    table = Table(title="gold mAP50 on domain B per labels spent")
    table.add_column("labels", justify="right")
    table.add_column("composite", justify="right")
    table.add_column("random", justify="right")
    for a, b in zip(curves["composite"], curves["random"], strict=True):
        table.add_row(f"{a['labels']:.0f}", f"{a['map50']:.3f}", f"{b['map50']:.3f}")
    console.print(table)
    console.print(
        f"label_saving: {saving if saving is None else round(saving, 3)} "
        f"(composite needed {needed} labels to reach random's final {random_final:.3f})"
    )
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

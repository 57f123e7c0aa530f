"""Challenger recipes side by side, offline, on one shifted site: which lever pays, with how many labels.

The cycle's site (benchmarks.loop_cycle: four cameras and two unseen viewpoints of the shift domain) is cut into the
labeling window (every frame the cameras sent until two minutes before the end, one every ``--every-s``) and the
cameras' own future. ``--labels`` frames of the window are labelled (spread over camera x 30 s strata, random within
a stratum, as the service's selection spreads them); the rest of the window stays unlabelled. Each recipe fine-tunes
the champion with the same epochs and is measured on the future frames, the unseen cameras and A gold (forgetting).
The oracle labels ``--oracle`` frames of the same window, uniformly, and trains the plain recipe on them.

Recipes (every one keeps the champion's replay):
- ``labels``: the human labels once (the loop before issue 26);
- ``labels_xN``: the human labels repeated N times (oversampling);
- ``pseudo``: a teacher (``labels_xN``) labels the unlabelled window; the student learns the humans' labels and the
  teacher's confident, mirror-confirmed boxes (learning.adaptation);
- ``+bn``: batch-norm statistics re-estimated on the window's frames after training.

Usage: python -m benchmarks.loop_recipe [--shift-domain B] [--labels 300] [--epochs 10] [--only labels,pseudo]
Writes benchmarks/results/loop_recipe.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from benchmarks.loop_cycle import FUTURE_S, cycle_site
from benchmarks.own_var import benchmark_settings
from visionloop.core.model_setup import ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.settings import Settings
from visionloop.learning.adaptation import PseudoLabelRecipe, pseudo_label, reestimate_batchnorm
from visionloop.learning.datasets import DatasetStore, DatasetVersion, LabelledImage, read_yolo_source
from visionloop.learning.evaluation import serving_map50, split_images
from visionloop.learning.export import export_onnx
from visionloop.learning.training import train
from visionloop.simulation.bootstrap import run_bootstrap
from visionloop.simulation.site.testsets import site_test_sets, write_camera_frames

RESULTS = Path(__file__).resolve().parent / "results" / "loop_recipe.json"
STRATUM_S = 30.0
console = Console()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shift-domain", default="B")
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--oracle", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="Fine-tuning epochs (default: loop.epochs).")
    parser.add_argument("--every-s", type=float, default=0.5, help="One window frame every this many seconds.")
    parser.add_argument("--site-seconds", type=float, default=300.0)
    parser.add_argument("--repeat", type=int, default=3, help="N of labels_xN.")
    parser.add_argument("--replay", type=int, default=400)
    parser.add_argument("--pseudo-frames", type=int, default=600, help="Unlabelled frames the teacher labels.")
    parser.add_argument("--only", default="", help="Comma-separated recipes to run (default: all).")
    return parser.parse_args()


def stem_time(item: LabelledImage) -> tuple[str, int]:
    camera, _, number = item.image.stem.rpartition("_")
    return camera, int(number)


def stratified_pick(pool: list[LabelledImage], k: int, fps: int, seed: int) -> list[LabelledImage]:
    """``k`` frames spread evenly over camera x STRATUM_S strata (round robin over shuffled strata)."""
    rng = random.Random(seed)
    strata: dict[tuple[str, int], list[LabelledImage]] = defaultdict(list)
    for item in pool:
        camera, number = stem_time(item)
        strata[(camera, int(number / fps // STRATUM_S))].append(item)
    queues = [rng.sample(items, len(items)) for _, items in sorted(strata.items())]
    picked: list[LabelledImage] = []
    while len(picked) < k and any(queues):
        for queue in queues:
            if queue and len(picked) < k:
                picked.append(queue.pop())
    return picked


def replay_images(store: DatasetStore, ref: str, count: int, seed: int) -> list[LabelledImage]:
    images, _ = split_images(store.get(ref).data_yaml, "train")
    return random.Random(seed).sample(images, min(count, len(images)))


def fine_tune(settings: Settings, start: Path, items: list[LabelledImage], names: list[str], out: Path, epochs: int,
              val_yaml: Path) -> tuple[Path, float]:  # fmt: skip
    """The loop's fine-tuning (its training settings, ``epochs``) on ``items`` (repeats allowed)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text("\n".join(str(i.image) for i in items) + "\n")
    val = yaml.safe_load(val_yaml.read_text())
    data = {"path": str(out), "train": "train.txt", "val": str(Path(val["path"]) / val["val"]),
            "names": dict(enumerate(names))}  # fmt: skip
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    training = settings.training.model_copy(update={"epochs": epochs})
    started = time.monotonic()
    result = train(start, out / "data.yaml", training, out, ultralytics_config_dir(settings), overrides={"val": False})
    return result.weights, time.monotonic() - started


def measure(settings: Settings, weights: Path, sets: dict[str, DatasetVersion], out: Path) -> dict[str, float]:
    onnx = export_onnx(weights, settings.serving.imgsz, out)
    return {name: round(serving_map50(settings, onnx, data.data_yaml), 4) for name, data in sets.items()}


def main() -> None:
    args = parse_args()
    settings = benchmark_settings("recipe")
    prepare_ultralytics(ultralytics_config_dir(settings))
    epochs = args.epochs or settings.loop.epochs
    champion = run_bootstrap(settings, console).version
    store = DatasetStore(settings.var.datasets)
    site = cycle_site(settings, argparse.Namespace(shift_domain=args.shift_domain, seed=args.seed,
                                                   site_seconds=args.site_seconds))  # fmt: skip
    label_end = site.spec.seconds - FUTURE_S
    cameras = site_test_sets(store, f"bench-recipe-{args.shift_domain}-s{args.seed}", site, label_end)
    sets = {
        "camera": cameras["future"],
        "unseen": cameras["unseen"],
        "gold_a": store.get(champion.meta["gold_dataset"]),
    }
    wanted = {name for name in args.only.split(",") if name}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-recipe-") as tmp:
        work = Path(tmp)
        write_camera_frames(site, site.cameras, 0.0, label_end, args.every_s, work / "window")
        window, names, _ = read_yolo_source(work / "window")
        labelled = stratified_pick(window, args.labels, site.spec.fps, args.seed)
        taken = {i.image for i in labelled}
        unlabelled = [i for i in window if i.image not in taken]
        replay = replay_images(store, champion.meta["dataset_version"], args.replay, args.seed)
        val_yaml = sets["camera"].data_yaml
        console.print(f"window {len(window)} frames, {len(labelled)} labelled, replay {len(replay)}; epochs {epochs}")
        results["champion"] = measure(settings, champion.torch_path, sets, work / "champion.onnx")

        def run(name: str, items: list[LabelledImage], start: Path = champion.torch_path) -> Path:
            weights, seconds = fine_tune(settings, start, items, names, work / name, epochs, val_yaml)
            results[name] = {**measure(settings, weights, sets, work / name / "model.onnx"),
                             "train_s": round(seconds, 1), "images": len(items)}  # fmt: skip
            console.print(f"{name}: {results[name]}")
            return weights

        def want(name: str) -> bool:
            return not wanted or name in wanted

        if want("labels"):
            run("labels", labelled + replay)
        repeated = f"labels_x{args.repeat}"
        teacher = run(repeated, labelled * args.repeat + replay)
        if want("bn"):
            bn = reestimate_batchnorm(teacher, [i.image for i in window], settings.serving.imgsz, work / "bn.pt")
            results[f"{repeated}+bn"] = measure(settings, bn, sets, work / "bn.onnx")
            console.print(f"{repeated}+bn: {results[f'{repeated}+bn']}")
        if want("pseudo"):
            teacher_onnx = export_onnx(teacher, settings.serving.imgsz, work / "teacher.onnx")
            frames = random.Random(args.seed).sample(unlabelled, min(args.pseudo_frames, len(unlabelled)))
            report = pseudo_label(teacher_onnx, [i.image for i in frames], names, settings.serving.imgsz,
                                  PseudoLabelRecipe(), work / "pseudo")  # fmt: skip
            results["pseudo_labels"] = {"frames": len(report.images), "boxes": report.boxes,
                                        "ignored": report.ignored, "disagreed": report.disagreed,
                                        "true_boxes": int(sum(len(i.labels) for i in frames))}  # fmt: skip
            console.print(f"pseudo-labels: {results['pseudo_labels']}")
            student = run("pseudo", labelled * args.repeat + report.images + replay)
            if want("bn"):
                bn = reestimate_batchnorm(student, [i.image for i in window], settings.serving.imgsz, work / "sbn.pt")
                results["pseudo+bn"] = measure(settings, bn, sets, work / "sbn.onnx")
                console.print(f"pseudo+bn: {results['pseudo+bn']}")
        if want("oracle"):
            oracle = random.Random(args.seed + 1).sample(window, min(args.oracle, len(window)))
            run("oracle", oracle + replay)
    summary(results, args)


def summary(results: dict[str, Any], args: argparse.Namespace) -> None:
    base = results["champion"]["camera"]
    oracle = results.get("oracle", {}).get("camera")
    table = Table(title=f"challenger recipes on {args.shift_domain} ({args.labels} labels)")
    for column in ("recipe", "camera mAP50", "recovery", "unseen", "A gold", "train s"):
        table.add_column(column)
    for name, row in results.items():
        if "camera" not in row:
            continue
        recovery = (row["camera"] - base) / (oracle - base) if oracle and not math.isclose(oracle, base) else None
        row["camera_recovery"] = None if recovery is None else round(recovery, 3)
        table.add_row(name, f"{row['camera']:.3f}", "-" if recovery is None else f"{recovery:.2f}",
                      f"{row['unseen']:.3f}", f"{row['gold_a']:.3f}", str(row.get("train_s", "-")))  # fmt: skip
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

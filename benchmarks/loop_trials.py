"""The learning-loop benchmark's yardsticks: the oracle (the champion fine-tuned on fully labelled shift frames) and
the decision trials (seeded A/B decisions on labelled shift frames the models were not trained on)."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console

from visionloop.core.model_setup import ultralytics_config_dir
from visionloop.core.progress import progress_bar
from visionloop.core.registry import ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.ab_decision import Decision, Guards, run_ab
from visionloop.learning.ab_replay import replay_model
from visionloop.learning.datasets import DatasetStore, DatasetVersion
from visionloop.learning.evaluation import serving_map50, split_images
from visionloop.learning.export import export_onnx
from visionloop.learning.training import train
from visionloop.simulation.bootstrap import GOLD_SEED_OFFSET, world_dataset
from visionloop.simulation.site.live import RenderedSite
from visionloop.simulation.world import load_domains

ORACLE_IMAGES = 1000
TRIAL_POOL_IMAGES = 600
WRONG_LABEL_RATE = 0.3
console = Console()


def map50(settings: Settings, model: Path, data: DatasetVersion) -> float:
    return serving_map50(settings, model, data.data_yaml)


def fine_tune(settings: Settings, base: Path, data_yaml: Path, work: Path, epochs: int) -> Path:
    """Fine-tune from ``base`` the way the loop does (its epochs, the training settings); returns the ONNX file."""
    training = settings.training.model_copy(update={"epochs": epochs})
    with progress_bar(console) as progress:
        task = progress.add_task(f"fine-tuning on {data_yaml.parent.name}", total=epochs, status="")
        result = train(
            base,
            data_yaml,
            training,
            work,
            ultralytics_config_dir(settings),
            on_epoch=lambda e, t, row: progress.update(task, completed=e, status=f"val mAP50 {row['map50']:.3f}"),
        )
    return export_onnx(result.weights, settings.serving.imgsz, work / "model.onnx")


def oracle(
    settings: Settings, champion: ModelVersion, domain: str, seed: int, epochs: int, gold: DatasetVersion, cache: Path
) -> tuple[float, bool]:
    """mAP50 on the shift's gold of the champion fine-tuned on 1,000 fully labelled frames of the shift (cached)."""
    world = load_domains(settings.domains_file())[domain]
    recipe = {
        "world": repr(world),
        "domain": domain,
        "seed": seed,
        "epochs": epochs,
        "images": ORACLE_IMAGES,
        "champion": champion.meta.get("recipe_hash") or champion.version,
        "training": settings.training.model_dump(mode="json"),
        "gold": gold.manifest.get("recipe"),
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    cached = cache / f"oracle-{key}.json"
    if cached.is_file():
        return float(json.loads(cached.read_text())["map50"]), True
    with progress_bar(console) as progress:
        data = world_dataset(
            settings, f"bench-oracle-{domain}", domain, seed + 7, ORACLE_IMAGES, (0.9, 0.1, 0.0), progress
        )
    with tempfile.TemporaryDirectory(prefix="bench-oracle-") as tmp:
        onnx = fine_tune(settings, champion.torch_path, data.data_yaml, Path(tmp), epochs)
        score = map50(settings, onnx, gold)
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"map50": score, "recipe": recipe}, indent=2))
    return score, False


def shift_sets(measure: Settings, shift_domain: str, seed: int) -> tuple[DatasetVersion, DatasetVersion]:
    """The shift's gold set and the trial pool, made under ``measure``'s var: where the loop cannot see them."""
    with progress_bar(console) as progress:
        gold_shift = world_dataset(
            measure,
            f"world-{shift_domain}-gold",
            shift_domain,
            measure.bootstrap.seed + GOLD_SEED_OFFSET,
            measure.bootstrap.gold_images,
            (0.0, 1.0, 0.0),
            progress,
        )
        pool = world_dataset(
            measure,
            f"bench-trials-{shift_domain}",
            shift_domain,
            900 + seed,
            TRIAL_POOL_IMAGES,
            (0.0, 1.0, 0.0),
            progress,
        )
    return gold_shift, pool


def corrupted_copy(data: DatasetVersion, names: Sequence[str], rate: float, seed: int, out: Path) -> Path:
    """The training split of ``data`` with ``rate`` of its boxes wrong (class changed, or dropped)."""
    rng = random.Random(seed)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for image in sorted((data.path / "images" / split).glob("*")):
            shutil.copyfile(image, out / "images" / split / image.name)
            label = data.path / "labels" / split / f"{image.stem}.txt"
            lines = label.read_text().splitlines() if label.is_file() else []
            kept = []
            for line in lines:
                parts = line.split()
                if split == "train" and rng.random() < rate:
                    if rng.random() < 0.5:
                        continue  # a missed box
                    parts[0] = str(rng.choice([c for c in range(len(names)) if c != int(parts[0])]))
                kept.append(" ".join(parts))
            (out / "labels" / split / f"{image.stem}.txt").write_text("\n".join(kept) + ("\n" if kept else ""))
    path = out / "data.yaml"
    path.write_text(
        yaml.safe_dump(
            {"path": str(out), "train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
        )
    )
    return path


def decision_trials(
    settings: Settings, models: dict[str, Path], gold_a: dict[str, float], pool: DatasetVersion, trials: int, seed: int
) -> dict[str, Any]:
    images, names = split_images(pool.data_yaml, "val")
    imgsz, ab = settings.serving.imgsz, settings.ab
    # The loop's own replay: matches cached once per frame, per-frame latency at batch 1.
    replays = {name: replay_model(path, images, names, imgsz) for name, path in models.items()}
    matches = {name: replay.matches for name, replay in replays.items()}
    latency = {name: replay.p99_ms for name, replay in replays.items()}
    pairs = {
        "challenger_vs_old_champion": ("champion", "challenger"),
        "worse_vs_challenger": ("challenger", "worse"),
        "identical": ("champion", "champion"),
    }
    out: dict[str, Any] = {"frames_per_trial": ab.min_frames, "pool_frames": len(images), "p99_latency_ms": latency}
    for label, (base, other) in pairs.items():
        decisions = []
        for t in range(trials):
            picked = np.random.default_rng(seed * 1000 + t).choice(len(images), ab.min_frames, replace=False)
            guards = Guards(latency[base], latency[other], gold_a[base], gold_a[other])
            verdict = run_ab(
                [matches[base][i] for i in picked],
                [matches[other][i] for i in picked],
                guards,
                ab.model_copy(update={"seed": t}),
                settings.serving.conf_threshold,
            )
            decisions.append(verdict.decision.value)
        out[label] = {
            "promote": decisions.count(Decision.PROMOTE.value),
            "reject": decisions.count("reject"),
            "continue": decisions.count("continue"),
            "trials": trials,
        }
    out["right_promotions"] = out["challenger_vs_old_champion"]["promote"]
    out["false_promotions_worse"] = out["worse_vs_challenger"]["promote"]
    out["false_promotions_identical"] = out["identical"]["promote"]
    return out


def camera_oracle(
    settings: Settings,
    champion: ModelVersion,
    site: RenderedSite,
    labels_until_s: float,
    epochs: int,
    tests: dict[str, DatasetVersion],
    cache: Path,
) -> tuple[dict[str, float], bool]:
    """The champion fine-tuned on ORACLE_IMAGES frames drawn uniformly from the served cameras' labeling window, all
    labelled, with the champion's replay and the loop's epochs and training settings (no selection, no pseudo-
    labels); its mAP50 on each of ``tests`` (cached by recipe)."""
    from visionloop.simulation.site.testsets import write_camera_frames

    recipe = {
        "site": site.data["recipe"],
        "window": [0.0, labels_until_s],
        "images": ORACLE_IMAGES,
        "epochs": epochs,
        "replay": settings.loop.replay_images,
        "champion": champion.meta.get("recipe_hash") or champion.version,
        "training": settings.training.model_dump(mode="json"),
        "tests": {name: data.manifest.get("recipe") for name, data in tests.items()},
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    cached = cache / f"camera-oracle-{key}.json"
    if cached.is_file():
        return {k: float(v) for k, v in json.loads(cached.read_text())["map50"].items()}, True
    every_s = max(1.0 / site.spec.fps, len(site.cameras) * labels_until_s / (ORACLE_IMAGES * 1.2))
    with tempfile.TemporaryDirectory(prefix="bench-camera-oracle-") as tmp:
        work = Path(tmp)
        write_camera_frames(site, site.cameras, 0.0, labels_until_s, every_s, work / "window")
        window = sorted((work / "window" / "images").glob("*.jpg"))
        picked = random.Random(0).sample(window, min(ORACLE_IMAGES, len(window)))
        source = DatasetStore(settings.var.datasets).get(str(champion.meta["dataset_version"]))
        replay, _ = split_images(source.data_yaml, "train")
        replay = random.Random(0).sample(replay, min(settings.loop.replay_images, len(replay)))
        train_list = [str(p) for p in picked] + [str(item.image) for item in replay]
        (work / "train.txt").write_text("\n".join(train_list) + "\n")
        val = tests["camera"]
        data = {"path": str(work), "train": "train.txt", "val": str(val.path / "images" / "val"),
                "names": dict(enumerate(champion.class_names or settings.model.class_names))}  # fmt: skip
        (work / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        onnx = fine_tune(settings, champion.torch_path, work / "data.yaml", work / "run", epochs)
        scores = {name: map50(settings, onnx, test) for name, test in tests.items()}
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"map50": scores, "frames": len(picked), "recipe": recipe}, indent=2))
    return scores, False

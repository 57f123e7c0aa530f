"""Learning-loop benchmark: one whole cycle through the real service after a domain shift, then decision trials.

The champion is the bootstrap model (domain A). Four simulated RTSP cameras show the shift domain; the Router's
selector sends frames to the local Label Studio, where the SIMULATED labeler answers from the world's ground truth
until ``--labels`` labels (the random control arm included) are spent. The labeling worker cuts one data set
version from them; the loop worker reacts: it fine-tunes a challenger from the champion, gates it on the A gold set,
runs it as the shadow, takes the A/B decision and (``loop.auto_promote``) promotes it. The shift's gold set is
generated apart, where the loop cannot see it: it only measures.

Then ``decision_trials``: 20 seeded draws of ``ab.min_frames`` labelled frames of the shift (a pool the models were
not trained on); on each, the A/B decision for three pairs: the cycle's challenger vs the old champion (should
promote), a model fine-tuned on the challenger's data with 30% wrong labels vs the challenger (should not), and the
champion vs itself (should not).

Usage: python -m benchmarks.loop [--shift-domain B] [--labels 300] [--seed 0] [--trials 20]
Honours VISIONLOOP_WORLD__DOMAINS_FILE. Writes benchmarks/results/loop.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from visionloop.cli.service import VisionloopService
from visionloop.core.config import load_settings
from visionloop.core.layout import VarLayout
from visionloop.core.model_setup import ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.progress import progress_bar
from visionloop.core.redis_server import port_is_free
from visionloop.core.registry import ModelRegistry, ModelVersion, Role
from visionloop.core.settings import Settings
from visionloop.learning.ab_decision import Decision, Guards, run_ab
from visionloop.learning.ab_replay import replay_model
from visionloop.learning.datasets import DatasetStore, DatasetVersion
from visionloop.learning.evaluation import serving_map50, split_images
from visionloop.learning.export import export_onnx
from visionloop.learning.training import train
from visionloop.simulation.bootstrap import GOLD_SEED_OFFSET, run_bootstrap, world_dataset
from visionloop.simulation.rtsp_cameras import RtspSimulator, prepare_world_camera
from visionloop.simulation.simulated_labeler import GroundTruthIndex, SimulatedLabeler
from visionloop.simulation.world import load_domains
from visionloop.simulation.world.video import world_frames

RESULTS = Path(__file__).resolve().parent / "results" / "loop.json"
CAMERAS = 4
CAMERA_SECONDS = 60.0  # distinct frames for a minute: near-duplicates within labeling.dedup_window_s are skipped
CAMERA_FPS = 15
ORACLE_IMAGES = 1000
TRIAL_POOL_IMAGES = 600
WRONG_LABEL_RATE = 0.3
console = Console()


def free_port(start: int) -> int:
    return next(p for p in range(start, start + 1000) if port_is_free(p))


def link_tree(source: Path, target: Path) -> None:
    """Copy a read-only data set version by hard links (same bytes, no space)."""
    shutil.copytree(source, target, copy_function=os.link)


def bench_settings(base: Settings, var: Path, args: argparse.Namespace, gold_ref: str) -> Settings:
    """The service for the cycle: private var and ports, labeling and the loop on, auto-promotion on."""
    overrides = {
        "VISIONLOOP_PATHS__VAR_DIR": str(var),
        "VISIONLOOP_API__PORT": str(free_port(18100)),
        "VISIONLOOP_REDIS__EMBEDDED_PORT": str(free_port(18400)),
        "VISIONLOOP_RAY__METRICS_EXPORT_PORT": str(free_port(18700)),
        "VISIONLOOP_LABELING__LABEL_STUDIO_PORT": str(free_port(19000)),
        "VISIONLOOP_WEBRTC__ENABLED": "false",
        "VISIONLOOP_LABELING__ENABLED": "true",
        "VISIONLOOP_LABELING__CUT_EVERY": str(args.labels),  # one version when the budget is spent
        "VISIONLOOP_LOOP__ENABLED": "true",
        "VISIONLOOP_LOOP__AUTO_PROMOTE": "true",
        "VISIONLOOP_LOOP__GOLD_DATASETS": json.dumps([gold_ref]),
    }
    if args.epochs:
        overrides["VISIONLOOP_LOOP__EPOCHS"] = str(args.epochs)
    if args.random_rate is not None:
        overrides["VISIONLOOP_LABELING__RANDOM_RATE"] = str(args.random_rate)
    environ = {k: v for k, v in os.environ.items() if k.startswith("VISIONLOOP_")}
    return load_settings(environ={**environ, **overrides})


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


def run_cycle(base: Settings, args: argparse.Namespace, var: Path, gold_ref: str) -> dict[str, Any]:
    """The cycle through the real service; returns what it did and how long it took."""
    settings = bench_settings(base, var, args, gold_ref)
    height, width = settings.world.video_size
    out_dir = base.var.simulator
    domains_file = settings.domains_file()
    cams = [
        prepare_world_camera(
            f"shift{i}",
            args.shift_domain,
            500 + 10 * args.seed + i,
            CAMERA_SECONDS,
            CAMERA_FPS,
            out_dir,
            height,
            width,
            domains_file,
        )
        for i in range(CAMERAS)
    ]
    truth = GroundTruthIndex()
    world = load_domains(domains_file)[args.shift_domain]
    for i in range(CAMERAS):
        truth.add_world_frames(
            world_frames(world, 500 + 10 * args.seed + i, int(CAMERA_SECONDS * CAMERA_FPS), height, width)
        )
    registry = ModelRegistry(settings.var.models)
    auth = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
    started = time.monotonic()
    with (
        VisionloopService(settings) as service,
        RtspSimulator(cams, free_port(18554)) as simulator,
        httpx.Client(base_url=service.api_url, headers=auth, timeout=120) as api,
    ):
        from visionloop.labeling.label_studio_client import LabelStudioClient
        from visionloop.labeling.label_studio_server import LabelStudioAccount

        project = api.get("/v1/labeling/status").json()["project_id"]
        client = LabelStudioClient(service.label_studio_url or "", LabelStudioAccount().token)
        labeler = SimulatedLabeler(
            client, project, settings.var.label_studio_files, truth, settings.model.class_names, seed=args.seed
        )
        for cam in cams:
            api.post("/v1/cameras", json={"id": cam.name, "url": simulator.url(cam.name)}).raise_for_status()
        answered, deadline = 0, time.monotonic() + args.labeling_timeout_s
        with progress_bar(console) as progress:
            task = progress.add_task("simulated labeler", total=args.labels, status="")
            while answered < args.labels and time.monotonic() < deadline:
                answered += labeler.label_pending(limit=min(20, args.labels - answered))
                progress.update(task, completed=answered, status=f"{labeler.unmatched} unmatched")
                time.sleep(2.0)
        for cam in cams:  # the cameras stop: training gets the CPUs
            api.delete(f"/v1/cameras/{cam.name}")
        # The labels so far become a data set version now (a no-op when the budget's own cut happened already).
        api.post("/v1/labeling/sync", params={"cut": "true"}).raise_for_status()
        labelled_s = time.monotonic() - started
        console.print(f"{answered} labels in {labelled_s:.0f} s; waiting for the cut, the challenger and the A/B...")
        decided = wait_for_decision(registry, api, args.cycle_timeout_s)
        client.close()
        loop_status = api.get("/v1/loop/status").json()
        shadow = api.get("/v1/shadow").json()
    return {
        "labels_used": answered,
        "labelling_s": round(labelled_s, 1),
        "cycle_s": round(time.monotonic() - started, 1),
        "candidate": decided,
        "loop_status": loop_status,
        "shadow": shadow,
    }


def wait_for_decision(registry: ModelRegistry, api: httpx.Client, timeout_s: float) -> dict[str, Any] | None:
    """The loop's candidate once it has a verdict (or was rejected at the gate); None on timeout."""
    deadline = time.monotonic() + timeout_s
    with progress_bar(console) as progress:
        task = progress.add_task("loop cycle", total=None, status="")
        while time.monotonic() < deadline:
            for model in registry.versions()[1:]:
                verdict = registry.decision(model.version)
                if verdict is not None or model.meta.get("role") == Role.REJECTED.value:
                    return {
                        "version": model.version,
                        "role": model.meta.get("role"),
                        "verdict": verdict,
                        "meta": {k: v for k, v in model.meta.items() if k != "class_names"},
                    }
            try:
                state = api.get("/v1/loop/status").json()
                progress.update(task, status=str(state.get("stage") or state.get("state")))
            except httpx.HTTPError:
                pass
            time.sleep(5.0)
    return None


def decision_of(candidate: dict[str, Any] | None) -> str:
    if candidate is None:
        return "timeout (no verdict)"
    verdict = candidate.get("verdict")
    return str(verdict["decision"]) if verdict else f"no A/B: candidate {candidate.get('role')} at the gold gate"


def main() -> None:
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
    args = parser.parse_args()
    base = load_settings()
    prepare_ultralytics(ultralytics_config_dir(base))
    epochs = args.epochs or base.loop.epochs
    console.print("Bootstrap champion (trained once, cached under var/)...")
    boot = run_bootstrap(base, console).version
    store = DatasetStore(base.var.datasets)
    gold_a = store.get(boot.meta["gold_dataset"])

    var = VarLayout(base.resolved_var_dir() / "bench-loop" / f"{args.shift_domain}-s{args.seed}")
    shutil.rmtree(var.root, ignore_errors=True)
    registry = ModelRegistry(var.models)
    meta = {k: v for k, v in boot.meta.items() if k not in ("version", "role")}
    champion = registry.register(boot.onnx_path, boot.torch_path, meta)
    registry.set_pointer(Role.CHAMPION, champion.version, by="benchmark")
    for ref in (boot.meta["dataset_version"], boot.meta["gold_dataset"]):
        version = store.get(ref)
        link_tree(version.path, var.datasets / version.name / version.version)
    shutil.copytree(base.var.ultralytics, var.ultralytics, dirs_exist_ok=True)

    measure = base.model_copy(
        update={"paths": base.paths.model_copy(update={"var_dir": base.resolved_var_dir() / "bench-cache"})}
    )
    with progress_bar(console) as progress:  # the shift's gold and the trial pool: where the loop cannot see them
        gold_shift = world_dataset(
            measure,
            f"world-{args.shift_domain}-gold",
            args.shift_domain,
            base.bootstrap.seed + GOLD_SEED_OFFSET,
            base.bootstrap.gold_images,
            (0.0, 1.0, 0.0),
            progress,
        )
        pool = world_dataset(
            measure,
            f"bench-trials-{args.shift_domain}",
            args.shift_domain,
            900 + args.seed,
            TRIAL_POOL_IMAGES,
            (0.0, 1.0, 0.0),
            progress,
        )
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

    cycle = run_cycle(base, args, var.root, f"{gold_a.name}/{gold_a.version}")
    after_champion = registry.champion()
    after = map50(base, after_champion.onnx_path, gold_shift)
    after_a = map50(base, after_champion.onnx_path, gold_a)
    candidate = cycle["candidate"]
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
        "champion_after": after_champion.version,
        "recovery": round((after - shifted) / (oracle_map50 - shifted), 4) if oracle_map50 > shifted else None,
        "labels_used": cycle["labels_used"],
        "labelling_s": cycle["labelling_s"],
        "cycle_s": cycle["cycle_s"],
        "decision": decision_of(candidate),
        "candidate": candidate,
        "shadow_comparison": cycle["shadow"].get("comparison"),
    }
    if candidate is not None:
        challenger = registry.get(candidate["version"])
        result["challenger_map50"] = round(map50(base, challenger.onnx_path, gold_shift), 4)
        data = DatasetStore(var.datasets).get(challenger.meta["dataset_version"])
        with tempfile.TemporaryDirectory(prefix="bench-worse-") as tmp:
            noisy = corrupted_copy(data, base.model.class_names, WRONG_LABEL_RATE, args.seed, Path(tmp) / "data")
            worse = fine_tune(base, champion.torch_path, noisy, Path(tmp) / "run", epochs)
            models = {"champion": champion.onnx_path, "challenger": challenger.onnx_path, "worse": worse}
            gold_scores = {name: map50(base, path, gold_a) for name, path in models.items()}
            result["decision_trials"] = decision_trials(base, models, gold_scores, pool, args.trials, args.seed)
            result["decision_trials"]["a_gold_map50"] = {k: round(v, 4) for k, v in gold_scores.items()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    table = Table("key", "value", title=f"learning loop, shift to {args.shift_domain}")
    for key in (
        "pre_shift_map50",
        "shifted_map50",
        "after_map50",
        "after_a_map50",
        "oracle_map50",
        "recovery",
        "challenger_map50",
        "labels_used",
        "cycle_s",
        "decision",
        "champion_after",
    ):
        table.add_row(key, str(result.get(key)))
    trials = result.get("decision_trials")
    if trials:
        table.add_row("right_promotions", f"{trials['right_promotions']}/{args.trials}")
        table.add_row("false_promotions (worse)", f"{trials['false_promotions_worse']}/{args.trials}")
        table.add_row("false_promotions (identical)", f"{trials['false_promotions_identical']}/{args.trials}")
    console.print(table)
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()

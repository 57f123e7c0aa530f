"""CLI commands of the learning core: the synthetic world, data sets, training, evaluation, tuning, comparison.

None of them needs the running service.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from visionloop.errors import VisionloopError
from visionloop.settings import Settings

world_app = typer.Typer(help="The synthetic world: data sets and videos with known truth.", no_args_is_help=True)
data_app = typer.Typer(help="Immutable data set versions.", no_args_is_help=True)
console = Console(stderr=True)


def _settings() -> Settings:
    from visionloop.cli import state

    return state.settings()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def resolve_data(settings: Settings, spec: str) -> Path:
    """A data set reference ('name' or 'name/vN') or a path to a data.yaml / a folder holding one."""
    from learning.datasets import DatasetStore

    path = Path(spec)
    if path.is_file():
        return path
    if (path / "data.yaml").is_file():
        return path / "data.yaml"
    return DatasetStore(settings.resolved_var_dir() / "datasets").get(spec).data_yaml


def resolve_model_file(settings: Settings, spec: str, prefer: str = ".onnx") -> tuple[Path, str]:
    """(file, label) for a registry version, 'champion', 'latest' (the newest version), or a weights path."""
    from visionloop.model_setup import registry_for

    path = Path(spec)
    if path.suffix in (".onnx", ".pt") and path.is_file():
        return path, str(path)
    if path.suffix in (".onnx", ".pt"):
        raise VisionloopError(f"model file '{path}' does not exist")
    registry = registry_for(settings)
    if spec == "champion":
        version = registry.champion()
    elif spec == "latest":
        versions = registry.versions()
        if not versions:
            raise VisionloopError(f"the registry at {registry.root} is empty: train or 'visionloop models init' first")
        version = versions[-1]
    else:
        version = registry.get(spec)
    first, second = (
        (version.onnx_path, version.torch_path) if prefer == ".onnx" else (version.torch_path, version.onnx_path)
    )
    chosen = first if first.is_file() else second
    return chosen, version.version


def new_run_dir(settings: Settings, kind: str) -> Path:
    """A fresh folder under ``var/runs`` for one command's work (``var/runs`` is created on first use)."""
    runs = settings.resolved_var_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=runs))


def _domain(settings: Settings, name: str) -> Any:
    from learning.world import load_domains

    domains = load_domains(settings.domains_file())
    if name not in domains:
        raise VisionloopError(f"unknown domain '{name}'; known: {', '.join(domains)}")
    return domains[name]


@world_app.command("generate")
def world_generate(
    domain: Annotated[str, typer.Option(help="Domain name from world.domains_file.")],
    out: Annotated[Path, typer.Option(help="Output folder (YOLO layout: data.yaml, images/, labels/).")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    images: Annotated[int, typer.Option(min=1, help="How many images.")] = 100,
) -> None:
    """Write a YOLO data set of still scenes with a ground-truth sidecar."""
    from learning.world import write_yolo_dataset
    from visionloop.progress import progress_bar

    settings = _settings()
    world = _domain(settings, domain)
    height, width = settings.world.image_size
    with progress_bar(console) as progress:
        task = progress.add_task(f"world {domain}", total=images, status="")
        data_yaml = write_yolo_dataset(world, seed, images, out, height, width, lambda n: progress.advance(task, n))
    console.print(f"wrote {images} images to {out} ({data_yaml})")


@world_app.command("video")
def world_video(
    domain: Annotated[str, typer.Option(help="Domain name from world.domains_file.")],
    out: Annotated[Path, typer.Option(help="Output video file (.mp4 or .mkv).")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    seconds: Annotated[float, typer.Option(min=0.1, help="Duration.")] = 10.0,
    fps: Annotated[int, typer.Option(min=1, max=120, help="Frames per second.")] = 15,
) -> None:
    """Write an H.264 video of the moving world and <out>.jsonl with per-frame ground truth."""
    from learning.world import write_video
    from visionloop.progress import progress_bar

    settings = _settings()
    world = _domain(settings, domain)
    height, width = settings.world.video_size
    with progress_bar(console) as progress:
        task = progress.add_task(f"video {domain}", total=max(1, round(seconds * fps)), status="")
        write_video(world, seed, seconds, fps, out, height, width, lambda n: progress.advance(task, n))
    console.print(f"wrote {out} and {out}.jsonl")


@data_app.command("create")
def data_create(
    name: Annotated[str, typer.Argument(help="Data set name (letters, digits, _ . -).")],
    source: Annotated[Path, typer.Option("--from", help="A YOLO data set folder (data.yaml, images/, labels/).")],
    skip_bad: Annotated[bool | None, typer.Option(help="Skip bad files instead of failing (default: setting).")] = None,
    gold: Annotated[bool, typer.Option(help="A gold holdout set: every image in 'val', never trained on.")] = False,
) -> None:
    """Cut a new immutable version of a data set: validated, stratified 70/20/10, hashed."""
    from learning.datasets import DatasetStore, read_yolo_source, stratified_split

    settings = _settings()
    skip = settings.data.skip_bad_files if skip_bad is None else skip_bad
    images, names, report = read_yolo_source(source, skip_bad=skip)
    fractions = (0.0, 1.0, 0.0) if gold else settings.data.split
    splits = stratified_split(images, fractions, seed=0)
    meta = {"source": str(source.resolve()), "skipped": [f"{p}: {r}" for p, r in report.bad], "gold": gold}
    version = DatasetStore(settings.resolved_var_dir() / "datasets").create(
        name, splits, names, meta=meta, oversample_threshold=0.0 if gold else settings.data.oversample_rare
    )
    counts = version.manifest["counts"]
    console.print(
        f"{version.ref}: "
        + ", ".join(f"{s} {c['images']} images / {c['boxes']} boxes" for s, c in counts.items())
        + (f"; skipped {len(report.bad)} bad file(s)" if report.bad else "")
    )


@data_app.command("list")
def data_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Data set versions with their sizes."""
    from learning.datasets import DatasetStore

    store = DatasetStore(_settings().resolved_var_dir() / "datasets")
    rows = []
    if store.root.is_dir():
        for folder in sorted(p for p in store.root.iterdir() if p.is_dir()):
            for version in store.versions(folder.name):
                manifest = version.manifest
                rows.append({"ref": version.ref, "counts": manifest["counts"], "source": manifest.get("source")})
    if as_json:
        _print_json(rows)
        return
    table = Table("data set", "train", "val", "test", "source")
    for row in rows:
        c = row["counts"]
        table.add_row(row["ref"], *(str(c[s]["images"]) for s in ("train", "val", "test")), str(row["source"]))
    Console().print(table)


@data_app.command("verify")
def data_verify(ref: Annotated[str, typer.Argument(help="name or name/vN")]) -> None:
    """Check every file of a version against its manifest hashes."""
    from learning.datasets import DatasetStore

    version = DatasetStore(_settings().resolved_var_dir() / "datasets").get(ref)
    changed = version.verify()
    if changed:
        raise VisionloopError(f"{version.ref}: {len(changed)} file(s) differ from the manifest: {changed[:10]}")
    console.print(f"{version.ref}: every file matches its manifest")


def train_command(
    data: Annotated[str, typer.Option(help="Data set ref (name, name/vN) or a data.yaml path.")],
    base: Annotated[
        str, typer.Option(help="Architecture yaml (from scratch), a .pt, a version or 'champion'.")
    ] = "champion",
    epochs: Annotated[int | None, typer.Option(min=1, help="Override training.epochs.")] = None,
    on_ray: Annotated[bool, typer.Option("--ray", help="Run as a Ray task (cluster: may land on a GPU).")] = False,
    register: Annotated[bool, typer.Option(help="Export and register the result as a candidate version.")] = True,
) -> None:
    """Train from an architecture yaml or fine-tune from weights; registers a candidate with its lineage."""
    from learning.export import export_onnx
    from learning.training import train, train_on_ray
    from visionloop.model_setup import registry_for, ultralytics_config_dir
    from visionloop.progress import progress_bar

    settings = _settings()
    data_yaml = resolve_data(settings, data)
    parent = None
    if base.endswith((".yaml", ".yml")):
        base_model: str | Path = base
    else:
        base_model, parent = resolve_model_file(settings, base, prefer=".pt")
        if base_model.suffix != ".pt":
            raise VisionloopError(f"fine-tuning needs a .pt file; '{base}' has only {base_model.name}")
    training = settings.training if epochs is None else settings.training.model_copy(update={"epochs": epochs})
    out = new_run_dir(settings, "train")
    if on_ray:
        from visionloop.ray_runtime import init_ray

        init_ray(settings)
        result = train_on_ray(base_model, data_yaml, training, out, ultralytics_config_dir(settings))
    else:
        with progress_bar(console) as progress:
            task = progress.add_task("training", total=training.epochs, status="")

            def on_epoch(epoch: int, total: int, row: dict[str, float]) -> None:
                if epoch <= total:
                    progress.update(task, completed=epoch, status=f"val mAP50 {row['map50']:.3f}")

            result = train(base_model, data_yaml, training, out, ultralytics_config_dir(settings), on_epoch=on_epoch)
    console.print(f"trained {result.epochs_run} epochs in {result.seconds:.0f} s: {result.weights}")
    if register:
        from learning.datasets import load_class_names
        from visionloop.offline import prepare_ultralytics
        from visionloop.registry import Role

        prepare_ultralytics(ultralytics_config_dir(settings))
        onnx = export_onnx(result.weights, settings.serving.imgsz, out / "model.onnx")
        registry = registry_for(settings)
        version = registry.register(
            onnx,
            result.weights,
            {
                "source": "train",
                "parent": parent,
                "dataset_version": data,
                "architecture": str(base_model),
                "class_names": load_class_names(data_yaml),
                "imgsz": settings.serving.imgsz,
                "epochs_run": result.epochs_run,
                "train_seconds": round(result.seconds, 1),
                "metrics": {"val": result.metrics},
            },
        )
        if registry.pointers()["champion"] is None:
            registry.set_pointer(Role.CHAMPION, version.version)
            console.print(f"registered {version.version} and made it champion (the registry had none)")
        else:
            console.print(f"registered {version.version} (candidate, parent {parent})")


def eval_command(
    model: Annotated[str, typer.Option(help="A registry version, 'champion', 'latest', or a .onnx/.pt path.")],
    data: Annotated[str, typer.Option(help="Data set ref (name, name/vN) or a data.yaml path.")],
    split: Annotated[str, typer.Option(help="Which split to score on.")] = "val",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plots: Annotated[Path | None, typer.Option(help="Folder for PR-curve and confusion-matrix PNGs.")] = None,
    kfold: Annotated[int | None, typer.Option(min=2, help="K-fold cross-validation on train+val instead.")] = None,
) -> None:
    """Precision, recall, F1 at the operating threshold, mAP50, mAP50-95, per-class AP, confusion matrix."""
    from learning.evaluation import evaluate
    from visionloop.model_setup import ultralytics_config_dir

    settings = _settings()
    data_yaml = resolve_data(settings, data)
    if kfold:
        _kfold(settings, model, data_yaml, kfold, as_json)
        return
    model_file, label = resolve_model_file(settings, model)
    result = evaluate(
        model_file,
        data_yaml,
        split,
        settings.serving.conf_threshold,
        settings.serving.imgsz,
        ultralytics_config_dir(settings),
        plots_dir=plots,
    )
    out = {"model": label, "data": str(data_yaml), "split": split, **result.to_dict()}
    if as_json:
        _print_json(out)
        return
    table = Table(title=f"{label} on {data} ({split}, {result.images} images, {result.instances} boxes)")
    table.add_column("class")
    for column in ("AP50", "AP50-95", "instances"):
        table.add_column(column, justify="right")
    for name, row in result.per_class.items():
        table.add_row(name, f"{row['ap50']:.3f}", f"{row['ap50_95']:.3f}", str(int(row["instances"])))
    table.add_row("[bold]all", f"[bold]{result.map50:.3f}", f"[bold]{result.map50_95:.3f}", str(result.instances))
    Console().print(table)
    Console().print(
        f"at conf {result.operating_threshold:.2f}: precision {result.precision:.3f}, recall {result.recall:.3f}, "
        f"F1 {result.f1:.3f}, mean IoU {result.mean_iou:.3f}"
    )


def _kfold(settings: Settings, model: str, data_yaml: Path, k: int, as_json: bool) -> None:
    from learning.crossval import cross_validate
    from learning.evaluation import split_images
    from visionloop.model_setup import ultralytics_config_dir

    images, names = split_images(data_yaml, "train")
    try:
        more, _ = split_images(data_yaml, "val")
        images += [m for m in more if m.image not in {i.image for i in images}]
    except VisionloopError:
        pass
    base: str | Path = model if model.endswith((".yaml", ".yml")) else resolve_model_file(settings, model, ".pt")[0]
    work = new_run_dir(settings, "kfold")
    summary = cross_validate(
        base,
        images,
        names,
        k,
        settings.training,
        work,
        ultralytics_config_dir(settings),
        settings.serving.imgsz,
        settings.serving.conf_threshold,
        on_fold=lambda r: console.print(f"fold {r.fold}: mAP50 {r.map50:.3f}"),
    )
    if as_json:
        _print_json(summary)
    else:
        console.print(f"{k}-fold mAP50 {summary['map50_mean']:.3f} ± {summary['map50_std']:.3f}")


def tune_command(
    data: Annotated[str, typer.Option(help="Data set ref or data.yaml path.")],
    trials: Annotated[int, typer.Option(min=1, help="Trials (trainings) to run.")] = 8,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs per trial (default: training.epochs).")] = None,
    base: Annotated[str, typer.Option(help="Architecture yaml or weights to start each trial from.")] = "champion",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search lr0, weight decay and augmentation strength with Ray Tune; prints trials best first."""
    from learning.tuning import run_tune
    from visionloop.model_setup import ultralytics_config_dir

    settings = _settings()
    data_yaml = resolve_data(settings, data)
    start: str | Path = base if base.endswith((".yaml", ".yml")) else resolve_model_file(settings, base, ".pt")[0]
    training = settings.training if epochs is None else settings.training.model_copy(update={"epochs": epochs})
    work = new_run_dir(settings, "tune")
    results = run_tune(start, data_yaml, training, trials, work, ultralytics_config_dir(settings))
    rows = [{"map50": r.map50, "map50_95": r.map50_95, **r.config} for r in results]
    if as_json:
        _print_json(rows)
        return
    table = Table("mAP50", "mAP50-95", "lr0", "weight_decay", "aug_strength", title="tuning trials, best first")
    for row in rows:
        table.add_row(*(f"{row[k]:.4g}" for k in ("map50", "map50_95", "lr0", "weight_decay", "aug_strength")))
    Console().print(table)


def compare_command(
    data: Annotated[str, typer.Option(help="Training data set ref or data.yaml path.")],
    gold: Annotated[str, typer.Option(help="Data set the models are scored on (its 'val' split).")],
    arch: Annotated[list[str] | None, typer.Option(help="Architecture yamls (repeat).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs for every architecture.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train several architectures with the same data and budget: mAP50, images/s (ONNX Runtime), size."""
    import os

    from learning.compare import DEFAULT_ARCHITECTURES, compare
    from visionloop.model_setup import ultralytics_config_dir

    settings = _settings()
    training = settings.training if epochs is None else settings.training.model_copy(update={"epochs": epochs})
    work = new_run_dir(settings, "compare")
    rows = compare(
        list(arch or DEFAULT_ARCHITECTURES),
        resolve_data(settings, data),
        resolve_data(settings, gold),
        training,
        work,
        ultralytics_config_dir(settings),
        settings.serving.imgsz,
        settings.serving.conf_threshold,
        os.cpu_count() or 1,
        on_row=lambda r: console.print(f"{r.architecture}: mAP50 {r.map50:.3f}"),
    )
    if as_json:
        _print_json([r.__dict__ for r in rows])
        return
    table = Table(
        "architecture",
        "mAP50",
        "mAP50-95",
        "images/s",
        "parameters",
        "ONNX MB",
        "train s",
        title=f"same data, {training.epochs} epochs each",
    )
    for r in rows:
        table.add_row(
            r.architecture,
            f"{r.map50:.3f}",
            f"{r.map50_95:.3f}",
            f"{r.images_per_s:.1f}",
            f"{r.parameters / 1e6:.2f} M",
            f"{r.onnx_mb:.1f}",
            f"{r.train_seconds:.0f}",
        )
    Console().print(table)


def export_command(
    version: Annotated[str, typer.Argument(help="A registry version, 'champion' or 'latest'.")],
    fmt: Annotated[str, typer.Option("--format", help="onnx or torchscript.")] = "torchscript",
    out: Annotated[
        Path | None, typer.Option(help="Output file (default: var/exports/<version>/model.<format>).")
    ] = None,
) -> None:
    """Export a registered model's weights (ONNX is already in every version); the version itself is untouched."""
    from learning.export import export_onnx, export_torchscript
    from visionloop.model_setup import ultralytics_config_dir
    from visionloop.offline import prepare_ultralytics

    exporters = {"onnx": (export_onnx, "onnx"), "torchscript": (export_torchscript, "torchscript")}
    if fmt not in exporters:
        raise VisionloopError(
            f"unknown export format '{fmt}': choose onnx or torchscript (TFLite needs TensorFlow, "
            "which this install does not carry)"
        )
    settings = _settings()
    prepare_ultralytics(ultralytics_config_dir(settings))
    weights, label = resolve_model_file(settings, version, prefer=".pt")
    if weights.suffix != ".pt":
        raise VisionloopError(f"{version} has no .pt weights to export from")
    exporter, suffix = exporters[fmt]
    target = out or settings.resolved_var_dir() / "exports" / Path(label).stem / f"model.{suffix}"
    console.print(f"exported {exporter(weights, settings.serving.imgsz, target)}")


def register(app: typer.Typer, models_app: typer.Typer) -> None:
    app.add_typer(world_app, name="world")
    app.add_typer(data_app, name="data")
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("tune")(tune_command)
    models_app.command("compare")(compare_command)
    models_app.command("export")(export_command)

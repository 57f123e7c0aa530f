"""``visionloop train``, ``eval`` and ``tune``: training, scoring and searching, without the running service."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from visionloop.cli.context import console, print_json, settings_of, status_console, stdout_to_stderr
from visionloop.cli.data import resolve_data
from visionloop.core.errors import VisionloopError
from visionloop.core.model_setup import registry_for, ultralytics_config_dir
from visionloop.core.progress import progress_bar
from visionloop.core.registry import TORCH_FILE, resolve_model
from visionloop.core.settings import Settings, TrainingSettings


def new_run_dir(settings: Settings, kind: str) -> Path:
    """A fresh folder under ``var/runs`` for one command's work (``var/runs`` is created on first use)."""
    runs = settings.var.runs
    runs.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=runs))


def start_weights(settings: Settings, base: str) -> tuple[str | Path, str | None]:
    """(what training starts from, its registry version): an architecture yaml, or the .pt of a model spec."""
    if base.endswith((".yaml", ".yml")):
        return base, None
    resolved = resolve_model(registry_for(settings), base, prefer=TORCH_FILE)
    if resolved.path.suffix != ".pt":
        raise VisionloopError(f"training starts from .pt weights; '{base}' has only {resolved.path.name}")
    return resolved.path, None if resolved.label.startswith("file:") else resolved.label


def training_settings(settings: Settings, epochs: int | None) -> TrainingSettings:
    return settings.training if epochs is None else settings.training.model_copy(update={"epochs": epochs})


def train_command(
    ctx: typer.Context,
    data: Annotated[str, typer.Option(help="Data set ref (name, name/vN) or a data.yaml path.")],
    base: Annotated[
        str, typer.Option(help="Architecture yaml (from scratch), a .pt, a version, 'champion' or 'latest'.")
    ] = "champion",
    epochs: Annotated[int | None, typer.Option(min=1, help="Override training.epochs.")] = None,
    on_ray: Annotated[bool, typer.Option("--ray", help="Run as a Ray task (cluster: may land on a GPU).")] = False,
    register: Annotated[bool, typer.Option(help="Export and register the result as a candidate version.")] = True,
) -> None:
    """Train from an architecture yaml or fine-tune from weights; registers a candidate with its lineage."""
    from visionloop.learning.training import train, train_on_ray

    settings = settings_of(ctx)
    data_yaml = resolve_data(settings, data)
    base_model, parent = start_weights(settings, base)
    training = training_settings(settings, epochs)
    out = new_run_dir(settings, "train")
    if on_ray:
        from visionloop.core.ray_runtime import init_ray

        init_ray(settings)
        result = train_on_ray(base_model, data_yaml, training, out, ultralytics_config_dir(settings))
    else:
        with progress_bar(status_console) as progress:
            task = progress.add_task("training", total=training.epochs, status="")

            def on_epoch(epoch: int, total: int, row: dict[str, float]) -> None:
                if epoch <= total:
                    progress.update(task, completed=epoch, status=f"val mAP50 {row['map50']:.3f}")

            result = train(base_model, data_yaml, training, out, ultralytics_config_dir(settings), on_epoch=on_epoch)
    status_console.print(f"trained {result.epochs_run} epochs in {result.seconds:.0f} s: {result.weights}")
    if register:
        from visionloop.learning.registration import register_trained

        version, champion = register_trained(settings, result, out, data, data_yaml, str(base_model), parent)
        made = "and made it champion (the registry had none)" if champion else f"(candidate, parent {parent})"
        status_console.print(f"registered {version.version} {made}")


def eval_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="A registry version, 'champion', 'latest', or a .onnx/.pt path.")],
    data: Annotated[str, typer.Option(help="Data set ref (name, name/vN) or a data.yaml path.")],
    split: Annotated[str, typer.Option(help="Which split to score on.")] = "val",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plots: Annotated[Path | None, typer.Option(help="Folder for PR-curve and confusion-matrix PNGs.")] = None,
    kfold: Annotated[int | None, typer.Option(min=2, help="K-fold cross-validation on train+val instead.")] = None,
) -> None:
    """Precision, recall, F1 at the operating threshold, mAP50, mAP50-95, per-class AP, confusion matrix."""
    from visionloop.learning.evaluation import evaluate

    settings = settings_of(ctx)
    data_yaml = resolve_data(settings, data)
    if kfold:
        _kfold(settings, model, data_yaml, kfold, as_json)
        return
    resolved = resolve_model(registry_for(settings), model)
    with stdout_to_stderr(as_json):
        result = evaluate(
            resolved.path,
            data_yaml,
            split,
            settings.serving.conf_threshold,
            settings.serving.imgsz,
            ultralytics_config_dir(settings),
            plots_dir=plots,
        )
    out = {"model": resolved.label, "data": str(data_yaml), "split": split, **result.to_dict()}
    if as_json:
        print_json(out)
        return
    table = Table(title=f"{resolved.label} on {data} ({split}, {result.images} images, {result.instances} boxes)")
    table.add_column("class")
    for column in ("AP50", "AP50-95", "instances"):
        table.add_column(column, justify="right")
    for name, row in result.per_class.items():
        table.add_row(name, f"{row['ap50']:.3f}", f"{row['ap50_95']:.3f}", str(int(row["instances"])))
    table.add_row("[bold]all", f"[bold]{result.map50:.3f}", f"[bold]{result.map50_95:.3f}", str(result.instances))
    console.print(table)
    console.print(
        f"at conf {result.operating_threshold:.2f}: precision {result.precision:.3f}, recall {result.recall:.3f}, "
        f"F1 {result.f1:.3f}, mean IoU {result.mean_iou:.3f}"
    )


def _kfold(settings: Settings, model: str, data_yaml: Path, k: int, as_json: bool) -> None:
    from visionloop.learning.crossval import cross_validate
    from visionloop.learning.evaluation import split_images

    images, names = split_images(data_yaml, "train")
    try:
        more, _ = split_images(data_yaml, "val")
        images += [m for m in more if m.image not in {i.image for i in images}]
    except VisionloopError:
        pass
    base, _ = start_weights(settings, model)
    with stdout_to_stderr(as_json):
        summary = cross_validate(
            base,
            images,
            names,
            k,
            settings.training,
            new_run_dir(settings, "kfold"),
            ultralytics_config_dir(settings),
            settings.serving.imgsz,
            settings.serving.conf_threshold,
            on_fold=lambda r: status_console.print(f"fold {r.fold}: mAP50 {r.map50:.3f}"),
        )
    if as_json:
        print_json(summary)
    else:
        console.print(f"{k}-fold mAP50 {summary['map50_mean']:.3f} ± {summary['map50_std']:.3f}")


def tune_command(
    ctx: typer.Context,
    data: Annotated[str, typer.Option(help="Data set ref or data.yaml path.")],
    trials: Annotated[int, typer.Option(min=1, help="Trials (trainings) to run.")] = 8,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs per trial (default: training.epochs).")] = None,
    base: Annotated[str, typer.Option(help="Architecture yaml or a model spec to start each trial from.")] = "champion",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search lr0, weight decay and augmentation strength with Ray Tune; prints trials best first."""
    from visionloop.learning.tuning import run_tune

    settings = settings_of(ctx)
    data_yaml = resolve_data(settings, data)
    start, _ = start_weights(settings, base)
    work = new_run_dir(settings, "tune")
    with stdout_to_stderr(as_json):
        results = run_tune(
            start, data_yaml, training_settings(settings, epochs), trials, work, ultralytics_config_dir(settings)
        )
    rows = [{"map50": r.map50, "map50_95": r.map50_95, **r.config} for r in results]
    if as_json:
        print_json(rows)
        return
    table = Table("mAP50", "mAP50-95", "lr0", "weight_decay", "aug_strength", title="tuning trials, best first")
    for row in rows:
        table.add_row(*(f"{row[k]:.4g}" for k in ("map50", "map50_95", "lr0", "weight_decay", "aug_strength")))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("tune")(tune_command)

"""``visionloop models ...``: the registry's versions and pointers, comparison of architectures, export."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.context import console, print_json, settings_of, status_console, stdout_to_stderr
from visionloop.cli.data import resolve_data
from visionloop.cli.training import new_run_dir, training_settings
from visionloop.core.errors import VisionloopError
from visionloop.core.model_setup import registry_for, ultralytics_config_dir
from visionloop.core.registry import TORCH_FILE, resolve_model

models_app = typer.Typer(help="The model registry.", no_args_is_help=True)


@models_app.command("init")
def models_init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(help="Build a new one even if a champion exists.")] = False,
) -> None:
    """Make sure a champion exists: build an untrained model from model.architecture and export it."""
    from visionloop.learning.registration import init_untrained_champion

    version = init_untrained_champion(settings_of(ctx), force=force)
    console.print(f"champion: {version.version} ({version.meta.get('source')}) at {version.path}")


def _score(meta: dict[str, Any]) -> tuple[float | None, str]:
    """Bootstrap versions are scored on gold; trained ones carry their own validation split's score."""
    metrics = meta.get("metrics", {})
    if "map50" in metrics:
        return float(metrics["map50"]), "gold"
    val = metrics.get("val", {}).get("map50")
    return (None, "") if val is None else (float(val), "val")


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered model versions and the champion/shadow pointers."""
    registry = registry_for(settings_of(ctx))
    pointers = registry.pointers()
    versions = [m.meta for m in registry.versions()]
    if as_json:
        print_json({"pointers": pointers, "versions": versions})
        return
    table = Table("version", "role", "source", "parent", "mAP50", "scored on", "created")
    for meta in versions:
        score, scored_on = _score(meta)
        table.add_row(
            meta["version"],
            meta.get("role", ""),
            str(meta.get("source", "")),
            str(meta.get("parent") or ""),
            "" if score is None else f"{score:.3f}",
            scored_on,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(meta.get("created", 0))),
        )
    console.print(table)


@models_app.command("show")
def models_show(
    ctx: typer.Context, version: Annotated[str, typer.Argument(help="A version, 'champion' or 'latest'.")]
) -> None:
    """Print one version's metadata as JSON."""
    model = registry_for(settings_of(ctx)).resolve(version)
    print_json({**model.meta, "path": str(model.path)})


@models_app.command("compare")
def models_compare(
    ctx: typer.Context,
    data: Annotated[str, typer.Option(help="Training data set ref or data.yaml path.")],
    gold: Annotated[str, typer.Option(help="Data set the models are scored on (its 'val' split).")],
    arch: Annotated[list[str] | None, typer.Option(help="Architecture yamls (repeat).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs for every architecture.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train several architectures with the same data and budget: mAP50, images/s (ONNX Runtime), size."""
    from visionloop.learning.compare import DEFAULT_ARCHITECTURES, compare

    settings = settings_of(ctx)
    training = training_settings(settings, epochs)
    with stdout_to_stderr(as_json):
        rows = compare(
            list(arch or DEFAULT_ARCHITECTURES),
            resolve_data(settings, data),
            resolve_data(settings, gold),
            training,
            new_run_dir(settings, "compare"),
            ultralytics_config_dir(settings),
            settings.serving.imgsz,
            settings.serving.conf_threshold,
            os.cpu_count() or 1,
            on_row=lambda r: status_console.print(f"{r.architecture}: mAP50 {r.map50:.3f}"),
        )
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    table = Table(
        "architecture", "mAP50", "mAP50-95", "images/s", "parameters", "ONNX MB", "train s",
        title=f"same data, {training.epochs} epochs each",
    )  # fmt: skip
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
    console.print(table)


@models_app.command("export")
def models_export(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="A registry version, 'champion' or 'latest'.")],
    fmt: Annotated[str, typer.Option("--format", help="onnx or torchscript.")] = "torchscript",
    out: Annotated[
        Path | None, typer.Option(help="Output file (default: var/exports/<version>/model.<format>).")
    ] = None,
) -> None:
    """Export a registered model's weights (ONNX is already in every version); the version itself is untouched."""
    from visionloop.core.offline import prepare_ultralytics
    from visionloop.learning.export import export_onnx, export_torchscript

    exporters = {"onnx": export_onnx, "torchscript": export_torchscript}
    if fmt not in exporters:
        raise VisionloopError(
            f"unknown export format '{fmt}': choose onnx or torchscript (TFLite needs TensorFlow, "
            "which this install does not carry)"
        )
    settings = settings_of(ctx)
    prepare_ultralytics(ultralytics_config_dir(settings))
    resolved = resolve_model(registry_for(settings), version, prefer=TORCH_FILE)
    if resolved.path.suffix != ".pt":
        raise VisionloopError(f"{version} has no .pt weights to export from")
    target = out or settings.var.exports / resolved.label / f"model.{fmt}"
    status_console.print(f"exported {exporters[fmt](resolved.path, settings.serving.imgsz, target)}")


@models_app.command("quantize")
def models_quantize(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="A registry version, 'champion' or 'latest'.")],
    data: Annotated[
        str | None,
        typer.Option(
            help="Data set to calibrate on (its train split): a reference or a data.yaml (default: the "
            "version's own training set)."
        ),
    ] = None,
    gold: Annotated[
        str | None,
        typer.Option(help="A data set whose val split scores both precisions (mAP50 at the operating point)."),
    ] = None,
) -> None:
    """Register an int8 copy of a version made before int8 files existed (new versions get theirs at export).

    The copy is a new version (published versions never change); promote it to serve it at int8."""
    from visionloop.learning.quantize import register_int8_copy

    settings = settings_of(ctx)
    source = registry_for(settings).resolve(version)
    reference = data or source.meta.get("training_dataset_version") or source.meta.get("dataset_version")
    if not reference:
        raise VisionloopError(f"{source.version} does not say what it was trained on: pass --data")
    gold_yaml = resolve_data(settings, gold) if gold else None
    copy = register_int8_copy(settings, source, resolve_data(settings, str(reference)), gold_yaml)
    scores = copy.meta.get("int8_gold_map50")
    if scores:
        console.print(f"gold mAP50: fp32 {scores['fp32']:.3f}, int8 {scores['int8']:.3f}")
    console.print(f"registered {copy.version}: {source.version} with model.int8.onnx (promote it to serve it)")


def _who() -> str:
    """How the audit log names an operator acting from this machine's shell."""
    import getpass

    return f"cli:{getpass.getuser()}"


def _print_action(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    what = {"promote": "promoted", "rollback": "rolled back", "reject": "rejected"}[result["action"]]
    target = result.get("to") or result.get("version")
    console.print(f"{what} {target} (by {result['by']}); pointers now {result['pointers']}")
    if result["action"] != "reject":
        console.print("serving replicas follow the champion pointer within a second (plus the model load)")


@models_app.command("promote")
def models_promote(
    ctx: typer.Context,
    version: Annotated[str | None, typer.Argument(help="Version to promote (default: the shadow).")] = None,
    force: Annotated[bool, typer.Option(help="Promote without a PROMOTE verdict from the A/B (audited).")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Make the shadow (or VERSION) the champion; the A/B must have said PROMOTE unless --force."""
    from visionloop.core.model_setup import event_log_for
    from visionloop.core.promotion import promote

    settings = settings_of(ctx)
    with stdout_to_stderr(as_json):
        result = promote(registry_for(settings), event_log_for(settings), version, _who(), force)
    _print_action(result, as_json)


@models_app.command("rollback")
def models_rollback(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Return to the champion before the current one (the current one is marked rejected)."""
    from visionloop.core.model_setup import event_log_for
    from visionloop.core.promotion import rollback

    settings = settings_of(ctx)
    with stdout_to_stderr(as_json):
        result = rollback(registry_for(settings), event_log_for(settings), _who())
    _print_action(result, as_json)


@models_app.command("reject")
def models_reject(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="A candidate or the shadow.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Reject a candidate or the shadow (a rejected shadow stops running)."""
    from visionloop.core.model_setup import event_log_for
    from visionloop.core.promotion import reject

    settings = settings_of(ctx)
    with stdout_to_stderr(as_json):
        result = reject(registry_for(settings), event_log_for(settings), version, _who())
    _print_action(result, as_json)


@models_app.command("history")
def models_history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Most recent pointer changes to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Pointer changes (who, when, what), the rollback stack and each version's last A/B verdict."""
    from visionloop.core.promotion import history

    report = history(registry_for(settings_of(ctx)), limit)
    if as_json:
        print_json(report)
        return
    changes = Table("when", "pointer", "from", "to", "action", "by", title="pointer changes")
    for row in report["changes"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.get("ts", 0)))
        changes.add_row(when, row["pointer"], str(row["from"] or ""), str(row["to"] or ""), row["action"], row["by"])
    console.print(changes)
    verdicts = Table("version", "role", "decision", "mAP50 diff", "CI", "frames", "McNemar p", title="A/B verdicts")
    for row in report["versions"]:
        ab = row["ab"] or {}
        ci = ab.get("ci") or [None, None]
        verdicts.add_row(
            row["version"],
            str(row["role"]),
            str(ab.get("decision") or ""),
            "" if ab.get("difference") is None else f"{ab['difference']:+.4f}",
            "" if ci[0] is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]",
            str(ab.get("n_frames") or ""),
            "" if ab.get("mcnemar_p") is None else f"{ab['mcnemar_p']:.3g}",
        )
    console.print(verdicts)
    console.print(f"champion {report['pointers']['champion']}, shadow {report['pointers']['shadow'] or 'none'}; "
                  f"rollback returns to {(report['previous_champions'] or ['nothing'])[-1]}")  # fmt: skip

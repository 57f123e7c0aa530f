"""``visionloop world ...`` and ``visionloop data ...``: the synthetic world and immutable data set versions.

None of them needs the running service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.context import console, print_json, settings_of, status_console
from visionloop.core.errors import VisionloopError
from visionloop.core.progress import progress_bar
from visionloop.core.settings import Settings

world_app = typer.Typer(help="The synthetic world: data sets and videos with known truth.", no_args_is_help=True)
data_app = typer.Typer(help="Immutable data set versions.", no_args_is_help=True)


def resolve_data(settings: Settings, spec: str) -> Path:
    """A data set reference ('name' or 'name/vN') or a path to a data.yaml / a folder holding one."""
    from visionloop.learning.datasets import DatasetStore

    path = Path(spec)
    if path.is_file():
        return path
    if (path / "data.yaml").is_file():
        return path / "data.yaml"
    return DatasetStore(settings.var.datasets).get(spec).data_yaml


def world_domain(settings: Settings, name: str) -> Any:
    """A domain of the synthetic world by name (from world.domains_file); an unknown name lists the known ones."""
    from visionloop.simulation.world import load_domains

    domains = load_domains(settings.domains_file())
    if name not in domains:
        raise VisionloopError(f"unknown domain '{name}'; known: {', '.join(domains)}")
    return domains[name]


@world_app.command("generate")
def world_generate(
    ctx: typer.Context,
    domain: Annotated[str, typer.Option(help="Domain name from world.domains_file.")],
    out: Annotated[Path, typer.Option(help="Output folder (YOLO layout: data.yaml, images/, labels/).")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    images: Annotated[int, typer.Option(min=1, help="How many images.")] = 100,
) -> None:
    """Write a YOLO data set of still scenes with a ground-truth sidecar."""
    from visionloop.simulation.world import write_yolo_dataset

    settings = settings_of(ctx)
    world = world_domain(settings, domain)
    height, width = settings.world.image_size
    with progress_bar(status_console) as progress:
        task = progress.add_task(f"world {domain}", total=images, status="")
        data_yaml = write_yolo_dataset(world, seed, images, out, height, width, lambda n: progress.advance(task, n))
    status_console.print(f"wrote {images} images to {out} ({data_yaml})")


@world_app.command("video")
def world_video(
    ctx: typer.Context,
    domain: Annotated[str, typer.Option(help="Domain name from world.domains_file.")],
    out: Annotated[Path, typer.Option(help="Output video file (.mp4 or .mkv).")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    seconds: Annotated[float, typer.Option(min=0.1, help="Duration.")] = 10.0,
    fps: Annotated[int, typer.Option(min=1, max=120, help="Frames per second.")] = 15,
) -> None:
    """Write an H.264 video of the moving world and <out>.jsonl with per-frame ground truth."""
    from visionloop.simulation.world import write_video

    settings = settings_of(ctx)
    world = world_domain(settings, domain)
    height, width = settings.world.video_size
    with progress_bar(status_console) as progress:
        task = progress.add_task(f"video {domain}", total=max(1, round(seconds * fps)), status="")
        write_video(world, seed, seconds, fps, out, height, width, lambda n: progress.advance(task, n))
    status_console.print(f"wrote {out} and {out}.jsonl")


@data_app.command("create")
def data_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Data set name (letters, digits, _ . -).")],
    source: Annotated[Path, typer.Option("--from", help="A YOLO data set folder (data.yaml, images/, labels/).")],
    skip_bad: Annotated[bool | None, typer.Option(help="Skip bad files instead of failing (default: setting).")] = None,
    gold: Annotated[bool, typer.Option(help="A gold holdout set: every image in 'val', never trained on.")] = False,
) -> None:
    """Cut a new immutable version of a data set: validated, stratified by data.split, hashed."""
    from visionloop.learning.datasets import DatasetStore, read_yolo_source, stratified_split

    settings = settings_of(ctx)
    skip = settings.data.skip_bad_files if skip_bad is None else skip_bad
    images, names, report = read_yolo_source(source, skip_bad=skip)
    fractions = (0.0, 1.0, 0.0) if gold else settings.data.split
    splits = stratified_split(images, fractions, seed=0)
    meta = {"source": str(source.resolve()), "skipped": [f"{p}: {r}" for p, r in report.bad], "gold": gold}
    version = DatasetStore(settings.var.datasets).create(
        name, splits, names, meta=meta, oversample_threshold=0.0 if gold else settings.data.oversample_rare
    )
    counts = version.manifest["counts"]
    status_console.print(
        f"{version.ref}: "
        + ", ".join(f"{s} {c['images']} images / {c['boxes']} boxes" for s, c in counts.items())
        + (f"; skipped {len(report.bad)} bad file(s)" if report.bad else "")
    )


@data_app.command("list")
def data_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Data set versions with their sizes."""
    from visionloop.learning.datasets import DatasetStore

    store = DatasetStore(settings_of(ctx).var.datasets)
    rows = []
    if store.root.is_dir():
        for folder in sorted(p for p in store.root.iterdir() if p.is_dir()):
            for version in store.versions(folder.name):
                manifest = version.manifest
                rows.append({"ref": version.ref, "counts": manifest["counts"], "source": manifest.get("source")})
    if as_json:
        print_json(rows)
        return
    table = Table("data set", "train", "val", "test", "source")
    for row in rows:
        c = row["counts"]
        table.add_row(row["ref"], *(str(c[s]["images"]) for s in ("train", "val", "test")), str(row["source"]))
    console.print(table)


@data_app.command("verify")
def data_verify(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="name or name/vN")]) -> None:
    """Check every file of a version against its manifest hashes."""
    from visionloop.learning.datasets import DatasetStore

    version = DatasetStore(settings_of(ctx).var.datasets).get(ref)
    changed = version.verify()
    if changed:
        raise VisionloopError(f"{version.ref}: {len(changed)} file(s) differ from the manifest: {changed[:10]}")
    status_console.print(f"{version.ref}: every file matches its manifest")

"""``visionloop world site`` and ``visionloop world frame-number``: a simulated site written ahead, and the frame clock
read back from a picture. ``visionloop cameras simulate`` serves such a site (see cameras.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from visionloop.cli.context import print_json, settings_of, status_console
from visionloop.core.errors import VisionloopError
from visionloop.core.progress import progress_bar
from visionloop.core.settings import Settings

if TYPE_CHECKING:
    from visionloop.simulation.site import SiteSpec

ShiftOption = Annotated[
    list[str] | None,
    typer.Option("--shift", help="CAMERA:T:DOMAIN[:RAMP_S]: at T seconds the camera turns to DOMAIN (repeatable)."),
]


def site_spec(
    cameras: int, seconds: float, seed: int, domain: str, shifts: list[str] | None, fps: int, bitrate_kbps: int | None
) -> SiteSpec:
    """The site the options describe (a ConfigError names a bad shift or camera)."""
    from visionloop.simulation.site import Shift, SiteSpec

    try:
        return SiteSpec(
            cameras=cameras,
            seconds=seconds,
            seed=seed,
            domain=domain,
            fps=fps,
            shifts=tuple(Shift.parse(s) for s in shifts or ()),
            bitrate_kbps=bitrate_kbps,
        )
    except ValueError as exc:
        raise VisionloopError(f"invalid site: {exc}") from None


def render_site(settings: Settings, spec: SiteSpec, out: Path | None = None) -> Path:
    """Write the site (or reuse a rendering of the same recipe) with a progress bar; returns its site.json.

    Without ``out`` it goes under var/simulator, named by its recipe, so a later run of the same site is free."""
    from visionloop.simulation.site.writer import write_site

    domains_file = settings.domains_file()
    target = out or settings.var.simulator / f"site-{spec.recipe_hash(domains_file.read_text(encoding='utf-8'))}"
    with progress_bar(status_console) as progress:
        task = progress.add_task("rendering the site", total=spec.frames * spec.cameras, status="")
        site_json = write_site(spec, domains_file, target, lambda n: progress.advance(task, n))
    return site_json


def world_site(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Output folder: <camera>/video.mp4, <camera>/truth.jsonl, site.json.")],
    cameras: Annotated[int, typer.Option(min=1, max=256, help="How many cameras.")] = 2,
    seconds: Annotated[float, typer.Option(min=0.1, help="Length of the run.")] = 60.0,
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same site.")] = 0,
    domain: Annotated[str, typer.Option(help="Domain every camera starts in (world.domains_file).")] = "A",
    shift: ShiftOption = None,
    fps: Annotated[int, typer.Option(min=1, max=60, help="Frames per second.")] = 15,
    bitrate: Annotated[int | None, typer.Option(min=16, help="H.264 kbit/s (default: constant quality).")] = None,
) -> None:
    """Write a simulated site ahead of time: per camera an H.264 video and its truth, one line per frame."""
    spec = site_spec(cameras, seconds, seed, domain, shift, fps, bitrate)
    site_json = render_site(settings_of(ctx), spec, out)
    status_console.print(f"wrote {site_json}")


def world_frame_number(
    image: Annotated[Path, typer.Argument(help="A picture (PNG, JPEG...) from a simulated camera.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the frame number stamped in a picture's bottom strip (the frame clock); exits 1 where there is none."""
    import cv2
    import numpy as np

    from visionloop.core.frame_clock import read_frame_number

    picture = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if picture is None:
        raise VisionloopError(f"cannot read a picture from {image}")
    number = read_frame_number(np.asarray(picture, np.uint8))
    if json_out:
        print_json({"image": str(image), "frame": number})
    elif number is not None:
        print(number)
    if number is None:
        status_console.print(f"{image}: no frame clock in the picture")
        raise typer.Exit(1)


def register(world_app: typer.Typer) -> None:
    world_app.command("site")(world_site)
    world_app.command("frame-number")(world_frame_number)

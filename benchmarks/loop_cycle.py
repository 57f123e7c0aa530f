"""The learning-loop benchmark's cycle through the real service: a private var seeded with the champion, a simulated
site whose cameras show the shift, the simulated labeler answering until the budget is spent, then the loop's
verdict. The site's later frames and its unseen cameras are the cycle's camera test sets (benchmarks.loop)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from benchmarks.own_var import moved_to, service_settings
from visionloop.cli.service import VisionloopService
from visionloop.core.layout import VarLayout
from visionloop.core.progress import progress_bar
from visionloop.core.redis_server import port_is_free
from visionloop.core.registry import ModelRegistry, ModelVersion, Role
from visionloop.core.settings import Settings
from visionloop.learning.datasets import DatasetStore
from visionloop.simulation.simulated_labeler import SimulatedLabeler
from visionloop.simulation.site import SiteSpec
from visionloop.simulation.site.live import RenderedSite
from visionloop.simulation.site.truth import SiteTruth

CAMERAS = 4
UNSEEN = 2
FUTURE_S = 120.0  # the site's last two minutes are never offered for labeling: the cameras' own future
console = Console()


def free_port(start: int) -> int:
    return next(p for p in range(start, start + 1000) if port_is_free(p))


def link_tree(source: Path, target: Path) -> None:
    """Copy a read-only data set version by hard links (same bytes, no space)."""
    shutil.copytree(source, target, copy_function=os.link)


def bench_settings(base: Settings, var: Path, args: argparse.Namespace, gold_ref: str) -> Settings:
    """The service for the cycle: private var and ports, labeling and the loop on, auto-promotion on."""
    overrides = {
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
    return moved_to(service_settings({**environ, **overrides}), var)


def seed_var(
    base: Settings, var: VarLayout, boot: ModelVersion, store: DatasetStore
) -> tuple[ModelRegistry, ModelVersion]:
    """A fresh private var for the cycle: the bootstrap model as its champion, its data sets linked, Ultralytics'
    files copied; returns the var's registry and the champion."""
    shutil.rmtree(var.root, ignore_errors=True)
    registry = ModelRegistry(var.models)
    meta = {k: v for k, v in boot.meta.items() if k not in ("version", "role")}
    int8 = boot.int8_path if boot.int8_path.is_file() else None  # served as the service would (serving.precision)
    champion = registry.register(boot.onnx_path, boot.torch_path, meta, int8_file=int8)
    registry.set_pointer(Role.CHAMPION, champion.version, by="benchmark")
    for ref in (boot.meta["dataset_version"], boot.meta["gold_dataset"]):
        version = store.get(ref)
        link_tree(version.path, var.datasets / version.name / version.version)
    shutil.copytree(base.var.ultralytics, var.ultralytics, dirs_exist_ok=True)
    return registry, champion


def cycle_site(base: Settings, args: argparse.Namespace) -> RenderedSite:
    """The cycle's site: CAMERAS cameras and UNSEEN unseen viewpoints of the shift domain, long enough for the
    labeling and the future window after it (rendered once, cached under var/simulator)."""
    from visionloop.cli.site import render_site

    spec = SiteSpec(
        seed=500 + 10 * args.seed,
        cameras=CAMERAS,
        unseen=UNSEEN,
        domain=args.shift_domain,
        seconds=args.site_seconds,
    )
    return RenderedSite(render_site(base, spec))


def run_cycle(base: Settings, args: argparse.Namespace, var: Path, gold_ref: str, site: RenderedSite) -> dict[str, Any]:
    """The cycle through the real service; returns what it did, how long it took, and until when (seconds of the
    site) frames were offered for labeling."""
    settings = bench_settings(base, var, args, gold_ref)
    registry = ModelRegistry(settings.var.models)
    auth = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
    started = time.monotonic()
    with (
        VisionloopService(settings) as service,
        httpx.Client(base_url=service.api_url, headers=auth, timeout=120) as api,
    ):
        from visionloop.labeling.label_studio_client import LabelStudioClient
        from visionloop.labeling.label_studio_server import LabelStudioAccount

        project = api.get("/v1/labeling/status").json()["project_id"]
        client = LabelStudioClient(service.label_studio_url or "", LabelStudioAccount().token)
        truth = SiteTruth(site, {name: name for name in site.cameras})
        labeler = SimulatedLabeler(
            client, project, settings.var.label_studio_files, truth, settings.model.class_names, seed=args.seed
        )
        with site.serve(free_port(18554)) as simulator:
            for name in site.cameras:
                api.post("/v1/cameras", json={"id": name, "url": simulator.url(name)}).raise_for_status()
            clock = site.clock(site.cameras[0])
            answered, deadline = 0, time.monotonic() + args.labeling_timeout_s
            last_offer = clock.sent_at(round((site.spec.seconds - FUTURE_S) * site.spec.fps))
            with progress_bar(console) as progress:
                task = progress.add_task("simulated labeler", total=args.labels, status="")
                while answered < args.labels and time.monotonic() < deadline and time.time() < last_offer:
                    answered += labeler.label_pending(limit=min(20, args.labels - answered))
                    progress.update(task, completed=answered, status=f"{labeler.unmatched} unmatched")
                    time.sleep(2.0)
            for name in site.cameras:  # the cameras stop: training gets the CPUs
                api.delete(f"/v1/cameras/{name}")
            labels_until_s = time.time() - clock.epoch
            answered += labeler.label_pending(limit=max(0, args.labels - answered))  # frames queued meanwhile
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
        "edits_used": labeler.edits.to_dict(),
        "labelling_s": round(labelled_s, 1),
        "labels_until_s": round(labels_until_s, 1),
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

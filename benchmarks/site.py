"""Site benchmark: what a simulated site costs, and whether its truth agrees with what a detector sees.

- rendering: frames/s per core (render + H.264 encode, done ahead of any measurement);
- serving: the RTSP server's CPU per live camera while clients read every frame (all that a measurement pays);
- truth: the bootstrap model's mAP50 on a site's frames of domain A (decoded from the cameras' videos, labelled
  from the truth files) against its gold mAP50 (stills of A); they should agree within 0.05.

Usage: python -m benchmarks.site [--cameras 4] [--seconds 60] [--domain A]
Honours VISIONLOOP_WORLD__DOMAINS_FILE. Writes benchmarks/results/site.json.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import av
import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.own_var import benchmark_settings
from visionloop.cli.site import render_site
from visionloop.core.redis_server import port_is_free
from visionloop.learning.datasets import DatasetStore
from visionloop.learning.evaluation import serving_map50
from visionloop.simulation.bootstrap import run_bootstrap
from visionloop.simulation.site import SiteSpec
from visionloop.simulation.site.live import RenderedSite
from visionloop.simulation.site.testsets import camera_test_set

RESULTS = Path(__file__).resolve().parent / "results" / "site.json"
console = Console()


def read_every_frame(url: str, seconds: float, counts: list[int], index: int) -> None:
    options = {"rtsp_transport": "tcp", "timeout": "5000000"}
    deadline = time.monotonic() + seconds
    with av.open(url, options=options) as container:
        for _ in container.decode(video=0):
            counts[index] += 1
            if time.monotonic() >= deadline:
                return


def serving_cost(site: RenderedSite, seconds: float) -> dict[str, Any]:
    """The server's CPU while every camera has a client reading it."""
    port = next(p for p in range(18554, 18654) if port_is_free(p))
    with site.serve(port) as simulator:
        assert simulator.pid is not None
        time.sleep(max(0.0, site.clock(site.cameras[0]).epoch - time.time()))
        server = psutil.Process(simulator.pid)
        counts = [0] * len(site.cameras)
        readers = [
            threading.Thread(target=read_every_frame, args=(simulator.url(name), seconds, counts, i))
            for i, name in enumerate(site.cameras)
        ]
        before, started = server.cpu_times(), time.monotonic()
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(seconds + 30)
        after, elapsed = server.cpu_times(), time.monotonic() - started
    busy = after.user + after.system - before.user - before.system
    return {
        "cameras": len(site.cameras),
        "seconds": round(elapsed, 1),
        "frames_read": sum(counts),
        "server_cpu_share": round(busy / elapsed, 4),
        "server_cpu_share_per_camera": round(busy / elapsed / len(site.cameras), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--domain", default="A")
    parser.add_argument("--seed", type=int, default=900)
    args = parser.parse_args()
    settings = benchmark_settings("site")
    boot = run_bootstrap(settings, console).version
    spec = SiteSpec(seed=args.seed, cameras=args.cameras, domain=args.domain, seconds=args.seconds)
    started = time.monotonic()
    site = RenderedSite(render_site(settings, spec))
    render_s = site.data.get("render_s") or time.monotonic() - started
    frames = spec.frames * spec.cameras
    store = DatasetStore(settings.var.datasets)
    frames_set = camera_test_set(store, f"bench-site-{args.domain}-s{args.seed}", site, site.cameras,
                                 (0.0, spec.seconds), 1.0)  # fmt: skip
    gold = store.get(boot.meta["gold_dataset"])
    on_site = serving_map50(settings, boot.onnx_path, frames_set.data_yaml)
    on_gold = serving_map50(settings, boot.onnx_path, gold.data_yaml)
    result = {
        "site": spec.model_dump(mode="json"),
        "render": {
            "frames": frames,
            "seconds": round(float(render_s), 1),
            "frames_per_s": round(frames / float(render_s), 1),
            "note": "render + H.264 encode, one process per core, before any measurement (cached by recipe)",
        },
        "serving": serving_cost(site, min(30.0, spec.seconds - 5)),
        "truth": {
            "model": boot.version,
            "site_frames": frames_set.ref,
            "site_map50": round(on_site, 4),
            "gold_map50": round(on_gold, 4),
            "difference": round(on_site - on_gold, 4),
            "within_0_05": abs(on_site - on_gold) <= 0.05,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    table = Table(title="simulated site: costs and truth (one run)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("render frames/s (all cores)", f"{result['render']['frames_per_s']:.1f}"),
        ("RTSP server CPU per live camera", f"{result['serving']['server_cpu_share_per_camera'] * 100:.2f}% of a core"),
        (f"bootstrap mAP50 on the site's {args.domain} frames", f"{on_site:.3f}"),
        ("bootstrap mAP50 on gold (stills)", f"{on_gold:.3f}"),
        ("difference", f"{on_site - on_gold:+.3f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

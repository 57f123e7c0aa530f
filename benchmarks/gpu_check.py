"""``make gpu-check``: the serving benchmark on CUDA, written to benchmarks/results/serving-gpu.json.

NOT YET RUN ON A GPU. This was written on a CPU-only machine: only the no-GPU path and the detection logic (with
fakes) have run, in tests/unit/test_gpu_check.py. The GPU path reuses benchmarks.serving's measurements and checks
at each step that the work really runs on the GPU (ONNX Runtime falls back to the CPU silently), so a broken CUDA
setup fails loudly instead of reporting CPU figures as GPU ones.

With a GPU: ONNX Runtime's CUDA execution provider (serving.device cuda), one GPU per Detector replica
(serving.num_gpus 1), raw backend frames/s per batch size at fp32 and int8, then frames/s through Serve (HTTP,
Ray handle, WebSocket stream) at one batch size. The backend serves fp32 or int8 (QDQ) models only: no fp16.
Without a usable GPU (no nvidia-smi, nvidia-smi failing, or an onnxruntime without the CUDA execution provider) it
prints what is missing and how to get it, writes {"gpu": false, "reason": ...} and exits 0 (2 with --strict).

Usage: python -m benchmarks.gpu_check [--seconds 10] [--batch-sizes 8 32 64] [--serve-batch 32] [--clients 4]
       [--existing-model] [--strict] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from visionloop.core.settings import Settings
from visionloop.serving.backends.onnx_backend import CUDA_PROVIDER

RESULTS = Path(__file__).resolve().parent / "results" / "serving-gpu.json"
# Keep equal to ORT_GPU_VERSION in docker/Dockerfile.cuda (a unit test compares them): PyPI has no GPU build of the
# locked onnxruntime 1.32.0.
ORT_GPU_VERSION = "1.31.1"
SMI_ARGS = ("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits")
SMI_TIMEOUT_S = 20.0
PRECISIONS = ("fp32", "int8")
console = Console()

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class GpuMissing(Exception):
    """Why nvidia-smi shows no GPU here, with how to fix it."""


@dataclass(frozen=True)
class Gpu:
    name: str
    driver: str
    memory_mib: int | None


@dataclass(frozen=True)
class Probe:
    """What this machine offers the check: GPUs nvidia-smi lists, ORT's providers, and what is missing."""

    gpus: list[Gpu]
    providers: list[str]
    onnxruntime: str
    problems: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems


def _run_smi(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=SMI_TIMEOUT_S, check=False)


def parse_smi(text: str) -> list[Gpu]:
    """GPUs from ``nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0]:
            continue
        memory = parts[2]
        gpus.append(Gpu(parts[0], parts[1], int(memory) if memory.isdigit() else None))
    return gpus


def nvidia_smi(which: Callable[[str], str | None] = shutil.which, run: Runner = _run_smi) -> list[Gpu]:
    """The GPUs the NVIDIA driver answers for; GpuMissing says why there are none."""
    path = which("nvidia-smi")
    if path is None:
        raise GpuMissing(
            "nvidia-smi not found: no NVIDIA driver here. Install the driver on the host; in a container, run it "
            "with --gpus 1 and the NVIDIA Container Toolkit (docker/README.md)"
        )
    try:
        proc = run([path, *SMI_ARGS])
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GpuMissing(f"nvidia-smi did not answer ({exc}): the NVIDIA driver is not working") from exc
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise GpuMissing(
            f"nvidia-smi failed (exit {proc.returncode}: {said[0] if said else 'no output'}): the NVIDIA driver is "
            "not loaded or does not match the kernel module; reboot after a driver update or reinstall the driver"
        )
    gpus = parse_smi(proc.stdout)
    if not gpus:
        raise GpuMissing("nvidia-smi lists no GPU (CUDA_VISIBLE_DEVICES or the container's --gpus hide them all?)")
    return gpus


def ort_providers() -> list[str]:
    """Execution providers compiled into the installed onnxruntime (present, not necessarily loadable)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def ort_build() -> str:
    """The onnxruntime distributions installed: the GPU and the CPU build share the module name."""
    found = []
    for dist in ("onnxruntime-gpu", "onnxruntime"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return " + ".join(found) or "no onnxruntime"


def missing_cuda_provider(providers: Sequence[str], build: str) -> str | None:
    """The fix when ORT lacks the CUDA execution provider (the lock installs the CPU build)."""
    if CUDA_PROVIDER in providers:
        return None
    both = (
        " Both builds are installed: they share the onnxruntime module and the CPU build's files won (make venv "
        "reinstalls the lock's onnxruntime after a lock change)."
        if " + " in build
        else ""
    )
    return (
        f"ONNX Runtime has no {CUDA_PROVIDER} ({build}; providers: {', '.join(providers) or 'none'}).{both} Install "
        f"the GPU build in its place (the 'gpu' extra): .venv/bin/pip uninstall -y onnxruntime onnxruntime-gpu && "
        f".venv/bin/pip install --no-deps onnxruntime-gpu=={ORT_GPU_VERSION} (it also needs the CUDA and cuDNN "
        "libraries it was built for: docker/Dockerfile.cuda's base image has them and its build checks them with ldd)"
    )


def probe(
    smi: Callable[[], list[Gpu]] = nvidia_smi,
    providers: Callable[[], list[str]] = ort_providers,
    build: Callable[[], str] = ort_build,
) -> Probe:
    """Everything that stands between this machine and a GPU run, all of it at once (not just the first)."""
    problems = []
    try:
        gpus = smi()
    except GpuMissing as exc:
        gpus = []
        problems.append(str(exc))
    available, dist = providers(), build()
    missing = missing_cuda_provider(available, dist)
    if missing:
        problems.append(missing)
    return Probe(gpus, available, dist, problems)


def no_gpu_report(found: Probe) -> dict[str, Any]:
    return {
        "gpu": False,
        "reason": "; ".join(found.problems),
        "missing": found.problems,
        "gpus": [asdict(g) for g in found.gpus],
        "providers": found.providers,
        "onnxruntime": found.onnxruntime,
    }


def cuda_overrides(batch: int, precision: str) -> dict[str, str]:
    """Settings for one Detector on one GPU with ``batch`` frames per model call."""
    return {
        "VISIONLOOP_SERVING__DEVICE": "cuda",  # 'cuda' refuses the CPU fallback that 'auto' allows
        "VISIONLOOP_SERVING__NUM_GPUS": "1",
        "VISIONLOOP_SERVING__MAX_BATCH_SIZE": str(batch),
        "VISIONLOOP_SERVING__MAX_ONGOING_REQUESTS": str(max(32, 2 * batch)),  # the schema's 2 x batch rule
        "VISIONLOOP_SERVING__PRECISION": precision,
        # The shadow Detector asks serving.num_gpus too: on a one-GPU machine it would never be placed, and Serve
        # would wait for it forever. It idles in the CPU benchmark (no shadow model), so this changes no figure.
        "VISIONLOOP_SHADOW__ENABLED": "false",
    }


def cuda_settings(environ: Mapping[str, str], batch: int, precision: str) -> Settings:
    from benchmarks.serving import BENCH_PORTS
    from visionloop.core.config import load_settings

    return load_settings(environ={**environ, **BENCH_PORTS, **cuda_overrides(batch, precision)})


def prepare_model(settings: Settings, existing: bool) -> str:
    """The champion to measure: the bootstrap's (as bench-serving, with int8) or whatever exists (else the
    untrained stand-in: frames/s do not depend on the weights, but it has no int8 file)."""
    if existing:
        from visionloop.learning.registration import init_untrained_champion

        return init_untrained_champion(settings).version
    from visionloop.simulation.bootstrap import run_bootstrap

    return run_bootstrap(settings, console).version.version


def measure_precision(
    environ: Mapping[str, str], precision: str, batch_sizes: Sequence[int], jpegs: list[bytes], seconds: float
) -> dict[str, Any]:
    """Raw backend frames/s at each batch size, on CUDA or not at all."""
    from benchmarks.serving import measure_raw
    from visionloop.serving.app import resolve_serving_model

    served = resolve_serving_model(cuda_settings(environ, batch_sizes[0], precision)).precision
    if served != precision:
        return {"skipped": f"the champion has no {precision} model (served at {served})"}
    rows = {}
    for batch in batch_sizes:
        console.print(f"  {precision}, batch {batch}")
        rows[str(batch)] = measure_raw(cuda_settings(environ, batch, precision), jpegs, seconds, expect_device="cuda")
    return rows


def measure_raw_grid(
    environ: Mapping[str, str], batch_sizes: Sequence[int], jpegs: list[bytes], seconds: float
) -> dict[str, Any]:
    """fp32 must run on CUDA (its failure aborts); an int8 failure (QDQ on CUDA) is recorded and shown instead."""
    grid = {"fp32": measure_precision(environ, "fp32", batch_sizes, jpegs, seconds)}
    try:
        grid["int8"] = measure_precision(environ, "int8", batch_sizes, jpegs, seconds)
    except Exception as exc:  # any ORT error: the fp32 figures stand on their own
        console.print(f"[red]int8 on CUDA failed:[/] {escape(str(exc))}")
        grid["int8"] = {"error": f"{type(exc).__name__}: {exc}"}
    return grid


def best_precision(grid: Mapping[str, Any], batch: int) -> str:
    """The precision Serve is measured at: whichever ran faster raw at ``batch`` (int8 QDQ is not always faster
    on CUDA, where ORT has no int8 convolutions)."""
    fps = {p: grid[p][str(batch)]["raw_fps"] for p in PRECISIONS if str(batch) in grid.get(p, {})}
    return max(fps, key=lambda p: fps[p]) if fps else "fp32"


def check_ray_gpus(settings: Settings) -> float:
    """Ray's GPU count; too few would leave the Detector unplaced and Serve waiting for ever."""
    from visionloop.core.ray_runtime import import_ray

    gpus = float(import_ray().cluster_resources().get("GPU", 0.0))
    if gpus < settings.serving.num_gpus:
        raise RuntimeError(
            f"Ray sees {gpus:g} GPU(s) but a Detector asks for {settings.serving.num_gpus:g}: is CUDA_VISIBLE_DEVICES "
            "empty, or the Ray cluster started without GPUs?"
        )
    return gpus


def served_device(api_url: str) -> str:
    """Where the Detector replica's backend runs, as its /v1/health reports it."""
    from visionloop.cli.client import ApiClient

    with ApiClient(api_url) as client:
        return str(client.health()["model"].get("device", "unknown"))


def measure_serve(settings: Settings, jpegs: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    """Frames/s through Serve (HTTP, Ray handle, WebSocket stream) with the Detector on the GPU."""
    from benchmarks.process_memory import wait_until_idle
    from benchmarks.serving import measure_handle
    from visionloop.cli.loadgen import run_clients
    from visionloop.cli.service import VisionloopService
    from visionloop.cli.stream_client import run_stream_clients
    from visionloop.core.ray_runtime import init_ray, shutdown_ray

    per_request = settings.serving.max_batch_size
    token = settings.api.token.get_secret_value()
    init_ray(settings)  # before Serve: the service reuses this Ray
    try:
        ray_gpus = check_ray_gpus(settings)
        with VisionloopService(settings) as service:
            device = served_device(service.api_url)
            if device != "cuda":
                raise RuntimeError(f"the Serve Detector runs on '{device}', not on the GPU")
            wait_until_idle()
            run_clients(service.api_url, token, jpegs, clients, 3.0, per_request)  # warm-up
            http = run_clients(service.api_url, token, jpegs, clients, seconds, per_request)
            stream = run_stream_clients(service.api_url, token, jpegs, clients, seconds)
            handle_fps, _ = asyncio.run(measure_handle(jpegs, clients, per_request, seconds))
    finally:
        shutdown_ray()
    return {
        "ray_gpus": ray_gpus,
        "serve_device": device,
        "frames_per_request": per_request,
        "serve_fps": http.fps,
        "latency_ms_p50": http.percentile(50),
        "latency_ms_p99": http.percentile(99),
        "failed_requests": http.errors,
        "serve_handle_fps": handle_fps,
        "stream_fps": stream.fps,
        "stream_failed_frames": stream.errors,
    }


def gpu_report(args: argparse.Namespace, found: Probe, environ: Mapping[str, str]) -> dict[str, Any]:
    from visionloop.simulation.clips import render_clip_jpegs

    base = cuda_settings(environ, args.serve_batch, "fp32")
    version = prepare_model(base, args.existing_model)
    jpegs = render_clip_jpegs(frames=64, width=args.width, height=args.width * 9 // 16, seed=3)
    console.print(f"[bold]raw backend on CUDA[/] (model {version}, {args.seconds:.0f} s per batch size)")
    grid = measure_raw_grid(environ, args.batch_sizes, jpegs, args.seconds)
    precision = best_precision(grid, args.serve_batch)
    console.print(f"[bold]Serve on CUDA[/] (batch {args.serve_batch}, {precision}, {args.clients} clients)")
    serve = measure_serve(cuda_settings(environ, args.serve_batch, precision), jpegs, args.clients, args.seconds)
    return {
        "gpu": True,
        "gpus": [asdict(g) for g in found.gpus],
        "providers": found.providers,
        "onnxruntime": found.onnxruntime,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "model_version": version,
        "frame": f"{args.width}x{args.width * 9 // 16} JPEG",
        "imgsz": base.serving.imgsz,
        "raw": grid,
        "serve_batch": args.serve_batch,
        "serve_precision": precision,
        "serve": serve,
    }


def print_no_gpu(report: Mapping[str, Any], out: Path) -> None:
    console.print("[bold yellow]gpu-check: no usable GPU here, nothing measured[/]")
    for problem in report["missing"]:  # unwrapped, no markup: the commands in it must copy and paste whole
        console.print(f"  - {problem}", soft_wrap=True, markup=False)
    console.print(f"wrote {out}")


def print_gpu(report: Mapping[str, Any], out: Path) -> None:
    gpus = ", ".join(f"{g['name']} (driver {g['driver']})" for g in report["gpus"])
    table = Table(title=f"serving on CUDA: {gpus}")
    for column in ("precision", "batch", "raw fps", "raw+decode fps"):
        table.add_column(column, justify="right")
    for precision, rows in report["raw"].items():
        for batch, row in rows.items():
            if isinstance(row, dict):
                table.add_row(precision, batch, f"{row['raw_fps']:.1f}", f"{row['raw_with_decode_fps']:.1f}")
            else:
                table.add_row(precision, "-", str(row), "")
    console.print(table)
    serve = report["serve"]
    serve_table = Table(title=f"through Serve (batch {report['serve_batch']}, {report['serve_precision']})")
    serve_table.add_column("measure")
    serve_table.add_column("value", justify="right")
    for key in ("serve_fps", "serve_handle_fps", "stream_fps", "latency_ms_p50", "latency_ms_p99", "failed_requests"):
        value = serve[key]
        serve_table.add_row(key, f"{value:.1f}" if isinstance(value, float) else str(value))
    console.print(serve_table)
    console.print(f"providers: {', '.join(report['providers'])} ({report['onnxruntime']}); wrote {out}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 64], help="raw backend batch sizes")
    parser.add_argument("--serve-batch", type=int, default=32, help="serving.max_batch_size for the Serve run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--width", type=int, default=320, help="frame width (16:9 frames)")
    parser.add_argument(
        "--existing-model",
        action="store_true",
        help="skip the bootstrap training: measure the current champion (or the untrained stand-in)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 2 when there is no usable GPU")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    detect: Callable[[], Probe] = probe,
    environ: Mapping[str, str] | None = None,
) -> int:
    args = parse_args(argv)
    found = detect()
    if found.usable:
        report = gpu_report(args, found, os.environ if environ is None else environ)
    else:
        report = no_gpu_report(found)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if not found.usable:
        print_no_gpu(report, args.out)
        return 2 if args.strict else 0
    print_gpu(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

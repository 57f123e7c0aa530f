"""``make gpu-check``'s measurements: raw backend frames/s per precision and batch size, and frames/s through Serve,
each refusing to report a figure that did not run on the GPU (ONNX Runtime falls back to the CPU silently)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from visionloop.core.settings import Settings

PRECISIONS = ("fp32", "int8")
console = Console()


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
    from benchmarks.own_var import benchmark_settings
    from benchmarks.serving import BENCH_PORTS

    return benchmark_settings("gpu", {**environ, **BENCH_PORTS, **cuda_overrides(batch, precision)})


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

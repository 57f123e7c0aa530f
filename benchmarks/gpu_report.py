"""``make gpu-check``'s report: what was measured on the GPU (or why nothing was), as JSON and as tables."""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from benchmarks.gpu_measure import best_precision, cuda_settings, measure_raw_grid, measure_serve, prepare_model

if TYPE_CHECKING:  # gpu_check imports this module: the probe's type only for the annotations
    from benchmarks.gpu_check import Probe

console = Console()


def no_gpu_report(found: Probe) -> dict[str, Any]:
    return {
        "gpu": False,
        "reason": "; ".join(found.problems),
        "missing": found.problems,
        "gpus": [asdict(g) for g in found.gpus],
        "providers": found.providers,
        "onnxruntime": found.onnxruntime,
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

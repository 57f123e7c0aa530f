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
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from benchmarks.gpu_measure import (
    PRECISIONS,
    best_precision,
    check_ray_gpus,
    cuda_overrides,
    cuda_settings,
    measure_precision,
    measure_raw_grid,
    measure_serve,
    prepare_model,
    served_device,
)
from benchmarks.gpu_report import gpu_report, no_gpu_report, print_gpu, print_no_gpu
from visionloop.serving.backends.onnx_backend import CUDA_PROVIDER

# Here: the probe of the device and the command line; the measurements (gpu_measure) and the report (gpu_report)
# are re-exported for the callers and tests that import them from here.
__all__ = [
    "ORT_GPU_VERSION",
    "PRECISIONS",
    "RESULTS",
    "SMI_ARGS",
    "SMI_TIMEOUT_S",
    "Gpu",
    "GpuMissing",
    "Probe",
    "best_precision",
    "check_ray_gpus",
    "cuda_overrides",
    "cuda_settings",
    "gpu_report",
    "main",
    "measure_precision",
    "measure_raw_grid",
    "measure_serve",
    "missing_cuda_provider",
    "no_gpu_report",
    "nvidia_smi",
    "ort_build",
    "ort_providers",
    "parse_smi",
    "prepare_model",
    "print_gpu",
    "print_no_gpu",
    "probe",
    "served_device",
]

RESULTS = Path(__file__).resolve().parent / "results" / "serving-gpu.json"
# Keep equal to ORT_GPU_VERSION in docker/Dockerfile.cuda (a unit test compares them): PyPI has no GPU build of the
# locked onnxruntime 1.32.0.
ORT_GPU_VERSION = "1.31.1"
SMI_ARGS = ("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits")
SMI_TIMEOUT_S = 20.0

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

"""`make gpu-check` on a machine without a GPU, and how it tells what is missing.

The GPU path has never run on the project's machines (none has a GPU); these tests cover the no-GPU path, the
detection (with fake nvidia-smi programs run for real), the CUDA settings, and the guards against ONNX Runtime's
silent CPU fallback.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

from benchmarks import gpu_check
from benchmarks.gpu_check import SMI_ARGS, Gpu, GpuMissing, Probe, nvidia_smi, probe
from visionloop.core.config import load_settings
from visionloop.core.errors import ModelLoadError
from visionloop.serving.backends import BackendOptions, create_backend
from visionloop.serving.backends.onnx_backend import CPU_PROVIDER, CUDA_PROVIDER

ROOT = Path(__file__).resolve().parents[2]
CUDA = [CUDA_PROVIDER, CPU_PROVIDER]
H200 = [Gpu("NVIDIA H200", "570.124.06", 143771)]


def fake_smi(tmp_path: Path, script: str) -> str:
    """An executable standing in for nvidia-smi: the real runner starts it as a subprocess."""
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


def smi_at(path: str | None) -> list[Gpu]:
    return nvidia_smi(which=lambda _name: path)


def test_without_a_gpu_it_says_what_is_missing_writes_why_and_exits_0(tmp_path: Path) -> None:
    found = probe()
    if found.usable:
        pytest.skip("this machine has a usable GPU and ONNX Runtime CUDA provider: the no-GPU path cannot run")
    out = tmp_path / "results" / "serving-gpu.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no usable GPU here, nothing measured" in proc.stdout
    for problem in found.problems:  # each in one piece, so its command can be copied
        assert problem in proc.stdout
    if CUDA_PROVIDER not in found.providers:
        assert f"pip install --no-deps onnxruntime-gpu=={gpu_check.ORT_GPU_VERSION}" in proc.stdout
    report = json.loads(out.read_text())
    assert report["gpu"] is False
    assert report["reason"] == "; ".join(found.problems)
    assert report["missing"] == found.problems
    assert report["providers"] == found.providers


def test_strict_fails_without_a_gpu_and_measures_nothing(tmp_path: Path) -> None:
    no_driver = Probe([], [CPU_PROVIDER], "onnxruntime 1.32.0", ["nvidia-smi not found"])
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--out", str(out), "--strict"], detect=lambda: no_driver) == 2
    assert json.loads(out.read_text())["reason"] == "nvidia-smi not found"
    assert gpu_check.main(["--out", str(out)], detect=lambda: no_driver) == 0


def test_nvidia_smi_missing() -> None:
    with pytest.raises(GpuMissing, match="nvidia-smi not found: no NVIDIA driver"):
        smi_at(None)


def test_nvidia_smi_failing_names_its_exit_status_and_message(tmp_path: Path) -> None:
    failing = fake_smi(
        tmp_path, 'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the driver" >&2; exit 9'
    )
    with pytest.raises(GpuMissing, match=r"nvidia-smi failed \(exit 9: NVIDIA-SMI has failed because it couldn't"):
        smi_at(failing)


def test_nvidia_smi_hanging_or_not_runnable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_check, "SMI_TIMEOUT_S", 0.5)
    with pytest.raises(GpuMissing, match="nvidia-smi did not answer"):
        smi_at(fake_smi(tmp_path, "exec sleep 5"))
    not_executable = tmp_path / "plain-file"
    not_executable.write_text("")
    with pytest.raises(GpuMissing, match="nvidia-smi did not answer"):
        smi_at(str(not_executable))


def test_nvidia_smi_listing_no_gpu(tmp_path: Path) -> None:
    with pytest.raises(GpuMissing, match="nvidia-smi lists no GPU"):
        smi_at(fake_smi(tmp_path, "exit 0"))


def test_nvidia_smi_answering_lists_each_gpu_from_its_query(tmp_path: Path) -> None:
    args_file = tmp_path / "args"
    script = f'echo "$@" > {args_file}; echo "NVIDIA H200, 570.124.06, 143771"; echo "Tesla T4, 570.124.06, [N/A]"'
    gpus = smi_at(fake_smi(tmp_path, script))
    assert gpus == [*H200, Gpu("Tesla T4", "570.124.06", None)]
    assert args_file.read_text().split() == list(SMI_ARGS)


@pytest.mark.parametrize(
    ("smi_ok", "providers", "expected"),
    [
        (True, CUDA, []),
        (True, [CPU_PROVIDER], ["ONNX Runtime has no CUDAExecutionProvider"]),
        (False, CUDA, ["nvidia-smi not found"]),
        (False, [CPU_PROVIDER], ["nvidia-smi not found", "ONNX Runtime has no CUDAExecutionProvider"]),
    ],
)
def test_probe_reports_every_missing_piece(smi_ok: bool, providers: list[str], expected: list[str]) -> None:
    def smi() -> list[Gpu]:
        if not smi_ok:
            raise GpuMissing("nvidia-smi not found: no NVIDIA driver here")
        return H200

    found = probe(smi=smi, providers=lambda: providers, build=lambda: "onnxruntime 1.32.0")
    assert [p[: len(e)] for p, e in zip(found.problems, expected, strict=True)] == expected
    assert found.usable is (not expected)
    assert found.gpus == (H200 if smi_ok else [])
    if CUDA_PROVIDER not in providers:
        assert f"onnxruntime-gpu=={gpu_check.ORT_GPU_VERSION}" in found.problems[-1]
        assert "onnxruntime 1.32.0; providers: CPUExecutionProvider" in found.problems[-1]


def test_both_onnxruntime_builds_installed_is_named_with_the_fix() -> None:
    # make venv reinstalls the lock's CPU build beside the GPU one after a lock change; the CPU files then win.
    found = gpu_check.missing_cuda_provider([CPU_PROVIDER], "onnxruntime-gpu 1.31.1 + onnxruntime 1.32.0")
    assert found is not None
    assert "Both builds are installed" in found
    assert ".venv/bin/pip uninstall -y onnxruntime onnxruntime-gpu && .venv/bin/pip install --no-deps" in found
    assert gpu_check.missing_cuda_provider(CUDA, "onnxruntime-gpu 1.31.1") is None
    assert onnxruntime.__version__ in gpu_check.ort_build()


def test_the_advised_onnxruntime_gpu_is_the_cuda_image_s() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile.cuda").read_text()
    match = re.search(r"^ARG ORT_GPU_VERSION=(\S+)$", dockerfile, re.MULTILINE)
    assert match is not None
    assert match.group(1) == gpu_check.ORT_GPU_VERSION


@pytest.mark.parametrize(("batch", "in_flight"), [(8, 32), (64, 128)])
def test_cuda_settings_put_one_detector_on_one_gpu(batch: int, in_flight: int) -> None:
    from benchmarks.serving import BENCH_PORTS

    settings = gpu_check.cuda_settings({}, batch, "int8")
    s = settings.serving
    assert (s.device, s.num_gpus, s.max_batch_size, s.precision) == ("cuda", 1.0, batch, "int8")
    assert s.max_ongoing_requests == in_flight
    assert settings.shadow.enabled is False
    assert settings.api.port == int(BENCH_PORTS["VISIONLOOP_API__PORT"])


def test_serve_runs_at_the_faster_precision() -> None:
    def raw(fps: float) -> dict[str, float]:
        return {"raw_fps": fps, "raw_with_decode_fps": fps, "decode_ms": 1.0}

    assert gpu_check.best_precision({"fp32": {"32": raw(900.0)}, "int8": {"32": raw(1200.0)}}, 32) == "int8"
    assert gpu_check.best_precision({"fp32": {"32": raw(900.0)}, "int8": {"32": raw(600.0)}}, 32) == "fp32"
    assert gpu_check.best_precision({"fp32": {"32": raw(900.0)}, "int8": {"error": "QDQ"}}, 32) == "fp32"


def test_cuda_device_refuses_ort_s_silent_cpu_fallback(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CUDA provider is listed but cannot start (as with missing CUDA libraries): the real ORT session warns and
    # runs on the CPU. serving.device 'cuda' must refuse that; 'auto' may use the CPU.
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: CUDA)
    model = var_dir / "models" / "v1" / "model.onnx"
    with (
        pytest.warns(UserWarning, match="CUDAExecutionProvider"),
        pytest.raises(ModelLoadError, match="could not start its CUDA execution provider"),
    ):
        create_backend("onnxruntime", BackendOptions(model, device="cuda"))
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        assert create_backend("onnxruntime", BackendOptions(model, device="auto")).device == "cpu"


def test_raw_measurement_refuses_a_backend_on_the_wrong_device(var_dir: Path) -> None:
    from benchmarks.serving import measure_raw
    from visionloop.simulation.clips import render_clip_jpegs

    settings = load_settings(environ={"VISIONLOOP_PATHS__VAR_DIR": str(var_dir), "VISIONLOOP_SERVING__DEVICE": "cpu"})
    jpegs = render_clip_jpegs(frames=2, width=64, height=36, seed=3)
    with pytest.raises(RuntimeError, match="runs on 'cpu', not on 'cuda'"):
        measure_raw(settings, jpegs, 0.1, expect_device="cuda")
    assert measure_raw(settings, jpegs, 0.1, expect_device="cpu")["raw_fps"] > 0

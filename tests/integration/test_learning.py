"""The learning core with real Ultralytics on tiny budgets: training, export parity, registry lineage, tuning,
cross-validation, architecture comparison, the CLI, and the no-network guarantee."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis

from tests.conftest import free_port
from visionloop.core.config import PACKAGE_ROOT, load_settings
from visionloop.core.model_setup import registry_for
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.registry import Role
from visionloop.core.settings import TrainingSettings
from visionloop.core.streams import StreamNames
from visionloop.learning.datasets import DatasetStore, read_yolo_source, stratified_split
from visionloop.learning.export import export_onnx, export_torchscript
from visionloop.learning.training import TrainingError, train
from visionloop.serving.backends.letterbox import letterbox_batch
from visionloop.simulation.world import load_domains, write_yolo_dataset

pytestmark = pytest.mark.integration
TINY = TrainingSettings(epochs=1, imgsz=64, batch=4, patience=0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    domain = load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")["A"]
    write_yolo_dataset(domain, 21, 24, root / "pool", height=96, width=96)
    images, names, _ = read_yolo_source(root / "pool")
    version = DatasetStore(root / "datasets").create("tiny", stratified_split(images, (0.5, 0.5, 0.0), 0), names)
    return version.data_yaml


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("train")
    epochs: list[int] = []
    result = train(
        "yolov8n.yaml", tiny_data, TINY, work, work / "ultralytics", on_epoch=lambda e, n, row: epochs.append(e)
    )
    assert result.weights.is_file() and result.epochs_run >= 1 and epochs[0] == 1
    assert {"map50", "map50_95"} <= set(result.metrics)
    return result.weights


def test_fine_tuning_starts_from_weights(trained: Path, tiny_data: Path, tmp_path: Path) -> None:
    result = train(trained, tiny_data, TINY, tmp_path, tmp_path / "ultralytics")
    assert result.weights.is_file()


def test_a_time_budget_ends_training_after_the_epoch_that_used_it(
    trained: Path, tiny_data: Path, tmp_path: Path
) -> None:
    budget = TINY.model_copy(update={"epochs": 3, "max_seconds": 0.01})
    epochs: list[int] = []
    result = train(trained, tiny_data, budget, tmp_path, tmp_path / "u", on_epoch=lambda e, n, row: epochs.append(e))
    assert result.epochs_run == 1 and epochs == [1] and result.weights.is_file()
    assert "map50" in result.metrics  # the closing validation of the best weights still ran, and was not an epoch


@pytest.mark.parametrize(
    ("base", "message"),
    [("missing.pt", "does not exist"), ("model.safetensors", "must be a .pt weights file")],
)
def test_bad_base_model_is_a_clear_error(tiny_data: Path, tmp_path: Path, base: str, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        train(str(tmp_path / base), tiny_data, TINY, tmp_path, tmp_path / "ultralytics")


def test_onnx_export_matches_torch(trained: Path, tiny_data: Path) -> None:
    import cv2
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    onnx = export_onnx(trained, 64, trained.with_suffix(".onnx"))
    image = cv2.imread(str(next((tiny_data.parent / "images" / "val").glob("*.jpg"))))
    tensor = letterbox_batch([image, image[:, ::-1].copy()], (64, 96)).tensor  # batch 2, a rectangle: dynamic axes
    net = YOLO(str(trained)).model.float().eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(tensor))[0].numpy()
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: tensor})[0]
    assert got.shape == expected.shape == (2, 4 + 5, (8 * 12) + (4 * 6) + (2 * 3))
    np.testing.assert_allclose(got[:, :4], expected[:, :4], atol=1e-2, rtol=1e-3)  # boxes, pixels
    np.testing.assert_allclose(got[:, 4:], expected[:, 4:], atol=1e-4)  # class scores


def test_torchscript_export(trained: Path) -> None:
    out = export_torchscript(trained, 64, trained.with_suffix(".torchscript"))
    assert out.suffix == ".torchscript" and out.stat().st_size > 1_000_000


def test_registry_swap_is_published_on_the_events_stream(trained: Path, tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(
        environ={"VISIONLOOP_PATHS__VAR_DIR": str(tmp_path / "var"), "VISIONLOOP_REDIS__EMBEDDED_PORT": str(port)}
    )
    onnx = export_onnx(trained, 64, tmp_path / "model.onnx")
    registry = registry_for(settings)
    first = registry.register(onnx, trained, {"source": "test"})
    # Redis is down: the swap waits in the pending file, and is delivered with the next one.
    registry.set_pointer(Role.CHAMPION, first.version)
    assert (tmp_path / "var" / "events.pending.jsonl").is_file()
    second = registry.register(onnx, trained, {"source": "test", "parent": first.version})
    with EmbeddedRedis(port, tmp_path / "redis") as server:
        registry.set_pointer(Role.CHAMPION, second.version)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        events = client.xrange(StreamNames(settings.redis.stream_prefix).events)
        client.close()
    payloads = [json.loads(fields["payload"]) for _, fields in events]
    assert [(p["from"], p["to"]) for p in payloads] == [(None, "v1"), ("v1", "v2")]
    assert not (tmp_path / "var" / "events.pending.jsonl").exists()
    assert registry.get("v1").meta["role"] == "retired" and registry.get("v2").meta["parent"] == "v1"


def test_training_validation_and_export_stay_off_the_network(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("netguard_run.py")), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PACKAGE_ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("YOLO_")},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["guard_works"] is True
    assert report["attempts"] == []


def test_tune_runs_trials_with_ray(tiny_data: Path, tmp_path: Path) -> None:
    from visionloop.core.ray_runtime import import_ray
    from visionloop.learning.tuning import run_tune

    ray = import_ray()
    try:
        results = run_tune("yolov8n.yaml", tiny_data, TINY, trials=2, work=tmp_path, ultralytics_dir=tmp_path / "u")
    finally:
        ray.shutdown()
    assert len(results) == 2
    assert results[0].map50 >= results[1].map50
    assert {"lr0", "weight_decay", "aug_strength"} == set(results[0].config)
    assert results[0].config != results[1].config


def test_cross_validation_and_comparison(tiny_data: Path, tmp_path: Path) -> None:
    from visionloop.learning.compare import compare
    from visionloop.learning.crossval import cross_validate
    from visionloop.learning.evaluation import split_images

    images, names = split_images(tiny_data, "train")
    images += split_images(tiny_data, "val")[0]
    summary = cross_validate("yolov8n.yaml", images, names, 2, TINY, tmp_path / "kfold", tmp_path / "u", 64, 0.25)
    assert summary["k"] == 2 and len(summary["folds"]) == 2  # type: ignore[arg-type]
    assert sum(f["val_images"] for f in summary["folds"]) == len(images)  # type: ignore[attr-defined, union-attr]
    rows = compare(
        ["yolov8n.yaml", "yolo11n.yaml"],
        tiny_data,
        tiny_data,
        TINY,
        tmp_path / "cmp",
        tmp_path / "u",
        64,
        0.25,
        threads=2,
    )
    assert [r.architecture for r in rows] == ["yolov8n.yaml", "yolo11n.yaml"]
    assert all(r.images_per_s > 0 and r.parameters > 1_000_000 and r.onnx_mb > 1 for r in rows)


def test_eval_cli_prints_the_metrics_as_json(var_dir: Path, tiny_data: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "visionloop.cli", "eval", "--model", "champion", "--data", str(tiny_data), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VISIONLOOP_PATHS__VAR_DIR": str(var_dir)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert {"map50", "map50_95", "precision", "recall", "f1", "per_class"} <= set(report)
    assert report["model"] == "v1"


def test_exports_from_a_published_version_leave_it_byte_identical(trained: Path, tmp_path: Path) -> None:
    registry = registry_for(load_settings(environ={"VISIONLOOP_PATHS__VAR_DIR": str(tmp_path / "var")}))
    version = registry.register(export_onnx(trained, 64, tmp_path / "first.onnx"), trained, {"source": "test"})
    before = {p.name: p.read_bytes() for p in version.path.iterdir()}
    onnx = export_onnx(version.torch_path, 64, tmp_path / "out" / "again.onnx")
    script = export_torchscript(version.torch_path, 64, tmp_path / "out" / "model.torchscript")
    assert onnx.stat().st_size > 1_000_000 and script.stat().st_size > 1_000_000
    assert {p.name: p.read_bytes() for p in version.path.iterdir()} == before

"""Assemble and start the Serve application from the settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from serving.detector import Detector, DetectorSpec
from serving.router import Router
from visionloop.contracts import ModelRole
from visionloop.errors import ModelLoadError
from visionloop.registry import ModelRegistry
from visionloop.settings import Settings

log = logging.getLogger(__name__)
APP_NAME = "visionloop"
MODEL_SUFFIXES = (".onnx", ".pt", ".torchscript", ".engine")


def resolve_model(settings: Settings, model: str | None = None) -> tuple[Path, str, list[str]]:
    """(file, version label, class names) for ``serving.model``: 'champion', a registry version, or a file path."""
    spec = model or settings.serving.model
    if spec.endswith(MODEL_SUFFIXES) or "/" in spec:
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise ModelLoadError(f"model file '{path}' (serving.model) does not exist")
        return path, f"file:{path.name}", []
    registry = ModelRegistry(settings.resolved_var_dir() / "models")
    version = registry.champion() if spec == "champion" else registry.get(spec)
    wants_onnx = settings.serving.backend == "onnxruntime"
    path = version.onnx_path if wants_onnx or not version.torch_path.is_file() else version.torch_path
    if not path.is_file():
        raise ModelLoadError(f"model version {version.version} has no {path.name} at '{path}'")
    return path, version.version, version.class_names


def detector_spec(settings: Settings, model: str | None = None, role: ModelRole = ModelRole.CHAMPION) -> DetectorSpec:
    path, version, names = resolve_model(settings, model)
    serving = settings.serving
    return DetectorSpec(
        backend=serving.backend,
        model_path=str(path),
        model_version=version,
        class_names=names,
        imgsz=serving.imgsz,
        conf_threshold=serving.conf_threshold,
        iou_threshold=serving.iou_threshold,
        max_detections=serving.max_detections,
        device=serving.device,
        intra_op_threads=serving.intra_op_threads,
        role=role.value,
        max_batch_size=serving.max_batch_size,
        batch_wait_timeout_s=serving.batch_wait_timeout_s,
        concurrent_batches=serving.concurrent_batches,
        ultralytics_dir=str(settings.resolved_var_dir() / "ultralytics"),
    )


def build_app(settings: Settings, redis_url: str) -> Any:
    """The bound application: Router ingress -> champion Detector."""
    serving = settings.serving
    champion = Detector.options(  # type: ignore[attr-defined]
        name="ChampionDetector",
        num_replicas=serving.replicas,
        max_ongoing_requests=serving.max_ongoing_requests,
        ray_actor_options={"num_cpus": serving.num_cpus, "num_gpus": serving.num_gpus},
    ).bind(detector_spec(settings).to_dict())
    return Router.options(  # type: ignore[attr-defined]
        num_replicas=serving.router_replicas,
        max_ongoing_requests=max(64, 4 * serving.max_ongoing_requests),
        ray_actor_options={"num_cpus": 0.1},
    ).bind(settings, champion, redis_url)


def start_serving(settings: Settings, redis_url: str) -> Any:
    """Start Serve's HTTP proxy on the configured address and deploy the app; returns the Router's handle."""
    from ray import serve

    serve.start(http_options={"host": settings.api.host, "port": settings.api.port})
    return serve.run(
        build_app(settings, redis_url),
        name=APP_NAME,
        route_prefix="/",
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )

"""Assemble and start the Serve application from the settings."""

from __future__ import annotations

import logging
from typing import Any

from serving.detector import Detector, DetectorSpec
from serving.router import Router
from visionloop.contracts import ModelRole
from visionloop.errors import ModelLoadError
from visionloop.frames import FrameObserverFactory
from visionloop.registry import ONNX_FILE, TORCH_FILE, ModelRegistry, ResolvedModel, resolve_model
from visionloop.settings import Settings
from visionloop.streams import SERVE_APP_NAME

log = logging.getLogger(__name__)


def resolve_serving_model(settings: Settings, model: str | None = None) -> ResolvedModel:
    """The file a Detector loads for ``serving.model`` (or ``model``): the registry's one naming rule, plus the
    backend's need: ONNX Runtime loads ``model.onnx``, the torch backend prefers ``model.pt``."""
    registry = ModelRegistry(settings.resolved_var_dir() / "models")
    onnx_backend = settings.serving.backend == "onnxruntime"
    resolved = resolve_model(
        registry, model or settings.serving.model, prefer=ONNX_FILE if onnx_backend else TORCH_FILE
    )
    if onnx_backend and resolved.path.suffix != ".onnx":
        raise ModelLoadError(f"model {resolved.label} has no {ONNX_FILE} (serving.backend is onnxruntime)")
    return resolved


def detector_spec(settings: Settings, model: str | None = None, role: ModelRole = ModelRole.CHAMPION) -> DetectorSpec:
    resolved = resolve_serving_model(settings, model)
    return DetectorSpec(
        model_path=str(resolved.path),
        model_version=resolved.label,
        serving=settings.serving,
        class_names=resolved.class_names,
        role=role.value,
        ultralytics_dir=str(settings.resolved_var_dir() / "ultralytics"),
    )


def build_app(settings: Settings, redis_url: str, observer: FrameObserverFactory | None = None) -> Any:
    """The bound application: Router ingress -> champion Detector; ``observer`` sees every answered frame."""
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
    ).bind(settings, champion, redis_url, observer)


def start_serving(settings: Settings, redis_url: str, observer: FrameObserverFactory | None = None) -> Any:
    """Start Serve's HTTP proxy on the configured address and deploy the app; returns the Router's handle."""
    from ray import serve

    serve.start(http_options={"host": settings.api.host, "port": settings.api.port})
    return serve.run(
        build_app(settings, redis_url, observer),
        name=SERVE_APP_NAME,
        route_prefix="/",
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )

"""Assemble and start the Serve application from the settings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from visionloop.core.contracts import ModelRole
from visionloop.core.frames import DetectorCalls, FrameObserverFactory, IngressCalls
from visionloop.core.registry import ModelRegistry, ResolvedModel
from visionloop.core.settings import Settings
from visionloop.core.streams import CHAMPION_DEPLOYMENT, SERVE_APP_NAME
from visionloop.serving.detector import Detector, DetectorSpec
from visionloop.serving.model_source import resolve_for_backend
from visionloop.serving.router import Router

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the core's frame sinks call these deployments by method name: mypy holds both to the Protocols

    def _detector_answers_camera_sinks(detector: Detector) -> DetectorCalls:
        return detector

    def _router_answers_frame_sinks(router: Router) -> IngressCalls:
        return router


def resolve_serving_model(settings: Settings, model: str | None = None) -> ResolvedModel:
    """The file a Detector loads for ``serving.model`` (or ``model``), for the configured backend."""
    registry = ModelRegistry(settings.var.models)
    serving = settings.serving
    return resolve_for_backend(registry, model or serving.model, serving.backend, serving.precision)


def _spec(settings: Settings, role: ModelRole, follow: str | None) -> DetectorSpec:
    """A Detector's spec holding no model yet; ``follow`` names the registry pointer its replicas keep up with."""
    var = settings.var
    return DetectorSpec(
        model_path="",
        model_version="",
        serving=settings.serving,
        role=role.value,
        ultralytics_dir=str(var.ultralytics),
        follow=follow,
        registry_root=str(var.models) if follow else None,
    )


def detector_spec(settings: Settings, model: str | None = None, role: ModelRole = ModelRole.CHAMPION) -> DetectorSpec:
    """The champion's spec; it follows the registry's champion pointer when ``serving.model`` is 'champion'."""
    follows = (model or settings.serving.model) == "champion"
    return _spec(settings, role, "champion" if follows else None).with_model(resolve_serving_model(settings, model))


def shadow_spec(settings: Settings) -> DetectorSpec:
    """The shadow's spec: the registry's shadow pointer now (or no model), followed from then on."""
    registry = ModelRegistry(settings.var.models)
    version = registry.pointers()["shadow"]
    serving = settings.serving
    resolved = resolve_for_backend(registry, version, serving.backend, serving.precision) if version else None
    return _spec(settings, ModelRole.SHADOW, "shadow").with_model(resolved)


def build_app(
    settings: Settings,
    redis_url: str,
    observer: FrameObserverFactory | None = None,
    companions: Sequence[Any] = (),
) -> Any:
    """The bound application: Router ingress -> champion Detector (and the shadow Detector when enabled);
    ``observer`` sees every answered frame; ``companions`` (bound deployments this part does not know, such as the
    background workers) deploy and stop with the application."""
    serving = settings.serving
    champion = Detector.options(  # type: ignore[attr-defined]
        name=CHAMPION_DEPLOYMENT,
        num_replicas=serving.replicas,
        max_ongoing_requests=serving.max_ongoing_requests,
        ray_actor_options={
            "num_cpus": serving.num_cpus,
            "num_gpus": serving.num_gpus,
            "resources": dict(serving.replica_resources),
        },
    ).bind(detector_spec(settings).to_dict())
    shadow = None
    if settings.shadow.enabled:
        shadow = Detector.options(  # type: ignore[attr-defined]
            name="ShadowDetector",
            num_replicas=settings.shadow.replicas,
            max_ongoing_requests=serving.max_ongoing_requests,
            ray_actor_options={
                "num_cpus": settings.shadow.num_cpus,
                "num_gpus": serving.num_gpus,
                "resources": dict(serving.replica_resources),
            },
        ).bind(shadow_spec(settings).to_dict())
    return Router.options(  # type: ignore[attr-defined]
        num_replicas=serving.router_replicas,
        max_ongoing_requests=max(64, 4 * serving.max_ongoing_requests),
        ray_actor_options={"num_cpus": 0.1},
    ).bind(settings, champion, redis_url, observer, shadow, tuple(companions))


def start_serving(settings: Settings, app: Any) -> Any:
    """Start Serve's HTTP proxy on the configured address and deploy ``app`` (see :func:`build_app`); returns the
    Router's handle."""
    from ray import serve

    serve.start(http_options={"host": settings.api.host, "port": settings.api.port})
    return serve.run(
        app,
        name=SERVE_APP_NAME,
        route_prefix="/",
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )

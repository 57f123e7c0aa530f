"""The one settings schema: every knob of visionloop, validated, with a description.

Values are layered: ``configs/default.yaml`` (shipped), then an optional user YAML, then ``VISIONLOOP_*``
environment variables (``VISIONLOOP_SERVING__MAX_BATCH_SIZE=16``: double underscore walks into sections).
A typo in a key or a bad value is an error naming the key and the file (or variable) it came from.

Each part's sections live in a module of their own (``settings.serving``, ``settings.learning``...); ``Settings``
composes them here, in one place, with the checks that span sections.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from visionloop.core.layout import VarLayout, project_path
from visionloop.core.settings.base import PROJECT_ROOT, StrictModel, keys_disagree
from visionloop.core.settings.dashboards import DashboardSettings
from visionloop.core.settings.explaining import ExplainSettings
from visionloop.core.settings.labeling import LabelingSettings
from visionloop.core.settings.learning import (
    ABSettings,
    AugmentationSettings,
    DataSettings,
    LoopSettings,
    ModelSettings,
    TrainingSettings,
)
from visionloop.core.settings.monitoring import DriftSettings
from visionloop.core.settings.runtime import BusSettings, LoggingSettings, PathSettings, RaySettings, RedisSettings
from visionloop.core.settings.serving import ApiSettings, ServingSettings, ShadowSettings, TrackingSettings
from visionloop.core.settings.simulation import BootstrapSettings, WorldSettings
from visionloop.core.settings.streaming import CameraSettings, IceServer, WebRTCSettings

__all__ = [
    "PROJECT_ROOT",
    "ABSettings",
    "ApiSettings",
    "AugmentationSettings",
    "BootstrapSettings",
    "BusSettings",
    "CameraSettings",
    "DashboardSettings",
    "DataSettings",
    "DriftSettings",
    "ExplainSettings",
    "IceServer",
    "LabelingSettings",
    "LoggingSettings",
    "LoopSettings",
    "ModelSettings",
    "PathSettings",
    "RaySettings",
    "RedisSettings",
    "ServingSettings",
    "Settings",
    "ShadowSettings",
    "StrictModel",
    "TrackingSettings",
    "TrainingSettings",
    "WebRTCSettings",
    "WorldSettings",
]


class Settings(StrictModel):
    """Everything visionloop can be told; see configs/default.yaml for the commented defaults."""

    paths: PathSettings = Field(default_factory=PathSettings, description="Filesystem locations.")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="The stream bus.")
    bus: BusSettings = Field(default_factory=BusSettings, description="Where the results stream goes (Redis or Kafka).")
    ray: RaySettings = Field(default_factory=RaySettings, description="The Ray runtime.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="The HTTP API.")
    serving: ServingSettings = Field(default_factory=ServingSettings, description="Inference replicas.")
    tracking: TrackingSettings = Field(default_factory=TrackingSettings, description="Per-camera tracking of results.")
    model: ModelSettings = Field(default_factory=ModelSettings, description="Models visionloop builds.")
    training: TrainingSettings = Field(default_factory=TrainingSettings, description="Training and fine-tuning.")
    world: WorldSettings = Field(default_factory=WorldSettings, description="The synthetic world.")
    bootstrap: BootstrapSettings = Field(default_factory=BootstrapSettings, description="The bootstrap model.")
    data: DataSettings = Field(default_factory=DataSettings, description="Data set versions.")
    cameras: CameraSettings = Field(default_factory=CameraSettings, description="IP cameras and files.")
    webrtc: WebRTCSettings = Field(default_factory=WebRTCSettings, description="Browser cameras over WebRTC.")
    labeling: LabelingSettings = Field(default_factory=LabelingSettings, description="Active learning.")
    shadow: ShadowSettings = Field(default_factory=ShadowSettings, description="The shadow Detector.")
    loop: LoopSettings = Field(default_factory=LoopSettings, description="The learning loop.")
    ab: ABSettings = Field(default_factory=ABSettings, description="Champion/challenger A/B decisions.")
    drift: DriftSettings = Field(default_factory=DriftSettings, description="Drift and accuracy monitoring.")
    explain: ExplainSettings = Field(default_factory=ExplainSettings, description="Explanations of detections.")
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings, description="The operator dashboard.")
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="Logging.")

    @model_validator(mode="after")
    def _labels_dataset_follows_labeling(self) -> Settings:
        """One fact, one source: the loop trains from the data set the labeling worker cuts. Two names that differ
        would leave the loop waiting at no_labels for ever, so a loop.labels_dataset of its own must agree."""
        name = self.labeling.dataset_name
        if "labels_dataset" in self.loop.model_fields_set:
            if self.loop.labels_dataset != name:
                raise keys_disagree(
                    "loop.labels_dataset ({loop}) differs from labeling.dataset_name ({labeling}): the loop would "
                    "wait for labels the labeling worker never cuts; leave loop.labels_dataset out (it follows "
                    "labeling.dataset_name) or give both one name",
                    ("loop.labels_dataset", "labeling.dataset_name"),
                    loop=repr(self.loop.labels_dataset),
                    labeling=repr(name),
                )
        elif self.loop.labels_dataset != name:
            # A copy, still unset, so it keeps following; the section given may be shared with other settings.
            values = {**dict(self.loop), "labels_dataset": name}
            self.loop = LoopSettings.model_construct(set(self.loop.model_fields_set), **values)
        return self

    def cameras_file(self) -> Path:
        return project_path(self.cameras.config_file)

    def domains_file(self) -> Path:
        return project_path(self.world.domains_file)

    def resolved_var_dir(self) -> Path:
        return self.paths.var_dir.expanduser().resolve()

    @property
    def var(self) -> VarLayout:
        """The layout of ``paths.var_dir``: every part asks it where its state lives."""
        return VarLayout(self.resolved_var_dir())

    def redis_url(self) -> str:
        """``redis.url``, or the embedded server's address when the service runs its own Redis."""
        return self.redis.url or f"redis://127.0.0.1:{self.redis.embedded_port}/0"

    def ray_temp_dir(self) -> Path:
        if self.ray.temp_dir is not None:
            return self.ray.temp_dir.expanduser().resolve()
        return Path(tempfile.gettempdir()) / f"visionloop-ray-{os.getuid()}"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data with secrets shown as '**********'."""
        return self.model_dump(mode="json")

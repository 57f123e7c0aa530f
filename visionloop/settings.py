"""The one settings schema: every knob of visionloop, validated, with a description.

Values are layered: ``configs/default.yaml`` (shipped), then an optional user YAML, then ``VISIONLOOP_*``
environment variables (``VISIONLOOP_SERVING__MAX_BATCH_SIZE=16``: double underscore walks into sections).
A typo in a key or a bad value is an error naming the key and the file (or variable) it came from.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class StrictModel(BaseModel):
    """Base for every settings section: unknown keys are errors, not silent defaults."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class PathSettings(StrictModel):
    var_dir: Path = Field(
        default=Path("var"),
        description="Where visionloop keeps state (Redis data, models, datasets). Relative paths are resolved "
        "against the working directory.",
    )


class RedisSettings(StrictModel):
    url: str | None = Field(
        default=None,
        description="Redis URL (redis://host:port/db). Leave empty to start an embedded redis-server as a child "
        "process on 127.0.0.1 with its data under var/redis and AOF on.",
    )
    embedded_port: int = Field(default=6390, gt=0, lt=65536, description="Port of the embedded redis-server.")
    stream_prefix: str = Field(
        default="visionloop", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Prefix of every stream key."
    )
    results_maxlen: int = Field(
        default=100_000, gt=0, description="Approximate cap (XADD MAXLEN ~) of the results stream."
    )
    result_buffer_size: int = Field(
        default=10_000,
        gt=0,
        description="Results held in memory while Redis is unreachable; beyond it the oldest are dropped, counted "
        "and logged as errors.",
    )
    socket_timeout_s: float = Field(default=2.0, gt=0, description="Timeout of one Redis command.")


class RaySettings(StrictModel):
    address: str = Field(
        default="local",
        description="'local' starts a private Ray instance; 'auto' or ray://host:port joins an existing cluster.",
    )
    num_cpus: int | None = Field(default=None, gt=0, description="CPUs Ray may use locally (default: all).")
    temp_dir: Path | None = Field(
        default=None,
        description="Ray's session directory (default: <system temp>/visionloop-ray-<uid>); keep it short, Unix "
        "socket paths are limited to 107 bytes.",
    )
    metrics_export_port: int = Field(
        default=8081, gt=0, lt=65536, description="Port where Ray exports Prometheus metrics of in-Ray code."
    )


class ApiSettings(StrictModel):
    host: str = Field(default="127.0.0.1", description="Address the HTTP API (Ray Serve proxy) binds.")
    port: int = Field(default=8000, gt=0, lt=65536, description="Port of the HTTP API.")
    token: SecretStr = Field(
        default=SecretStr("change-me"),
        min_length=8,
        description="Bearer token required by every mutating endpoint. Set your own in production.",
    )
    max_upload_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="Largest request body accepted (413 beyond it)."
    )
    max_frames_per_request: int = Field(
        default=32, gt=0, description="Most images accepted in one /v1/detect/batch request."
    )


class ServingSettings(StrictModel):
    backend: Literal["onnxruntime", "ultralytics"] = Field(
        default="onnxruntime", description="Inference backend of the Detector replicas."
    )
    model: str = Field(
        default="champion",
        description="What the champion Detector serves: a registry version, 'champion' (the registry's pointer), or "
        "a path to an .onnx / Ultralytics .pt file.",
    )
    imgsz: int = Field(default=320, ge=32, description="Long side of the network input, in pixels (multiple of 32).")
    conf_threshold: float = Field(default=0.25, ge=0, le=1, description="Operating confidence threshold.")
    iou_threshold: float = Field(default=0.45, gt=0, le=1, description="IoU threshold of non-maximum suppression.")
    max_detections: int = Field(default=300, gt=0, description="Most detections kept per frame.")
    max_batch_size: int = Field(default=8, gt=0, description="Most frames the Detector runs in one model call.")
    batch_wait_timeout_s: float = Field(
        default=0.01, ge=0, description="How long a Detector waits to fill a batch before running a partial one."
    )
    concurrent_batches: int = Field(
        default=2,
        gt=0,
        description="Model calls one replica runs at once: while one batch is in the model the next decodes, so a "
        "replica does not idle while replies travel back.",
    )
    max_ongoing_requests: int = Field(
        default=32,
        gt=0,
        description="Requests a Detector replica accepts at once; must be at least 2 x max_batch_size, or batches "
        "never fill.",
    )
    replicas: int = Field(default=1, gt=0, description="Detector replicas.")
    router_replicas: int = Field(default=1, gt=0, description="Router (HTTP ingress) replicas.")
    num_cpus: float = Field(default=1.0, ge=0, description="CPUs Ray reserves for each Detector replica.")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per Detector replica (0 on CPU-only machines).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="'auto' uses CUDA where a GPU is present, else the CPU."
    )
    intra_op_threads: int = Field(
        default=1,
        gt=0,
        description="Threads one model call may use. With concurrent_batches > 1, one thread per call keeps every "
        "core busy without oversubscribing them.",
    )

    @model_validator(mode="after")
    def _batch_fits_in_flight(self) -> ServingSettings:
        if self.max_ongoing_requests < 2 * self.max_batch_size:
            raise ValueError(
                f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= 2 x max_batch_size "
                f"({self.max_batch_size}); otherwise Ray Serve never fills a batch"
            )
        if self.imgsz % 32:
            raise ValueError(f"imgsz ({self.imgsz}) must be a multiple of 32 (the model's largest stride)")
        return self


class ModelSettings(StrictModel):
    architecture: str = Field(
        default="yolov8n.yaml",
        description="Ultralytics model yaml used when visionloop builds a model from scratch (no download).",
    )
    class_names: list[str] = Field(
        default_factory=lambda: ["circle", "square", "triangle"],
        min_length=1,
        description="Class names, in class-id order, of models visionloop builds itself.",
    )


class LoggingSettings(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")


class Settings(StrictModel):
    """Everything visionloop can be told; see configs/default.yaml for the commented defaults."""

    paths: PathSettings = Field(default_factory=PathSettings, description="Filesystem locations.")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="The stream bus.")
    ray: RaySettings = Field(default_factory=RaySettings, description="The Ray runtime.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="The HTTP API.")
    serving: ServingSettings = Field(default_factory=ServingSettings, description="Inference replicas.")
    model: ModelSettings = Field(default_factory=ModelSettings, description="Models visionloop builds.")
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="Logging.")

    def resolved_var_dir(self) -> Path:
        return self.paths.var_dir.expanduser().resolve()

    def ray_temp_dir(self) -> Path:
        if self.ray.temp_dir is not None:
            return self.ray.temp_dir.expanduser().resolve()
        return Path(tempfile.gettempdir()) / f"visionloop-ray-{os.getuid()}"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data with secrets shown as '**********'."""
        return self.model_dump(mode="json")

"""Settings of serving: the HTTP API, the champion Detector replicas and the shadow Detector."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from visionloop.core.settings.base import StrictModel


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
    stream_window: int = Field(
        default=8,
        gt=0,
        le=256,
        description="Frames a /v1/stream client may send ahead of its answers; beyond it the server stops reading "
        "(TCP pushes back). Frames waiting together go to the model in one call.",
    )
    named_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="More bearer tokens, by the name the audit log records for their actions (promotions, "
        "rollbacks); api.token itself is recorded as 'operator'.",
    )

    @model_validator(mode="after")
    def _tokens_are_long_and_distinct(self) -> ApiSettings:
        secrets = [self.token.get_secret_value()] + [t.get_secret_value() for t in self.named_tokens.values()]
        if any(len(s) < 8 for s in secrets):
            raise ValueError("every API token needs at least 8 characters")
        if len(set(secrets)) != len(secrets):
            raise ValueError("two API tokens are equal: the audit log could not tell who acted")
        if "auto" in self.named_tokens:
            raise ValueError("'auto' names the loop's own promotions; pick another token name")
        return self


class ServingSettings(StrictModel):
    backend: str = Field(
        default="onnxruntime",
        min_length=1,
        description="Inference backend of the Detector replicas, by its registered name (onnxruntime, "
        "ultralytics); checked against the backends' registry when the service or the CLI starts.",
    )
    precision: Literal["fp32", "int8"] = Field(
        default="int8",
        description="Numeric precision of the ONNX Runtime model: int8 serves each version's model.int8.onnx (static "
        "QDQ quantization made at export, calibrated on the version's training images; the gold gate scores that "
        "file); a version without one is served at fp32. make bench-serving reports int8_map50_drop.",
    )
    int8_calibration_images: int = Field(
        default=64, gt=0, description="Training images an int8 model is calibrated on when a version is exported."
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
        default=0.0,
        ge=0,
        description="How long a Detector waits to fill a batch before running a partial one. 0 (the default) never "
        "waits: a batch is whatever is queued when the model is free, so a lone frame runs at once and a busy "
        "replica still batches (the frames that arrived during the previous call).",
    )
    concurrent_batches: int = Field(
        default=2,
        gt=0,
        description="Model calls one replica runs at once: while one batch is in the model the next decodes, so a "
        "replica does not idle while replies travel back.",
    )
    stuck_batch_s: float = Field(
        default=30.0,
        gt=0,
        description="A model call running longer than this marks its Detector replica unhealthy, and Serve replaces "
        "it (a hung backend must not stall the cameras for ever).",
    )
    max_ongoing_requests: int = Field(
        default=32,
        gt=0,
        description="Requests a Detector replica accepts at once; must be at least 2 x max_batch_size, or batches "
        "never fill.",
    )
    replicas: int = Field(default=1, gt=0, description="Detector replicas.")
    replica_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each Detector replica needs, to place it on chosen nodes of a cluster "
        "(e.g. {infer: 0.01} with `ray start --resources '{\"infer\": 1}'` on the inference node).",
    )
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
    inference_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Nice value of the Detector replicas' threads. When the CPU is short, the cameras' decoding, "
        "which must keep up with the live stream or every later frame arrives old, wins the cores and the model "
        "takes what is left (the freshest frames); with cores to spare it changes nothing. 0: same priority.",
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


class ShadowSettings(StrictModel):
    """The shadow Detector: the registry's shadow pointer, run beside the champion on mirrored frames."""

    enabled: bool = Field(
        default=True, description="Deploy the shadow Detector (it idles, holding no model, while no shadow is set)."
    )
    mirror_fraction: float = Field(
        default=0.1, ge=0, le=1, description="Share of all answered frames mirrored to the shadow, at random."
    )
    mirror_selected: bool = Field(
        default=True, description="Also mirror every frame sent for labeling (its human label pairs the models)."
    )
    queue_size: int = Field(
        default=64,
        gt=0,
        description="Frames waiting for the shadow; a frame that would wait beyond it is dropped and counted "
        "(the champion's answer never waits for the shadow).",
    )
    max_batch: int = Field(default=8, gt=0, description="Most mirrored frames sent to the shadow in one call.")
    replicas: int = Field(default=1, gt=0, description="Shadow Detector replicas.")
    num_cpus: float = Field(
        default=0.25,
        ge=0,
        description="CPUs Ray reserves for each shadow replica (small: it runs on a fraction of the frames).",
    )
    pairs_maxlen: int = Field(
        default=20_000, gt=0, description="Approximate cap (XADD MAXLEN ~) of the shadow-pairs stream."
    )


class TrackingSettings(StrictModel):
    """Per-camera multi-object tracking in the result path (core.tracking): every published box gets a track id."""

    enabled: bool = Field(default=True, description="Track boxes per camera; results carry track ids and flicker.")
    high: float = Field(default=0.5, gt=0, le=1, description="Confidence from which a box may start a track.")
    low: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Lowest confidence of a box that may continue a track (ByteTrack's second pass).",
    )
    match_iou: float = Field(default=0.3, gt=0, le=1, description="IoU with a track's predicted box to continue it.")
    max_missed: int = Field(default=15, ge=0, description="Frames a track survives unseen (short occlusions).")
    idle_s: float = Field(default=60.0, gt=0, description="A camera silent this long has its tracks forgotten.")

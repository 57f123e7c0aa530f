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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from visionloop.core.layout import VarLayout

PROJECT_ROOT = Path(__file__).resolve().parents[3]  # the checkout: src/visionloop/core/settings.py


class StrictModel(BaseModel):
    """Base for every settings section: unknown keys are errors, not silent defaults; so are an infinite or NaN
    number and true/false where a number is expected (pydantic would read them as 1 and 0)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float, int | None, float | None):
                raise PydanticCustomError("number_not_boolean", "Input should be a number, not true/false")
        return value


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


class BusSettings(StrictModel):
    """Which bus carries the results stream. Only the results move to Kafka: the review queue, the audit events
    and every other stream stay on Redis (the labeling worker and the loop rely on its consumer groups)."""

    kind: Literal["redis", "kafka"] = Field(
        default="redis",
        description="redis: the results stream on Redis (what the dashboard, the demo and the benchmarks read); "
        "kafka: results to the Kafka topic <topic_prefix>.results instead (pip install visionloop[kafka]).",
    )
    bootstrap_servers: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:9092"],
        min_length=1,
        description="Kafka brokers (host:port) the producer bootstraps from (bus.kind: kafka).",
    )
    topic_prefix: str = Field(
        default="visionloop",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of the Kafka topics (<prefix>.results); Kafka topic names allow no ':'.",
    )
    request_timeout_s: float = Field(
        default=5.0, gt=0, description="Timeout of one Kafka request (connecting, sending a batch)."
    )


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
        default_factory=lambda: ["circle", "square", "triangle", "star", "cross"],
        min_length=1,
        description="Class names, in class-id order, of models visionloop builds itself.",
    )


class AugmentationSettings(StrictModel):
    fliplr: float = Field(default=0.5, ge=0, le=1, description="Chance of a horizontal flip.")
    flipud: float = Field(default=0.0, ge=0, le=1, description="Chance of a vertical flip.")
    degrees: float = Field(default=10.0, ge=0, le=180, description="Random rotation range, +/- degrees.")
    hsv_h: float = Field(default=0.015, ge=0, le=1, description="Hue jitter (fraction).")
    hsv_s: float = Field(default=0.5, ge=0, le=1, description="Saturation jitter (fraction).")
    hsv_v: float = Field(default=0.4, ge=0, le=1, description="Brightness (value) jitter (fraction).")
    scale: float = Field(default=0.4, ge=0, le=1, description="Random scale jitter (+/- fraction).")
    mosaic: float = Field(default=1.0, ge=0, le=1, description="Chance of a 4-image mosaic.")
    close_mosaic: int = Field(default=5, ge=0, description="Turn mosaic off for the last N epochs.")


class TrainingSettings(StrictModel):
    epochs: int = Field(default=30, gt=0, description="Training epochs.")
    imgsz: int = Field(default=320, ge=32, description="Training image size (long side, multiple of 32).")
    batch: int = Field(default=16, gt=0, description="Images per training batch.")
    optimizer: Literal["SGD", "Adam", "AdamW", "auto"] = Field(default="AdamW", description="Optimizer.")
    lr0: float = Field(default=0.002, gt=0, description="Initial learning rate.")
    lrf: float = Field(default=0.05, gt=0, le=1, description="Final learning rate as a fraction of lr0.")
    schedule: Literal["cosine", "linear"] = Field(default="cosine", description="Learning-rate schedule.")
    warmup_epochs: float = Field(default=2.0, ge=0, description="Warm-up epochs.")
    weight_decay: float = Field(default=0.0005, ge=0, description="Weight decay.")
    dropout: float = Field(
        default=0.0, ge=0, lt=1, description="Dropout, where the head supports it (Ultralytics classify heads)."
    )
    patience: int = Field(default=10, ge=0, description="Early stopping: epochs without improvement (0 = off).")
    device: str = Field(default="auto", description="'auto' (GPU if present), 'cpu', 'cuda' or a GPU index.")
    workers: int = Field(default=0, ge=0, description="Data loader workers (Ultralytics uses 0 on CPU).")
    threads: int | None = Field(default=None, gt=0, description="Torch threads for CPU training (default: every core).")
    seed: int = Field(default=0, description="Training seed.")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs a training Ray task asks for.")
    num_cpus: float = Field(
        default=0.5,
        ge=0,
        description="CPUs a training Ray task reserves. Torch uses every core whatever the reservation; it is kept "
        "below 1 so a challenger can train beside the champion and shadow replicas on a 2-core machine.",
    )
    augmentation: AugmentationSettings = Field(
        default_factory=AugmentationSettings, description="Augmentation strengths."
    )


class WorldSettings(StrictModel):
    domains_file: Path = Field(
        default=Path("configs/domains.yaml"),
        description="YAML of the synthetic world's domains (relative paths: to the project root).",
    )
    image_size: tuple[int, int] = Field(default=(320, 320), description="Height, width of generated still images.")
    video_size: tuple[int, int] = Field(default=(360, 640), description="Height, width of generated videos.")


class BootstrapSettings(StrictModel):
    domain: str = Field(default="A", description="Domain the bootstrap model learns.")
    seed: int = Field(default=1, description="Seed of the bootstrap world.")
    images: int = Field(default=800, gt=0, description="Images generated for the bootstrap data set.")
    gold_images: int = Field(default=200, gt=0, description="Images in the gold holdout set (never trained on).")
    epochs: int = Field(default=30, gt=0, description="Bootstrap training epochs.")
    target_map50: float = Field(default=0.80, ge=0, le=1, description="mAP50 the bootstrap must reach on gold.")


class DataSettings(StrictModel):
    split: tuple[float, float, float] = Field(
        default=(0.7, 0.2, 0.1), description="Train/val/test fractions of a new data set version."
    )
    skip_bad_files: bool = Field(
        default=False,
        description="Skip images with missing, malformed or out-of-range labels (counted) instead of failing.",
    )
    oversample_rare: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Duplicate training images of classes rarer than this fraction of the most common class "
        "until they reach it (0 = off).",
    )


class CameraSettings(StrictModel):
    config_file: Path = Field(
        default=Path("configs/cameras.yaml"),
        description="Cameras to start with when the camera list in Redis is empty (relative: to the project root).",
    )
    max_cameras: int = Field(
        default=32, gt=0, le=1024, description="Most cameras at once (each is a process); adding more is refused."
    )
    open_timeout_s: float = Field(default=5.0, gt=0, description="Give up opening a stream after this long.")
    read_timeout_s: float = Field(default=2.0, gt=0, description="Give up on a blocked read after this long.")
    stall_timeout_s: float = Field(default=3.0, gt=0, description="No frame for this long: the camera is STALLED.")
    backoff_initial_s: float = Field(default=0.25, gt=0, description="First wait before reconnecting.")
    backoff_max_s: float = Field(
        default=2.0, gt=0, description="Longest wait between reconnects (kept short: a camera back is used at once)."
    )
    failed_retry_s: float = Field(
        default=30.0, gt=0, description="Wait before retrying a FAILED camera (bad credentials, wrong path)."
    )
    buffer_size: int = Field(default=2, gt=0, description="Frames held per live camera; older ones are skipped.")
    max_frames_per_call: int = Field(default=4, gt=0, description="Most frames a camera sends in one model call.")
    jpeg_quality: int = Field(
        default=85,
        ge=10,
        le=100,
        description="JPEG quality of a camera frame that is stored (kept for labeling); frames go to the model as "
        "arrays, never re-encoded.",
    )
    worker_num_cpus: float = Field(
        default=0.0,
        ge=0,
        description="CPUs Ray reserves for each camera worker. They mostly wait on the network; a reservation would "
        "let a dozen cameras starve the model replicas of schedulable CPUs on a small box.",
    )
    worker_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each camera worker needs, to place cameras on chosen nodes of a cluster "
        "(e.g. {edge: 0.01} for the nodes near the cameras).",
    )


class IceServer(StrictModel):
    urls: list[str] = Field(min_length=1, description="stun:/turn: URLs of one ICE server.")
    username: str | None = Field(default=None, description="TURN user name.")
    credential: str | None = Field(default=None, description="TURN password.")


class WebRTCSettings(StrictModel):
    enabled: bool = Field(default=True, description="Start the WebRTC gateway with the service.")
    host: str = Field(default="127.0.0.1", description="Address the gateway's page and offer endpoint bind.")
    port: int = Field(default=8001, gt=0, lt=65536, description="Port of the gateway's page and offer endpoint.")
    ice_servers: list[IceServer] = Field(
        default_factory=list, description="STUN/TURN servers for browsers on other networks (empty: local only)."
    )
    host_addresses: list[str] | None = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Local addresses ICE may use (loopback by default, for a browser on this machine); null lets "
        "ICE use every interface, for browsers elsewhere on the network.",
    )
    max_peers: int = Field(default=4, gt=0, description="Most browsers connected at once (429 beyond).")
    idle_timeout_s: float = Field(default=30.0, gt=0, description="Close a peer that sent nothing for this long.")
    target_fps: float = Field(default=15.0, gt=0, le=60, description="Frames per second sent to the model per peer.")


class LabelingSettings(StrictModel):
    enabled: bool = Field(
        default=True, description="Select frames for labeling and run the Label Studio sync with the service."
    )
    label_studio_url: str | None = Field(
        default=None,
        description="Label Studio to use; empty starts a local one (its own venv under ~/.cache/visionloop) on "
        "127.0.0.1:label_studio_port with its data under <var_dir>/label-studio.",
    )
    label_studio_port: int = Field(default=8080, gt=0, lt=65536, description="Port of the local Label Studio.")
    label_studio_token: SecretStr | None = Field(
        default=None, description="API token of an external Label Studio (the local one has its own)."
    )
    project_title: str = Field(default="visionloop review", min_length=1, description="Label Studio project.")
    sampler_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "least_confidence": 1.0,
            "margin": 1.0,
            "entropy": 1.0,
            "confidence_band": 1.0,
        },
        description="Weights of the uncertainty samplers mixed by the composite sampler (novelty is the diversity "
        "factor now; listed here it also joins the mix).",
    )
    aggregate: Literal["max", "mean", "sum", "soft_count"] = Field(
        default="soft_count",
        description="How per-box doubts make a frame's: soft_count (1 - exp(-sum/1.5)) ranks a frame with several "
        "doubtful objects above one with a single one; max looks at the worst box only.",
    )
    diversity: float = Field(
        default=1.0,
        ge=0,
        description="Exponent of the distance-to-selected-frames factor (0: off); k-center greedy on a pool.",
    )
    class_balance: float = Field(
        default=1.0, ge=0, description="Exponent of the rarity of a frame's predicted classes among selected (0: off)."
    )
    memory_size: int = Field(default=256, gt=0, description="Selected frames remembered for diversity and balance.")
    diversity_scale: float = Field(
        default=0.5, gt=0, description="Embedding distance at which a frame counts as wholly new."
    )
    select_threshold: float = Field(default=0.3, ge=0, le=1, description="Composite score a frame needs.")
    random_rate: float = Field(default=0.02, ge=0, le=1, description="Share of frames picked at random (control).")
    per_camera_per_minute: int = Field(default=30, gt=0, description="Most frames queued per camera per minute.")
    per_class_per_hour: int = Field(default=500, gt=0, description="Most frames queued per predicted class per hour.")
    dedup_window_s: float = Field(default=60.0, gt=0, description="Near-duplicate memory per camera, seconds.")
    dedup_max_distance: int = Field(default=6, ge=0, le=64, description="Hash bits two frames may differ by.")
    max_deliveries: int = Field(default=5, gt=0, description="Import attempts before a frame is dead-lettered.")
    reclaim_idle_s: float = Field(default=30.0, gt=0, description="Reclaim review items pending this long.")
    reconcile_interval_s: float = Field(default=10.0, gt=0, description="How often all annotations are re-read.")
    dataset_name: str = Field(default="labels", description="Data set versions cut from labels are named so.")
    cut_every: int = Field(default=50, gt=0, description="Cut a new data set version every N new labels.")
    webhook_secret: SecretStr = Field(
        default=SecretStr("change-me-webhook"), description="Shared secret Label Studio sends with its webhooks."
    )


class ABSettings(StrictModel):
    """The champion/challenger A/B on human-labelled shadow frames (learning.ab_stats, learning.ab_decision)."""

    min_gain: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Promote only when the lower bound of the CI of the mAP50 difference (challenger - champion) "
        "exceeds this.",
    )
    min_frames: int = Field(
        default=200,
        ge=1,
        description="Labelled frames the A/B needs before it may decide. Power note: paired design (both models "
        "on the same frames), exact McNemar on per-frame outcomes; assuming 25% of frames discordant (one model "
        "right, the other wrong) split 17.5% / 7.5% in the challenger's favour (a net 10 points), alpha 0.05 "
        "two-sided and power 0.8 need (1.96 sqrt(0.25) + 0.84 sqrt(0.25 - 0.01))^2 / 0.01 = 194 frames "
        "(Connor 1987; learning.ab_stats.mcnemar_sample_size), rounded up to 200.",
    )
    bootstrap_resamples: int = Field(
        default=2000, ge=1000, le=100_000, description="Paired bootstrap resamples of the frames."
    )
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1, description="Confidence level of the percentile CI of the mAP50 difference."
    )
    max_latency_ratio: float = Field(
        default=1.5,
        gt=0,
        le=100,
        description="Latency guard: the challenger's p99 latency may be at most this times the champion's.",
    )
    max_gold_regression: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Gold guard: the challenger's gold-set mAP50 may be at most this below the champion's.",
    )
    seed: int = Field(default=0, ge=0, description="Seed of the bootstrap's random generator (reproducible CIs).")


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


class LoopSettings(StrictModel):
    """The learning loop: new labels -> challenger -> shadow -> A/B decision -> (auto-)promotion."""

    enabled: bool = Field(default=True, description="Run the loop worker with the service.")
    min_new_labels: int = Field(
        default=50, gt=0, description="Human labels (uncertainty arm) new since the last challenger before training."
    )
    epochs: int = Field(default=10, gt=0, description="Fine-tuning epochs of a challenger (from the champion).")
    replay_images: int = Field(
        default=400,
        ge=0,
        description="Images of the champion's own training data mixed into fine-tuning (replay keeps the old "
        "domain from being forgotten); 0 trains on the new labels alone.",
    )
    max_gold_regression: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Sanity gate: a candidate whose gold mAP50 is more than this below the champion's on any gold "
        "set never becomes the shadow.",
    )
    gold_datasets: list[str] = Field(
        default_factory=list,
        description="Gold data sets (refs) the gate and the A/B use; empty: every data set named '*-gold'.",
    )
    labels_dataset: str = Field(
        default="labels", description="Data set whose versions hold the human labels (labeling.dataset_name)."
    )
    training_dataset: str = Field(
        default="challenger", description="Name of the training set versions the loop builds."
    )
    auto_promote: bool = Field(default=False, description="Promote the shadow when the A/B decides PROMOTE.")
    poll_interval_s: float = Field(default=2.0, gt=0, description="How often the worker reads the events stream.")


class DriftSettings(StrictModel):
    """Drift and accuracy monitoring: sampled frames summarised, windows compared with a reference window."""

    enabled: bool = Field(default=True, description="Sample answered frames and run the drift monitor.")
    sample_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="Least time between two sampled frames of one camera (consecutive video frames are near "
        "copies; sampling sparsely keeps a window's frames close to independent).",
    )
    window_size: int = Field(default=60, ge=10, description="Sampled frames per window (per camera and overall).")
    alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Family-wise false-alarm rate of one window: the p-values of every test are Bonferroni-combined.",
    )
    psi_threshold: float = Field(default=0.25, gt=0, description="PSI of confidences above this also counts as drift.")
    persistence: int = Field(
        default=3, gt=0, description="Windows in a row in drift before the alarm is raised (and it clears alike)."
    )
    permutations: int = Field(default=200, ge=20, description="Permutations of the MMD test of frame appearance.")
    min_appearance_shift: float = Field(
        default=0.2,
        ge=0,
        description="Least shift of the mean appearance (noise-corrected) for the MMD test to count: frames of one "
        "scene are not exchangeable (objects move), so a significant but tiny shift is not drift.",
    )
    samples_maxlen: int = Field(default=20_000, gt=0, description="Approximate cap of the drift-samples stream.")
    results_maxlen: int = Field(default=5_000, gt=0, description="Approximate cap of the drift stream (windows).")
    accuracy_window: int = Field(
        default=200, ge=10, description="Latest random-arm labelled frames the rolling accuracy is computed on."
    )
    min_accuracy_frames: int = Field(
        default=20, ge=1, description="Random-arm labels needed before accuracy is reported."
    )
    poll_interval_s: float = Field(default=1.0, gt=0, description="How often the monitor reads new samples.")


class ExplainSettings(StrictModel):
    """SHAP explanations of single detections (off the hot path, cached)."""

    enabled: bool = Field(default=True, description="Run the explanation worker with the service.")
    max_evals: int = Field(
        default=400, ge=50, description="Masked images SHAP's Partition explainer may score for one explanation."
    )
    batch_size: int = Field(default=50, gt=0, description="Masked images scored per model call.")
    mask_value: int = Field(default=128, ge=0, le=255, description="Grey level hiding a masked region.")
    iou_match: float = Field(
        default=0.5, ge=0, le=1, description="Least IoU of a raw candidate with the box for it to count."
    )
    num_cpus: float = Field(
        default=0.0,
        ge=0,
        description="CPUs Ray reserves for the worker. It runs niced, so it yields without a reservation; one would "
        "take CPU away from training tasks on a small machine.",
    )
    nice: int = Field(default=10, ge=0, le=19, description="Niceness of the worker: it yields to the hot path.")
    cache_size: int = Field(default=200, gt=0, description="Explanations kept in Redis (oldest dropped).")


class DashboardSettings(StrictModel):
    """The Streamlit operator dashboard and the conditions it (and alerts.yml) watch."""

    enabled: bool = Field(default=True, description="Start the dashboard with the service.")
    host: str = Field(default="127.0.0.1", description="Address the dashboard binds.")
    port: int = Field(default=8501, gt=0, lt=65536, description="Port of the dashboard.")
    refresh_s: float = Field(default=2.0, ge=0.5, description="How often live views refresh.")
    api_url: str | None = Field(default=None, description="API the dashboard reads (default: this service's).")
    snapshot_interval_s: float = Field(
        default=1.0, gt=0, description="Least time between two kept snapshots (frame + result) of one camera."
    )
    snapshots_per_camera: int = Field(
        default=20, gt=0, description="Recent annotated frames kept per camera (Live view and explanations)."
    )
    latency_slo_ms: float = Field(default=250.0, gt=0, description="p99 capture-to-result latency objective.")
    label_studio_url: str | None = Field(
        default=None, description="Link shown on the Labeling page (default: the local Label Studio)."
    )


class LoggingSettings(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")


class Settings(StrictModel):
    """Everything visionloop can be told; see configs/default.yaml for the commented defaults."""

    paths: PathSettings = Field(default_factory=PathSettings, description="Filesystem locations.")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="The stream bus.")
    bus: BusSettings = Field(default_factory=BusSettings, description="Where the results stream goes (Redis or Kafka).")
    ray: RaySettings = Field(default_factory=RaySettings, description="The Ray runtime.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="The HTTP API.")
    serving: ServingSettings = Field(default_factory=ServingSettings, description="Inference replicas.")
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

    def cameras_file(self) -> Path:
        path = self.cameras.config_file.expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path

    def domains_file(self) -> Path:
        path = self.world.domains_file.expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path

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

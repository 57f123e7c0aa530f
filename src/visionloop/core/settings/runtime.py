"""The core's own settings: where state lives, the Redis and Kafka buses, the Ray runtime, logging."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from visionloop.core.settings.base import StrictModel


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
    results_retention_s: float = Field(
        default=300.0,
        ge=0,
        description="Age beyond which results leave the results stream (XADD MINID ~), so its memory is results/s x "
        "this; consumers that need history keep their own. 0: trimmed by results_maxlen alone.",
    )
    results_maxlen: int = Field(
        default=100_000,
        gt=0,
        description="Approximate cap (MAXLEN ~) of the results stream, the ceiling above the retention.",
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
    workers_check_s: float = Field(
        default=2.0,
        gt=0,
        description="How often the application checks its background workers (cameras, labeling, loop, drift, "
        "explanations) and starts again one that is gone.",
    )
    malloc_arena_max: int = Field(
        default=2,
        ge=0,
        description="glibc malloc arenas per process of a local Ray (MALLOC_ARENA_MAX); a few keep the long-running "
        "threaded workers from growing by fragmentation. 0 keeps glibc's default (8 per core).",
    )


class LoggingSettings(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")

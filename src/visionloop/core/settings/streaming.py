"""Settings of streaming: IP cameras and files, browser cameras over WebRTC."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from visionloop.core.settings.base import StrictModel


class CameraSettings(StrictModel):
    config_file: Path = Field(
        default=Path("configs/cameras.yaml"),
        description="Cameras to start with when the camera list in Redis is empty (relative: to the project root).",
    )
    max_cameras: int = Field(default=32, gt=0, le=1024, description="Most cameras at once; adding more is refused.")
    allow_files: bool = Field(
        default=False,
        description="Let cameras added through the API or the CLI read local files as video. Off, anyone holding "
        "the API token could read any file the service can read; files listed in config_file are always allowed.",
    )
    open_timeout_s: float = Field(default=5.0, gt=0, description="Give up opening a stream after this long.")
    read_timeout_s: float = Field(default=2.0, gt=0, description="Give up on a blocked read after this long.")
    rtsp_client: Literal["native", "ffmpeg"] = Field(
        default="native",
        description="Who reads RTSP cameras over TCP. native: visionloop's own client, which hands an H.264 frame "
        "to the decoder as soon as its last packet arrives (FFmpeg's waits for the next frame to begin: 67 ms of "
        "every result's age at 15 fps); other codecs still go through FFmpeg. ffmpeg: FFmpeg for every stream.",
    )
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
    cameras_per_process: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Cameras that share one camera host process; their frames go to the model gathered into one call "
        "per batch instead of one call per frame (8 cameras per process: 112 frames/s on 2 cores where a process "
        "per camera managed 71). 1 gives each camera its own worker process and one call per frame.",
    )
    batch_max_frames: int = Field(
        default=16, ge=1, description="Most frames in one gathered call (cameras_per_process > 1)."
    )
    batch_wait_ms: float = Field(
        default=4.0,
        ge=0,
        description="Longest a frame waits for other cameras' frames to join its call (not at all once every "
        "camera that is sending has a frame in it).",
    )
    batch_in_flight: int = Field(
        default=2, ge=1, le=16, description="Gathered calls of one process in flight at once (one gathers while "
        "the other is answered).",
    )  # fmt: skip
    gil_switch_ms: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="Python's thread switch interval in a camera host (Python's default is 5 ms): its cameras' "
        "threads share one interpreter lock, and a shorter hand-off keeps each frame's steps from waiting on it.",
    )
    latency_budget_ms: float = Field(
        default=110.0,
        ge=0,
        description="Decode-to-result time a live camera's frames should keep (p90 over a second). While a process's "
        "frames take longer (more cameras than the CPU can infer), its cameras send fewer frames, so those sent come "
        "back fresh instead of all coming back late; the rate recovers as the delay drops. Held-back frames count as "
        "skipped. The default leaves a fresh result's 150 ms room for the slowest tenth of frames (p99 was 132 ms "
        "at 8 cameras on 2 cores with it; 80 gave fewer fresh results at 8, 12 and 16 cameras). 0: always the target "
        "frame rate.",
    )
    min_rate_share: float = Field(
        default=0.1, gt=0, le=1, description="The least share of its target frame rate a camera is cut to."
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

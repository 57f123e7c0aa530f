"""What a camera is, in the user's words: the spec kept in Redis and seeded from configs/cameras.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from visionloop.core.errors import ConfigError, VisionloopError
from visionloop.core.redaction import redact

# The one camera-id rule: results, metrics, the API and camera specs all accept exactly these ids.
CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"


class CameraNotFound(VisionloopError):
    """No camera with that id."""


class CameraExists(VisionloopError):
    """A camera with that id is already running."""


class CameraLimitReached(VisionloopError):
    """As many cameras run as cameras.max_cameras allows."""


class CameraUrlRefused(VisionloopError):
    """A camera URL that can never be opened (an unknown scheme), or a local file while files are not allowed."""


NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
FILE_SCHEMES = ("file", "")


def check_camera_url(url: str, allow_files: bool) -> None:
    """Refuse, when a camera is added, a URL that would be stored and fail at every start: an unknown scheme, or a
    local file (any file the service can read, opened as video) unless ``allow_files``."""
    scheme = urlparse(url).scheme.lower()
    if scheme in NETWORK_SCHEMES:
        return
    if scheme not in FILE_SCHEMES:
        raise CameraUrlRefused(
            f"unsupported URL scheme '{scheme}' in {redact(url)}: a camera is rtsp://, rtsps://, http:// or "
            "https://, or a video file where cameras.allow_files is on"
        )
    if not allow_files:
        raise CameraUrlRefused(
            f"{redact(url)} is a local file path: cameras added through the API or the CLI may not read files while "
            "cameras.allow_files is off (files listed in cameras.config_file are always allowed)"
        )


Region = tuple[float, float, float, float]


class MotionGating(BaseModel):
    """Detect only where something moved (Frigate's motion gating): a quiet camera costs its decode, not the model.

    Motion is judged on the picture's grey (Y) plane, downscaled and blurred, against a slowly updated background;
    a frame goes to the model when enough of it moved, or when ``refresh_s`` passed since the last one that went,
    so objects that stand still keep fresh results. Off by default: turn it on per camera."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="Send only frames with motion (and one every refresh_s).")
    threshold: int = Field(
        default=20, ge=1, le=255, description="Grey-level change that counts a pixel as moved (after the blur)."
    )
    min_area: float = Field(
        default=0.002, ge=0, le=1, description="Share of the picture (outside the mask) that must move."
    )
    refresh_s: float = Field(
        default=0.5,
        gt=0,
        description="Send a frame at least this often while nothing moves (stationary objects). 0.5 s: the offline "
        "grid (benchmarks/gating_tune.py) cost 0.0052 mAP50 for 26% of calls saved where 1 s cost 0.0102 for 28%.",
    )
    mask: list[Region] = Field(
        default_factory=list,
        description="Regions where motion is ignored, as (x0, y0, x1, y1) fractions of the picture: an on-screen "
        "clock, trees in the wind.",
    )

    @field_validator("mask")
    @classmethod
    def _regions_inside_the_picture(cls, regions: list[Region]) -> list[Region]:
        for x0, y0, x1, y1 in regions:
            if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
                raise ValueError(f"a mask region is (x0, y0, x1, y1) with 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1; got "
                                 f"{(x0, y0, x1, y1)}")  # fmt: skip
        return regions


class CameraSpec(BaseModel):
    """One camera. The URL may hold credentials; they are shown redacted everywhere but here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=CAMERA_ID_PATTERN, description="Camera id used in results, metrics and the API.")
    url: str = Field(min_length=1, description="rtsp://, rtsps://, http(s):// (MJPEG, HLS) or a file path.")
    transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport.")
    target_fps: float = Field(default=15.0, gt=0, le=120, description="Frames per second sent to the model.")
    mode: Literal["auto", "latest", "every"] = Field(
        default="auto",
        description="latest: keep the newest frames and skip the rest (live cameras); every: read every frame "
        "(files); auto picks by URL.",
    )
    loop: bool = Field(default=True, description="Start a file again when it ends.")
    motion: MotionGating = Field(default_factory=MotionGating, description="Motion gating (off unless enabled).")

    def redacted_url(self) -> str:
        return redact(self.url)

    def public(self) -> dict[str, object]:
        return {**self.model_dump(), "url": self.redacted_url()}


def load_camera_file(path: Path) -> list[CameraSpec]:
    """Cameras listed in a YAML file (a ``cameras:`` list); an empty or missing file means none."""
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"'{path}' is not valid YAML: {exc}") from exc
    cameras = data.get("cameras") or []
    try:
        return [CameraSpec(**item) for item in cameras]
    except (ValidationError, TypeError) as exc:
        raise ConfigError(f"bad camera in '{path}': {redact(str(exc))}") from None

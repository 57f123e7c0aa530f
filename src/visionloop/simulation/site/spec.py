"""What a simulated site is: how many cameras, of which domain, for how long, and the shifts scheduled on them.

A site is deterministic from its spec (and the domains it names): any frame of any camera, its objects and their
masks can be rendered again on their own. Camera ``cam<i>`` is the i-th viewpoint of the site's seed; unseen cameras
(``unseen<i>``) are further viewpoints of the same domain that are never streamed: a test set of places the loop
never looked at.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from visionloop.core.errors import ConfigError

UNSEEN_OFFSET = 10_000  # viewpoint index of unseen camera i: far from any streamed camera's
RENDERER_VERSION = 2  # bump whenever the same spec would render different pictures or truth


class Shift(BaseModel):
    """At ``at_s`` seconds, ``camera`` starts to look like ``domain``; over ``ramp_s`` seconds (0: at once)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: str = Field(min_length=1, description="Camera name (cam1, cam2, ...).")
    at_s: float = Field(ge=0, description="When the shift starts, seconds after the site's first frame.")
    domain: str = Field(min_length=1, description="The domain the camera shifts to.")
    ramp_s: float = Field(default=0.0, ge=0, description="How long the change takes (0: abrupt).")

    @classmethod
    def parse(cls, text: str) -> Shift:
        """``CAMERA:T:DOMAIN`` or ``CAMERA:T:DOMAIN:RAMP`` (seconds), as the command line writes it."""
        parts = text.split(":")
        if len(parts) not in (3, 4):
            raise ConfigError(f"shift {text!r} must look like CAMERA:T:DOMAIN or CAMERA:T:DOMAIN:RAMP_S")
        try:
            return cls(
                camera=parts[0], at_s=float(parts[1]), domain=parts[2], ramp_s=float(parts[3]) if parts[3:] else 0.0
            )
        except ValueError as exc:
            raise ConfigError(f"shift {text!r}: {exc}") from None


class SiteSpec(BaseModel):
    """One simulated site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=0, ge=0, description="Seed of everything: viewpoints, traffic, weather, noise.")
    cameras: int = Field(default=2, ge=1, le=256, description="Streamed cameras (cam1 ... camN).")
    unseen: int = Field(default=0, ge=0, le=256, description="Extra viewpoints of the domain, never streamed.")
    domain: str = Field(default="A", min_length=1, description="The domain every camera starts in.")
    seconds: float = Field(default=60.0, gt=0, description="Length of the site's run.")
    fps: int = Field(default=15, ge=1, le=60, description="Frames per second of every camera.")
    width: int = Field(default=640, ge=128, description="Frame width, pixels.")
    height: int = Field(default=360, ge=96, description="Frame height, pixels.")
    shifts: tuple[Shift, ...] = Field(default=(), description="Domain shifts scheduled on cameras.")
    bitrate_kbps: int | None = Field(
        default=None, ge=16, description="H.264 bitrate of the cameras' video (None: constant quality, CRF 23)."
    )

    @model_validator(mode="after")
    def _shifts_name_cameras(self) -> SiteSpec:
        names = set(self.camera_names())
        for shift in self.shifts:
            if shift.camera not in names:
                raise ValueError(f"shift names camera {shift.camera!r}, not one of {sorted(names)}")
        return self

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    @property
    def gop(self) -> int:
        """Frames between keyframes: half a second, so a client joining a live camera sees a picture quickly."""
        return max(1, self.fps // 2)

    def camera_names(self) -> list[str]:
        return [f"cam{i}" for i in range(1, self.cameras + 1)]

    def unseen_names(self) -> list[str]:
        return [f"unseen{i}" for i in range(1, self.unseen + 1)]

    def viewpoint(self, camera: str) -> int:
        """The viewpoint index a camera name stands for (streamed cameras first, unseen ones far away)."""
        if camera.startswith("cam") and camera[3:].isdigit() and 1 <= int(camera[3:]) <= self.cameras:
            return int(camera[3:]) - 1
        if camera.startswith("unseen") and camera[6:].isdigit() and 1 <= int(camera[6:]) <= self.unseen:
            return UNSEEN_OFFSET + int(camera[6:]) - 1
        raise ConfigError(f"site has no camera {camera!r}: cameras are {self.camera_names() + self.unseen_names()}")

    def shifts_of(self, camera: str) -> list[Shift]:
        return sorted((s for s in self.shifts if s.camera == camera), key=lambda s: s.at_s)

    def recipe_hash(self, domains_text: str) -> str:
        """What a rendering of this site depends on: the spec, the domains file's text and the renderer's version."""
        blob = json.dumps(
            {"spec": self.model_dump(mode="json"), "domains": domains_text, "renderer": RENDERER_VERSION},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def read_site_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the site description {path}: {exc}") from None
    if not isinstance(data, dict) or "spec" not in data:
        raise ConfigError(f"{path} is not a site description (no 'spec')")
    return data

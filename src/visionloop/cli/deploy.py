"""Entry point for Ray Serve's own deployment tools (``serve run visionloop.cli.deploy:app``, KubeRay RayService).

Settings come from the usual layers (configs/default.yaml, ``VISIONLOOP_CONFIG``, ``VISIONLOOP_*``); on a cluster
``redis.url`` must point at a shared Redis, since nothing here starts one. Like ``visionloop up``, it hands the
labeling selector to the Router when labeling is enabled.
"""

from __future__ import annotations

from visionloop.cli.plugins import frame_observer, load_checked_settings
from visionloop.core.errors import ConfigError
from visionloop.serving.app import build_app

_settings = load_checked_settings()
if _settings.redis.url is None:
    raise ConfigError("visionloop.cli.deploy needs redis.url (VISIONLOOP_REDIS__URL): a cluster shares one Redis")
app = build_app(_settings, _settings.redis.url, frame_observer(_settings))

"""Entry point for Ray Serve's own deployment tools (``serve run serving.deploy:app``, KubeRay RayService).

Settings come from the usual layers (configs/default.yaml, ``VISIONLOOP_CONFIG``, ``VISIONLOOP_*``); on a cluster
``redis.url`` must point at a shared Redis, since nothing here starts one.
"""

from __future__ import annotations

from serving.app import build_app
from visionloop.config import load_settings
from visionloop.errors import ConfigError

_settings = load_settings()
if _settings.redis.url is None:
    raise ConfigError("serving.deploy needs redis.url (VISIONLOOP_REDIS__URL): a cluster shares one Redis")
app = build_app(_settings, _settings.redis.url)

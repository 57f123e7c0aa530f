"""Entry point for Ray Serve's own deployment tools (``serve run visionloop.cli.deploy:app``, KubeRay RayService).

Settings come from the usual layers (configs/default.yaml, ``VISIONLOOP_CONFIG``, ``VISIONLOOP_*``); on a cluster
``redis.url`` must point at a shared Redis, since nothing here starts one. The application is the whole product,
the one ``visionloop up`` deploys (:mod:`visionloop.cli.composition`): the Router, its Detectors and the background
workers (cameras, labeling, the learning loop, drift, explanations).
"""

from __future__ import annotations

from visionloop.cli.composition import build_product
from visionloop.cli.plugins import load_checked_settings
from visionloop.core.errors import ConfigError

_settings = load_checked_settings()
if _settings.redis.url is None:
    raise ConfigError("visionloop.cli.deploy needs redis.url (VISIONLOOP_REDIS__URL): a cluster shares one Redis")
app = build_product(_settings, _settings.redis.url)

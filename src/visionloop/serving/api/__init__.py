"""The HTTP API, one router per area; serving.router includes them all in the app Serve's ingress serves.

Handlers are plain functions: they reach the replica they run in (its settings, registry, champion handle,
metrics, publisher) through the ``Replica`` dependency of :mod:`visionloop.serving.api.deps`.
"""

from __future__ import annotations

from fastapi import APIRouter

from visionloop.serving.api import cameras, explanations, frames, health, labeling, loop, models

AREAS: tuple[APIRouter, ...] = tuple(
    area.router for area in (frames, models, loop, cameras, labeling, explanations, health)
)

"""Refuse to listen beyond this machine with the secrets every copy of visionloop ships with.

The defaults make a laptop run work without setup; on a network they are a published password. The check runs at
`visionloop up`, before anything starts, and names what is exposed and which secret to set.
"""

from __future__ import annotations

import ipaddress

from visionloop.core.errors import ConfigError
from visionloop.core.settings import ApiSettings, LabelingSettings, Settings


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only this machine (127.0.0.0/8, ::1, localhost); 0.0.0.0 and names are not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default(model: type[ApiSettings] | type[LabelingSettings], field: str) -> str:
    return str(model.model_fields[field].get_default(call_default_factory=True).get_secret_value())


def exposure_problem(settings: Settings) -> str | None:
    """Why these settings must not start (a server on a non-loopback address with a default secret), or None."""
    listeners = {"api.host": settings.api.host, "webrtc.host": settings.webrtc.host}
    if settings.dashboard.enabled:  # the dashboard acts (promotes, rolls back) with the API token
        listeners["dashboard.host"] = settings.dashboard.host
    exposed = [f"{key}={host}" for key, host in listeners.items() if not is_loopback(host)]
    if not exposed:
        return None
    defaults = []
    if settings.api.token.get_secret_value() == _default(ApiSettings, "token"):
        defaults.append("api.token (VISIONLOOP_API__TOKEN)")
    if settings.labeling.enabled and settings.labeling.webhook_secret.get_secret_value() == _default(
        LabelingSettings, "webhook_secret"
    ):
        defaults.append("labeling.webhook_secret (VISIONLOOP_LABELING__WEBHOOK_SECRET)")
    if not defaults:
        return None
    return (
        f"refusing to listen on {', '.join(exposed)} with the default {' and '.join(defaults)}: anyone who can reach "
        "it could act as the operator. Set your own secret, or bind 127.0.0.1."
    )


def check_exposure(settings: Settings) -> None:
    """Raise ConfigError if :func:`exposure_problem` finds one."""
    problem = exposure_problem(settings)
    if problem:
        raise ConfigError(problem)

"""`visionloop up` refuses a non-loopback address while a shipped default secret is in force."""

from __future__ import annotations

import pytest

from visionloop.core.config import load_settings
from visionloop.core.errors import ConfigError
from visionloop.core.exposure import check_exposure, exposure_problem, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("::", False),
        ("camera-host", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_default_token_on_a_public_address_is_refused_naming_what_to_set() -> None:
    settings = load_settings(environ={"VISIONLOOP_API__HOST": "0.0.0.0"})
    with pytest.raises(ConfigError) as refused:
        check_exposure(settings)
    message = str(refused.value)
    assert "api.host=0.0.0.0" in message and "VISIONLOOP_API__TOKEN" in message
    assert "change-me" not in message  # the error names the setting, never the secret


def test_the_webhook_secret_counts_when_labeling_is_on() -> None:
    env = {"VISIONLOOP_WEBRTC__HOST": "10.1.2.3", "VISIONLOOP_API__TOKEN": "a-real-token-0123"}
    problem = exposure_problem(load_settings(environ={**env, "VISIONLOOP_LABELING__ENABLED": "true"}))
    assert problem is not None and "labeling.webhook_secret" in problem and "api.token" not in problem
    assert exposure_problem(load_settings(environ={**env, "VISIONLOOP_LABELING__ENABLED": "false"})) is None


def test_loopback_or_own_secrets_start() -> None:
    assert exposure_problem(load_settings(environ={})) is None
    own = {
        "VISIONLOOP_API__HOST": "0.0.0.0",
        "VISIONLOOP_API__TOKEN": "a-real-token-0123",
        "VISIONLOOP_LABELING__WEBHOOK_SECRET": "a-real-webhook-secret",
    }
    assert exposure_problem(load_settings(environ=own)) is None

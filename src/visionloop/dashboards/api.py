"""A small client of the visionloop API for the dashboard: every answer is a value, never an exception.

The dashboard is not allowed to import the CLI (the face), so it does not reuse ``visionloop.cli.client``; what it
needs differs anyway: short timeouts, and refusals (401) kept as data a page can show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

READ_TIMEOUT_S = 3.0
ACTION_TIMEOUT_S = 60.0  # a promotion answers once the replica serves the new model


@dataclass(frozen=True)
class ApiAnswer:
    """``status`` 0 means no answer at all (connection refused, timeout); ``sent`` False: nothing was sent."""

    status: int
    data: Any = None
    error: str | None = None
    sent: bool = True

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        """The API turned the token down."""
        return self.status in (401, 403)

    def describe(self) -> str:
        if self.ok:
            return f"done ({self.status})"
        if not self.sent:
            return f"not sent: {self.error}"
        if self.status == 0:
            return f"the API did not answer: {self.error}"
        if self.refused:
            return f"the API refused the action ({self.status}): {self.error} - check the token"
        return f"the API answered {self.status}: {self.error}"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        detail = detail.get("message", detail)
    return str(detail)[:500]


def call_api(
    base_url: str,
    method: str,
    path: str,
    token: str | None = None,
    json: Any = None,
    timeout_s: float = READ_TIMEOUT_S,
) -> ApiAnswer:
    """One request; the token, when given, goes as ``Authorization: Bearer``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, base_url + path, headers=headers, json=json, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return ApiAnswer(0, error=f"{type(exc).__name__}: {exc}")
    if response.status_code >= 400:
        return ApiAnswer(response.status_code, error=_detail(response))
    try:
        data = response.json()
    except ValueError:
        data = response.text
    return ApiAnswer(response.status_code, data=data)


def get_json(base_url: str, path: str) -> ApiAnswer:
    return call_api(base_url, "GET", path)


def get_text(base_url: str, path: str) -> ApiAnswer:
    """A text answer (``/metrics``)."""
    try:
        response = httpx.get(base_url + path, timeout=READ_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return ApiAnswer(0, error=f"{type(exc).__name__}: {exc}")
    if response.status_code >= 400:
        return ApiAnswer(response.status_code, error=_detail(response))
    return ApiAnswer(response.status_code, data=response.text)


def act(base_url: str, method: str, path: str, token: str, json: Any = None) -> ApiAnswer:
    """A mutating call; without a token nothing is sent (the page says a token is needed)."""
    if not token:
        return ApiAnswer(0, error="type the API token in the sidebar first: actions need it", sent=False)
    return call_api(base_url, method, path, token=token, json=json, timeout_s=ACTION_TIMEOUT_S)

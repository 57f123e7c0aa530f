"""The HTTP client for the visionloop API (used by the CLI, the demo, benchmarks and tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from visionloop.core.errors import VisionloopError


class ApiError(VisionloopError):
    """The API answered with an error status; the message carries the status and the API's own words."""

    def __init__(self, status: int, detail: Any, what: str = "API") -> None:
        super().__init__(f"{what} failed ({status}): {detail}")
        self.status = status
        self.detail = detail


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise VisionloopError(
                f"the service at {self.base_url} did not answer ({exc}); is 'visionloop up' running?"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except (ValueError, AttributeError):
                detail = response.text
            raise ApiError(response.status_code, detail, what=f"{method} {path}")
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the decoded JSON answer, or ``ApiError`` / ``VisionloopError`` with a clear message."""
        return self._send(method, path, **kwargs).json()

    def health(self) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/health"))

    def models(self) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/models"))

    def detect(self, image: bytes, camera_id: str = "api", filename: str = "frame.jpg") -> dict[str, Any]:
        files = {"image": (filename, image, "application/octet-stream")}
        return dict(self.call("POST", "/v1/detect", files=files, params={"camera_id": camera_id}))

    def detect_batch(self, images: Sequence[bytes], camera_id: str = "api") -> dict[str, Any]:
        files = [("images", (f"frame{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
        return dict(self.call("POST", "/v1/detect/batch", files=files, params={"camera_id": camera_id}))

    def cameras(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/cameras"))

    def camera(self, camera_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/cameras/{camera_id}"))

    def add_camera(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", "/v1/cameras", json=spec))

    def remove_camera(self, camera_id: str) -> dict[str, Any]:
        return dict(self.call("DELETE", f"/v1/cameras/{camera_id}"))

    def labeling_status(self) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/labeling/status"))

    def labeling_sync(self, cut: bool = False) -> dict[str, Any]:
        return dict(self.call("POST", "/v1/labeling/sync" + ("?cut=true" if cut else "")))

    def metrics(self) -> str:
        return self._send("GET", "/metrics").text

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

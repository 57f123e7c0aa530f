"""A small HTTP client for the visionloop API (used by the CLI, the demo, benchmarks and tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from visionloop.errors import VisionloopError


class ApiError(VisionloopError):
    """The API answered with an error status."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"API error {status}: {detail}")
        self.status = status
        self.detail = detail


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ApiError(response.status_code, detail)
    return response.json()


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)

    def health(self) -> dict[str, Any]:
        return dict(_check(self._http.get("/v1/health")))

    def models(self) -> dict[str, Any]:
        return dict(_check(self._http.get("/v1/models")))

    def detect(self, image: bytes, camera_id: str = "api", filename: str = "frame.jpg") -> dict[str, Any]:
        files = {"image": (filename, image, "application/octet-stream")}
        return dict(_check(self._http.post("/v1/detect", files=files, params={"camera_id": camera_id})))

    def detect_batch(self, images: Sequence[bytes], camera_id: str = "api") -> dict[str, Any]:
        files = [("images", (f"frame{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
        return dict(_check(self._http.post("/v1/detect/batch", files=files, params={"camera_id": camera_id})))

    def metrics(self) -> str:
        response = self._http.get("/metrics")
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.text)
        return response.text

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

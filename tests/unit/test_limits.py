"""The body-size middleware on a tiny app (a unit seam; the integration tests hit the real Serve app)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, File, UploadFile

from visionloop.serving.limits import BodySizeLimitMiddleware

LIMIT = 1000


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodySizeLimitMiddleware, limit=lambda: LIMIT)

    @app.post("/upload")
    async def upload(image: UploadFile = File(...)) -> dict[str, int]:  # noqa: B008
        return {"size": len(await image.read())}

    return app


async def _post(content: bytes | AsyncIterator[bytes], headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/upload", content=content, headers=headers)


async def test_small_upload_passes() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/upload", files={"image": ("a.jpg", b"x" * 100)})
    assert response.status_code == 200 and response.json() == {"size": 100}


async def test_declared_oversize_is_rejected_with_413() -> None:
    response = await _post(b"x" * (LIMIT + 1), headers={"content-type": "application/octet-stream"})
    assert response.status_code == 413
    assert "max_upload_bytes" in response.json()["detail"]


@pytest.mark.parametrize("chunks", [3, 10])
async def test_streamed_oversize_is_rejected_with_413(chunks: int) -> None:
    boundary = "b0undary"

    async def body() -> AsyncIterator[bytes]:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'.encode()
        for _ in range(chunks):
            yield b"x" * 500
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await _post(body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413

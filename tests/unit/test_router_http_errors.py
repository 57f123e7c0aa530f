"""The one error -> HTTP answer mapping (visionloop.http_errors), and both servers answering with it: the
Router's FastAPI side (serving.http_errors) and the WebRTC gateway's aiohttp side."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from ray.exceptions import RayError, RayTaskError

from visionloop.core.cameras import CameraExists, CameraNotFound, CameraSpec
from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.errors import InvalidImageError, ModelLoadError, NotReadyError, VisionloopError
from visionloop.core.http_errors import (
    BadRequest,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    clean_message,
    http_error,
    is_client_error,
    status_of,
)
from visionloop.core.settings import WebRTCSettings
from visionloop.serving.http_errors import http_exception
from visionloop.streaming.webrtc.gateway import WebRTCGateway

TOKEN = "gateway-token-1"


def _raised(exc: BaseException) -> BaseException:
    """``exc`` with a real traceback, as it is when caught."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def _ray_wrapped(exc: BaseException) -> BaseException:
    """``exc`` as Ray re-raises it in the caller of a remote method: the remote traceback is its text."""
    caught = _raised(exc)
    trace = "".join(traceback.format_exception(caught))
    error = RayTaskError("CameraManager.status", trace, caught, proctitle="ray::CameraManager", pid=1, ip="127.0.0.1")
    return error.as_instanceof_cause()


def _validation_error() -> ValidationError:
    try:
        CameraSpec(id="gate", url="rtsp://op:pa55-word@10.0.0.1/cam", colour="red")  # type: ignore[call-arg]
    except ValidationError as exc:
        return exc
    raise AssertionError("CameraSpec accepted an unknown field")


VALIDATION = _validation_error()
BEARER = {"WWW-Authenticate": "Bearer"}


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (BadRequest("the offer must be JSON {sdp, type}"), 400, "the offer must be JSON {sdp, type}"),
        (InvalidImageError("image 'a.jpg': not an image"), 400, "image 'a.jpg': not an image"),
        (Unauthorized(), 401, "missing or wrong bearer token"),
        (Unauthorized("missing or wrong webhook secret", scheme=None), 401, "missing or wrong webhook secret"),
        (CameraNotFound("no camera 'nope'"), 404, "no camera 'nope'"),
        (CameraExists("camera 'gate' already exists"), 409, "camera 'gate' already exists"),
        (
            PayloadTooLarge.body(1000),
            413,
            "request body larger than the 1000-byte limit (api.max_upload_bytes)",
        ),
        (PayloadTooLarge("9 images in one request; the limit is 8"), 413, "9 images in one request; the limit is 8"),
        (TooManyRequests("the gateway already serves 2 peers"), 429, "the gateway already serves 2 peers"),
        (NotReadyError("labeling is still starting"), 503, "labeling is still starting"),
        # credentials in a URL never reach a client
        (CameraExists("camera at rtsp://op:pa55@h/x exists"), 409, "camera at rtsp://***@h/x exists"),
        # Ray's re-raised errors: the status of the error they carry, its own text, not the remote traceback
        (_ray_wrapped(CameraNotFound("no camera 'nope'")), 404, "no camera 'nope'"),
        (_ray_wrapped(CameraExists("camera 'gate' already exists")), 409, "camera 'gate' already exists"),
        (_ray_wrapped(NotReadyError("starting:\nLabel Studio is not up")), 503, "starting:\nLabel Studio is not up"),
        # errors that are no client's doing stay 500
        (RuntimeError("boom"), 500, "boom"),
        (ModelLoadError("model v3 has no model.onnx"), 500, "model v3 has no model.onnx"),
        (_ray_wrapped(KeyError("x")), 500, "'x'"),
        (RuntimeError(), 500, "RuntimeError"),
    ],
)
def test_error_maps_to_status_and_clean_message(exc: BaseException, status: int, message: str) -> None:
    error = http_error(exc)
    assert (error.status, error.message) == (status, message)
    assert status_of(exc) == status and clean_message(exc) == message
    assert is_client_error(exc) is (status != 500)


@pytest.mark.parametrize(
    ("exc", "headers"),
    [
        (Unauthorized(), BEARER),
        (Unauthorized("missing or wrong webhook secret", scheme=None), {}),
        (CameraNotFound("no camera 'nope'"), {}),
    ],
)
def test_only_a_bearer_401_carries_a_challenge(exc: BaseException, headers: dict[str, str]) -> None:
    assert dict(http_error(exc).headers) == headers


def test_validation_error_keeps_every_field_and_hides_credentials() -> None:
    error = http_error(VALIDATION)
    assert error.status == 422 and "colour" in error.message and "Extra inputs" in error.message
    assert "pa55" not in error.message


def test_ray_error_that_cannot_take_the_type_of_its_cause_still_maps_by_it() -> None:
    """Ray cannot subclass pydantic's ValidationError, so it re-raises a bare RayTaskError carrying it."""
    wrapped = _ray_wrapped(VALIDATION)
    assert not isinstance(wrapped, ValidationError)
    error = http_error(wrapped)
    assert error.status == 422 and "colour" in error.message and "Traceback" not in error.message


def test_only_rays_own_text_is_cut_to_its_last_line() -> None:
    """A cause Ray could not send is replaced by a RayError whose text is the remote traceback."""
    text = "Exception x isn't serializable.\nOriginal exception details:\nTraceback ...\nmod.Oops: it broke at rtsp://u:p@h"
    assert http_error(RayError(text)) == http_error(RuntimeError("mod.Oops: it broke at rtsp://***@h"))
    assert clean_message(RayError(text)) == "mod.Oops: it broke at rtsp://***@h"


def test_fastapi_side_answers_with_the_mapping() -> None:
    exc = http_exception(_ray_wrapped(CameraNotFound("no camera 'nope'")))
    assert (exc.status_code, exc.detail, exc.headers) == (404, "no camera 'nope'", None)
    exc = http_exception(Unauthorized())
    assert (exc.status_code, exc.detail, exc.headers) == (401, "missing or wrong bearer token", BEARER)


# -- the aiohttp gateway answers with the same mapping -------------------------------------------------------------


async def _detect(frames: list[EncodedFrame]) -> list[FrameResult | str]:
    return ["not a JPEG or PNG image" for _ in frames]


async def _names() -> list[str]:
    return []


@pytest.fixture
async def gateway() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    gw = WebRTCGateway(WebRTCSettings(max_peers=1), TOKEN, _detect, _names, max_upload_bytes=1000)
    gw.peers["busy"] = None  # type: ignore[assignment]  # the one peer slot is taken
    async with TestClient(TestServer(gw.app())) as client:
        yield client


AUTH = {"Authorization": f"Bearer {TOKEN}"}
OFFER = {"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "offer"}


@pytest.mark.parametrize(
    ("path", "kwargs", "expected"),
    [
        ("/v1/webrtc/offer", {"json": OFFER}, Unauthorized()),
        ("/v1/detect", {"data": {"x": "1"}}, Unauthorized()),
        ("/v1/webrtc/offer", {"json": {"type": "offer"}, "headers": AUTH}, None),
        ("/v1/webrtc/offer", {"json": OFFER, "headers": AUTH}, TooManyRequests("the gateway already serves 1 peers")),
        ("/v1/detect", {"data": {"x": "1"}, "headers": AUTH}, BadRequest("send the image as multipart field 'image'")),
        ("/v1/detect", {"data": {"image": b"x" * 70_000}, "headers": AUTH}, PayloadTooLarge.body(1000)),
    ],
)
async def test_gateway_errors_are_the_shared_answers(
    gateway: TestClient,  # type: ignore[type-arg]
    path: str,
    kwargs: dict[str, object],
    expected: BaseException | None,
) -> None:
    response = await gateway.post(path, **kwargs)  # type: ignore[arg-type]
    body = await response.json()
    if expected is None:  # a bad offer: 400 with the gateway's own wording
        assert response.status == 400 and set(body) == {"detail"}
        return
    error = http_error(expected)
    assert (response.status, body) == (error.status, {"detail": error.message})
    for name, value in error.headers.items():
        assert response.headers[name] == value


async def test_gateway_invalid_upload_is_400_with_the_file_name(gateway: TestClient) -> None:  # type: ignore[type-arg]
    form = FormData()
    form.add_field("image", b"not an image", filename="bad.jpg", content_type="image/jpeg")
    response = await gateway.post("/v1/detect", data=form, headers=AUTH)
    assert response.status == 400
    assert await response.json() == {"detail": "image 'bad.jpg': not a JPEG or PNG image"}


# -- an upstream's failure (Label Studio, Redis, a Ray worker) is a 502/503 with its reason, never a 500 ------------


def _upstream_cases() -> list[tuple[BaseException, int, str]]:
    import redis.exceptions
    from ray.exceptions import GetTimeoutError, RayActorError

    from visionloop.labeling.label_studio_client import LabelStudioRejected, LabelStudioUnavailable

    return [
        (LabelStudioRejected("Label Studio answered 404 to GET /api/tasks: Invalid page", 404), 502, "Invalid page"),
        (LabelStudioUnavailable("Label Studio at http://127.0.0.1:1 did not answer: timed out"), 503, "timed out"),
        (redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused."), 503,
         "Connection refused"),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), 503, "Timeout"),
        (redis.exceptions.ResponseError("OOM command not allowed"), 502, "OOM"),
        (RayActorError(), 503, ""),
        (GetTimeoutError("Get timed out: some object(s) not ready."), 503, "timed out"),
        (_ray_wrapped(LabelStudioRejected("project 3 does not exist", 404)), 502, "project 3 does not exist"),
        (_ray_wrapped(LabelStudioUnavailable("connection refused")), 503, "connection refused"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(9))
def test_an_upstreams_failure_is_502_or_503_with_its_reason(case: int) -> None:
    exc, status, fragment = _upstream_cases()[case]
    error = http_error(_raised(exc))
    assert (error.status, is_client_error(exc)) == (status, True)
    assert fragment in error.message and "Traceback" not in error.message


def test_a_bug_behind_a_ray_call_stays_a_500() -> None:
    assert status_of(_ray_wrapped(RuntimeError("a bug"))) == 500
    assert status_of(KeyError("x")) == 500


def test_the_router_answers_upstream_failures_that_escape_a_route() -> None:
    """Routes need no try/except of their own: the app maps an escaped upstream error, and a bug is still a 500."""
    import redis.exceptions
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from visionloop.labeling.label_studio_client import LabelStudioRejected
    from visionloop.serving.http_errors import mapped_error_response
    from visionloop.serving.router import app as router_app

    for kind in (VisionloopError, redis.exceptions.RedisError, RayError):
        assert router_app.exception_handlers.get(kind) is mapped_error_response, kind
    app = FastAPI()
    for kind in (VisionloopError, redis.exceptions.RedisError, RayError):
        app.add_exception_handler(kind, mapped_error_response)
    raised: dict[str, BaseException] = {
        "refused": LabelStudioRejected("Label Studio answered 400: bad filter", 400),
        "redis": redis.exceptions.ConnectionError("Connection refused"),
        "bug": RuntimeError("a bug"),
    }

    @app.get("/{name}")
    def fail(name: str) -> None:
        raise raised[name]

    client = TestClient(app, raise_server_exceptions=False)
    assert (client.get("/refused").status_code, client.get("/refused").json()) == (
        502, {"detail": "Label Studio answered 400: bad filter"}
    )  # fmt: skip
    assert client.get("/redis").status_code == 503
    assert client.get("/bug").status_code == 500

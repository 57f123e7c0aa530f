"""The cameras' HTTP face (the camera manager actor owns them)."""

# No `from __future__ import annotations` here: FastAPI must see real annotations on the handlers.
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.exceptions import RequestValidationError

from visionloop.core.cameras import CAMERA_ID_PATTERN, CameraSpec, CameraUrlRefused, check_camera_url
from visionloop.core.settings import Settings
from visionloop.serving.api.components import CAMERA_MANAGER, component
from visionloop.serving.api.deps import Credentials, Replica, authorize
from visionloop.serving.http_errors import client_errors

router = APIRouter()


async def _ask_manager(settings: Settings, method: str, *args: Any) -> Any:
    # The manager's errors arrive wrapped by Ray; the mapping looks inside.
    with client_errors():
        return await getattr(component(settings, CAMERA_MANAGER), method).remote(*args)


@router.get("/v1/cameras", summary="Every camera with its state and counters")
async def list_cameras(replica: Replica) -> list[dict[str, Any]]:
    return list(await _ask_manager(replica.settings, "list"))


@router.get("/v1/cameras/{camera_id}", summary="One camera's state and counters")
async def camera_status(replica: Replica, camera_id: Annotated[str, Path(pattern=CAMERA_ID_PATTERN)]) -> dict[str, Any]:
    return dict(await _ask_manager(replica.settings, "status", camera_id))


@router.post("/v1/cameras", status_code=201, summary="Add a camera (RTSP/HTTP URL or file) and start it")
async def add_camera(replica: Replica, credentials: Credentials, spec: CameraSpec) -> dict[str, Any]:
    authorize(credentials)
    try:  # refused here as a 422 naming the field, like any other invalid field (the manager checks it again)
        check_camera_url(spec.url, replica.settings.cameras.allow_files)
    except CameraUrlRefused as exc:
        raise RequestValidationError([{"loc": ("body", "url"), "msg": str(exc), "type": "value_error"}]) from None
    return dict(await _ask_manager(replica.settings, "add", spec.model_dump()))


@router.delete("/v1/cameras/{camera_id}", summary="Stop and remove a camera")
async def remove_camera(
    replica: Replica, credentials: Credentials, camera_id: Annotated[str, Path(pattern=CAMERA_ID_PATTERN)]
) -> dict[str, Any]:
    authorize(credentials)
    return dict(await _ask_manager(replica.settings, "remove", camera_id))

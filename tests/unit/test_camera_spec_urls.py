"""Which camera URLs can be added: network schemes always, local files only where cameras.allow_files is on (or
the camera is listed in cameras.config_file), anything else never; the refusal says which setting to change."""

from __future__ import annotations

import pytest

from visionloop.core.cameras import CameraUrlRefused, check_camera_url
from visionloop.core.http_errors import STATUS


@pytest.mark.parametrize(
    "url", ["rtsp://cam/stream", "RTSPS://u:p@cam:322/s", "http://cam/mjpeg", "https://cam/live.m3u8"]
)
def test_network_cameras_are_always_accepted(url: str) -> None:
    check_camera_url(url, allow_files=False)


@pytest.mark.parametrize("url", ["/var/clips/door.mp4", "clips/door.mp4", "file:///etc/passwd", "uD@o", "~/x.mkv"])
def test_local_files_need_allow_files(url: str) -> None:
    with pytest.raises(CameraUrlRefused, match=r"local file path.*cameras\.allow_files is off"):
        check_camera_url(url, allow_files=False)
    check_camera_url(url, allow_files=True)


@pytest.mark.parametrize("url", ["gopher://cam/x", "javascript:alert(1)", "ftp://u:secret@cam/clip.mp4", "a:b"])
def test_unknown_schemes_are_refused_whatever_the_setting(url: str) -> None:
    for allow in (False, True):
        with pytest.raises(CameraUrlRefused, match="unsupported URL scheme") as caught:
            check_camera_url(url, allow_files=allow)
        assert "secret" not in str(caught.value)  # the URL is redacted in the message


def test_a_refused_url_answers_422() -> None:
    assert STATUS[CameraUrlRefused] == 422

"""A real Label Studio, started from the cached pre-migrated template: loopback only, our token works, restarts
keep the data. (The first run on a machine installs Label Studio and builds the template: minutes.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from visionloop.labeling.label_studio_server import LabelStudioServer

pytestmark = pytest.mark.integration


def test_starts_answers_with_our_token_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    server = LabelStudioServer(tmp_path / "ls-data", free_port(), tmp_path / "files")
    headers = {"Authorization": f"Token {server.account.token}"}
    with server:
        whoami = httpx.get(f"{server.url}/api/current-user/whoami", headers=headers, timeout=30)
        assert whoami.status_code == 200 and whoami.json()["email"] == server.account.username
        assert httpx.get(f"{server.url}/api/projects", timeout=30).status_code == 401  # no token, no data
        config = '<View><Image name="image" value="$image"/></View>'
        created = httpx.post(
            f"{server.url}/api/projects",
            headers=headers,
            timeout=30,
            json={"title": "restart-check", "label_config": config},
        )
        assert created.status_code == 201
        listening = server.pid
    assert listening is not None and server.pid is None
    with server:
        projects = httpx.get(f"{server.url}/api/projects", headers=headers, timeout=30).json()
        assert [p["title"] for p in projects["results"]] == ["restart-check"]

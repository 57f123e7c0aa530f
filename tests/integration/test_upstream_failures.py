"""No route answers 500 because something it depends on failed. The whole service runs against a real Label Studio
reached through a switch that passes requests through, refuses them (400), answers 404 ("Invalid page"), hangs past
the client's timeout, or is down; then its labeling and loop workers are killed; then its Redis stops. Every labeling
and loop route is driven through each failure: a refusal is a 502, an outage a 503, each with its reason."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import ray

from tests.conftest import free_port, make_settings
from tests.reliability import record_reliability
from visionloop.cli.service import VisionloopService
from visionloop.core.streams import LABELING_WORKER_ACTOR, LOOP_WORKER_ACTOR
from visionloop.labeling.label_studio_server import LabelStudioServer
from visionloop.serving.auth import WEBHOOK_SECRET_HEADER

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer test-token-123"}
CLIENT_TIMEOUT_S = 10.0  # LabelStudioClient's: a hang must outlast it
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class SwitchedUpstream:
    """Label Studio behind a switch (``mode``): pass, refuse (400), missing (404), hang, or down (nothing listens)."""

    def __init__(self, target: str) -> None:
        self.target, self.mode, self.port = target, "pass", free_port()
        self._forward = httpx.Client(base_url=target, timeout=30)
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                upstream.answer(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args: object) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, request: http.server.BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if self.mode == "hang":
            time.sleep(CLIENT_TIMEOUT_S + 2)
            return
        if self.mode in ("refuse", "missing"):
            status, payload = (400, b'{"detail": "refused by the switch"}') if self.mode == "refuse" else (
                404, b'{"detail": "Invalid page."}')  # fmt: skip
            headers = {"Content-Type": "application/json"}
        else:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            forwarded = self._forward.request(request.command, request.path, headers=headers, content=body)
            status, payload = forwarded.status_code, forwarded.content
            headers = {k: v for k, v in forwarded.headers.items() if k.lower() not in HOP_BY_HOP}
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def down(self) -> None:
        self.mode = "down"
        self._server.shutdown()
        self._server.server_close()
        self._forward.close()


@pytest.fixture
def label_studio(tmp_path: Path, module_var_dir: Path) -> Iterator[LabelStudioServer]:
    """A Label Studio of its own whose local-files root is where the service's labeling worker writes frames."""
    files_root = make_settings(module_var_dir).var.label_studio_files
    server = LabelStudioServer(tmp_path / "ls-data", free_port(), files_root).start()
    yield server
    server.stop()


def _routes(api: httpx.Client, secret: str) -> dict[str, httpx.Response]:
    """Every labeling and loop route, once each (the sync reconciles: it reads Label Studio's tasks)."""
    return {
        "POST /v1/labeling/sync": api.post("/v1/labeling/sync", headers=AUTH),
        "POST /v1/labeling/sync?cut=true": api.post("/v1/labeling/sync", params={"cut": "true"}, headers=AUTH),
        "GET /v1/labeling/status": api.get("/v1/labeling/status"),
        "POST /v1/labeling/webhook": api.post(
            "/v1/labeling/webhook", content=b'{"action": "ANNOTATION_CREATED"}', headers={WEBHOOK_SECRET_HEADER: secret}
        ),
        "POST /v1/loop/run": api.post("/v1/loop/run", headers=AUTH),
        "GET /v1/loop/status": api.get("/v1/loop/status"),
    }


def test_no_route_answers_500_when_an_upstream_fails(module_var_dir: Path, label_studio: LabelStudioServer) -> None:
    switch = SwitchedUpstream(label_studio.url)
    settings = make_settings(
        module_var_dir,
        labeling__enabled="true",
        labeling__label_studio_url=switch.url,
        labeling__label_studio_token=label_studio.account.token,
        labeling__reconcile_interval_s="3600",  # the routes drive Label Studio, not the worker's own rounds
        loop__enabled="true",
        ray__workers_check_s="3600",  # killed workers stay gone while the routes are asked (the test of their return
        # is in test_composition.py)
    )
    secret = settings.labeling.webhook_secret.get_secret_value()
    seen: dict[str, dict[str, int]] = {}
    with VisionloopService(settings) as service:
        api = httpx.Client(base_url=service.api_url, timeout=60)
        healthy = _routes(api, secret)
        assert {k: r.status_code for k, r in healthy.items()}["POST /v1/labeling/sync"] == 200, healthy
        for mode, expected in (("refuse", 502), ("missing", 502), ("hang", 503), ("down", 503)):
            if mode == "down":
                switch.down()
            else:
                switch.mode = mode
            answers = _routes(api, secret)
            seen[mode] = {route: r.status_code for route, r in answers.items()}
            sync = answers["POST /v1/labeling/sync"]
            assert sync.status_code == expected, (mode, sync.text)
            assert "Label Studio" in sync.json()["detail"] or "GET /api/tasks" in sync.json()["detail"], sync.text
        ray.kill(ray.get_actor(LABELING_WORKER_ACTOR))
        ray.kill(ray.get_actor(LOOP_WORKER_ACTOR))
        time.sleep(1.0)
        seen["workers killed"] = {route: r.status_code for route, r in _routes(api, secret).items()}
        assert seen["workers killed"]["POST /v1/labeling/sync"] == 503
        assert seen["workers killed"]["GET /v1/loop/status"] == 503
        assert service.redis is not None
        service.redis.stop()
        seen["redis down"] = {route: r.status_code for route, r in _routes(api, secret).items()}
        assert seen["redis down"]["POST /v1/labeling/webhook"] == 503
        api.close()
    record_reliability("upstream_failures", seen)  # every route's status in each failure, for the notes
    server_errors = {f"{when}: {route}": status for when, answers in seen.items()
                     for route, status in answers.items() if status >= 500 and status not in (502, 503)}  # fmt: skip
    assert server_errors == {}, seen

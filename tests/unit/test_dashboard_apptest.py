"""Every dashboard page through Streamlit's AppTest: with no data each says so and raises nothing; with data it
shows it; actions send the typed token (none without it) and show the API's refusal. A small real HTTP server
stands in for the API and records what the pages send."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from streamlit.testing.v1 import AppTest

from tests.conftest import free_port, wait_for
from tests.unit.test_dashboard_data import METRICS, MODELS, frame_result, jpeg, put_snapshot
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames, event_fields

APP = Path(__file__).resolve().parents[2] / "src" / "visionloop" / "dashboards" / "app.py"
TOKEN = "dashboard-test-token"
STREAMS = StreamNames("visionloop")
PAGES = ("live", "cameras", "models", "drift", "explain", "labeling")
TIMEOUT_S = 30


class FakeApi:
    """The API's read endpoints with canned answers, and its mutating ones recording each call (401 without the
    token, as the real Router answers)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = FastAPI()
        canned: dict[str, Any] = {
            "/v1/models": MODELS,
            "/v1/models/history": {"changes": [{"role": "champion", "to": "v2"}], "previous_champions": ["v1"]},
            "/v1/loop/status": {"state": "idle", "stage": None, "last_job": None, "last_verdict": None},
            "/v1/shadow": {
                "shadow": "v4",
                "mirror": {"mirrored": 10, "dropped": 1, "queued": 2, "queue_size": 64},
                "comparison": {
                    "pairs": 10,
                    "champion": {"latency_p50_ms": 9.0, "latency_p99_ms": 20.0},
                    "shadow": {"latency_p50_ms": 11.0, "latency_p99_ms": 25.0},
                    "disagreement_rate": 0.125,
                },
            },
            "/v1/cameras": [
                {
                    "id": "gate",
                    "state": "backoff",
                    "url": "rtsp://admin:hunter2@10.0.0.5/stream",
                    "last_error": "cannot open rtsp://admin:hunter2@10.0.0.5/stream (401)",
                    "fps": 0.0,
                    "reconnects": 3,
                }
            ],
            "/v1/labeling/status": {"label_studio": "http://127.0.0.1:8999", "project_id": 1, "running": True},
        }

        @app.get("/metrics")
        def metrics() -> PlainTextResponse:
            return PlainTextResponse(METRICS)

        @app.get("/{path:path}")
        def read(path: str) -> Any:
            return canned.get(f"/{path}", JSONResponse({"detail": "not found"}, status_code=404))

        @app.api_route("/{path:path}", methods=["POST", "DELETE"])
        async def mutate(path: str, request: Request) -> Any:
            body = await request.body()
            auth = request.headers.get("authorization")
            self.calls.append({"method": request.method, "path": f"/{path}", "auth": auth, "body": body})
            if auth != f"Bearer {TOKEN}":
                return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
            if path == "v1/explain":
                return {"key": "v2:cam-a-0-1800000000000:0", "state": "queued"}
            return {"action": path, "to": "v4"}

        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> FakeApi:
        self._thread.start()
        wait_for(lambda: self._server.started, timeout_s=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


@pytest.fixture
def client(redis_server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_server: EmbeddedRedis) -> pytest.MonkeyPatch:
    """Settings the dashboard loads the usual way: a private Redis, the API nowhere (tests point it somewhere)."""
    monkeypatch.setenv("VISIONLOOP_PATHS__VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("VISIONLOOP_REDIS__URL", redis_server.url)
    monkeypatch.setenv("VISIONLOOP_DASHBOARD__API_URL", f"http://127.0.0.1:{free_port()}")
    return monkeypatch


def page_script(name: str) -> None:
    import importlib

    importlib.import_module(f"visionloop.dashboards.views.{name}").render()


def page(name: str, token: str | None = None) -> AppTest:
    at = AppTest.from_function(page_script, args=(name,), default_timeout=TIMEOUT_S)
    if token is not None:
        at.session_state["api_token"] = token
    return at.run()


def texts(at: AppTest) -> str:
    parts = [
        e.value for kind in ("info", "warning", "error", "success", "caption", "markdown") for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("name", PAGES)
def test_each_page_says_no_data_yet_without_a_stack_trace(env: pytest.MonkeyPatch, name: str) -> None:
    at = page(name)
    assert not at.exception, at.exception
    assert "No data yet" in texts(at)


def test_invalid_settings_are_reported_on_the_page(env: pytest.MonkeyPatch) -> None:
    env.setenv("VISIONLOOP_DASHBOARD__REFRESH_S", "0.01")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception, at.exception
    assert "VISIONLOOP_DASHBOARD__REFRESH_S" in at.error[0].value


def test_the_app_shows_every_page_the_token_box_and_firing_alert_banners(
    env: pytest.MonkeyPatch, client: redis.Redis
) -> None:
    firing = {
        "name": "drift_cam-a",
        "state": "firing",
        "since": time.time(),
        "message": "drift in cam-a",
        "severity": "warning",
    }
    client.hset(STREAMS.alerts, "drift_cam-a", json.dumps(firing))
    client.hset(STREAMS.alerts, "old", json.dumps({"name": "old", "state": "resolved", "message": "resolved one"}))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception, at.exception
    banners = [w.value for w in at.warning]
    assert any("drift_cam-a" in b and "drift in cam-a" in b for b in banners)
    assert not any("resolved one" in b for b in banners)
    assert at.sidebar.text_input(key="api_token").proto.type == 1  # PASSWORD: the token is never shown
    assert at.title[0].value == "Live"  # the default page


def test_many_firing_alerts_make_one_compact_banner_worst_first(env: pytest.MonkeyPatch, client: redis.Redis) -> None:
    now = time.time()
    for n in range(10):
        severity = "critical" if n in (3, 7) else "warning"
        alert = {"name": f"alert_{n}", "state": "firing", "since": now - n, "message": f"m{n}", "severity": severity}
        client.hset(STREAMS.alerts, f"alert_{n}", json.dumps(alert))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception, at.exception
    shown = [e.value for e in [*at.error, *at.warning] if "firing" in e.value]
    assert len(shown) == 1 and not any("alert_" in w.value for w in at.warning)  # one banner, red: criticals fire
    assert "10 alerts firing" in shown[0] and "(2 critical, 8 warning)" in shown[0]
    assert "Worst: **alert_7** (critical" in shown[0]  # the critical firing longest
    listed = [e for e in at.expander if "All 10 firing alerts" in e.label]
    assert len(listed) == 1
    lines = listed[0].markdown[0].value.splitlines()
    assert [line.split("**")[1] for line in lines][:2] == ["alert_7", "alert_3"] and len(lines) == 10


def test_promote_is_not_sent_without_a_token(env: pytest.MonkeyPatch, fake_api: FakeApi) -> None:
    env.setenv("VISIONLOOP_DASHBOARD__API_URL", fake_api.url)
    at = page("models")
    assert not at.exception, at.exception
    at.button(key="promote").click().run()
    assert fake_api.calls == []
    assert any("Promote not sent" in e.value and "token" in e.value for e in at.error)


def test_promote_with_a_wrong_token_shows_the_api_refusal(env: pytest.MonkeyPatch, fake_api: FakeApi) -> None:
    env.setenv("VISIONLOOP_DASHBOARD__API_URL", fake_api.url)
    at = page("models", token="not-the-token")
    at.button(key="promote").click().run()
    assert [(c["path"], c["auth"]) for c in fake_api.calls] == [("/v1/models/promote", "Bearer not-the-token")]
    assert any("refused" in e.value and "401" in e.value for e in at.error)


def test_promote_reject_and_rollback_send_the_token(env: pytest.MonkeyPatch, fake_api: FakeApi) -> None:
    env.setenv("VISIONLOOP_DASHBOARD__API_URL", fake_api.url)
    at = page("models", token=TOKEN)
    assert not at.exception, at.exception
    page_text = texts(at)
    assert "v4 ← v2 ← v1" in at.dataframe[0].value["lineage"].tolist()
    assert "CI straddles the gain" in page_text
    at.checkbox(key="promote_force").check().run()
    at.button(key="promote").click().run()
    assert any("Promote: done" in s.value for s in at.success)
    at.button(key="reject").click().run()
    at.button(key="rollback").click().run()
    sent = [(c["method"], c["path"], c["auth"]) for c in fake_api.calls]
    assert sent == [
        ("POST", "/v1/models/promote", f"Bearer {TOKEN}"),
        ("POST", "/v1/models/v4/reject", f"Bearer {TOKEN}"),
        ("POST", "/v1/models/rollback", f"Bearer {TOKEN}"),
    ]
    assert json.loads(fake_api.calls[0]["body"]) == {"force": True}


def test_models_page_lists_the_audit_log(env: pytest.MonkeyPatch, client: redis.Redis) -> None:
    client.xadd(STREAMS.events, event_fields("model_rolled_back", by="operator", **{"from": "v3", "to": "v2"}))
    at = page("models")
    log = at.dataframe[-1].value
    assert log["kind"].tolist() == ["model_rolled_back"] and "from=v3 to=v2" in log["details"][0]


def test_cameras_page_redacts_credentials_and_adds_a_camera_with_the_token(
    env: pytest.MonkeyPatch, fake_api: FakeApi
) -> None:
    env.setenv("VISIONLOOP_DASHBOARD__API_URL", fake_api.url)
    at = page("cameras", token=TOKEN)
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert "hunter2" not in table.to_string() and "***@" in table["last_error"][0]
    at.text_input[0].input("dock")
    at.text_input[1].input("rtsp://127.0.0.1:8554/dock")
    at.button[0].click().run()  # the form's submit button
    (call,) = fake_api.calls
    assert (call["method"], call["path"], call["auth"]) == ("POST", "/v1/cameras", f"Bearer {TOKEN}")
    assert json.loads(call["body"])["id"] == "dock"


def test_live_page_shows_latency_fps_and_the_newest_frame(
    env: pytest.MonkeyPatch, fake_api: FakeApi, client: redis.Redis
) -> None:
    env.setenv("VISIONLOOP_DASHBOARD__API_URL", fake_api.url)
    for i in range(40):
        client.xadd(STREAMS.results, frame_result("cam-a", i, time.time() - 20 + i * 0.5, 12.0).to_stream_fields())
    put_snapshot(client)
    at = page("live")
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["mean batch size"] == "6.4"
    assert metrics["shadow queue"] == "2 / 64"
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # the latency chart
    assert "cam-a" in captions(at)[0]


def captions(at: AppTest) -> list[str]:
    return [img.caption for el in at.get("image") for img in el.proto.imgs]


def test_explain_requests_with_the_token_then_shows_the_overlay(
    env: pytest.MonkeyPatch, fake_api: FakeApi, client: redis.Redis
) -> None:
    env.setenv("VISIONLOOP_DASHBOARD__API_URL", fake_api.url)
    entry = put_snapshot(client)
    at = page("explain", token=TOKEN)
    assert not at.exception, at.exception
    at.button(key="explain").click().run()
    (call,) = fake_api.calls
    assert json.loads(call["body"]) == {"camera_id": "cam-a", "frame_id": entry["frame_id"], "box_index": 0}
    key = at.session_state["explain_key"]
    client.hset(STREAMS.explanations, key, json.dumps({"state": "running", "key": key}))
    at.run()
    assert any("running" in i.value for i in at.info)
    png = base64.b64encode(jpeg()).decode()  # any image will do
    done = {"state": "done", "key": key, "box_index": 0, "evals": 400, "seconds": 7.25, "overlay_png_b64": png}
    client.hset(STREAMS.explanations, key, json.dumps(done))
    at.run()
    assert any("400 evaluations" in c and "7.2 s" in c for c in captions(at))


def test_drift_and_labeling_pages_show_their_data(
    env: pytest.MonkeyPatch, fake_api: FakeApi, client: redis.Redis
) -> None:
    env.setenv("VISIONLOOP_DASHBOARD__API_URL", fake_api.url)
    tests = {"ks_confidence": {"statistic": 0.4, "p_value": 0.001}}
    for i in range(3):
        body = {"kind": "window", "drifted": True, "alarm": i == 2, "tests": tests, "adjusted_p": 0.004}
        client.xadd(STREAMS.drift, {"scope": "_all", "ts": str(1_800_000_000 + i * 30), "json": json.dumps(body)})
    client.hset(STREAMS.drift_state, "_all", json.dumps({"alarm": True, "consecutive": 3}))
    at = page("drift")
    assert not at.exception, at.exception
    assert at.dataframe[0].value["consecutive"].tolist() == [3]
    assert "random-arm frames (from /metrics)" in texts(at)  # no report in Redis: accuracy from the gauges
    interval = {"estimate": 0.6, "low": 0.5, "high": 0.7}
    report: dict[str, Any] = {"message": "accuracy on the latest 30 random-arm labels", "reference": {"map50": 0.8}}
    report["computed_at"] = 1_800_000_000.0
    report["overall"] = {"status": "ok", "frames": 30, "map50": interval}
    client.hset(STREAMS.drift_state, "_accuracy", json.dumps(report))
    at.run()
    assert "accuracy on the latest 30 random-arm labels" in texts(at)
    (accuracy,) = [df.value for df in at.dataframe if "estimate" in df.value.columns]
    assert accuracy["estimate"].tolist() == [0.6] and accuracy["scope"].tolist() == ["_all"]
    assert "over time" not in texts(at)  # one report seen so far
    client.hset(STREAMS.drift_state, "_accuracy", json.dumps({**report, "computed_at": 1_800_000_060.0}))
    at.run()
    assert "Overall mAP50 over time" in texts(at)
    client.xadd(STREAMS.review, {"frame_id": "f", "sampler": "random"})
    client.xadd(STREAMS.labels, {"frame_id": "f"})
    at = page("labeling")
    assert not at.exception, at.exception
    assert at.get("link_button")[0].proto.url == "http://127.0.0.1:8999"
    assert {m.label: m.value for m in at.metric}["queued"] == "1"

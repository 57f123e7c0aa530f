"""The in-process alert conditions: each one firing, not firing and unknown; the inputs' parsing and memory; the
AlertBook's transitions against a real Redis (one event per raise and per resolve, none on a repeat)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import make_settings
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames
from visionloop.monitoring.alert_rules import (
    AlertBook,
    AlertInputs,
    Condition,
    InputMemory,
    ShadowCounters,
    Status,
    accuracy_condition,
    api_url,
    camera_conditions,
    collect_inputs,
    dead_letter_condition,
    drift_conditions,
    evaluate,
    evaluate_alerts,
    latency_condition,
    sample_latency,
    shadow_condition,
)

NOW = 1_800_000_000.0
BASE = AlertInputs(now=NOW, latency_slo_ms=250.0)


def by_name(conditions: list[Condition]) -> dict[str, Condition]:
    return {c.name: c for c in conditions}


# -- drift ----------------------------------------------------------------------------------------------------


def test_drift_fires_per_scope_with_an_alarm_and_skips_the_accuracy_report() -> None:
    state = {
        "_all": {"alarm": False, "consecutive": 0},
        "cam1": {"alarm": True, "consecutive": 4},
        "_accuracy": {"status": "ok", "alarm": True},  # the accuracy report is not a drift scope
        "junk": "not a dict",
    }
    found = by_name(drift_conditions(replace(BASE, drift_state=state)))
    assert set(found) == {"drift_persistent:_all", "drift_persistent:cam1"}
    assert (
        found["drift_persistent:cam1"].status == Status.FIRING and "4 window" in found["drift_persistent:cam1"].message
    )
    assert found["drift_persistent:_all"].status == Status.OK
    assert found["drift_persistent:cam1"].scope == "cam1"


def test_drift_unknown_without_redis_and_quiet_without_windows() -> None:
    assert [c.status for c in drift_conditions(BASE)] == [Status.UNKNOWN]
    assert [c.status for c in drift_conditions(replace(BASE, drift_state={}))] == [Status.OK]


# -- latency --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "status"),
    [
        ([100.0] * 99 + [900.0] * 2, Status.FIRING),  # 2 in 101 over: the p99 is over the SLO
        ([100.0] * 199 + [900.0], Status.OK),  # one outlier in 200: p99 within
        ([100.0] * 10, Status.UNKNOWN),  # too few for a p99
        (None, Status.UNKNOWN),
    ],
)
def test_latency_p99_against_the_slo(samples: list[float] | None, status: Status) -> None:
    assert latency_condition(replace(BASE, latencies_ms=samples)).status == status


def test_sample_latency_reads_totals_stage_maps_and_wrapped_json() -> None:
    assert sample_latency({b"latency_ms": b"12.5", b"camera_id": b"c"}) == 12.5
    assert sample_latency({"total_ms": "40"}) == 40.0
    stages = {"decode": 1.0, "queue": 2.0, "inference": 3.0, "post": 4.0}
    assert sample_latency({"latency_ms": json.dumps(stages)}) == 10.0
    assert sample_latency({"sample": json.dumps({"latency_ms": stages})}) == 10.0
    assert sample_latency({"camera_id": "c", "sample": "not json"}) is None
    assert sample_latency({"latency_ms": "fast"}) is None
    assert sample_latency({"latency_ms": json.dumps({"decode": 1.0})}) is None


# -- cameras --------------------------------------------------------------------------------------------------


def camera(camera_id: str, state: str, held_s: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": camera_id,
        "url": "rtsp://admin:hunter2@10.0.0.9/stream",
        "state": state,
        "last_error": "401 from rtsp://admin:hunter2@10.0.0.9/stream",
    }
    if held_s is not None:
        out["state_since"] = NOW - held_s
    return out


def test_camera_down_when_failed_or_stalled_backing_off_over_a_minute() -> None:
    cameras = [
        camera("ok1", "streaming", 500),
        camera("failed1", "failed", 1),
        camera("stall_short", "stalled", 30),
        camera("stall_long", "stalled", 90),
        camera("backoff_long", "backoff", 61),
        camera("backoff_unknown", "backoff", None),
    ]
    found = by_name(camera_conditions(replace(BASE, cameras=cameras)))
    firing = {name for name, c in found.items() if c.status == Status.FIRING}
    assert firing == {"camera_down:failed1", "camera_down:stall_long", "camera_down:backoff_long"}
    assert len(found) == 6 and found["camera_down:stall_long"].scope == "stall_long"
    for condition in found.values():  # camera ids only: no URL, no credential
        assert "rtsp" not in condition.message and "hunter2" not in condition.message


def test_cameras_unknown_when_the_api_is_unreachable() -> None:
    assert [c.status for c in camera_conditions(BASE)] == [Status.UNKNOWN]
    assert [c.status for c in camera_conditions(replace(BASE, cameras=[]))] == [Status.OK]


# -- dead letters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "status"),
    [
        ([(NOW - 300, 4), (NOW, 6)], Status.FIRING),
        ([(NOW - 300, 4), (NOW - 10, 4), (NOW, 4)], Status.OK),
        ([(NOW - 2000, 1), (NOW - 700, 4), (NOW, 4)], Status.OK),  # it grew, but more than 10 min ago
        ([(NOW, 4)], Status.UNKNOWN),  # one reading: growth cannot be seen yet
        (None, Status.UNKNOWN),
    ],
)
def test_dead_letter_growth_within_ten_minutes(history: list[tuple[float, int]] | None, status: Status) -> None:
    assert dead_letter_condition(replace(BASE, dead_letter=history)).status == status


def test_dead_letter_memory_keeps_ten_minutes_and_one_reading_before() -> None:
    memory = InputMemory()
    for t, n in [(0, 1), (100, 1), (200, 2), (900, 2), (1000, 2)]:
        history = memory.dead_letter_seen(NOW + t, n)
    assert history == [(NOW + 200, 2), (NOW + 900, 2), (NOW + 1000, 2)]


# -- accuracy -------------------------------------------------------------------------------------------------


def accuracy_state(high: float | None, reference: float | None, status: str = "ok") -> dict[str, Any]:
    overall: dict[str, Any] = {"status": status}
    if status == "ok":
        overall["map50"] = {"estimate": (high or 0) - 0.05, "low": 0.0, "high": high}
    return {
        "_accuracy": {
            "status": status,
            "message": "not enough random-arm labels: 3 of the 20 needed",
            "model_version": "v4",
            "overall": overall,
            "reference": {"map50": reference, "source": "gold"},
        }
    }


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (accuracy_state(0.55, 0.80), Status.FIRING),  # upper bound 0.55 < 0.80 - 0.1
        (accuracy_state(0.75, 0.80), Status.OK),
        (accuracy_state(None, None, status="not_enough_labels"), Status.UNKNOWN),
        (accuracy_state(0.30, None), Status.UNKNOWN),  # no reference to drop from
        ({}, Status.UNKNOWN),
    ],
)
def test_accuracy_drop_on_the_random_arm(state: dict[str, Any], status: Status) -> None:
    condition = accuracy_condition(replace(BASE, drift_state=state))
    assert condition.status == status
    if status == Status.UNKNOWN and state:
        assert condition.message  # says why: "not enough labels", "no reference"


def test_accuracy_unknown_without_redis() -> None:
    assert accuracy_condition(BASE).status == Status.UNKNOWN


# -- shadow ---------------------------------------------------------------------------------------------------


SHADOW = {"shadow": "v5", "mirror": {"mirrored": 100, "dropped": 0}}


@pytest.mark.parametrize(
    ("shadow", "delta", "status"),
    [
        (SHADOW, ShadowCounters(90, 10), Status.FIRING),  # 10% of the offered frames dropped
        (SHADOW, ShadowCounters(99, 1), Status.OK),
        (SHADOW, ShadowCounters(0, 0), Status.OK),
        ({"shadow": None, "mirror": None}, None, Status.OK),  # no shadow running
        (None, None, Status.UNKNOWN),
    ],
)
def test_shadow_drops(shadow: dict[str, Any] | None, delta: ShadowCounters | None, status: Status) -> None:
    assert shadow_condition(replace(BASE, shadow=shadow, shadow_delta=delta)).status == status


def test_shadow_memory_counts_since_the_last_check_and_survives_a_router_restart() -> None:
    memory = InputMemory()
    assert memory.shadow_seen({"mirror": {"mirrored": 50, "dropped": 5}}) == ShadowCounters(50, 5)
    assert memory.shadow_seen({"mirror": {"mirrored": 80, "dropped": 5}}) == ShadowCounters(30, 0)
    assert memory.shadow_seen({"mirror": {"mirrored": 3, "dropped": 1}}) == ShadowCounters(3, 1)  # restarted
    assert memory.shadow_seen({"mirror": None}) is None


def test_everything_unknown_when_no_source_could_be_read() -> None:
    conditions = evaluate(BASE)
    assert {c.family for c in conditions} == {
        "drift_persistent",
        "latency_slo",
        "camera_down",
        "dead_letter_growth",
        "accuracy_drop",
        "shadow_drops",
    }
    assert all(c.status == Status.UNKNOWN for c in conditions)


# -- the book -------------------------------------------------------------------------------------------------


@pytest.fixture
def store(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def events(client: redis.Redis, streams: StreamNames) -> list[tuple[str, dict[str, Any]]]:
    return [(f["kind"], json.loads(f["payload"])) for _, f in client.xrange(streams.events)]


def test_book_publishes_once_on_raise_and_once_on_resolve(store: redis.Redis) -> None:
    streams = StreamNames("t")
    book = AlertBook(store, streams)
    firing = Condition("latency_slo", "latency_slo", Status.FIRING, "latency p99 400 ms over the 250 ms SLO")
    ok = Condition("latency_slo", "latency_slo", Status.OK, "latency p99 90 ms within the 250 ms SLO")
    unknown = Condition("latency_slo", "latency_slo", Status.UNKNOWN, "too few samples")
    assert book.apply([ok], now=NOW)["raised"] == []
    assert book.apply([firing], now=NOW + 1) == {"raised": ["latency_slo"], "resolved": [], "firing": ["latency_slo"]}
    book.apply([firing], now=NOW + 2)  # a repeat: no event, the same since
    book.apply([unknown], now=NOW + 3)  # no news is not good news: still firing
    entry = book.states()["latency_slo"]
    assert (entry["state"], entry["since"], entry["severity"]) == ("firing", NOW + 1, "critical")
    assert book.apply([ok], now=NOW + 4)["resolved"] == ["latency_slo"]
    book.apply([ok], now=NOW + 5)
    kinds = [kind for kind, _ in events(store, streams)]
    assert kinds == ["alert_raised", "alert_resolved"]
    payload = events(store, streams)[0][1]
    assert payload["name"] == "latency_slo" and "400 ms" in payload["message"]
    assert book.states()["latency_slo"]["state"] == "resolved" and book.states()["latency_slo"]["since"] == NOW + 4


def test_book_unknown_never_raises_and_a_removed_camera_resolves(store: redis.Redis) -> None:
    streams = StreamNames("t")
    book = AlertBook(store, streams)
    book.apply(camera_conditions(BASE), now=NOW)  # API unreachable
    assert book.states()["camera_down"]["state"] == "unknown" and events(store, streams) == []
    down = [camera("cam1", "failed", 5), camera("cam2", "streaming", 5)]
    assert book.apply(camera_conditions(replace(BASE, cameras=down)), now=NOW + 1)["raised"] == ["camera_down:cam1"]
    assert "camera_down" not in book.states()  # the family was read in full: its 'unknown' placeholder goes
    book.apply(camera_conditions(BASE), now=NOW + 2)  # API away again: cam1 stays firing
    assert book.states()["camera_down:cam1"]["state"] == "firing"
    gone = book.apply(camera_conditions(replace(BASE, cameras=[camera("cam2", "streaming", 5)])), now=NOW + 3)
    assert gone["resolved"] == ["camera_down:cam1"] and gone["firing"] == []
    assert [kind for kind, _ in events(store, streams)] == ["alert_raised", "alert_resolved"]
    assert "hunter2" not in json.dumps(book.states()) and "rtsp" not in json.dumps(events(store, streams))


def test_evaluate_alerts_end_to_end_with_redis_and_an_unreachable_api(tmp_path: Path, store: redis.Redis) -> None:
    settings = make_settings(tmp_path / "var")
    streams = StreamNames(settings.redis.stream_prefix)
    store.hset(streams.drift_state, "cam1", json.dumps({"alarm": True, "consecutive": 3}))
    store.hset(streams.drift_state, "_accuracy", json.dumps(accuracy_state(0.2, 0.9)["_accuracy"]))
    from visionloop.monitoring.drift_sampler import DriftSample

    for i in range(30):  # as the sampler writes them: half over the 250 ms SLO
        sample = DriftSample("cam1", NOW, "v1", f"cam1-{i}-1", [], [], [], [], {}, 400.0 if i % 2 else 50.0)
        store.xadd(streams.drift_samples, sample.to_fields())
    store.xadd(streams.review_dead_letter, {"reason": "x"})

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    memory = InputMemory()
    with httpx.Client(transport=httpx.MockTransport(refuse), timeout=1.0) as http:
        inputs = collect_inputs(settings, store, http, memory)
        assert inputs.cameras is None and inputs.shadow is None  # the API's conditions: unknown
        assert inputs.latencies_ms is not None and len(inputs.latencies_ms) == 30
        first = evaluate_alerts(settings, store, http, memory)
        store.xadd(streams.review_dead_letter, {"reason": "y"})
        second = evaluate_alerts(settings, store, http, memory)
    assert set(first["raised"]) == {"drift_persistent:cam1", "latency_slo", "accuracy_drop"}
    assert second["raised"] == ["dead_letter_growth"]
    states = {name: entry["state"] for name, entry in AlertBook(store, streams).states().items()}
    assert states["camera_down"] == states["shadow_drops"] == "unknown"
    assert [k for k, _ in events(store, streams)].count("alert_raised") == 4


def test_api_url_defaults_to_the_service_and_honours_the_dashboard_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, API__PORT="8123")
    assert api_url(settings) == "http://127.0.0.1:8123"
    assert api_url(make_settings(tmp_path, DASHBOARD__API_URL="http://10.1.1.1:9000/")) == "http://10.1.1.1:9000"


def test_latency_is_read_from_the_drift_samplers_own_format() -> None:
    from visionloop.monitoring.drift_sampler import DriftSample

    stages = {"decode": 1.5, "queue": 2.0, "inference": 30.0, "post": 0.5}
    sample = DriftSample("cam1", NOW, "v1", "cam1-1-1", [0.9], [0], [0.1], [0.0], stages, 34.0)
    assert sample_latency(sample.to_fields()) == 34.0
    fields = sample.to_fields()
    body = json.loads(fields["json"])
    del body["total_ms"]
    assert sample_latency({**fields, "json": json.dumps(body)}) == 34.0  # the stages, summed


def test_collect_inputs_reads_cameras_and_shadow_from_the_api(tmp_path: Path, store: redis.Redis) -> None:
    settings = make_settings(tmp_path / "var")
    base = api_url(settings)
    mirror = {"mirrored": 40, "dropped": 10, "errors": 0}

    def api(request: httpx.Request) -> httpx.Response:
        if str(request.url) == f"{base}/v1/cameras":
            return httpx.Response(200, json=[camera("cam1", "failed", 3)])
        if str(request.url) == f"{base}/v1/shadow":
            return httpx.Response(200, json={"shadow": "v2", "mirror": mirror, "comparison": {}})
        return httpx.Response(404)

    with httpx.Client(transport=httpx.MockTransport(api)) as http:
        memory = InputMemory()
        inputs = collect_inputs(settings, store, http, memory)
        assert inputs.cameras is not None and inputs.cameras[0]["id"] == "cam1"
        assert inputs.shadow_delta == ShadowCounters(40, 10)
        found = by_name(evaluate(inputs))
        assert found["camera_down:cam1"].status == found["shadow_drops"].status == Status.FIRING
        mirror.update(mirrored=140, dropped=11)  # 1 of the 101 offered since: 1%
        assert shadow_condition(collect_inputs(settings, store, http, memory)).status == Status.OK


def test_watcher_against_a_closed_api_port_and_a_stopped_redis(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    from visionloop.monitoring.alert_rules import AlertWatcher

    settings = make_settings(tmp_path / "var")  # nothing listens on its API port
    client = redis.Redis.from_url(redis_server.url, socket_timeout=1)
    watcher = AlertWatcher(settings, client, timeout_s=1.0)
    try:
        watcher.run_once()
        states = watcher.book.states()
        assert states["camera_down"]["state"] == states["shadow_drops"]["state"] == "unknown"
        redis_server.stop()
        assert watcher.run_once() == {"raised": [], "resolved": [], "firing": []}  # skipped, not raised
    finally:
        watcher.close()
        client.close()

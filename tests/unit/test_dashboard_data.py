"""The dashboard's data functions, against a real Redis holding entries in the shapes the producers write, and on
canned /metrics text and API answers."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from PIL import Image

from tests.conftest import free_port, make_settings
from visionloop.core.contracts import Detections, FrameResult, StageLatency
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames, event_fields
from visionloop.dashboards import accuracy, audit, drift_data, labeling_data, models_data, promtext, results, snapshots
from visionloop.dashboards.annotate import draw_boxes
from visionloop.dashboards.api import act, get_json
from visionloop.dashboards.context import load_context
from visionloop.dashboards.errors import DataUnavailable

STREAMS = StreamNames("visionloop")


@pytest.fixture
def client(redis_server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


def frame_result(camera: str, seq: int, ts: float, inference_ms: float) -> FrameResult:
    detections = Detections(
        xyxy=np.array([[10, 10, 50, 40]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([1], np.int32),
    )
    latency = StageLatency(decode_ms=2.0, queue_ms=1.0, inference_ms=inference_ms, post_ms=0.5)
    return FrameResult(camera, seq, ts, "v2", detections, latency, frame_width=64, frame_height=48)


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(out, format="JPEG")
    return out.getvalue()


# -- results: latency and fps over time ----------------------------------------------------------------------


def test_latency_percentiles_per_stage_come_from_the_results_stream(client: redis.Redis) -> None:
    start = 1_800_000_000.0
    for i in range(100):  # two cameras, 10 s; inference 10 ms except every 50th frame at 200 ms
        camera = "cam-a" if i % 2 else "cam-b"
        client.xadd(
            STREAMS.results, frame_result(camera, i, start + i * 0.1, 200.0 if i % 50 == 0 else 10.0).to_stream_fields()
        )
    client.xadd(STREAMS.results, {"camera_id": "x", "json": "not json"})
    got = results.recent_results(client, STREAMS)
    assert len(got) == 100 and got[0]["capture_ts"] == start  # oldest first, the bad entry skipped
    table = results.stage_percentiles(got)
    assert table.loc["inference", "p50 ms"] == 10.0
    assert table.loc["inference", "p99 ms"] > 150  # two slow frames in a hundred
    assert table.loc["decode", "p99 ms"] == 2.0
    over_time = results.stage_percentiles_over_time(got, bin_s=5.0)
    assert list(over_time.columns[:2]) == ["decode p50", "decode p99"]
    assert len(over_time) == 2 and (over_time["inference p99"] > 100).all()
    fps = results.fps_over_time(got, bin_s=5.0)
    assert set(fps.columns) == {"cam-a", "cam-b"}
    assert fps.iloc[0].tolist() == [5.0, 5.0]  # 25 frames each in 5 s; the last (filling) bin is left out


def test_no_results_give_empty_tables(client: redis.Redis) -> None:
    assert results.recent_results(client, STREAMS) == []
    assert results.stage_percentiles([]).empty
    assert results.stage_percentiles_over_time([]).empty
    assert results.fps_over_time([]).empty


def test_an_unreachable_redis_is_data_unavailable_not_a_crash() -> None:
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    with pytest.raises(DataUnavailable, match="results: Redis did not answer"):
        results.recent_results(dead, STREAMS)
    with pytest.raises(DataUnavailable, match="alerts"):
        audit.alerts(dead, STREAMS)


# -- alerts and the audit log -----------------------------------------------------------------------------------


def test_alerts_firing_first_and_events_newest_first(client: redis.Redis) -> None:
    client.hset(STREAMS.alerts, "latency_p99", json.dumps({"name": "latency_p99", "state": "resolved", "since": 1.0}))
    client.hset(
        STREAMS.alerts,
        "drift_cam-a",
        json.dumps({"name": "drift_cam-a", "state": "firing", "since": 2.0, "message": "drift", "severity": "warning"}),
    )
    client.hset(STREAMS.alerts, "broken", "{not json")
    entries = audit.alerts(client, STREAMS)
    assert [a["name"] for a in entries] == ["drift_cam-a", "latency_p99"]
    assert [a["name"] for a in audit.firing(entries)] == ["drift_cam-a"]

    client.xadd(STREAMS.events, event_fields("model_promoted", by="operator", **{"from": "v1", "to": "v2"}))
    client.xadd(STREAMS.events, event_fields("drift_alarm", scope="cam-a"))
    events = audit.events(client, STREAMS)
    assert [e["kind"] for e in events] == ["drift_alarm", "model_promoted"]
    assert events[1]["payload"] == {"by": "operator", "from": "v1", "to": "v2"}
    assert abs(events[0]["ts"] - time.time()) < 60
    assert audit.summarize_payload(events[1]["payload"]) == "by=operator from=v1 to=v2"
    assert audit.summarize_payload({"ab": {"n": 1}, "x": "y" * 300}, limit=30).endswith("…")


# -- drift ------------------------------------------------------------------------------------------------------


def drift_window(scope: str, ts: float, p_ks: float, tests_as_list: bool = False) -> dict[str, str]:
    """A drift-stream entry as monitoring/drift_windows.py writes it (a window compared with the reference)."""
    tests = {"ks_confidence": {"statistic": 0.3, "p_value": p_ks}, "chi2_classes": {"statistic": 2.0, "p_value": 0.5}}
    body: dict[str, object] = {"kind": "window", "tests": tests, "adjusted_p": min(1.0, 2 * p_ks), "psi": 0.1}
    body.update({"drifted": p_ks < 0.005, "alarm": False, "consecutive": 0})
    if tests_as_list:
        body["tests"] = [{"test": name, **values} for name, values in tests.items()]
    return {"scope": scope, "ts": str(ts), "json": json.dumps(body)}


def test_drift_p_values_per_window_and_state(client: redis.Redis) -> None:
    reference = {"kind": "reference", "state": "set", "frames": 60}
    client.xadd(STREAMS.drift, {"scope": "cam-a", "ts": "1799999940", "json": json.dumps(reference)})
    for i, p in enumerate([0.4, 0.2, 0.001]):
        client.xadd(STREAMS.drift, drift_window("cam-a", 1_800_000_000 + 60 * i, p, tests_as_list=i == 1))
    client.xadd(STREAMS.drift, drift_window("_all", 1_800_000_000, 0.3))
    last = {"adjusted_p": 0.002, "psi": 0.31, "reasons": ["ks_confidence p=0.001", "psi 0.31"]}
    view = {"alarm": True, "consecutive": 3, "reference": {"state": "set", "frames": 60}, "last_window": last}
    client.hset(STREAMS.drift_state, "cam-a", json.dumps(view))
    client.hset(STREAMS.drift_state, "_all", json.dumps({"alarm": False, "consecutive": 0}))
    client.hset(STREAMS.drift_state, "_accuracy", json.dumps({"status": "not_enough_labels", "message": "3 of 20"}))
    windows = drift_data.drift_windows(client, STREAMS)
    assert [w["scope"] for w in windows] == ["cam-a", "cam-a", "cam-a", "cam-a", "_all"]
    p_values = drift_data.p_values_frame(windows, "cam-a")
    assert len(p_values) == 3  # the reference entry has no tests
    assert p_values["ks_confidence"].tolist() == [0.4, 0.2, 0.001]  # both shapes of "tests" read alike
    assert p_values["chi2_classes"].tolist() == [0.5, 0.5, 0.5]
    assert p_values[drift_data.ADJUSTED].tolist() == [0.8, 0.4, 0.002]
    latest = drift_data.latest_tests(windows, "cam-a")
    assert latest.set_index("test").loc["ks_confidence", "p_value"] == 0.001
    assert drift_data.p_values_frame(windows, "nowhere").empty
    state = drift_data.drift_state(client, STREAMS)
    assert list(state) == ["_all", "cam-a"]  # the accuracy report is not a scope
    row = drift_data.state_table(state).set_index("scope").loc["cam-a"]
    assert (row["consecutive"], row["reference"], row["psi"]) == (3, "set", 0.31)
    assert row["reasons"] == "ks_confidence p=0.001; psi 0.31"
    assert drift_data.accuracy_report(client, STREAMS) == {"status": "not_enough_labels", "message": "3 of 20"}


# -- snapshots and explanations -----------------------------------------------------------------------------------


def put_snapshot(client: redis.Redis, seq: int = 0) -> dict[str, Any]:
    """A kept frame of camera cam-a as the Router's snapshot keeper writes it (with class names)."""
    result = frame_result("cam-a", seq, 1_800_000_000.0 + seq, 10.0)
    entry = {
        "frame_id": result.frame_id,
        "camera_id": "cam-a",
        "ts": result.capture_ts,
        "model_version": "v2",
        "jpeg_b64": base64.b64encode(jpeg()).decode(),
        "result": result.to_dict(["a", "b"]),
    }
    client.lpush(STREAMS.snapshots("cam-a"), json.dumps(entry))
    client.sadd(STREAMS.snapshot_cameras, "cam-a")
    return entry


def test_snapshots_newest_first_with_boxes_and_an_annotated_image(client: redis.Redis) -> None:
    for seq in range(3):
        put_snapshot(client, seq)
    assert snapshots.snapshot_cameras(client, STREAMS) == ["cam-a"]
    kept = snapshots.snapshots(client, STREAMS, "cam-a")
    assert [k["ts"] for k in kept] == [1_800_000_002, 1_800_000_001, 1_800_000_000]
    boxes = snapshots.snapshot_boxes(kept[0])
    assert boxes == [{"xyxy": [10.0, 10.0, 50.0, 40.0], "confidence": 0.9, "class_id": 1, "class_name": "b"}]
    unnamed = {"result": frame_result("cam-a", 2, 1_800_000_002.0, 10.0).to_dict()}  # the Router keeps class ids only
    assert snapshots.snapshot_boxes(unnamed)[0].get("class_name") is None
    assert snapshots.snapshot_boxes(unnamed, ["a", "b"])[0]["class_name"] == "b"  # named from the API's classes
    image = np.asarray(draw_boxes(snapshots.snapshot_jpeg(kept[0]), boxes))
    plain = np.asarray(Image.open(io.BytesIO(jpeg())).convert("RGB"))
    assert image.shape == (48, 64, 3)
    assert np.abs(image[25, 10].astype(int) - plain[25, 10]).sum() > 60  # the box's left edge is drawn
    assert np.abs(image[30, 30].astype(int) - plain[30, 30]).sum() < 30  # its inside is not


def test_explanations_state_and_recent_list_without_images(client: redis.Redis) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    done = {"state": "done", "key": "v2:f1:0", "seconds": 7.5, "overlay_png_b64": png}
    client.hset(STREAMS.explanations, "v2:f1:0", json.dumps(done))
    client.hset(STREAMS.explanations, "v2:f2:1", json.dumps({"state": "queued", "key": "v2:f2:1"}))
    client.lpush(STREAMS.explain_order, "v2:f1:0", "v2:f2:1", "v2:f1:0")
    got = snapshots.explanation(client, STREAMS, "v2:f1:0")
    assert got is not None and snapshots.overlay_png(got) == b"\x89PNG fake"
    assert snapshots.explanation(client, STREAMS, "v9:none:0") is None
    recent = snapshots.recent_explanations(client, STREAMS)
    assert [r["key"] for r in recent] == ["v2:f1:0", "v2:f2:1"]
    assert all("overlay_png_b64" not in r for r in recent)


# -- labeling ------------------------------------------------------------------------------------------------------


def test_labeling_counts_reasons_arm_mix_and_labels_per_hour(client: redis.Redis) -> None:
    assert labeling_data.queue_counts(client, STREAMS) == {
        "queued": 0,
        "backlog": None,
        "dead_lettered": 0,
        "imported": 0,
        "labelled": 0,
    }
    assert not client.exists(STREAMS.review)  # reading created nothing
    for sampler in ["margin", "random", "margin", "novelty"]:
        client.xadd(STREAMS.review, {"frame_id": "f", "jpeg": jpeg(), "sampler": sampler})
        client.hincrby(STREAMS.review_selected, sampler, 1)  # as ReviewQueue.put does
    client.xdel(STREAMS.review, client.xrange(STREAMS.review, count=1)[0][0])  # imported: gone, still counted
    client.xgroup_create(STREAMS.review, "labeling", id="0")
    client.xreadgroup("labeling", "w", {STREAMS.review: ">"}, count=1)
    client.xadd(STREAMS.review_dead_letter, {"dead_reason": "import failed: 500"})
    client.xadd(STREAMS.review_dead_letter, {"dead_reason": "unparseable"})
    client.xadd(STREAMS.review_dead_letter, {"dead_reason": "import failed: 500"})
    client.hset(STREAMS.labeling_imported, mapping={"f1": 1, "f2": 2})
    client.hset(STREAMS.labeling_harvested, mapping={"1": "x"})
    counts = labeling_data.queue_counts(client, STREAMS)
    assert counts == {"queued": 4, "backlog": 2, "dead_lettered": 3, "imported": 2, "labelled": 1}
    assert labeling_data.arm_mix(client, STREAMS) == {"margin": 2, "novelty": 1, "random": 1}
    assert labeling_data.dead_letter_reasons(client, STREAMS) == {"import failed: 500": 2, "unparseable": 1}
    now = time.time()
    for age_h in (30, 2.5, 0.2, 0.1):  # oldest first: one outside the 24 h, one 2-3 h ago, two this hour
        client.xadd(STREAMS.labels, {"frame_id": "f"}, id=f"{int((now - age_h * 3600) * 1000)}-0")
    per_hour = labeling_data.labels_per_hour(client, STREAMS, now=now)
    assert len(per_hour) == 24 and per_hour.sum() == 3
    assert per_hour.iloc[-1] + per_hour.iloc[-2] == 2  # this hour (or the one before, near the hour's start)


# -- /metrics text -------------------------------------------------------------------------------------------------

METRICS = """\
# TYPE ray_visionloop_camera_frames_total counter
ray_visionloop_camera_frames_total{camera="a",kind="frames_in",WorkerId="1"} 100.0
ray_visionloop_camera_frames_total{camera="b",kind="frames_in",WorkerId="2"} 50.0
ray_visionloop_camera_frames_total{camera="a",kind="frames_skipped",WorkerId="1"} 10.0
# TYPE ray_visionloop_camera_latency_ms histogram
ray_visionloop_camera_latency_ms_bucket{camera="a",le="100.0"} 90.0
ray_visionloop_camera_latency_ms_bucket{camera="a",le="500.0"} 100.0
ray_visionloop_camera_latency_ms_bucket{camera="a",le="+Inf"} 100.0
ray_visionloop_camera_latency_ms_count{camera="a"} 100.0
ray_visionloop_camera_latency_ms_sum{camera="a"} 6000.0
# TYPE ray_visionloop_batch_size histogram
ray_visionloop_batch_size_bucket{role="champion",le="+Inf"} 10.0
ray_visionloop_batch_size_count{role="champion"} 10.0
ray_visionloop_batch_size_sum{role="champion"} 64.0
# TYPE ray_visionloop_frames counter
ray_visionloop_frames_total{model_version="v2",role="champion"} 64.0
# TYPE ray_visionloop_accuracy gauge
ray_visionloop_accuracy{metric="map50",bound="estimate"} 0.61
ray_visionloop_accuracy{metric="map50",bound="low"} 0.52
ray_visionloop_accuracy{metric="map50",bound="high"} 0.70
ray_visionloop_accuracy{metric="recall",bound="estimate"} 0.5
# TYPE ray_visionloop_accuracy_reference gauge
ray_visionloop_accuracy_reference{metric="map50"} 0.79
# TYPE ray_visionloop_accuracy_frames gauge
ray_visionloop_accuracy_frames 42.0
"""


def test_metrics_text_sums_quantiles_means_and_rates() -> None:
    samples = promtext.parse_samples(METRICS)
    frames = "ray_visionloop_camera_frames_total"
    assert promtext.total(samples, frames, kind="frames_in") == 150.0
    assert promtext.total(samples, frames, kind="reconnects") is None
    assert promtext.sum_by(samples, frames, "kind") == {"frames_in": 150.0, "frames_skipped": 10.0}
    # p50: rank 50 of 90 in the first bucket -> 100 * 50/90; p99: rank 99, 9 of 10 into the (100, 500] bucket
    p50 = promtext.histogram_quantile(samples, "ray_visionloop_camera_latency_ms", 0.5)
    p99 = promtext.histogram_quantile(samples, "ray_visionloop_camera_latency_ms", 0.99, camera="a")
    assert p50 == pytest.approx(100 * 50 / 90)
    assert p99 == pytest.approx(100 + 400 * 0.9)
    assert promtext.histogram_quantile(samples, "ray_visionloop_camera_latency_ms", 0.99, camera="z") is None
    assert promtext.histogram_mean(samples, "ray_visionloop_batch_size", role="champion") == 6.4
    frames = promtext.parse_samples('ray_visionloop_frames_total{role="champion"} 280\n'
                            'ray_visionloop_batch_size_count{role="champion"} 70\n'
                            'ray_visionloop_batch_size_sum{role="champion"} 140\n')  # fmt: skip
    assert promtext.mean_batch_size(frames) == 4.0  # frames per call, whatever the exported _sum says
    assert promtext.rates({"a": 10.0, "b": 5.0}, {"a": 30.0, "b": 2.0, "c": 1.0}, 2.0) == {"a": 10.0, "b": 1.0}
    with pytest.raises(ValueError):
        promtext.parse_samples("this is { not metrics")


def test_accuracy_with_its_ci_and_reference_from_the_gauges() -> None:
    samples = promtext.parse_samples(METRICS)
    table = accuracy.accuracy_table(samples).set_index("metric")
    assert list(table.index) == ["map50", "recall"]
    assert table.loc["map50"].tolist() == [0.61, 0.52, 0.70, 0.79]
    assert table.loc["recall", "reference"] is None or np.isnan(table.loc["recall", "reference"])
    assert accuracy.accuracy_frames(samples) == 42
    assert accuracy.accuracy_table([]).empty and accuracy.accuracy_frames([]) is None


def scored(estimate: float, frames: int) -> dict[str, object]:
    interval = {"estimate": estimate, "low": estimate - 0.1, "high": estimate + 0.1}
    return {"status": "ok", "frames": frames, "map50": interval, "precision": interval, "recall": interval}


def test_accuracy_rows_per_scope_from_the_monitors_report() -> None:
    report = {
        "reference": {"map50": 0.79},
        "overall": scored(0.6, 40),
        "per_camera": {"cam-a": scored(0.5, 25), "cam-b": {"status": "not_enough_labels", "frames": 15}},
    }
    table = accuracy.report_table(report)
    assert sorted(set(table["scope"])) == ["_all", "cam-a"]  # cam-b has too few labels to show
    row = table[(table["scope"] == "cam-a") & (table["metric"] == "map50")].iloc[0]
    assert (row["estimate"], row["low"], row["high"], row["reference"], row["frames"]) == (0.5, 0.4, 0.6, 0.79, 25)
    assert table[table["metric"] == "recall"]["reference"].isna().all()
    assert accuracy.report_table({"status": "not_enough_labels"}).empty


# -- models: lineage and the A/B numbers ---------------------------------------------------------------------------

MODELS = {
    "serving": {"champion": "v2"},
    "pointers": {"champion": "v2", "shadow": "v4"},
    "versions": [
        {"version": "v1", "parent": None, "role": "retired", "ab": None},
        {"version": "v2", "parent": "v1", "role": "champion", "gold": {"A-gold/v1": 0.82}, "ab": None},
        {
            "version": "v4",
            "parent": "v2",
            "role": "shadow",
            "dataset_version": "challenger/v2",
            "ab": {
                "decision": "continue",
                "reason": "CI straddles the gain",
                "bootstrap": {"difference": 0.03, "ci_low": -0.01, "ci_high": 0.07, "n_frames": 120},
                "mcnemar": {"p_value": 0.2, "n_frames": 120},
                "frames_needed": 480,
            },
        },
    ],
}


def test_lineage_and_ab_summary_from_the_models_answer() -> None:
    assert models_data.lineage(MODELS, "v4") == ["v4", "v2", "v1"]
    assert models_data.lineage(MODELS, None) == []
    cyclic = {"versions": [{"version": "v1", "parent": "v2"}, {"version": "v2", "parent": "v1"}]}
    assert models_data.lineage(cyclic, "v1") == ["v1", "v2"]
    summary = models_data.ab_summary(MODELS, "v4")
    assert summary is not None
    assert (summary["decision"], summary["ci_low"], summary["ci_high"]) == ("continue", -0.01, 0.07)
    assert (summary["mcnemar_p"], summary["n_frames"], summary["frames_needed"]) == (0.2, 120, 480)
    assert models_data.ab_summary(MODELS, "v2") is None
    assert models_data.version_row(MODELS, "v2")["gold mAP50"] == "A-gold/v1 0.820"
    bootstrap = {"versions": [{"version": "v2", "gold_dataset": "world-A-gold/v1", "metrics": {"map50": 0.8201}}]}
    assert models_data.version_row(bootstrap, "v2")["gold mAP50"] == "world-A-gold/v1 0.820"  # scored at training


# -- settings and the API client ----------------------------------------------------------------------------------


def test_context_reads_the_usual_settings(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    settings = make_settings(tmp_path, REDIS__URL=redis_server.url, REDIS__STREAM_PREFIX="other")
    ctx = load_context(settings)
    assert ctx.api_url == f"http://127.0.0.1:{settings.api.port}"
    assert ctx.streams.results == "other:results" and ctx.redis.ping()
    pinned = make_settings(tmp_path, DASHBOARD__API_URL="http://10.0.0.1:9000/")
    assert load_context(pinned).api_url == "http://10.0.0.1:9000"


def test_api_client_turns_every_failure_into_an_answer() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    answer = get_json(down, "/v1/models")
    assert answer.status == 0 and not answer.ok and "did not answer" in answer.describe()
    unsent = act(down, "POST", "/v1/models/promote", token="")
    assert not unsent.sent and not unsent.ok and "token" in unsent.describe()

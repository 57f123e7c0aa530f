"""Frames -> review stream -> Label Studio tasks with predictions -> annotations -> YOLO labels on disk, against a
real Label Studio and a real Redis; plus Label Studio going away mid-flow and answering 500."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from tests.conftest import free_port
from visionloop.core.contracts import Detections, FrameResult
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames
from visionloop.labeling.label_studio_client import LabelStudioClient
from visionloop.labeling.label_studio_server import LabelStudioServer
from visionloop.labeling.review_queue import ReviewItem, ReviewQueue
from visionloop.labeling.samplers import Selection
from visionloop.labeling.sync import LabelHarvester, LabelStudioImporter, annotation_to_yolo
from visionloop.simulation.clips import render_clip

pytestmark = pytest.mark.integration
NAMES = ["circle", "square", "triangle", "star", "cross"]
OUTAGE_S = 60.0


def _items(count: int, seed: int = 0) -> list[ReviewItem]:
    frames = render_clip(frames=count, width=320, height=180, seed=seed)
    out = []
    for index, frame in enumerate(frames):
        detections = Detections(
            np.array([[10 + index, 20, 90, 100]], np.float32), np.array([0.4], np.float32), np.array([index % 5])
        )
        result = FrameResult("cam-a", index, time.time(), "v2", detections, frame_width=320, frame_height=180)
        jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
        out.append(ReviewItem(f"cam-a-{seed}-{index}", jpeg, result, Selection("margin", 0.7, "test"), time.time()))
    return out


@pytest.fixture
def label_studio(tmp_path: Path) -> Iterator[LabelStudioServer]:
    server = LabelStudioServer(tmp_path / "ls-data", free_port(), tmp_path / "files").start()
    yield server
    server.stop()


def _importer(
    server: LabelStudioServer, client: LabelStudioClient, store: redis.Redis, queue: ReviewQueue
) -> tuple[LabelStudioImporter, int]:
    frames = server.files_root / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    project = client.ensure_project("visionloop review", NAMES, str(frames))
    assert client.ensure_project("visionloop review", NAMES, str(frames)) == project  # found, not re-made
    return LabelStudioImporter(queue, client, project, server.files_root, store, StreamNames("t"), NAMES), project


def test_paging_ends_at_exactly_100_and_200_annotated_tasks(label_studio: LabelStudioServer) -> None:
    """Label Studio answers 404 "Invalid page" for the page after a full last one: with exactly 100 and then 200
    annotated tasks (one and two full default pages), every reconcile read must still end with all of them."""
    client = LabelStudioClient(label_studio.url, label_studio.account.token)
    frames = label_studio.files_root / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    project = client.ensure_project("paging", NAMES, str(frames))
    tasks = [{"data": {"frame_id": f"f{i}", "image": f"/data/local-files/?d=frames/f{i}.jpg"}} for i in range(250)]
    client._call("POST", f"/api/projects/{project}/import", json=tasks)
    ids = sorted(t["id"] for t in client._query(project, []))
    assert len(ids) == client.count_tasks(project) == 250
    box = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 40.0, "rotation": 0, "rectanglelabels": ["star"]}
    result = [{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 320,
               "original_height": 180, "value": box}]  # fmt: skip
    for done in (100, 200):
        for task_id in ids[done - 100 : done]:
            client.annotate(task_id, result)
        annotated = client.annotated_tasks(project)
        assert sorted(t["id"] for t in annotated) == ids[:done]


def test_full_round_trip_gives_yolo_labels_equal_to_the_annotations(
    label_studio: LabelStudioServer, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    store = redis.Redis.from_url(redis_server.url)
    client = LabelStudioClient(label_studio.url, label_studio.account.token)
    queue = ReviewQueue(store, StreamNames("t"), consumer="w1", min_idle_ms=100)
    importer, project = _importer(label_studio, client, store, queue)
    items = _items(4)
    for item in items:
        queue.put(item)
    report = importer.run_once()
    assert report.imported == 4 and report.dead_lettered == 0
    assert queue.stats()["pending"] == 0
    tasks = client._query(project, [])
    assert len(tasks) == 4
    # Paging that ends on a full page (4 tasks in pages of 1, 2 and 4) asks for no page past the last.
    for page_size in (1, 2, 4, 3):
        assert sorted(t["id"] for t in client._query(project, [], page_size)) == sorted(t["id"] for t in tasks)
    task = next(t for t in tasks if t["data"]["frame_id"] == items[1].frame_id)
    prediction = task["predictions"][0]
    assert prediction["model_version"] == "v2" and prediction["result"][0]["value"]["rectanglelabels"] == ["square"]
    # A duplicate put of the same frame never becomes a second task.
    queue.put(items[1])
    assert importer.run_once().already_imported == 1 and client.count_tasks(project) == 4
    # Two labelers answer: one corrects the class and box, one accepts the prediction.
    corrected = [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 320,
            "original_height": 180,
            "value": {"x": 10.0, "y": 20.0, "width": 30.0, "height": 40.0, "rotation": 0, "rectanglelabels": ["star"]},
        }
    ]
    client.annotate(task["id"], corrected)
    other = next(t for t in tasks if t["data"]["frame_id"] == items[2].frame_id)
    client.annotate(other["id"], other["predictions"][0]["result"])
    harvester = LabelHarvester(
        client, project, label_studio.files_root, tmp_path / "incoming", store, StreamNames("t"), NAMES
    )
    assert harvester.reconcile() == 2
    assert harvester.reconcile() == 0  # idempotent
    label = (tmp_path / "incoming" / "labels" / f"{items[1].frame_id}.txt").read_text().split()
    assert label == ["3", "0.250000", "0.400000", "0.300000", "0.400000"]  # star is class 3 in *our* order
    accepted = (tmp_path / "incoming" / "labels" / f"{items[2].frame_id}.txt").read_text().split()
    assert accepted[0] == "2"  # triangle
    assert (tmp_path / "incoming" / "images" / f"{items[1].frame_id}.jpg").read_bytes() == items[1].jpeg
    assert store.xlen(StreamNames("t").labels) == 2
    client.close()


def test_label_studio_away_mid_flow_loses_nothing_and_duplicates_nothing(
    label_studio: LabelStudioServer, redis_server: EmbeddedRedis
) -> None:
    store = redis.Redis.from_url(redis_server.url)
    client = LabelStudioClient(label_studio.url, label_studio.account.token, timeout_s=3)
    queue = ReviewQueue(store, StreamNames("t"), consumer="w1", min_idle_ms=300, max_deliveries=3)
    importer, project = _importer(label_studio, client, store, queue)
    items = _items(6, seed=1)
    for item in items[:2]:
        queue.put(item)
    assert importer.run_once().imported == 2
    label_studio.stop()
    for item in items[2:]:
        queue.put(item)
    down = importer.run_once()
    assert down.imported == 0 and "unreachable" in down.errors[0]
    outage_end = time.monotonic() + OUTAGE_S  # the fault: Label Studio away for a full minute
    while time.monotonic() < outage_end:
        time.sleep(2)
        assert importer.run_once().imported == 0  # still away; nothing acknowledged, nothing lost
    assert queue.stats()["dead_lettered"] == 0 and queue.stats()["queued_total"] == 6
    label_studio.start()
    deadline, imported = time.monotonic() + 30, 0
    while imported < 4 and time.monotonic() < deadline:
        time.sleep(0.4)
        imported += importer.run_once().imported
    assert imported == 4
    assert client.count_tasks(project) == 6  # every frame exactly once
    assert queue.stats()["pending"] == 0
    client.close()


def test_label_studio_500s_are_retried_then_dead_lettered(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    calls: list[str] = []

    class Broken(http.server.BaseHTTPRequestHandler):
        """Up (its health check passes) but failing every real request."""

        def do_POST(self) -> None:
            calls.append(self.path)
            self.send_response(500)
            self.end_headers()

        def do_GET(self) -> None:
            if self.path == "/health":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"status": "UP"}')
            else:
                self.do_POST()

        def log_message(self, *args: object) -> None:
            return

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    store = redis.Redis.from_url(redis_server.url)
    client = LabelStudioClient(f"http://127.0.0.1:{httpd.server_address[1]}", "x", timeout_s=2)
    queue = ReviewQueue(store, StreamNames("t"), consumer="w1", min_idle_ms=50, max_deliveries=3)
    importer = LabelStudioImporter(queue, client, 1, tmp_path / "files", store, StreamNames("t"), NAMES)
    queue.put(_items(1, seed=2)[0])
    for _ in range(6):
        importer.run_once(block_ms=50)
        time.sleep(0.1)
    stats = queue.stats()
    assert stats["dead_lettered"] == 1 and stats["pending"] == 0
    dead = store.xrange(StreamNames("t").review_dead_letter)[0][1]
    assert b"answered 500" in dead[b"dead_reason"] and b"3 deliveries" in dead[b"dead_reason"]
    assert len(calls) == 2  # two real attempts; the third delivery gave up
    httpd.shutdown()
    httpd.server_close()
    client.close()


def test_annotation_conversion_keeps_our_class_order() -> None:
    region = {
        "type": "rectanglelabels",
        "value": {"x": 0, "y": 50, "width": 10, "height": 50, "rectanglelabels": ["cross"]},
    }
    assert annotation_to_yolo([region], NAMES) == ["4 0.050000 0.750000 0.100000 0.500000"]
    assert annotation_to_yolo([{**region, "value": {**region["value"], "rectanglelabels": ["dog"]}}], NAMES) == []


def test_simulated_labeler_answers_from_ground_truth(
    label_studio: LabelStudioServer, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    from visionloop.core.config import PACKAGE_ROOT
    from visionloop.simulation.simulated_labeler import GroundTruthIndex, SimulatedLabeler
    from visionloop.simulation.world import load_domains, write_yolo_dataset

    world = tmp_path / "world"
    write_yolo_dataset(load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")["B"], 3, 4, world)
    truth = GroundTruthIndex()
    assert truth.add_yolo_folder(world) == 4
    stranger = tmp_path / "stranger"  # a frame of another world, imported first: it must not block the rest
    write_yolo_dataset(load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")["C"], 9, 1, stranger)
    store = redis.Redis.from_url(redis_server.url)
    client = LabelStudioClient(label_studio.url, label_studio.account.token)
    queue = ReviewQueue(store, StreamNames("t"), consumer="w1")
    importer, project = _importer(label_studio, client, store, queue)
    images = sorted((stranger / "images").glob("*.jpg")) + sorted((world / "images").glob("*.jpg"))
    for index, image_path in enumerate(images):
        empty = Detections.empty()
        result = FrameResult("sim", index, 1.0, "v2", empty, frame_width=320, frame_height=320)
        frame_id = f"{image_path.parent.parent.name}-{image_path.stem}"
        queue.put(ReviewItem(frame_id, image_path.read_bytes(), result, Selection("random", 1, "t"), 1.0))
    assert importer.run_once().imported == 5
    labeler = SimulatedLabeler(client, project, label_studio.files_root, truth, NAMES)
    assert [labeler.label_pending(limit=2) for _ in range(3)] == [2, 2, 0]
    assert labeler.unmatched == 1  # the stranger was looked up once, then skipped
    harvester = LabelHarvester(
        client, project, label_studio.files_root, tmp_path / "incoming", store, StreamNames("t"), NAMES
    )
    assert harvester.reconcile() == 4
    for truth_file in sorted((world / "labels").glob("*.txt")):
        expected = [list(map(float, line.split())) for line in truth_file.read_text().splitlines()]
        got = [
            list(map(float, line.split()))
            for line in (tmp_path / "incoming" / "labels" / f"world-{truth_file.name}").read_text().splitlines()
        ]
        assert np.allclose(sorted(got), sorted(expected), atol=1e-4), truth_file.name
    client.close()

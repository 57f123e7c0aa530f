"""The labeling worker's Redis side against a real redis-server, without Label Studio: webhook entries read through
a consumer group (acknowledged, trimmed, redelivered after a crash) and data set cuts (settings' split, counter,
event). A stand-in takes the harvester's place where Label Studio would be needed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from tests.conftest import make_settings
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames
from visionloop.labeling.worker import WEBHOOK_GROUP, LabelingWorker

pytestmark = pytest.mark.integration
NAMES = ["circle", "square", "triangle"]


class Crash(Exception):
    """The worker process dying between reading an entry and acknowledging it."""


class StandInHarvester:
    """Records the webhook payloads it is given (the real one writes label files from Label Studio's tasks)."""

    def __init__(self, crash_on: int | None = None) -> None:
        self.handled: list[int] = []
        self._crash_on = crash_on

    def handle_webhook(self, payload: dict[str, Any]) -> bool:
        annotation_id = int(payload["annotation"]["id"])
        if annotation_id == self._crash_on:
            raise Crash(annotation_id)
        self.handled.append(annotation_id)
        return True


def _worker(var_dir: Path, server: EmbeddedRedis, harvester: StandInHarvester | None = None, **env: str) -> Any:
    worker = LabelingWorker(make_settings(var_dir, **env), server.url, NAMES)
    worker._harvester = harvester  # the seam start() fills once Label Studio is up
    return worker


def _webhook(client: redis.Redis, annotation_id: int, action: str = "ANNOTATION_CREATED") -> None:
    body = {"action": action, "task": {"id": annotation_id, "data": {}}, "annotation": {"id": annotation_id}}
    client.xadd(StreamNames().labeling_webhooks, {"payload": json.dumps(body)})


def test_a_restarted_worker_does_not_handle_acknowledged_webhooks_again_and_the_stream_is_trimmed(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    stream = StreamNames().labeling_webhooks
    for annotation_id in (1, 2, 3):  # queued before any worker ran: the group must not skip them
        _webhook(client, annotation_id)
    _webhook(client, 4, action="PROJECT_UPDATED")  # not an annotation: handled as a no-op
    client.xadd(stream, {"payload": b"{not json"})  # unreadable: dropped, not retried forever
    first = StandInHarvester()
    assert _worker(tmp_path / "var", redis_server, first)._drain_webhooks() == 3
    assert first.handled == [1, 2, 3]
    assert client.xlen(stream) == 0  # trimmed: handled entries are gone
    assert client.xpending(stream, WEBHOOK_GROUP)["pending"] == 0

    restarted = StandInHarvester()
    worker = _worker(tmp_path / "var", redis_server, restarted)
    assert worker._drain_webhooks() == 0 and restarted.handled == []
    _webhook(client, 5)
    assert worker._drain_webhooks() == 1 and restarted.handled == [5]
    assert client.xlen(stream) == 0
    client.close()


def test_a_webhook_read_but_not_acknowledged_is_handled_after_a_restart(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    stream = StreamNames().labeling_webhooks
    for annotation_id in (1, 2, 3):
        _webhook(client, annotation_id)
    dying = StandInHarvester(crash_on=2)
    with pytest.raises(Crash):
        _worker(tmp_path / "var", redis_server, dying)._drain_webhooks()
    assert dying.handled == [1]
    # 2 was read and 3 delivered with it, neither acknowledged: both wait in the stream, pending.
    assert client.xlen(stream) == 2 and client.xpending(stream, WEBHOOK_GROUP)["pending"] == 2

    restarted = StandInHarvester()
    assert _worker(tmp_path / "var", redis_server, restarted)._drain_webhooks() == 2
    assert restarted.handled == [2, 3]
    assert client.xlen(stream) == 0 and client.xpending(stream, WEBHOOK_GROUP)["pending"] == 0
    client.close()


def _harvest(incoming: Path, stem: str, class_id: int) -> None:
    (incoming / "images").mkdir(parents=True, exist_ok=True)
    (incoming / "labels").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(incoming / "images" / f"{stem}.jpg"), np.full((32, 32, 3), 90, np.uint8))
    (incoming / "labels" / f"{stem}.txt").write_text(f"{class_id} 0.500000 0.500000 0.250000 0.250000\n")


def test_cuts_follow_the_settings_split_and_keep_earlier_labels(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    streams = StreamNames()
    var = tmp_path / "var"
    worker = _worker(var, redis_server, labeling__cut_every="3", data__split="[0.5, 0.5, 0.0]")
    incoming = var / "labels" / "incoming"
    for n in range(8):
        _harvest(incoming, f"a{n}", 1)
    assert worker._maybe_cut_version(2) is None  # fewer than cut_every labels since the last cut
    assert worker._maybe_cut_version(6) == "labels/v1"
    assert client.get(streams.labeling_since_cut) == b"0"
    first = json.loads((var / "datasets" / "labels" / "v1" / "manifest.json").read_text())
    assert [first["counts"][s]["images"] for s in ("train", "val", "test")] == [4, 4, 0]

    for n in range(4):
        _harvest(incoming, f"b{n}", 2)
    assert worker._maybe_cut_version(4) == "labels/v2"
    v2 = var / "datasets" / "labels" / "v2"
    second = json.loads((v2 / "manifest.json").read_text())
    assert [second["counts"][s]["images"] for s in ("train", "val", "test")] == [6, 6, 0]
    splits = {p.stem: p.parent.name for p in (v2 / "images").rglob("*.jpg")}
    assert Counter(split for stem, split in splits.items() if stem.startswith("b")) == {"train": 2, "val": 2}
    assert {p.stem: p.parent.name for p in (var / "datasets" / "labels" / "v1" / "images").rglob("*.jpg")} == {
        stem: split for stem, split in splits.items() if stem.startswith("a")
    }
    events = [
        json.loads(f[b"payload"]) for _, f in client.xrange(streams.events) if f[b"kind"] == b"dataset_version_created"
    ]
    assert [(e["dataset"], e["images"]) for e in events] == [("labels/v1", 8), ("labels/v2", 12)]
    client.close()


def test_an_operator_can_cut_before_cut_every_but_not_from_nothing(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    var = tmp_path / "var"
    worker = _worker(var, redis_server, labeling__cut_every="50")
    assert worker._maybe_cut_version(0, force=True) is None  # no label since the last cut: nothing to cut
    for n in range(3):
        _harvest(var / "labels" / "incoming", f"c{n}", 1)
    assert worker._maybe_cut_version(3) is None  # 3 of 50
    assert worker._maybe_cut_version(0, force=True) == "labels/v1"  # the 3 counted labels, cut now
    assert redis.Redis.from_url(redis_server.url).get(StreamNames().labeling_since_cut) == b"0"

"""The whole loop in the running service, frames flowing the whole time: labels -> challenger (1 epoch) -> shadow
-> decision -> promote -> rollback, with no frame lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import make_settings, wait_for
from tests.integration.test_loop_worker import TINY_LOOP, _prepare
from tests.integration.test_promotion_live import Stream
from visionloop.cli.service import VisionloopService
from visionloop.core.registry import ModelRegistry
from visionloop.core.streams import StreamNames, event_fields
from visionloop.simulation.clips import render_clip_jpegs

pytestmark = pytest.mark.integration
TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def service(var_dir: Path, tmp_path: Path) -> Iterator[VisionloopService]:
    settings = make_settings(var_dir, LOOP__ENABLED="true", SHADOW__MIRROR_FRACTION="1.0", **TINY_LOOP)
    labels = _prepare(settings, tmp_path)  # the champion (v2), its old data, a gold set, labels by arm
    with VisionloopService(settings) as svc:
        svc.labels_ref = labels.ref  # type: ignore[attr-defined]
        yield svc


def test_labels_to_promotion_and_rollback_with_frames_flowing(service: VisionloopService) -> None:
    settings = service.settings
    registry = ModelRegistry(settings.resolved_var_dir() / "models")
    champion = registry.pointers()["champion"]
    stream = Stream(pause_s=0.05)
    sender = threading.Thread(
        target=stream.run, args=(service.api_url, render_clip_jpegs(frames=6, width=320, height=180, seed=5))
    )
    sender.start()
    api = httpx.Client(base_url=service.api_url, timeout=120)
    try:
        # The labeling worker announces a new data set version; the loop worker reacts to it.
        events = redis.Redis.from_url(service.redis_url)
        stream_name = StreamNames(settings.redis.stream_prefix).events
        events.xadd(stream_name, event_fields("dataset_version_created", dataset=service.labels_ref))  # type: ignore[arg-type, attr-defined]
        shadow = wait_for(lambda: registry.pointers()["shadow"], lambda v: v is not None, timeout_s=240)
        assert registry.get(shadow).meta["parent"] == champion
        verdict = wait_for(lambda: registry.decision(shadow), lambda d: d is not None, timeout_s=240)
        print(f"\nverdict: {verdict['decision']}: {verdict['reason']}")
        # A handful of frames cannot PROMOTE; a guard (the 1-epoch shadow's gold score, latency) may REJECT.
        assert verdict["decision"] in ("continue", "reject") and verdict["by"] == "auto"
        status = api.get("/v1/loop/status").json()
        assert status["last_verdict"]["shadow"] == shadow
        comparison = wait_for(
            lambda: api.get("/v1/shadow").json()["comparison"],
            lambda c: c.get("shadow_version") == shadow and c["pairs"] >= 3,
            timeout_s=60,
        )
        assert 0.0 <= comparison["disagreement_rate"] <= 1.0

        refused = api.post("/v1/models/promote", headers=AUTH)
        assert refused.status_code == 409 and "no PROMOTE verdict" in refused.json()["detail"]
        promoted = api.post("/v1/models/promote", headers=AUTH, json={"force": True}).json()
        assert promoted["serving"] == shadow and promoted["forced"] is True
        wait_for(lambda: stream.versions[-1], lambda v: v == shadow, timeout_s=10)
        time.sleep(1.0)
        rolled = api.post("/v1/models/rollback", headers=AUTH).json()
        assert rolled["serving"] == champion and rolled["from"] == shadow
        wait_for(lambda: stream.versions[-1], lambda v: v == champion, timeout_s=10)
        time.sleep(1.0)
    finally:
        stream.stop.set()
        sender.join(60)
        api.close()
    print(f"\n{len(stream.versions)} frames through the loop, a promote and a rollback; longest gap "
          f"{stream.longest_gap_ms():.0f} ms")  # fmt: skip
    assert stream.errors == []
    assert len(stream.versions) == stream.sent
    assert stream.swaps() == [champion, shadow, champion]
    assert registry.get(shadow).meta["role"] == "rejected"
    kinds = [f[b"kind"].decode() for _, f in redis.Redis.from_url(service.redis_url).xrange(stream_name)]
    assert {"challenger_registered", "ab_decision", "model_promoted", "model_rolled_back"} <= set(kinds)

"""Shadow mode and promotion on a real Serve app: frames flow the whole time through a promote and a rollback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import make_settings, wait_for
from visionloop.cli.service import VisionloopService
from visionloop.core.registry import ModelRegistry, Role
from visionloop.core.streams import StreamNames
from visionloop.simulation.clips import render_clip_jpegs

pytestmark = pytest.mark.integration
TOKEN = "test-token-123"
ALICE = "alice-token-456"
PROMOTE_VERDICT = {"decision": "promote", "reason": "test", "bootstrap": {"difference": 0.1, "ci_low": 0.02,
                   "ci_high": 0.2, "n_frames": 300}, "mcnemar": {"p_value": 0.01}}  # fmt: skip


@pytest.fixture(scope="module")
def service(module_var_dir: Path) -> Iterator[VisionloopService]:
    registry = ModelRegistry(module_var_dir / "models")
    v1 = registry.get("v1")
    for _ in range(2):  # two more versions (same network: what matters here is which version answers)
        registry.register(v1.onnx_path, v1.torch_path, meta={**v1.meta, "source": "test"})
    settings = make_settings(
        module_var_dir,
        shadow__mirror_fraction="1.0",
        shadow__queue_size="2",
        shadow__max_batch="1",
        loop__enabled="false",
        api__named_tokens=f'{{"alice": "{ALICE}"}}',
    )
    with VisionloopService(settings) as svc:
        yield svc


@dataclass
class Stream:
    """Frames sent one request after another from a thread; what came back, and when."""

    versions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)
    sent: int = 0
    pause_s: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, url: str, jpegs: list[bytes]) -> None:
        with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            while not self.stop.is_set():
                self.sent += 1
                try:
                    response = client.post(
                        "/v1/detect", files={"image": ("f.jpg", jpegs[self.sent % len(jpegs)], "image/jpeg")},
                        params={"camera_id": "live"},
                    )  # fmt: skip
                    if response.status_code == 200:
                        self.versions.append(response.json()["model_version"])
                        self.answered_at.append(time.monotonic())
                    else:
                        self.errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                self.stop.wait(self.pause_s)

    def swaps(self) -> list[str]:
        """The versions that answered, in order, each run of equal answers once."""
        return [v for i, v in enumerate(self.versions) if i == 0 or v != self.versions[i - 1]]

    def longest_gap_ms(self) -> float:
        gaps = [b - a for a, b in zip(self.answered_at, self.answered_at[1:], strict=False)]
        return max(gaps, default=0.0) * 1e3


def test_shadow_promote_and_rollback_with_frames_flowing(service: VisionloopService) -> None:
    registry = ModelRegistry(service.settings.resolved_var_dir() / "models")
    jpegs = render_clip_jpegs(frames=6, width=320, height=180, seed=3)
    stream = Stream()
    sender = threading.Thread(target=stream.run, args=(service.api_url, jpegs), daemon=True)
    sender.start()
    api = httpx.Client(base_url=service.api_url, timeout=60)
    try:
        # The loop would set the shadow; the shadow replica follows the pointer and pairs appear.
        registry.set_pointer(Role.SHADOW, "v2", by="test")
        shadow = wait_for(lambda: api.get("/v1/shadow").json(),
                          lambda s: s["comparison"].get("shadow_version") == "v2" and s["comparison"]["pairs"] >= 5,
                          timeout_s=60)  # fmt: skip
        assert shadow["comparison"]["champion_version"] == "v1"
        assert shadow["comparison"]["disagreement_rate"] == 0.0  # the same network on the same frames
        assert shadow["mirror"]["mirrored"] >= 5
        pairs = redis.Redis.from_url(service.redis_url).xrange(
            StreamNames(service.settings.redis.stream_prefix).shadow_pairs
        )
        assert all(b"error" not in fields for _, fields in pairs)  # a shadow still loading is not an error
        assert b'"role":"shadow"' in pairs[0][1][b"shadow"] and b'"role":"champion"' in pairs[0][1][b"champion"]

        assert api.post("/v1/models/promote").status_code == 401
        refused = api.post("/v1/models/promote", headers={"Authorization": f"Bearer {TOKEN}"})
        assert refused.status_code == 409 and "no PROMOTE verdict" in refused.json()["detail"]
        registry.record_decision("v2", PROMOTE_VERDICT)
        promoted = api.post("/v1/models/promote", headers={"Authorization": f"Bearer {ALICE}"}).json()
        assert promoted["serving"] == "v2" and promoted["by"] == "alice"
        wait_for(lambda: stream.versions[-1], lambda v: v == "v2", timeout_s=10)
        time.sleep(1.0)
        rolled = api.post("/v1/models/rollback", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert rolled["serving"] == "v1" and rolled["by"] == "operator"
        wait_for(lambda: stream.versions[-1], lambda v: v == "v1", timeout_s=10)
        time.sleep(1.0)
    finally:
        stream.stop.set()
        sender.join(30)
    print(f"\n{len(stream.versions)} frames through a promote and a rollback; longest gap "
          f"{stream.longest_gap_ms():.0f} ms")  # fmt: skip
    assert stream.errors == []
    assert len(stream.versions) == stream.sent  # every frame sent was answered: none lost
    assert stream.swaps() == ["v1", "v2", "v1"]
    history = api.get("/v1/models/history").json()
    assert [(c["action"], c["by"]) for c in history["changes"]][-2:] == [("promote", "alice"), ("rollback", "operator")]
    assert history["pointers"] == {"champion": "v1", "shadow": None}
    events = redis.Redis.from_url(service.redis_url).xrange(StreamNames(service.settings.redis.stream_prefix).events)
    kinds = [fields[b"kind"].decode() for _, fields in events]
    assert "model_promoted" in kinds and "model_rolled_back" in kinds
    api.close()


def test_a_full_shadow_queue_drops_and_counts(service: VisionloopService) -> None:
    registry = ModelRegistry(service.settings.resolved_var_dir() / "models")
    registry.set_pointer(Role.SHADOW, "v3", by="test")
    jpegs = render_clip_jpegs(frames=8, width=320, height=180, seed=4)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=service.api_url, timeout=60, headers=headers) as api:
        one = [("images", ("0.jpg", jpegs[0], "image/jpeg"))]

        def shadow_answers() -> dict[str, Any]:  # a frame through; the shadow replica has picked up v3 once it pairs
            assert api.post("/v1/detect/batch", files=one).status_code == 200
            return dict(api.get("/v1/shadow").json()["comparison"])

        wait_for(shadow_answers, lambda c: c["shadow_version"] == "v3" and c["pairs"] > 0, timeout_s=60, interval_s=0.5)
        files = [("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(jpegs)]
        for _ in range(4):  # 8 frames a call, all mirrored, into a queue of 2
            assert api.post("/v1/detect/batch", files=files).status_code == 200
        status = wait_for(lambda: api.get("/v1/shadow").json(), lambda s: s["mirror"]["queued"] == 0, timeout_s=30)
        assert status["mirror"]["dropped"] > 0
        assert status["mirror"]["mirrored"] + status["mirror"]["dropped"] >= 32
        metrics = wait_for(lambda: api.get("/metrics").text,
                           lambda t: 'ray_visionloop_shadow_frames_total{' in t and 'outcome="dropped"' in t,
                           timeout_s=60)  # fmt: skip
        assert "ray_visionloop_shadow_frames_total" in metrics

"""A real headless Chromium with a fake camera streams through the page, the gateway and the real Serve app."""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, make_settings, wait_for
from visionloop.cli.service import VisionloopService

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",  # without it Chromium offers no 127.0.0.1 candidate
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, model_registry_template: Path) -> Iterator[VisionloopService]:
    var_dir = tmp_path_factory.mktemp("var")
    shutil.copytree(model_registry_template / "models", var_dir / "models")
    settings = make_settings(var_dir, webrtc__port=str(free_port()), webrtc__max_peers="1")
    with VisionloopService(settings) as svc:
        yield svc


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_browser_camera_gets_detections_and_annotated_video(service: VisionloopService) -> None:
    from playwright.sync_api import sync_playwright

    assert service.webrtc_url is not None
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        page = browser.new_page()
        page.goto(service.webrtc_url)
        page.fill("#token", "test-token-123")
        page.click("#start")
        page.wait_for_function("window.vl.messages.length >= 30 || window.vl.error", timeout=60_000)
        assert page.evaluate("window.vl.error") is None
        playing = "(v => v.videoWidth > 0 && v.currentTime > 0)(document.getElementById('annotated'))"
        page.wait_for_function(playing, timeout=30_000)
        messages = page.evaluate("window.vl.messages")
        latencies = page.evaluate("window.vl.latencies")
        server = page.evaluate("window.vl.serverLatencies")
        page.screenshot(path=str(ARTIFACTS / "webrtc-page.png"), full_page=True)
        assert page.inner_text("#status") == "connected"
        # Over the peer limit (1 here) a second page is told so: 429.
        second = browser.new_page()
        second.goto(service.webrtc_url)
        second.fill("#token", "test-token-123")
        second.click("#start")
        second.wait_for_function("window.vl.error", timeout=30_000)
        assert "429" in second.evaluate("window.vl.error")
        page.click("#stop")
        browser.close()
    assert messages[-1]["model_version"] == "v1"
    assert all("boxes" in m and "server_latency_ms" in m and "capture_ts" in m for m in messages)
    assert latencies, "no camera -> detections latency was measured"
    report = {
        "messages": len(messages),
        "glass_to_glass_ms_median": statistics.median(latencies),
        "glass_to_glass_ms_p90": sorted(latencies)[int(0.9 * (len(latencies) - 1))],
        "server_ms_median": statistics.median(server),
    }
    (ARTIFACTS / "webrtc-latency.json").write_text(json.dumps(report, indent=2))
    print("webrtc latency:", report)
    # The results of browser cameras reach the same results stream as IP cameras.
    headers = {"Authorization": "Bearer test-token-123"}
    wait_for(  # the results are published behind the answers, so they may trail them a moment
        lambda: httpx.get(f"{service.api_url}/v1/health", headers=headers, timeout=30).json(),
        lambda health: health["redis"]["published"] >= 30,
        timeout_s=60,
        interval_s=0.5,
    )

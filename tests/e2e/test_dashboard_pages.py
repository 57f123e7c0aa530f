"""The dashboard in a real headless Chromium, against the whole service with a camera streaming: every page renders
with no Streamlit exception (screenshots in test-artifacts/), and Promote works from the page only with the token."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import free_port, make_settings, wait_for
from visionloop.cli.service import VisionloopService
from visionloop.core.registry import ModelRegistry, Role
from visionloop.core.streams import StreamNames
from visionloop.simulation.rtsp_cameras import RtspSimulator, prepare_world_camera

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# (url path, the page's title): Live is the default page, served at the root.
PAGES = [
    ("", "Live"),
    ("cameras", "Cameras"),
    ("models", "Models & A/B"),
    ("drift", "Drift & accuracy"),
    ("explain", "Explain a detection"),
    ("labeling", "Labeling"),
]
PROMOTE_VERDICT = {"decision": "promote", "reason": "test", "bootstrap": {"difference": 0.1, "ci_low": 0.02,
                   "ci_high": 0.2, "n_frames": 300}, "mcnemar": {"p_value": 0.01}}  # fmt: skip


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, model_registry_template: Path) -> Iterator[VisionloopService]:
    var_dir = tmp_path_factory.mktemp("var")
    shutil.copytree(model_registry_template / "models", var_dir / "models")
    shutil.copytree(model_registry_template / "ultralytics", var_dir / "ultralytics")
    registry = ModelRegistry(var_dir / "models")
    v1 = registry.get("v1")
    registry.register(v1.onnx_path, v1.torch_path, meta={**v1.meta, "source": "test"})
    registry.set_pointer(Role.SHADOW, "v2", by="test")
    registry.record_decision("v2", PROMOTE_VERDICT)
    settings = make_settings(
        var_dir,
        dashboard__enabled="true",
        dashboard__snapshot_interval_s="0.5",
        # Fragments refresh every 10 s, not 2: on a loaded 2-core CI box three fragments every 2 s kept the page's
        # script running without a gap, and the "drawn" wait below never saw it idle.
        dashboard__refresh_s="10",
        drift__enabled="true",
        drift__window_size="10",
        drift__sample_interval_s="0.2",
        explain__enabled="true",
        explain__max_evals="100",
        webrtc__enabled="false",
        # The untrained test model scores every candidate near 0: a tiny threshold gives frames boxes to explain.
        serving__conf_threshold="0.0005",
        serving__max_detections="10",
    )
    video = prepare_world_camera("gate", "A", 5, seconds=3, fps=10, out_dir=var_dir / "clips", height=180, width=320)
    with (
        RtspSimulator([video], free_port(), user="op", password="pa55-word") as simulator,
        VisionloopService(settings) as svc,
    ):
        CAMERA_URL[svc.api_url] = simulator.url("gate")
        yield svc


CAMERA_URL: dict[str, str] = {}  # the module's service -> its camera's URL (added by the first test needing it)


def _frames_flowing(service: VisionloopService) -> None:
    """The camera streams, and results, snapshots and drift windows have arrived (the pages have something to show)."""
    if not httpx.get(f"{service.api_url}/v1/cameras", timeout=30).json():
        camera = {"id": "gate", "url": CAMERA_URL[service.api_url]}
        added = httpx.post(f"{service.api_url}/v1/cameras", json=camera, headers=AUTH, timeout=60)
        assert added.status_code == 201, added.text
    client = redis.Redis.from_url(service.redis_url)
    streams = StreamNames(service.settings.redis.stream_prefix)
    wait_for(lambda: (client.xlen(streams.results), client.llen(streams.snapshots("gate")), client.xlen(streams.drift)),
             lambda n: n[0] >= 30 and n[1] >= 2 and n[2] >= 1, timeout_s=90)  # fmt: skip


def _open(browser: Any, url: str, title: str) -> Any:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    _wait_until_drawn(page)
    return page


def _wait_until_drawn(page: Any) -> None:
    """Until the page's script has run to its end, fragments included (Streamlit marks its root element)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=120_000)


def _shows(page: Any, text: str, timeout_ms: int = 30_000) -> bool:
    """Whether ``text`` appears on the page within the time (a fragment may draw it a refresh later)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_text(text).first.wait_for(timeout=timeout_ms)
    except PlaywrightTimeout:
        return False
    return True


def _browser(playwright: Any, profile: str) -> Any:
    return playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
    )


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_pages_with_no_data_yet_say_so(service: VisionloopService) -> None:
    """Before any camera: every page loads, says what it is waiting for, and shows no stack trace."""
    from playwright.sync_api import sync_playwright

    assert httpx.get(f"{service.api_url}/v1/cameras", timeout=30).json() == []
    silent: list[str] = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = _browser(playwright, profile)
        for path, title in PAGES:
            page = _open(browser, f"{service.dashboard_url}/{path}", title)
            if path in ("", "cameras", "drift", "explain") and not _shows(page, "No data yet"):
                silent.append(title)
            assert page.locator('[data-testid="stException"]').count() == 0, title
            if path == "cameras":
                page.screenshot(path=str(ARTIFACTS / "dashboard-cameras-empty.png"), full_page=True)
            page.close()
        browser.close()
    assert silent == []


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_every_page_renders_with_frames_flowing(service: VisionloopService) -> None:
    from playwright.sync_api import sync_playwright

    assert service.dashboard_url is not None
    _frames_flowing(service)
    ARTIFACTS.mkdir(exist_ok=True)
    problems: dict[str, str] = {}
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = _browser(playwright, profile)
        for path, title in PAGES:
            page = _open(browser, f"{service.dashboard_url}/{path}", title)
            page.screenshot(path=str(ARTIFACTS / f"dashboard-{path or 'live'}.png"), full_page=True)
            exceptions = page.locator('[data-testid="stException"]')
            if exceptions.count():
                problems[title] = exceptions.first.inner_text()[:500]
            page.close()
        browser.close()
    assert problems == {}
    # Ray exports a process's metrics every few seconds: the drift monitor's first window may be on the stream and
    # not yet on /metrics (a CI run read it once, too early), so poll.
    drift_metrics = ("ray_visionloop_drift_alarm", "ray_visionloop_drift_p_value")

    def drift_metrics_served() -> set[str]:
        text = httpx.get(f"{service.api_url}/metrics", timeout=30).text
        (ARTIFACTS / "dashboard-metrics.txt").write_text(text)
        return {name for name in drift_metrics if name in text}

    wait_for(drift_metrics_served, lambda served: served == set(drift_metrics), timeout_s=90, interval_s=1.0)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_explain_a_detection_from_the_page(service: VisionloopService) -> None:
    from playwright.sync_api import sync_playwright

    _frames_flowing(service)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = _browser(playwright, profile)
        page = _open(browser, f"{service.dashboard_url}/explain", "Explain a detection")
        token = page.locator('input[aria-label="API token"]')
        token.fill(TOKEN)
        token.press("Enter")
        page.get_by_role("button", name="Explain this box").click()
        page.get_by_text("evaluations").first.wait_for(timeout=120_000)  # the SHAP overlay's caption
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "dashboard-explained.png"), full_page=True)
        browser.close()
    listed = httpx.get(f"{service.api_url}/v1/explain", timeout=30).json()
    assert listed and listed[0]["state"] == "done" and listed[0]["evals"] > 0
    one = httpx.get(f"{service.api_url}/v1/explain/{listed[0]['key']}", timeout=30).json()
    assert one["overlay_png_b64"] and len(one["peak"]) == 2


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_promote_from_the_page_needs_the_token(service: VisionloopService) -> None:
    from playwright.sync_api import sync_playwright

    api = httpx.Client(base_url=service.api_url, timeout=30)
    assert api.get("/v1/models").json()["pointers"]["champion"] == "v1"
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = _browser(playwright, profile)
        page = _open(browser, f"{service.dashboard_url}/models", "Models & A/B")
        page.get_by_role("button", name="Promote v2").click()
        page.get_by_text("not sent").first.wait_for(timeout=30_000)
        token = page.locator('input[aria-label="API token"]')
        token.fill("wrong-token")
        token.press("Enter")
        page.get_by_role("button", name="Promote v2").click()
        page.get_by_text("HTTP 401").first.wait_for(timeout=30_000)
        time.sleep(1.0)
        assert api.get("/v1/models").json()["pointers"]["champion"] == "v1"  # refused twice: nothing changed
        token.fill(TOKEN)
        token.press("Enter")
        page.get_by_role("button", name="Promote v2").click()
        wait_for(lambda: api.get("/v1/models").json()["pointers"]["champion"], lambda c: c == "v2", timeout_s=60)
        page.get_by_text("Promote").first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "dashboard-promoted.png"), full_page=True)
        browser.close()
    history = api.get("/v1/models/history").json()
    assert history["changes"][-1]["action"] == "promote" and history["changes"][-1]["by"] == "operator"
    api.close()

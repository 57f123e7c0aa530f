"""``make demo``: start the service on embedded defaults, stream a generated clip through the API, report."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

import redis
from rich.console import Console
from rich.table import Table

from visionloop.cli.loadgen import LoadReport, run_clients
from visionloop.cli.service import VisionloopService
from visionloop.core.progress import working
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames

if TYPE_CHECKING:
    from visionloop.simulation.site.live import RenderedSite

SHIFT_AT = 0.3  # share of the camera demo after which cam2 moves from world A to its dusk shift B
CAMERAS_CONNECT_S = 10.0  # from the site's first frame until the service's cameras stream (registration, RTSP)


class PhaseClock:
    """Seconds per demo phase, printed at the end: where a user's minutes went (and what to shorten)."""

    def __init__(self) -> None:
        self.started = self.mark = time.monotonic()
        self.phases: list[tuple[str, float]] = []

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.phases.append((phase, now - self.mark))
        self.mark = now

    def summary(self) -> str:
        parts = ", ".join(f"{phase} {seconds:.0f} s" for phase, seconds in self.phases)
        return f"demo took {time.monotonic() - self.started:.0f} s: {parts}"


def _report_table(report: LoadReport, clients: int, frames_per_request: int) -> Table:
    table = Table(title=f"{clients} camera-like clients, {frames_per_request} frames per request")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("frames processed", f"{report.frames}"),
        ("throughput", f"{report.fps:.1f} frames/s"),
        ("request latency p50 / p99", f"{report.percentile(50):.1f} / {report.percentile(99):.1f} ms"),
        ("per-frame decode (median)", f"{report.stage_median('decode'):.2f} ms"),
        ("per-frame queue (median)", f"{report.stage_median('queue'):.2f} ms"),
        ("per-frame inference (median)", f"{report.stage_median('inference'):.2f} ms"),
        ("per-frame post (median)", f"{report.stage_median('post'):.2f} ms"),
        ("detections", f"{report.detections}"),
        ("failed requests", f"{report.errors}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def demo_site(settings: Settings, camera_seconds: float) -> RenderedSite:
    """The demo's site (rendered once, then cached under var/simulator): two cameras of world A; cam2 turns to dusk
    (B) after SHIFT_AT of the camera demo, the shift the drift monitor must flag."""
    from visionloop.cli.site import render_site
    from visionloop.simulation.site import Shift, SiteSpec
    from visionloop.simulation.site.live import RenderedSite

    shift_at = CAMERAS_CONNECT_S + SHIFT_AT * camera_seconds
    spec = SiteSpec(
        seed=101,
        cameras=2,
        seconds=camera_seconds + 2 * CAMERAS_CONNECT_S,
        shifts=(Shift(camera="cam2", at_s=shift_at, domain="B", ramp_s=5.0),),
    )
    return RenderedSite(render_site(settings, spec))


def _camera_demo(service: VisionloopService, console: Console, seconds: float, site: RenderedSite) -> None:
    """The site's cameras streamed live through the service, with a live table of their counters."""
    import httpx
    from rich.live import Live

    from visionloop.cli.cameras import camera_table
    from visionloop.core.redis_server import port_is_free

    port = next(p for p in range(18554, 18654) if port_is_free(p))
    demo_started = time.time()
    auth = {"Authorization": f"Bearer {service.settings.api.token.get_secret_value()}"}
    with (
        site.serve(port, user="demo", password=secrets.token_urlsafe(8)) as simulator,
        httpx.Client(base_url=service.api_url, headers=auth, timeout=60) as api,
    ):
        for name in site.cameras:
            api.delete(f"/v1/cameras/demo-{name}")  # left over from an interrupted demo
            response = api.post("/v1/cameras", json={"id": f"demo-{name}", "url": simulator.url(name)})
            response.raise_for_status()
        shift = site.spec.shifts[0]
        console.print(
            f"A simulated site of {len(site.cameras)} live RTSP cameras on 127.0.0.1:{port} (world A; objects come "
            f"and go; {shift.camera} turns to {shift.domain} at {shift.at_s:.0f} s of the site):"
        )
        # A live table on a terminal; in a log (where Live draws nothing until the end) a table every 5 s.
        with Live(console=console, refresh_per_second=2) if console.is_terminal else contextlib.nullcontext() as live:
            deadline, printed = time.monotonic() + seconds, 0.0
            while time.monotonic() < deadline:
                table = camera_table(api.get("/v1/cameras").json(), title="cameras (live)")
                if live is not None:
                    live.update(table)
                elif time.monotonic() - printed >= 5.0:
                    console.print(table)
                    printed = time.monotonic()
                time.sleep(1.0)
        for name in site.cameras:
            api.delete(f"/v1/cameras/demo-{name}")
    _drift_report(service, console, since_ms=int(demo_started * 1000))


def _drift_report(service: VisionloopService, console: Console, since_ms: int) -> None:
    """What the drift monitor made of the cameras: per scope, windows, the alarm and why; the alarms raised since
    ``since_ms`` (a var/ kept from an earlier demo holds older ones)."""
    import httpx

    streams = StreamNames(service.settings.redis.stream_prefix)
    client = redis.Redis.from_url(service.redis_url)
    try:
        fields: dict[bytes, bytes] = client.hgetall(streams.drift_state)  # type: ignore[assignment]
        state = {k.decode(): json.loads(v) for k, v in fields.items()}
        events: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
            streams.events, min=f"{since_ms}-0"
        )
        alarms = [json.loads(f[b"payload"]) for _, f in events if f[b"kind"] == b"drift_alarm"]
    finally:
        client.close()
    table = Table(title="drift (each camera against its first window; _all: every camera)")
    for column in ("scope", "windows", "alarm", "drifted in a row", "why (last window)"):
        table.add_column(column)
    for scope, view in sorted(state.items()):
        if scope.startswith("_") and scope != "_all":
            continue
        last = view.get("last_window") or {}
        table.add_row(
            scope,
            str(view.get("windows_evaluated", "")),
            "[red]ALARM[/]" if view.get("alarm") else "ok",
            str(view.get("consecutive", 0)),
            ", ".join(last.get("reasons") or []) or "-",
        )
    console.print(table)
    for alarm in alarms:
        console.print(f"drift alarm raised for {alarm.get('scope')} (events stream): {alarm}", highlight=False)
    dashboard = service.dashboard_url
    if dashboard:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{dashboard}/_stcore/health", timeout=5).raise_for_status()
            console.print(f"The dashboard shows it all at {dashboard} (Drift & accuracy: {dashboard}/drift).")


def demo_settings(settings: Settings) -> Settings:
    """The demo closes the loop in minutes: a challenger after 5 new labels, fine-tuned for 3 epochs with 200
    replayed images, its student on 100 pseudo-labelled frames of the cameras (the defaults, 50 labels, 10 epochs
    and 600 frames, are for real use); drift windows of 5 s (20 frames
    sampled every 0.25 s) instead of 30 s, so the shift of the second camera raises an alarm while it streams."""
    return settings.model_copy(
        update={
            "loop": settings.loop.model_copy(
                update={"min_new_labels": 5, "epochs": 3, "replay_images": 200, "pseudo_labels": 100}
            ),
            "drift": settings.drift.model_copy(update={"window_size": 20, "sample_interval_s": 0.25}),
        }
    )


def _loop_demo(service: VisionloopService, console: Console, timeout_s: float) -> None:
    """Cut a data set version of the labels so far ('visionloop labeling sync --cut'), then ask the loop for a cycle
    on it ('visionloop loop run --wait'), showing its stages while it runs, then what it decided."""
    import threading

    import httpx

    auth = {"Authorization": f"Bearer {service.settings.api.token.get_secret_value()}"}
    answer: dict[str, Any] = {}
    with httpx.Client(base_url=service.api_url, headers=auth, timeout=120) as client:
        cut = client.post("/v1/labeling/sync", params={"cut": "true"}).json().get("dataset_version")
    if cut:
        console.print(f"labels so far cut as data set version {cut}")

    def run_cycle() -> None:
        try:
            with httpx.Client(base_url=service.api_url, headers=auth, timeout=timeout_s) as client:
                answer.update(client.post("/v1/loop/run", params={"wait": "true"}).json())
        except httpx.HTTPError as exc:
            answer["error"] = str(exc)

    with httpx.Client(base_url=service.api_url, timeout=30) as api:
        cycle = threading.Thread(target=run_cycle, name="demo-loop-cycle", daemon=True)
        shown = ""
        with working(console, "The learning loop: challenger, gold gate, shadow, A/B (a few minutes)..."):
            started = time.monotonic()
            cycle.start()
            while cycle.is_alive():
                stage = api.get("/v1/loop/status").json().get("stage") or ""
                if stage and stage != shown:
                    elapsed = time.monotonic() - started
                    console.print(f"  loop [{elapsed:4.0f} s]: {stage}", markup=False, highlight=False)
                    shown = stage
                cycle.join(2.0)
        status = api.get("/v1/loop/status").json()
        history = api.get("/v1/models/history").json()
        shadow = api.get("/v1/shadow").json()
    console.print(_loop_table(status, history, shadow, answer.get("error")))
    console.print(
        "An operator promotes with 'visionloop models promote' (the A/B must say PROMOTE; --force overrides, "
        "audited), and returns with 'visionloop models rollback'."
    )


def _loop_table(status: dict[str, Any], history: dict[str, Any], shadow: dict[str, Any], error: str | None) -> Table:
    verdict, result = status.get("last_verdict"), status.get("last_result") or {}
    challenger = result.get("challenger", {})
    if challenger.get("status") == "waiting":
        challenger = {**challenger, "status": f"waiting ({challenger['new_labels']} of {challenger['min_new_labels']} "
                      "new labels)", "version": None}  # fmt: skip
    table = Table(title="the learning loop")
    table.add_column("step")
    table.add_column("outcome")
    table.add_row("challenger", f"{challenger.get('status', 'none')} {challenger.get('version') or ''}".strip())
    if challenger.get("gate"):
        gate = challenger["gate"]
        table.add_row("gold gate", f"{'passed' if gate.get('passed') else 'failed'}: {gate.get('reason', '')}".strip())
    table.add_row("pointers", f"champion {history['pointers']['champion']}, shadow {history['pointers']['shadow']}")
    comparison = shadow.get("comparison") or {}
    if comparison.get("pairs"):
        table.add_row(
            "shadow vs champion",
            f"{comparison['pairs']} mirrored frames, disagreement {comparison['disagreement_rate']:.0%}",
        )
    if verdict:
        table.add_row(f"A/B verdict ({verdict['shadow']})", f"{verdict['decision']}: {verdict['reason']}")
    else:
        table.add_row("A/B verdict", "none yet")
    if status.get("last_error") or error:
        table.add_row("error", str(status.get("last_error") or error))
    return table


def run_demo(
    settings: Settings,
    seconds: float = 10.0,
    clients: int = 4,
    frames_per_request: int = 8,
    camera_seconds: float = 40.0,
    loop_seconds: float = 600.0,
) -> int:
    from visionloop.simulation.bootstrap import run_bootstrap
    from visionloop.simulation.clips import render_clip_jpegs

    console = Console()
    clock = PhaseClock()
    settings = demo_settings(settings)
    console.print("Bootstrap model (the shipped one, checked on gold once, then cached under var/)...")
    outcome = run_bootstrap(settings, console)
    console.print(outcome.summary(settings.bootstrap.target_map50))
    clock.lap("bootstrap model")
    console.print("The simulated site (rendered once, then cached under var/simulator)...")
    site = demo_site(settings, camera_seconds)
    clock.lap("site")
    with working(console, "Starting Redis, Ray and the Serve app (about 20-30 s)..."):
        service = VisionloopService(settings).start()
    clock.lap("start")
    try:
        for endpoint in service.endpoints:
            console.print(f"  {endpoint.name:<20} {endpoint.url}")
        frames = render_clip_jpegs(frames=90, width=640, height=360, seed=7)
        console.print(
            f"Sending a clip of the synthetic world ({len(frames)} frames, 640x360, looped) for {seconds:.0f} s..."
        )
        report = run_clients(
            service.api_url,
            settings.api.token.get_secret_value(),
            frames,
            clients=clients,
            seconds=seconds,
            frames_per_request=frames_per_request,
        )
        console.print(_report_table(report, clients, frames_per_request))
        clock.lap("API clients")
        if service.label_studio_url and settings.labeling.label_studio_url is None:
            import httpx

            from visionloop.simulation.demo_labeler import DemoLabeler

            project = httpx.get(f"{service.api_url}/v1/labeling/status", timeout=30).json()["project_id"]
            with working(console, "Indexing the clip's ground truth for the simulated labeler..."):
                truth = demo_truth(settings, site, frames_seed=7)
            labeler: Any = DemoLabeler(settings, service.label_studio_url, project, truth)
        else:
            labeler = contextlib.nullcontext()
        with labeler:
            _camera_demo(service, console, camera_seconds, site)
        clock.lap("cameras")
        if hasattr(labeler, "answered"):
            console.print(f"the SIMULATED labeler answered {labeler.answered} Label Studio tasks from ground truth")
        streams = StreamNames(settings.redis.stream_prefix)
        client = redis.Redis.from_url(service.redis_url)
        console.print(f"results stream '{streams.results}' holds {client.xlen(streams.results)} entries")
        if service.label_studio_url:
            from visionloop.labeling.status import labeling_status

            time.sleep(3)  # let the labeling worker finish its round
            queue = labeling_status(client, streams)
            console.print(
                f"labeling: {queue['queued_total']} frames selected ({queue['by_reason']}), {queue['imported']} "
                f"in Label Studio at {service.label_studio_url} (project '{settings.labeling.project_title}')"
            )
            from visionloop.learning.datasets import DatasetStore

            versions = DatasetStore(settings.var.datasets).versions(settings.labeling.dataset_name)
            console.print(
                f"{queue['labelled']} labels back as data; data set versions cut from them: "
                + (", ".join(v.ref for v in versions) or "none yet")
            )
            if queue["labelled"] and settings.loop.enabled:
                _loop_demo(service, console, loop_seconds)
                clock.lap("learning loop")
        client.close()
    finally:
        with working(console, "Shutting down..."):
            service.stop()
    console.print("[green]demo finished; everything stopped.[/]")
    clock.lap("stop")
    console.print(clock.summary(), highlight=False)
    return 0 if report.frames and not report.errors else 1


def demo_truth(settings: Settings, site: RenderedSite, frames_seed: int) -> Any:
    """What the demo's simulated labeler knows: the site's cameras by their frame clocks, and the API clip's frames
    by their look."""
    from visionloop.simulation.simulated_labeler import GroundTruthIndex
    from visionloop.simulation.site.truth import FirstKnown, SiteTruth
    from visionloop.simulation.world import load_domains
    from visionloop.simulation.world.video import world_frames

    clip = GroundTruthIndex()
    clip.add_world_frames(world_frames(load_domains(settings.domains_file())["A"], frames_seed, 90, 360, 640))
    return FirstKnown([SiteTruth(site, {f"demo-{name}": name for name in site.cameras}), clip])

"""The whole product deployed by Serve's own tool, as a RayService deploys it: ``serve run`` on the manifests' Serve
config (serveConfigV2), no ``visionloop up`` anywhere.

A frame is detected, a doubtful frame reaches Label Studio, labels come back as a data set version and the loop
trains a challenger; a killed worker comes back; stopping ``serve run`` ends every worker and Label Studio.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import psutil
import pytest
import redis
import yaml

from tests.conftest import free_port, wait_for
from tests.integration.test_labeling_service import REGION
from tests.integration.test_loop_worker import TINY_LOOP
from tests.unit.test_manifests import serve_config
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames
from visionloop.labeling.label_studio_client import LabelStudioClient
from visionloop.labeling.label_studio_server import LabelStudioAccount
from visionloop.simulation.clips import render_clip

pytestmark = pytest.mark.integration
TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class ServeRun:
    """``serve run <config>`` in its own session, with the environment a Ray pod would give it."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        serve = Path(sys.executable).with_name("serve")
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(serve), "run", str(config)], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tree(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def actor_processes(self, title: str) -> list[psutil.Process]:
        """The processes of this tree running a Ray actor of class ``title`` (Ray titles them ``ray::Class``)."""
        found = []
        for process in self.tree():
            try:
                if " ".join(process.cmdline()).startswith(f"ray::{title}"):
                    found.append(process)
            except psutil.Error:
                continue
        return found

    def stop(self, timeout_s: float = 180.0) -> int | None:
        """Ctrl-C, as an operator would (``serve run`` then shuts Serve down); killed if it does not end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
                return None
        return self.process.returncode

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _config(tmp_path: Path, port: int) -> Path:
    """The manifests' Serve config, listening on loopback at ``port`` instead of the pod's 0.0.0.0:8000."""
    config: dict[str, Any] = serve_config()
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    path = tmp_path / "serve-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _environment(var_dir: Path, redis_url: str, api_port: int, label_studio_port: int) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("VISIONLOOP_", "RAY_"))}
    settings = {
        "PATHS__VAR_DIR": str(var_dir),
        "REDIS__URL": redis_url,
        "API__HOST": "127.0.0.1",
        "API__PORT": str(api_port),
        "API__TOKEN": TOKEN,
        "RAY__METRICS_EXPORT_PORT": str(free_port()),
        "LABELING__ENABLED": "true",
        "LABELING__LABEL_STUDIO_PORT": str(label_studio_port),
        "LABELING__STRATUM_S": "0",  # each frame judged as it comes...
        "LABELING__RANDOM_RATE": "0",  # ...by the selector (the loop trains on picked frames, never random ones)...
        "LABELING__SELECT_THRESHOLD": "0",  # ...which picks every frame of the untrained stand-in model
        "LABELING__CUT_EVERY": "2",
        "LABELING__RECONCILE_INTERVAL_S": "1",
        "LOOP__ENABLED": "true",
        **TINY_LOOP,
        "LOOP__MIN_NEW_LABELS": "2",
        "WEBRTC__ENABLED": "false",
        "DASHBOARD__ENABLED": "false",
        "EXPLAIN__ENABLED": "false",
        "DRIFT__ENABLED": "false",
    }
    return {
        **keep,
        **{f"VISIONLOOP_{key}": value for key, value in settings.items()},
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }


@pytest.fixture
def served(var_dir: Path, tmp_path: Path) -> Iterator[tuple[ServeRun, httpx.Client, str, int]]:
    with EmbeddedRedis(free_port(), tmp_path / "redis") as server:
        api_port, label_studio_port = free_port(), free_port()
        run = ServeRun(
            _config(tmp_path, api_port),
            _environment(var_dir, server.url, api_port, label_studio_port),
            tmp_path / "serve-run.log",
        )
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60)
        try:

            def labeling_ready() -> bool:
                """Label Studio up and the project made (the worker's actor exists before that)."""
                try:
                    return bool(api.get("/v1/labeling/status").json().get("project_id"))
                except (httpx.HTTPError, ValueError):
                    return False

            assert run.process.poll() is None, run.log_tail()
            assert wait_for(labeling_ready, timeout_s=420, interval_s=1.0), run.log_tail()
            yield run, api, server.url, label_studio_port
        finally:
            api.close()
            run.stop()


def _label_studio_answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_run_deploys_the_whole_product(served: tuple[ServeRun, httpx.Client, str, int], var_dir: Path) -> None:
    run, api, redis_url, label_studio_port = served
    health = api.get("/v1/health").json()
    assert health["components"]["learning_loop"] == "ready" and health["components"]["camera_manager"] == "ready"

    # A frame detected, and a doubtful one on its way to Label Studio.
    images = [render_clip(frames=1, width=320, height=180, seed=60 + i, domain="ABC"[i])[0] for i in range(3)]
    for index, image in enumerate(images):
        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        answer = api.post(
            "/v1/detect", params={"camera_id": "k8s"}, headers=AUTH, files={"image": (f"{index}.jpg", jpeg)}
        )
        assert answer.status_code == 200 and "detections" in answer.json(), answer.text
    client = LabelStudioClient(f"http://127.0.0.1:{label_studio_port}", LabelStudioAccount().token)
    project = api.get("/v1/labeling/status").json()["project_id"]
    tasks = wait_for(lambda: (t := client._query(project, [])) and len(t) == 3 and t, timeout_s=90, interval_s=0.5)

    # Labels back as a data set version, and the loop trains a challenger on it.
    for task in tasks[:2]:
        client.annotate(task["id"], [REGION])
    client.close()
    events = redis.Redis.from_url(redis_url)
    stream = StreamNames().events

    def kinds() -> set[str]:
        return {fields[b"kind"].decode() for _, fields in events.xrange(stream)}

    assert wait_for(lambda: "dataset_version_created" in kinds(), timeout_s=90, interval_s=0.5), run.log_tail()
    assert (var_dir / "datasets" / "labels" / "v1" / "manifest.json").is_file()
    registered = wait_for(lambda: {"challenger_registered", "loop_failed"} & kinds(), timeout_s=420, interval_s=1.0)
    assert registered == {"challenger_registered"}, (api.get("/v1/loop/status").json(), run.log_tail())

    # A killed worker comes back (its Label Studio dies with it and comes back too).
    (labeling,) = run.actor_processes("LabelingWorker")
    labeling.kill()
    labeling.wait(30)
    assert wait_for(
        lambda: [p.pid for p in run.actor_processes("LabelingWorker")],
        lambda pids: bool(pids) and labeling.pid not in pids,
        timeout_s=60,
    )
    assert wait_for(
        lambda: api.get("/v1/labeling/status"),
        lambda r: r.status_code == 200 and r.json().get("project_id") == project,
        timeout_s=300,
        interval_s=1.0,
    ), run.log_tail()
    assert _label_studio_answers(label_studio_port)

    # Ctrl-C on `serve run` ends every worker, and Label Studio with the labeling worker.
    tree = run.tree()
    assert run.actor_processes("LoopWorker") and run.actor_processes("CameraManager")
    run.stop()
    assert psutil.wait_procs(tree, timeout=60)[1] == [], "processes outlived `serve run`"
    assert not _label_studio_answers(label_studio_port)

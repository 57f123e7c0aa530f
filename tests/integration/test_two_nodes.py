"""A real two-node Ray cluster (`ray start` twice on 127.0.0.1): the Detector runs on the inference node, the
cameras on the edge node, frames cross between them, and losing the inference node mid-stream costs seconds, not
the cameras: they keep their state, health says degraded, and results resume when the node returns."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import make_settings
from tests.reliability import record_reliability
from visionloop.cli.cluster_demo import EDGE, INFER, ClusterDemo

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_two_nodes_place_the_parts_and_survive_losing_the_inference_node(module_var_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(module_var_dir)
    report = ClusterDemo(settings, Console(), tmp_path).run(stream_s=5.0, down_s=8.0)
    figures = report.to_dict()
    record_reliability("two_nodes", {k: v for k, v in figures.items() if k != "placement"})
    detectors = [p for p in report.placement if "Detector" in p.actor]
    cameras = [p for p in report.placement if "CameraHost" in p.actor or "CameraWorker" in p.actor]
    assert detectors and all(p.node_resources == (INFER,) for p in detectors), report.placement
    assert cameras and all(p.node_resources == (EDGE,) for p in cameras), report.placement
    # The Workers replica owns the camera manager: on the inference node, losing it would take the cameras along.
    workers = [p for p in report.placement if "Workers" in p.actor]
    assert workers and all(p.node_resources == (EDGE,) for p in workers), report.placement
    assert len({p.node_id for p in report.placement}) == 2, report.placement  # two nodes really ran actors
    assert report.health_while_down == "degraded"
    assert set(report.cameras_while_down) == {"cam1", "cam2"}  # the cameras kept their state
    assert report.resumed, figures
    assert all(seconds > 0 for seconds in report.seconds_without_results.values())

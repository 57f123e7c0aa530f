"""The Prometheus alerting rules and the Grafana dashboard: promtool checks and unit-tests the rules, every rule is
tested firing and quiet, Prometheus in compose loads them, and every Grafana query is valid PromQL."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "src" / "visionloop" / "dashboards" / "alerts.yml"
RULE_TESTS = ROOT / "src" / "visionloop" / "dashboards" / "alerts_test.yml"
GRAFANA_JSON = ROOT / "docker" / "grafana" / "dashboards" / "visionloop.json"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: install the Debian package 'prometheus' (make test does)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_tested_firing_and_quiet() -> None:
    names = alert_names()
    assert set(names) >= {
        "DriftPersistent",
        "LatencyP99OverSLO",
        "CameraDown",
        "ReviewDeadLetterGrowing",
        "RandomArmAccuracyDrop",
        "ShadowFramesDropped",
    }
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for name in names:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name} is never tested firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name} is never tested quiet"


def test_a_broken_threshold_fails_the_rule_tests(tmp_path: Path) -> None:
    """The unit tests can fail: a latency rule at 600 ms no longer fires on a 496 ms p99."""
    (tmp_path / "alerts.yml").write_text(RULES.read_text().replace("> 250", "> 600"))
    shutil.copy(RULE_TESTS, tmp_path / "alerts_test.yml")
    result = promtool("test", "rules", str(tmp_path / "alerts_test.yml"))
    assert result.returncode != 0
    assert "LatencyP99OverSLO" in result.stdout + result.stderr


def test_compose_prometheus_loads_the_rule_file() -> None:
    prometheus = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    (rule_file,) = prometheus["rule_files"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert f"../src/visionloop/dashboards/alerts.yml:{rule_file}:ro" in mounts


def grafana_queries() -> list[str]:
    dashboard: dict[str, Any] = json.loads(GRAFANA_JSON.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_grafana_queries_are_valid_promql(tmp_path: Path) -> None:
    queries = grafana_queries()
    assert len(queries) >= 15
    rules = [{"record": f"visionloop:query_{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_points_at_the_dashboard_and_the_datasource() -> None:
    grafana = ROOT / "docker" / "grafana"
    provider = yaml.safe_load((grafana / "provisioning" / "dashboards" / "visionloop.yaml").read_text())
    datasource = yaml.safe_load((grafana / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    (path,) = [p["options"]["path"] for p in provider["providers"]]
    assert f"./grafana/dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]
    uids = {d["uid"] for d in datasource["datasources"]}
    dashboard = json.loads(GRAFANA_JSON.read_text())
    used = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert used == uids
    metrics_in_rules = {"ray_visionloop_camera_latency_ms_bucket", "ray_visionloop_shadow_frames_total"}
    assert all(any(m in q for q in grafana_queries()) for m in metrics_in_rules)

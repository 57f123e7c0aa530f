"""scripts/audit_dependencies.py decides honestly: findings against the baseline, offline runs, stale entries.

pip-audit's JSON and PyPI's project pages are samples here (the network is never used); the index pages are served
by a real HTTP server on loopback.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from visionloop.core.config import PACKAGE_ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "audit_dependencies", PACKAGE_ROOT / "scripts" / "audit_dependencies.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


audit = _load()
TODAY = date(2026, 12, 1)
PINS = [audit.Pin("aiohttp", "3.9.0"), audit.Pin("jsonschema-rs", "0.60.3"), audit.Pin("numpy", "2.4.6")]

# pip-audit -f json of a lock where the service answered: one vulnerable pin, one clean, one skipped.
ONLINE = {
    "dependencies": [
        {
            "name": "aiohttp",
            "version": "3.9.0",
            "vulns": [
                {
                    "id": "PYSEC-2024-24",
                    "fix_versions": ["3.9.2"],
                    "aliases": ["CVE-2024-23334", "GHSA-5h86-8mv2-jq9f"],
                },
            ],
        },
        {"name": "jsonschema_rs", "version": "0.60.3", "vulns": []},
        {"name": "numpy", "skip_reason": "Dependency not found on PyPI and could not be audited: numpy (2.4.6)"},
    ],
    "fixes": [],
}
# The same lock where the service could not be reached (what this machine gets): every pin skipped.
OFFLINE = {
    "dependencies": [
        {
            "name": p.name,
            "skip_reason": f"Dependency not found on PyPI and could not be audited: {p.name} ({p.version})",
        }
        for p in PINS
    ],
    "fixes": [],
}


def _accept(vuln_id: str, package: str = "aiohttp", review_by: date = date(2027, 3, 1)) -> Any:
    return audit.Accepted(vuln_id, package, "only the static file route is affected; we serve none", review_by)


def _decide(report: dict[str, Any], baseline: list[Any], strict: bool = False) -> tuple[int, Any]:
    result = audit.from_pip_audit(report, PINS)
    verdict = audit.judge(result, baseline, TODAY)
    return audit.report(result, verdict, strict, Path("baseline.toml")), verdict


def test_a_finding_not_in_the_baseline_fails_naming_package_version_id_and_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, verdict = _decide(ONLINE, [])
    out = capsys.readouterr().out
    assert code == 1
    assert [v.id for v in verdict.new] == ["PYSEC-2024-24"]
    assert "VULNERABLE: aiohttp==3.9.0: PYSEC-2024-24" in out
    assert "fixed in: 3.9.2" in out


def test_a_baseline_entry_accepts_the_finding_by_any_alias(capsys: pytest.CaptureFixture[str]) -> None:
    code, verdict = _decide(ONLINE, [_accept("GHSA-5h86-8mv2-jq9f")])
    assert code == 0
    assert not verdict.new
    assert "accepted until 2027-03-01: aiohttp==3.9.0: PYSEC-2024-24" in capsys.readouterr().out


def test_an_entry_for_another_package_accepts_nothing() -> None:
    code, verdict = _decide(ONLINE, [_accept("PYSEC-2024-24", package="numpy")])
    assert code == 1
    assert [v.package for v in verdict.new] == ["aiohttp"]


def test_an_entry_past_its_review_date_fails_again(capsys: pytest.CaptureFixture[str]) -> None:
    code, verdict = _decide(ONLINE, [_accept("PYSEC-2024-24", review_by=date(2026, 11, 30))])
    assert code == 1
    assert len(verdict.expired) == 1
    assert "REVIEW OVERDUE (accepted until 2026-11-30)" in capsys.readouterr().out


def test_an_entry_matching_no_finding_of_an_audited_package_is_stale(capsys: pytest.CaptureFixture[str]) -> None:
    baseline = [_accept("PYSEC-2024-24"), _accept("GHSA-gone-gone-gone", package="jsonschema-rs")]
    code, verdict = _decide(ONLINE, baseline)
    assert code == 0  # a warning unless --strict
    assert [e.id for e in verdict.stale] == ["GHSA-gone-gone-gone"]
    assert "STALE baseline entry" in capsys.readouterr().out
    strict_code, _ = _decide({**ONLINE, "dependencies": ONLINE["dependencies"][:2]}, baseline, strict=True)
    assert strict_code == 1


def test_an_entry_for_a_package_that_was_not_audited_is_unverified_not_stale() -> None:
    _, verdict = _decide(OFFLINE, [_accept("PYSEC-2024-24")])
    assert not verdict.stale
    assert [e.id for e in verdict.unverified] == ["PYSEC-2024-24"]


def test_offline_passes_but_says_nothing_was_audited_and_strict_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, verdict = _decide(OFFLINE, [])
    out = capsys.readouterr().out
    assert code == 0
    assert not verdict.new
    assert "audited 0 of 3 locked packages" in out
    assert "NOT AUDITED: the advisory service could not be reached (3 of 3 packages skipped)" in out
    strict_code, _ = _decide(OFFLINE, [], strict=True)
    assert strict_code == 1


def test_one_package_absent_from_pypi_is_not_called_an_unreachable_service(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _decide(ONLINE, [_accept("PYSEC-2024-24")])
    out = capsys.readouterr().out
    assert code == 0
    assert "NOT AUDITED: some packages are not on PyPI (1 of 3 packages skipped)" in out
    assert "numpy==2.4.6" in out


def test_a_pip_audit_that_cannot_run_leaves_every_pin_unaudited(tmp_path: Path) -> None:
    lock = tmp_path / "broken.lock"
    lock.write_text("not a requirement ===\n")
    result = audit.audit_lock(lock, [audit.Pin("thing", "1.0")], timeout_s=60)
    assert not result.audited
    assert result.skipped[("thing", "1.0")].startswith("pip-audit failed (exit 1): ERROR")
    assert audit.why_unaudited(result) == "pip-audit did not run to the end"


def test_the_index_page_audits_only_the_latest_release_and_merges_aliases() -> None:
    vulns = [
        {"id": "PYSEC-2026-1325", "aliases": ["GHSA-wj6h-64fc-37mp"], "fixed_in": [], "withdrawn": None},
        {"id": "GHSA-wj6h-64fc-37mp", "aliases": ["PYSEC-2026-1325"], "fixed_in": []},
        {"id": "GHSA-with-draw-nnnn", "aliases": [], "fixed_in": ["1.0"], "withdrawn": "2026-01-02T00:00:00Z"},
    ]
    page = {"info": {"version": "0.19.2"}, "vulnerabilities": vulns}
    latest = audit.from_index_page(("ecdsa", "0.19.2"), page)
    assert latest.audited == {("ecdsa", "0.19.2"): "index"}
    assert [v.id for v in latest.findings] == ["PYSEC-2026-1325"]
    older = audit.from_index_page(("ecdsa", "0.19.1"), page)
    assert not older.audited and not older.findings
    assert older.skipped == {("ecdsa", "0.19.1"): audit.NOT_LATEST}


INDEX_PAGES: dict[str, dict[str, Any]] = {
    "/ecdsa/json": {"info": {"version": "0.19.2"}, "vulnerabilities": [{"id": "GHSA-wj6h-64fc-37mp"}]},
    "/requests/json": {"info": {"version": "2.34.2"}, "vulnerabilities": []},
}


class _Index(BaseHTTPRequestHandler):
    """A package index's project pages on loopback; any other project is a 404."""

    def do_GET(self) -> None:
        page = INDEX_PAGES.get(self.path)
        body = json.dumps(page).encode()
        self.send_response(200 if page else 404)
        self.send_header("Content-Length", str(len(body) if page else 0))
        self.end_headers()
        if page:
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def index_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_pins_unknown_to_the_service_are_audited_from_the_index_when_latest(index_url: str) -> None:
    keys = [("ecdsa", "0.19.2"), ("requests", "2.31.0"), ("gone", "1.0")]
    result = audit.audit_from_index(keys, index_url, time.monotonic() + 30)
    assert result.audited == {("ecdsa", "0.19.2"): "index"}
    assert [(v.package, v.id, v.source) for v in result.findings] == [("ecdsa", "GHSA-wj6h-64fc-37mp", "index")]
    assert result.skipped[("requests", "2.31.0")] == audit.NOT_LATEST
    assert "404" in result.skipped[("gone", "1.0")]


def test_a_baseline_entry_without_a_reason_or_a_date_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[[accepted]]\nid = "GHSA-x"\npackage = "Jsonschema_RS"\nreason = "r"\nreview_by = 2027-01-31\n')
    assert audit.load_baseline(good) == [audit.Accepted("GHSA-x", "jsonschema-rs", "r", date(2027, 1, 31))]
    for bad in ('reason = "r"\nreview_by = "soon"', "review_by = 2027-01-31"):
        path = tmp_path / "bad.toml"
        path.write_text(f'[[accepted]]\nid = "GHSA-x"\npackage = "p"\n{bad}\n')
        with pytest.raises(audit.BaselineError):
            audit.load_baseline(path)


def test_the_project_baseline_parses() -> None:
    assert audit.BASELINE.is_file()
    entries = audit.load_baseline(audit.BASELINE)
    assert all(entry.reason and entry.review_by for entry in entries)

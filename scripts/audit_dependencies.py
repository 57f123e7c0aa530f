#!/usr/bin/env python3
"""Audit the locked packages for known vulnerabilities, and never claim an audit that did not happen.

pip-audit asks PyPI for the advisories of each exact pin. Where that service cannot answer (a machine that reaches
PyPI only through a mirror gets "not found" for every pin), a pin that is its project's latest release is audited
from the project's own index page instead: PyPI lists the advisories of the latest release there, from the same
database. Anything still unaudited is printed as NOT AUDITED; that passes unless ``--strict`` (a machine with
internet should use it). A finding fails unless security/pip-audit-baseline.toml accepts it, with a reason, until a
review date; an accepted entry that no longer matches a finding is reported as stale.

    .venv/bin/python scripts/audit_dependencies.py [requirements.lock src/visionloop/labeling/label-studio.lock]
        [--strict]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import ssl
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = (ROOT / "requirements.lock", ROOT / "src" / "visionloop" / "labeling" / "label-studio.lock")
BASELINE = ROOT / "security" / "pip-audit-baseline.toml"
INDEX_JSON = "https://pypi.org/pypi"
NOT_ON_INDEX = "Dependency not found on PyPI"
# More than this share of pins skipped as "not found" means the service is unreachable, not that packages are absent.
UNREACHABLE_SHARE = 0.5
FETCH_THREADS = 8
NOT_LATEST = "not the index's latest release, the only one whose advisories could be read"
REQUEST_TIMEOUT_S = 20.0

Key = tuple[str, str]  # (canonical name, version)


def canonical(name: str) -> str:
    """PEP 503 name, so ``jsonschema_rs`` in a lock and ``jsonschema-rs`` in a report are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str
    version: str


@dataclass(frozen=True)
class Vuln:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...] = ()
    fix_versions: tuple[str, ...] = ()
    source: str = "pip-audit"

    @property
    def ids(self) -> frozenset[str]:
        return frozenset((self.id, *self.aliases))

    def describe(self) -> str:
        fix = ", ".join(self.fix_versions) or "none yet"
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"{self.package}=={self.version}: {self.id}{aliases}; fixed in: {fix} [{self.source}]"


@dataclass
class Audit:
    """What was learned: the findings, which pins were audited (and how), and why the others were not."""

    findings: list[Vuln] = field(default_factory=list)
    audited: dict[Key, str] = field(default_factory=dict)
    skipped: dict[Key, str] = field(default_factory=dict)
    service_down: bool = False  # the advisory service failed as a whole, not for a few packages absent from PyPI

    @property
    def total(self) -> int:
        return len(self.audited) + len(self.skipped)

    def add(self, vuln: Vuln) -> None:
        """Keep one finding per advisory: PyPI lists a PYSEC id and its GHSA alias as two entries."""
        same = (v for v in self.findings if (v.package, v.version) == (vuln.package, vuln.version))
        if not any(v.ids & vuln.ids for v in same):
            self.findings.append(vuln)

    def merge(self, other: Audit) -> None:
        self.service_down |= other.service_down
        for vuln in other.findings:
            self.add(vuln)
        self.audited.update(other.audited)
        for key in other.audited:
            self.skipped.pop(key, None)
        self.skipped.update({k: r for k, r in other.skipped.items() if k not in self.audited})


@dataclass(frozen=True)
class Accepted:
    id: str
    package: str
    reason: str
    review_by: date


@dataclass
class Verdict:
    new: list[Vuln] = field(default_factory=list)
    accepted: list[tuple[Vuln, Accepted]] = field(default_factory=list)
    expired: list[tuple[Vuln, Accepted]] = field(default_factory=list)
    stale: list[Accepted] = field(default_factory=list)
    unverified: list[Accepted] = field(default_factory=list)


class BaselineError(ValueError):
    """The baseline file is malformed: an entry without a reason or a review date accepts nothing."""


def read_pins(lock: Path) -> list[Pin]:
    pins = []
    for raw in lock.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins.append(Pin(canonical(name), version.strip()))
    return pins


# ---- pip-audit -------------------------------------------------------------------------------------------------


def from_pip_audit(report: dict[str, Any], pins: Sequence[Pin]) -> Audit:
    """Read pip-audit's JSON (``-f json``) for one lock; versions come from the lock (skips carry none)."""
    versions = {pin.name: pin.version for pin in pins}
    skipped = sum(1 for dep in report.get("dependencies", []) if "skip_reason" in dep)
    audit = Audit(service_down=skipped > UNREACHABLE_SHARE * len(pins))
    for dep in report.get("dependencies", []):
        name = canonical(str(dep["name"]))
        key = (name, str(dep.get("version") or versions.get(name, "?")))
        if "skip_reason" in dep:
            audit.skipped[key] = str(dep["skip_reason"])
            continue
        audit.audited[key] = "pip-audit"
        for vuln in dep.get("vulns", []):
            aliases = tuple(str(a) for a in vuln.get("aliases", []))
            fixes = tuple(str(f) for f in vuln.get("fix_versions", []))
            audit.add(Vuln(name, key[1], str(vuln["id"]), aliases, fixes))
    return audit


def run_pip_audit(lock: Path, timeout_s: float) -> dict[str, Any] | str:
    """pip-audit's JSON report for ``lock``, or why there is none (a crash, an unreachable service, a timeout)."""
    command = [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip"]
    command += ["--format", "json", "--progress-spinner", "off", "--timeout", str(int(REQUEST_TIMEOUT_S))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(timeout_s, 1.0), check=False)
    except subprocess.TimeoutExpired:
        return f"pip-audit did not finish within {timeout_s:.0f} s"
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return f"pip-audit failed (exit {done.returncode}): {error_line(done.stderr)}"
    return report if isinstance(report, dict) else f"pip-audit printed no report: {done.stdout[:200]}"


def error_line(stderr: str) -> str:
    """pip-audit's own ERROR line if it logged one (its last line may be a caret), else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()] or ["no output"]
    return next((line for line in lines if line.startswith("ERROR")), lines[-1])


def audit_lock(lock: Path, pins: Sequence[Pin], timeout_s: float) -> Audit:
    report = run_pip_audit(lock, timeout_s)
    if isinstance(report, str):
        return Audit(skipped={(p.name, p.version): report for p in pins}, service_down=True)
    return from_pip_audit(report, pins)


# ---- the index's page of a project: advisories of its latest release -------------------------------------------


def from_index_page(key: Key, page: dict[str, Any]) -> Audit:
    """Audit ``key`` from its project's JSON page, which lists the advisories of the latest release only."""
    latest = str(page.get("info", {}).get("version", ""))
    if not same_version(latest, key[1]):
        return Audit(skipped={key: NOT_LATEST})
    audit = Audit(audited={key: "index"})
    for v in page.get("vulnerabilities", []):
        if not v.get("withdrawn"):
            aliases = tuple(str(alias) for alias in v.get("aliases") or ())
            fixes = tuple(str(fix) for fix in v.get("fixed_in") or ())
            audit.add(Vuln(key[0], key[1], str(v["id"]), aliases, fixes, source="index"))
    return audit


def same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def fetch_page(base_url: str, name: str, context: ssl.SSLContext) -> dict[str, Any]:
    url = f"{base_url.rstrip('/')}/{name}/json"
    # The scheme is checked to be http(s) by index_url(); no file: or custom scheme reaches here.
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S, context=context) as response:  # noqa: S310  # nosec B310
        page = json.loads(response.read())
    return page if isinstance(page, dict) else {}


def audit_from_index(keys: Iterable[Key], base_url: str, deadline: float) -> Audit:
    """Fetch each project's page in parallel, within ``deadline`` (a ``time.monotonic()`` instant)."""
    audit = Audit()
    context = ssl.create_default_context()  # one context: loading the CA bundle per request costs ~40 ms of CPU
    pool = concurrent.futures.ThreadPoolExecutor(FETCH_THREADS)
    futures = {pool.submit(fetch_page, base_url, key[0], context): key for key in keys}
    try:
        for future in concurrent.futures.as_completed(futures, timeout=max(deadline - time.monotonic(), 0.1)):
            key = futures[future]
            try:
                audit.merge(from_index_page(key, future.result()))
            except Exception as exc:  # an unreadable or malformed page leaves the package unaudited, nothing worse
                audit.skipped[key] = f"the index's page could not be read: {exc}"
    except concurrent.futures.TimeoutError:
        pass
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for key in futures.values():
        if key not in audit.audited and key not in audit.skipped:
            audit.skipped[key] = "the time budget ran out before the index answered"
    return audit


# ---- baseline and verdict --------------------------------------------------------------------------------------


def load_baseline(path: Path) -> list[Accepted]:
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get("accepted", [])
    accepted = []
    for number, entry in enumerate(entries, start=1):
        missing = [k for k in ("id", "package", "reason", "review_by") if not entry.get(k)]
        if missing or not isinstance(entry["review_by"], date):
            raise BaselineError(f"{path}: entry {number} needs id, package, reason and review_by (a date): {entry}")
        accepted.append(
            Accepted(str(entry["id"]), canonical(str(entry["package"])), str(entry["reason"]), entry["review_by"])
        )
    return accepted


def judge(audit: Audit, baseline: Sequence[Accepted], today: date) -> Verdict:
    """Sort findings into new, accepted and expired; baseline entries that match none are stale or unverified."""
    verdict = Verdict()
    used: set[Accepted] = set()
    for vuln in audit.findings:
        match = next((a for a in baseline if a.package == vuln.package and a.id in vuln.ids), None)
        if match is None:
            verdict.new.append(vuln)
            continue
        used.add(match)
        (verdict.accepted if match.review_by >= today else verdict.expired).append((vuln, match))
    audited_packages = {name for name, _ in audit.audited}
    unaudited_packages = {name for name, _ in audit.skipped}
    for entry in baseline:
        if entry in used:
            continue
        if entry.package in unaudited_packages and entry.package not in audited_packages:
            verdict.unverified.append(entry)  # cannot tell: its package was not audited this time
        else:
            verdict.stale.append(entry)  # audited without that finding, or no longer locked at all
    return verdict


def report(audit: Audit, verdict: Verdict, strict: bool, baseline_path: Path) -> int:
    """Print what was and was not audited and the verdict; the exit status of the script."""
    by_source = {s: sum(1 for v in audit.audited.values() if v == s) for s in ("pip-audit", "index")}
    print(
        f"audited {len(audit.audited)} of {audit.total} locked packages (pip-audit {by_source['pip-audit']}, "
        f"index latest-release advisories {by_source['index']}): {len(audit.findings)} known vulnerabilities "
        f"among them, {len(verdict.accepted)} accepted in {baseline_path.name}"
    )
    for vuln, entry in verdict.accepted:
        print(f"  accepted until {entry.review_by}: {vuln.describe()}")
    failed = print_failures(verdict)
    failed |= print_doubts(audit, verdict, strict)
    return 1 if failed else 0


def print_failures(verdict: Verdict) -> bool:
    for vuln in verdict.new:
        print(f"VULNERABLE: {vuln.describe()}")
    for vuln, entry in verdict.expired:
        print(f"REVIEW OVERDUE (accepted until {entry.review_by}): {vuln.describe()}")
    if verdict.new or verdict.expired:
        print("upgrade the pin (make lock), or accept it with a reason and a review date in the baseline")
    return bool(verdict.new or verdict.expired)


def why_unaudited(audit: Audit) -> str:
    if any(reason.startswith("pip-audit") for reason in audit.skipped.values()):
        return "pip-audit did not run to the end"
    return "the advisory service could not be reached" if audit.service_down else "some packages are not on PyPI"


def print_doubts(audit: Audit, verdict: Verdict, strict: bool) -> bool:
    """Stale entries and unaudited packages: warnings, or failures with ``--strict``."""
    for entry in verdict.stale:
        print(f"STALE baseline entry (matches no finding; remove it): {entry.package} {entry.id}")
    for entry in verdict.unverified:
        print(f"unverified baseline entry ({entry.package} was not audited): {entry.id}")
    if audit.skipped:
        print(f"NOT AUDITED: {why_unaudited(audit)} ({len(audit.skipped)} of {audit.total} packages skipped)")
        by_reason: dict[str, list[str]] = {}
        for (name, version), reason in sorted(audit.skipped.items()):
            by_reason.setdefault(reason, []).append(f"{name}=={version}")
        for reason, pins in by_reason.items():
            print(
                textwrap.fill(
                    ", ".join(pins), width=118, initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False
                )
            )
            print(f"    ({reason})")
        if not strict:
            print("(this passes without --strict; on a machine with internet run with --strict)")
    return strict and bool(audit.skipped or verdict.stale)


# ---- main ------------------------------------------------------------------------------------------------------


def index_url(value: str) -> str:
    if urlsplit(value).scheme not in ("https", "http"):
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("locks", nargs="*", type=Path, default=list(LOCKS))
    parser.add_argument("--strict", action="store_true", help="fail when a package could not be audited")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--index-json", type=index_url, default=INDEX_JSON, help="base of /<project>/json pages")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the audit (plus one request)")
    return parser.parse_args(argv)


def run_audit(locks: Sequence[Path], index_json: str, deadline: float) -> Audit:
    """pip-audit on every lock at once (each waits on the network), then the index pages for what it could not do."""
    audit = Audit()
    print(f"pip-audit: {', '.join(lock.name for lock in locks)}...", flush=True)
    with concurrent.futures.ThreadPoolExecutor(max(len(locks), 1)) as pool:
        lock_audits = pool.map(lambda lock: audit_lock(lock, read_pins(lock), deadline - time.monotonic()), locks)
        for lock_audit in lock_audits:
            audit.merge(lock_audit)
    retry = [key for key, reason in audit.skipped.items() if reason.startswith(NOT_ON_INDEX)]
    if retry:
        print(f"{len(retry)} pins unknown to the advisory service; reading their projects' index pages...", flush=True)
        audit.merge(audit_from_index(retry, index_json, deadline))
    return audit


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        baseline = load_baseline(args.baseline)
    except (BaselineError, tomllib.TOMLDecodeError) as exc:
        print(f"bad baseline: {exc}", file=sys.stderr)
        return 2
    audit = run_audit(args.locks, args.index_json, time.monotonic() + args.timeout)
    return report(audit, judge(audit, baseline, date.today()), args.strict, args.baseline)


if __name__ == "__main__":
    sys.exit(main())

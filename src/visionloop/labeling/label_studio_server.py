"""Run a local Label Studio for the demo and the tests: its own venv, loopback only, no telemetry, fast starts.

Label Studio pins Django and an old redis client, so it lives in its own virtual environment and visionloop
talks to it only over HTTP. A fresh data directory costs ~90 s of database migrations; a pre-migrated template
(built once per Label Studio version, with our user, token and legacy-token organisation) is copied instead,
which brings a start down to seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from visionloop.core.errors import VisionloopError
from visionloop.core.processes import ChildProcess, ProcessStartError
from visionloop.core.redis_server import port_is_free

LABEL_STUDIO_VERSION = "1.23.2"
# Exact pins (name==version from the index) of Label Studio's venv, made by 'make lock-label-studio'.
LABEL_STUDIO_LOCK = Path(__file__).with_name("label-studio.lock")


def lock_digest(lock: Path = LABEL_STUDIO_LOCK) -> str:
    """A short hash of the lock: a changed lock gets a venv of its own instead of reusing a stale one."""
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:12]


class LabelStudioError(VisionloopError):
    """Label Studio could not be installed or started."""


@dataclass(frozen=True)
class LabelStudioAccount:
    username: str = "visionloop@example.com"
    password: str = "visionloop-labels"  # noqa: S105 (a local, loopback-only development account)
    token: str = "visionloop-local-token-0001"  # noqa: S105


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "visionloop"


class LabelStudioServer:
    """One Label Studio process on 127.0.0.1, started from a template data dir, stopped by its PID."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        files_root: Path,
        account: LabelStudioAccount | None = None,
        cache: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.files_root = files_root
        self.account = account or LabelStudioAccount()
        self.cache = cache or default_cache()
        self._process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def venv(self) -> Path:
        return self.cache / f"label-studio-{LABEL_STUDIO_VERSION}-{lock_digest()}"

    @property
    def template(self) -> Path:
        return self.cache / f"{self.venv.name}-template"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def environment(self, data_dir: Path) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "PYTHON", "VIRTUAL_ENV"))}
        # Label Studio also reads plain USERNAME/PASSWORD/HOST/PORT/DEBUG: do not let stray ones leak in.
        for name in ("USERNAME", "PASSWORD", "HOST", "PORT", "DEBUG"):
            base.pop(name, None)
        return {
            **base,
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_USERNAME": self.account.username,
            "LABEL_STUDIO_PASSWORD": self.account.password,
            "LABEL_STUDIO_USER_TOKEN": self.account.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.files_root),
            # Webhooks and images on 127.0.0.1 are blocked by its SSRF guard otherwise.
            "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
            # Its defaults phone home (Sentry, PyPI version check, telemetry): all off.
            "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
            "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
        }

    def ensure_installed(self) -> Path:
        """Create Label Studio's own venv once from its lock (minutes); returns its ``label-studio`` executable.

        A marker written last tells a complete install from one that was interrupted (which is redone).
        """
        executable = self.venv / "bin" / "label-studio"
        marker = self.venv / ".visionloop-complete"
        if marker.exists():
            return executable
        shutil.rmtree(self.venv, ignore_errors=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        install_log = self.cache / f"{self.venv.name}-install.log"
        try:
            with install_log.open("w") as log:
                subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True, stdout=log, stderr=log)
                subprocess.run(
                    [str(self.venv / "bin" / "pip"), "install", "-q", "-r", str(LABEL_STUDIO_LOCK)],
                    check=True,
                    stdout=log,
                    stderr=log,
                )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(self.venv, ignore_errors=True)
            raise LabelStudioError(
                f"installing Label Studio from {LABEL_STUDIO_LOCK.name} failed ({exc}); see {install_log}"
            ) from exc
        marker.touch()
        return executable

    def ensure_template(self) -> Path:
        """A migrated data dir with our user and a legacy-token organisation (built once, ~90 s)."""
        if (self.template / "label_studio.sqlite3").is_file():
            return self.template
        building = self.template.with_name(self.template.name + ".partial")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        self._launch(building)
        self.stop()
        shutil.rmtree(self.template, ignore_errors=True)
        building.rename(self.template)
        return self.template

    def start(self, timeout_s: float = 180.0) -> LabelStudioServer:
        if not (self.data_dir / "label_studio.sqlite3").is_file():
            template = self.ensure_template()
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(template, self.data_dir, dirs_exist_ok=True)
        self._launch(self.data_dir, timeout_s)
        return self

    def _launch(self, data_dir: Path, timeout_s: float = 300.0) -> None:
        executable = self.ensure_installed()
        if not port_is_free(self.port):
            # Label Studio would silently move to the next port; refuse instead.
            raise LabelStudioError(f"port {self.port} on 127.0.0.1 is taken; choose another for Label Studio")
        self.files_root.mkdir(parents=True, exist_ok=True)
        args = [str(executable), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port)]
        # Dies with its parent: a labeling worker killed unstopped (its actor's process lost) leaves no Label Studio
        # holding the port, and the worker started again in its place can start its own. (The kernel watches the
        # thread that started it: a Ray actor's method threads live as long as the actor.)
        log = data_dir / "label-studio.log"
        process = ChildProcess(args, log, env=self.environment(data_dir), die_with_parent=True)
        self._process = process.start()
        try:
            process.wait_ready(self._healthy, timeout_s, interval_s=0.5)
        except ProcessStartError as exc:
            self._process = None
            if exc.returncode is None:
                raise LabelStudioError(f"Label Studio did not answer /health within {timeout_s:.0f} s") from exc
            raise LabelStudioError(f"Label Studio exited at start; see {exc.log}") from exc

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def pause(self) -> None:
        if self._process:
            self._process.pause()

    def resume(self) -> None:
        if self._process:
            self._process.resume()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop(timeout_s=15)

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

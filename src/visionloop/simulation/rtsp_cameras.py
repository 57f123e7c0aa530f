"""Simulated IP cameras: the synthetic world's videos served as looping RTSP streams by a GStreamer server.

The server runs as a child process under the system python3 (GStreamer's Python bindings come from Debian's
packages); it is stopped by its PID. Tests can freeze it (SIGSTOP) to play a hung camera. Its output goes to a
temporary log, removed when it stops and kept when it fails to start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from visionloop.core.errors import VisionloopError
from visionloop.core.processes import ChildProcess, ProcessStartError

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


class SimulatorError(VisionloopError):
    """The RTSP simulator could not start."""


@dataclass(frozen=True)
class SimulatedCamera:
    """A camera the simulator serves: a clip looped from its start for each session, or, with ``epoch``, a live
    camera of a site whose frame ``n`` leaves at ``epoch + n / fps`` (``video`` is then its raw stream, with the
    frame index beside it)."""

    name: str
    video: Path
    fps: int
    epoch: float | None = None


def prepare_world_camera(
    name: str,
    domain: str,
    seed: int,
    seconds: float,
    fps: int,
    out_dir: Path,
    height: int = 360,
    width: int = 640,
    domains_file: Path | None = None,
) -> SimulatedCamera:
    """A raw H.264 file (plus per-frame ground truth) of the world, cached by its recipe (the domain's own
    definition included, so an edited domains file renders anew)."""
    import hashlib

    from visionloop.core.layout import shipped_config
    from visionloop.simulation.world import load_domains, write_video

    source = domains_file or shipped_config("domains.yaml")
    world = load_domains(source)[domain]
    tag = hashlib.sha256(repr(world).encode()).hexdigest()[:8]
    out = out_dir / f"{domain}-{tag}-s{seed}-{seconds:g}s-{fps}fps-{width}x{height}.264"
    if not out.is_file():
        tmp = out.with_suffix(".partial.264")
        write_video(world, seed, seconds, fps, tmp, height, width, container_format="h264")
        tmp.with_suffix(tmp.suffix + ".jsonl").replace(out.with_suffix(out.suffix + ".jsonl"))
        tmp.replace(out)
    return SimulatedCamera(name, out, fps)


class RtspSimulator:
    """A GStreamer RTSP server looping one file per mount on 127.0.0.1."""

    def __init__(
        self,
        cameras: list[SimulatedCamera],
        port: int,
        user: str | None = None,
        password: str | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.cameras = cameras
        self.port = port
        self.user = user
        self.password = password
        self.start_timeout_s = start_timeout_s
        self._process: ChildProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def url(self, name: str, user: str | None = None, password: str | None = None) -> str:
        """The camera's URL; credentials default to the server's own."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/{name}"

    def start(self) -> RtspSimulator:
        if not Path(SYSTEM_PYTHON).exists() or shutil.which("gst-inspect-1.0") is None:
            raise SimulatorError(
                "the RTSP simulator needs Debian's GStreamer RTSP server: apt-get install python3-gi "
                "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-tools"
            )
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        for camera in self.cameras:
            if camera.epoch is None:
                args += ["--mount", f"{camera.name}={camera.video.resolve()}:{camera.fps}"]
            else:
                args += ["--live", f"{camera.name}={camera.video.resolve()}:{camera.fps}:{camera.epoch:.6f}"]
        if self.user:
            args += ["--user", self.user, "--password", self.password or ""]
        # A clean environment for the system interpreter: the venv's PYTHONPATH/PYTHONHOME must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        fd, log = tempfile.mkstemp(prefix=f"visionloop-rtsp-{self.port}-", suffix=".log")
        os.close(fd)
        # Dies with its parent: a benchmark or test killed unstopped (a timeout's SIGTERM) leaves no server behind.
        self._process = ChildProcess(args, Path(log), env=env, die_with_parent=True).start()
        self._wait_ready(self._process)
        return self

    def _wait_ready(self, process: ChildProcess) -> None:
        def ready() -> bool:
            return any(line.startswith("READY") for line in process.output(limit=1 << 20).splitlines())

        try:
            process.wait_ready(ready, self.start_timeout_s, interval_s=0.1)
        except ProcessStartError as exc:
            self._process = None
            if exc.returncode is None:
                raise SimulatorError(
                    f"RTSP simulator did not start within {self.start_timeout_s:.0f} s; see {exc.log}"
                ) from exc
            raise SimulatorError(
                f"RTSP simulator exited at start (code {exc.returncode}): {exc.output.strip()}; see {exc.log}"
            ) from exc

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): a camera that hangs without closing its connections."""
        if self._process:
            self._process.pause()

    def resume(self) -> None:
        if self._process:
            self._process.resume()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop(timeout_s=5)
            with contextlib.suppress(OSError):
                process.log.unlink()

    def kill(self) -> None:
        """Die abruptly (SIGKILL), as a camera losing power."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            with contextlib.suppress(OSError):
                process.log.unlink()

    def __enter__(self) -> RtspSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""A supervised child process: its own session, output to a log file, a readiness wait, stopped by its own PID.

Signals go to the child's process group, whose id is the child's PID. The child is reaped only when it is
stopped, so until then that PID cannot be given to another process: a signal never reaches a stranger.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from visionloop.core.errors import VisionloopError

PR_SET_PDEATHSIG = 1


class ProcessStartError(VisionloopError):
    """The child exited (``returncode`` set) or was not ready in time (``returncode`` None) at start."""

    def __init__(self, message: str, log: Path, returncode: int | None, output: str) -> None:
        super().__init__(message)
        self.log = log
        self.returncode = returncode
        self.output = output


def _die_with_parent(parent: int) -> Callable[[], None]:
    """Linux: the kernel SIGTERMs the child when its parent dies unstopped (SIGKILL, abort), leaving no orphan."""

    def arm() -> None:
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took hold
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _exit_code(popen: subprocess.Popen[bytes]) -> int | None:
    """The exit code, or None while it runs, without reaping: the PID (and group id) stay ours."""
    if popen.returncode is not None:
        return popen.returncode
    try:
        info = os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped behind our back: Popen knows what is left to know
        return popen.poll()
    if info is None:
        return None
    return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status


class ChildProcess:
    """One command as a child in its own session, its stdout and stderr appended to ``log``."""

    def __init__(
        self,
        args: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.args = list(args)
        self.log = log
        self.env = env
        self.die_with_parent = die_with_parent
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_start = 0
        self._returncode: int | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self) -> ChildProcess:
        if self._popen is not None:
            raise RuntimeError(f"{self.args[0]} is already running as PID {self._popen.pid}")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        preexec = _die_with_parent(os.getpid()) if self.die_with_parent and sys.platform == "linux" else None
        with self.log.open("ab") as out:
            self._log_start = out.tell()
            self._popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if self.env is None else dict(self.env),
                start_new_session=True,
                preexec_fn=preexec,  # only prctl and getppid: safe enough beside threads
            )
        self._returncode = None
        return self

    def poll(self) -> int | None:
        """The exit code once the child has exited (even before it is stopped), else None."""
        return self._returncode if self._popen is None else _exit_code(self._popen)

    def output(self, limit: int = 4000) -> str:
        """The end of what this run wrote to the log: for error messages."""
        with contextlib.suppress(OSError), self.log.open("rb") as f:
            f.seek(self._log_start)
            return f.read().decode(errors="replace")[-limit:]
        return ""

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> None:
        """Return once ``probe()`` is true; stop the child and raise if it exits first or the time runs out."""
        deadline = time.monotonic() + timeout_s
        name = Path(self.args[0]).name
        while True:
            code = self.poll()
            if code is not None:
                self.stop()
                message = f"{name} exited with code {code} at start; see {self.log}"
                raise ProcessStartError(message, self.log, code, self.output())
            if probe():
                return
            if time.monotonic() >= deadline:
                self.stop()
                message = f"{name} was not ready within {timeout_s:g} s; see {self.log}"
                raise ProcessStartError(message, self.log, None, self.output())
            time.sleep(interval_s)

    def pause(self) -> None:
        """Freeze the whole group (SIGSTOP): a server that hangs without closing its connections."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGCONT (a stopped child cannot act on SIGTERM) and SIGTERM to the group, then SIGKILL what is left."""
        return self._end(timeout_s, (signal.SIGCONT, signal.SIGTERM))

    def kill(self) -> int | None:
        """SIGKILL the group at once: a crash, not a shutdown."""
        return self._end(0.0, ())

    def _signal(self, sig: signal.Signals) -> None:
        if self._popen is not None and self._popen.returncode is None:  # not reaped: the group id is still ours
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, sig)

    def _end(self, grace_s: float, first: tuple[signal.Signals, ...]) -> int | None:
        for sig in first:
            self._signal(sig)
        if self._popen is not None:
            deadline = time.monotonic() + grace_s
            while _exit_code(self._popen) is None and time.monotonic() < deadline:
                time.sleep(0.02)
            self._signal(signal.SIGKILL)  # the leader if it is still there, and whatever it left in the group
            self._returncode = self._popen.wait()
            self._popen = None
        return self._returncode

    def __enter__(self) -> ChildProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""Run an embedded ``redis-server`` as a child process: loopback only, AOF on, stopped by its PID."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
from pathlib import Path
from types import TracebackType

import redis

from visionloop.core.errors import RedisUnavailableError
from visionloop.core.processes import ChildProcess, ProcessStartError

log = logging.getLogger(__name__)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedRedis:
    """A redis-server child on 127.0.0.1 with its data (AOF) under ``data_dir``.

    It dies with visionloop (PDEATHSIG) if visionloop is killed without stopping it.
    """

    def __init__(self, port: int, data_dir: Path, start_timeout_s: float = 10.0) -> None:
        self.port = port
        self.data_dir = data_dir
        self.start_timeout_s = start_timeout_s
        self._process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> EmbeddedRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailableError(
                "redis-server is not installed: run 'apt-get install redis-server', or set redis.url to an existing "
                "Redis"
            )
        if not port_is_free(self.port):
            raise RedisUnavailableError(
                f"cannot start the embedded Redis: port {self.port} on 127.0.0.1 is taken; set redis.embedded_port "
                "or point redis.url at the Redis already running there"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logfile = self.data_dir / "redis.log"
        args = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(logfile),
        ]  # fmt: skip
        # Both append: what redis-server says before its own log opens lands in the same file.
        self._process = ChildProcess(args, logfile, die_with_parent=True).start()
        self._wait_ready(self._process)
        log.info("embedded redis started", extra={"pid": self._process.pid, "port": self.port})
        return self

    def _wait_ready(self, process: ChildProcess) -> None:
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)

        def answers() -> bool:
            # While the AOF loads, PING answers LOADING: wait for a real PONG.
            with contextlib.suppress(redis.RedisError):
                return bool(client.ping())
            return False

        try:
            process.wait_ready(answers, self.start_timeout_s)
        except ProcessStartError as exc:
            self._process = None
            if exc.returncode is None:
                raise RedisUnavailableError(
                    f"redis-server did not answer PING within {self.start_timeout_s:.0f} s"
                ) from exc
            raise RedisUnavailableError(
                f"redis-server exited with code {exc.returncode} at start: {exc.output.strip()}; see {exc.log}"
            ) from exc
        finally:
            client.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Redis flushes the AOF), then SIGKILL if it does not exit in time."""
        process, self._process = self._process, None
        if process is not None:
            process.stop(timeout_s)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

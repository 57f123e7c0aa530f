"""A real multi-node Ray cluster on one machine: a head node and worker nodes started with `ray start`, each with
its own custom resources, on 127.0.0.1. The two-node demo and its test run the service on it.

`ray start` daemonizes its processes, so each node's processes are found as the Ray processes that appeared while
it started; a node is stopped by killing exactly those (and what its raylet spawned since), never with `ray stop`,
which would end every Ray process of the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

from visionloop.core.errors import VisionloopError

RAY_PROCESS_MARKERS = ("raylet", "gcs_server", "ray/", "ray::", "default_worker", "dashboard", "log_monitor")


class ClusterError(VisionloopError):
    """A node of the local cluster did not start."""


@dataclass
class RayNode:
    """One `ray start` node: its resources and the processes it started."""

    name: str
    resources: dict[str, float]
    pids: set[int] = field(default_factory=set)

    def processes(self) -> list[psutil.Process]:
        """The node's live processes and everything they spawned since (actors' worker processes)."""
        found: dict[int, psutil.Process] = {}
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                found[pid] = proc
                found.update({child.pid: child for child in proc.children(recursive=True)})
            except psutil.NoSuchProcess:
                continue
        return list(found.values())

    def raylet(self) -> psutil.Process | None:
        for proc in self.processes():
            try:
                if proc.name() == "raylet" or "raylet" in " ".join(proc.cmdline()[:1]):
                    return proc
            except psutil.Error:
                continue
        return None


def _ray_pids(tags: tuple[str, ...]) -> set[int]:
    """Ray processes whose command line names one of ``tags`` (this cluster's GCS address or temp dir), so that
    Ray processes of other sessions on the machine are never counted as ours."""
    pids = set()
    for proc in psutil.process_iter(["pid", "cmdline", "name"]):
        text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["name"] or "")
        if any(marker in text for marker in RAY_PROCESS_MARKERS) and any(tag in text for tag in tags):
            pids.add(proc.info["pid"])
    return pids


def free_port() -> int:
    """A free loopback port (each node on one machine needs its own for the services Ray gives fixed defaults)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kill(processes: list[psutil.Process], timeout_s: float = 10.0) -> None:
    for proc in processes:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(processes, timeout=timeout_s)


class LocalRayCluster:
    """A head node plus worker nodes on 127.0.0.1, each started with `ray start` and its own custom resources."""

    def __init__(self, port: int, head_resources: dict[str, float], head_cpus: int = 1) -> None:
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.head = RayNode("head", head_resources)
        self.head_cpus = head_cpus
        self.workers: list[RayNode] = []
        self._temp = Path(tempfile.mkdtemp(prefix="vl-ray-"))  # short: Unix socket paths are limited
        self._ray = str(Path(sys.executable).with_name("ray"))

    @property
    def auth_env(self) -> dict[str, str]:
        """What a process needs to join this cluster (nodes, and drivers such as `visionloop up`): token mode, with
        Ray's default token (~/.ray/auth_token), the one a local `ray.init` also uses. A process caches the token it
        first loads, so a cluster with a token of its own would refuse a driver that ran Ray before."""
        return {"RAY_AUTH_MODE": "token"}

    def _ensure_token(self) -> None:
        """Ray's own command: creates ~/.ray/auth_token only where it does not exist yet."""
        env = {**os.environ, **self.auth_env}
        result = subprocess.run(
            [self._ray, "get-auth-token", "--generate"], capture_output=True, text=True, timeout=60, env=env
        )
        if result.returncode != 0:
            raise ClusterError(f"`ray get-auth-token --generate` failed: {result.stderr.strip()[-400:]}")

    def _start(self, node: RayNode, args: list[str]) -> RayNode:
        tags = (self.address, str(self._temp))
        before = _ray_pids(tags)
        command = [
            self._ray, "start", "--node-ip-address=127.0.0.1", f"--resources={json.dumps(node.resources)}",
            "--disable-usage-stats", f"--dashboard-agent-listen-port={free_port()}", *args,
        ]  # fmt: skip
        # "1": the multi-node check refuses worker nodes otherwise; --node-ip-address keeps them on loopback.
        env = {**os.environ, **self.auth_env, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        time.sleep(0.5)  # the daemonized processes are up by the time `ray start` returns; let them settle
        node.pids = _ray_pids(tags) - before
        if result.returncode != 0:
            _kill(node.processes())
            raise ClusterError(f"`ray start` for the {node.name} node failed: {result.stderr.strip()[-800:]}")
        return node

    def start(self) -> LocalRayCluster:
        self._ensure_token()
        self._start(
            self.head,
            ["--head", f"--port={self.port}", f"--num-cpus={self.head_cpus}", "--include-dashboard=false",
             f"--temp-dir={self._temp}", f"--ray-client-server-port={free_port()}"],
        )  # fmt: skip
        return self

    def add_worker(self, name: str, resources: dict[str, float], num_cpus: int = 1) -> RayNode:
        node = self._start(RayNode(name, resources), [f"--address={self.address}", f"--num-cpus={num_cpus}"])
        self.workers.append(node)
        return node

    def kill_raylet(self, node: RayNode) -> int:
        """End a node abruptly, as a machine or network failure would: its raylet and everything it ran, by PID.
        Returns the raylet's PID."""
        raylet = node.raylet()
        if raylet is None:
            raise ClusterError(f"the {node.name} node has no raylet running")
        pid = raylet.pid
        _kill(node.processes())
        self.workers = [w for w in self.workers if w is not node]
        return int(pid)

    def stop(self) -> None:
        """Every process this cluster started, workers first, by PID."""
        for node in [*self.workers, self.head]:
            _kill(node.processes())
        self.workers.clear()
        shutil.rmtree(self._temp, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""A real two-node Ray cluster on loopback, owned by one test: started with ``ray start --block`` in
process groups the test owns, so it can kill one node alone and tear down only what it started.

Ray rewrites ``--node-ip-address=127.0.0.1`` (and ``localhost``) to the machine's outward address
(``ray._private.services.resolve_ip_for_localhost``), so the nodes use ``127.0.0.2``: a loopback
address on Linux that Ray keeps as given. Every node and driver then talks to 127.0.0.2 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOPBACK = "127.0.0.2"

RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",  # no token file shared with anything else on the machine
    "RAY_ADDRESS": "",
}


def ray_env() -> dict[str, str]:
    return {**os.environ, **RAY_ENV}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


class Node:
    """One ``ray start --block`` in its own session (process group), with its own short temp dir."""

    def __init__(self, args: list[str], log: Path) -> None:
        # Ray's socket paths must stay short: /tmp/rs-ray-XXXX, not pytest's tmp_path.
        self.temp_dir = tempfile.mkdtemp(prefix="rs-ray-", dir="/tmp")
        ray = str(Path(sys.executable).with_name("ray"))
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [ray, "start", "--block", f"--node-ip-address={LOOPBACK}", "--num-cpus=1", "--num-gpus=0",
             f"--temp-dir={self.temp_dir}", *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=ray_env(), start_new_session=True)

    def session_pids(self) -> list[int]:
        """Every live process of the node: ``ray start`` runs in its own session, and Ray moves each
        worker into a process group of its own, but not out of that session."""
        out = subprocess.run(["ps", "-o", "pid=,stat=", "-s", str(self.process.pid)], capture_output=True,
                             text=True).stdout
        return [int(pid) for pid, stat in (line.split()[:2] for line in out.splitlines()) if not stat.startswith("Z")]

    def kill(self) -> None:
        """SIGKILL every process of the node at once (raylet, its workers, on the head the GCS), as a lost
        machine would, and wait until they are gone before removing the node's temp dir: a worker that
        outlived its raylet would otherwise still report a result, or fail on its deleted log file."""
        deadline = time.monotonic() + 30
        while (pids := self.session_pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if self.process.poll() is None:
            self.process.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def worker_pids(self, task_name: str) -> list[int]:
        """Workers of this node now running a task named ``task_name`` (their title is ``ray::NAME``)."""
        out = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(self.process.pid)], capture_output=True,
                             text=True).stdout
        return [int(line.split()[0]) for line in out.splitlines() if f"ray::{task_name}" in line]


class Cluster:
    """A head node and a second node, each with one CPU."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self.head = Node(["--head", f"--port={self.port}", "--include-dashboard=false", "--disable-usage-stats"],
                         logs / "head.log")
        self.nodes = [self.head]
        try:
            self._wait_for(1)
            self.second = Node([f"--address={self.address}"], logs / "second.log")
            self.nodes.append(self.second)
            self._wait_for(2)
        except BaseException:
            self.stop()
            raise

    def alive_nodes(self) -> int:
        code = ("import ray; ray.init(address=%r, log_to_driver=False); "
                "print(sum(n['Alive'] for n in ray.nodes()))" % self.address)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ray_env(),
                              timeout=120)
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else 0

    def _wait_for(self, nodes: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process.poll() is not None:
                    raise RuntimeError(f"ray start exited with {node.process.returncode}; see {node.log.name}")
            if self.alive_nodes() >= nodes:
                return
            time.sleep(1)
        raise TimeoutError(f"the Ray cluster did not reach {nodes} node(s) in {timeout} s")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()

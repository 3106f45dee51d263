"""A real two-node Ray cluster on this machine, on loopback only, for the cluster tests.

The head listens on 127.0.0.2 and the second node on 127.0.0.3 (`--node-ip-address`: left
alone, Ray would pick the machine's own address). Each node is a `ray start --block` in a
session of its own, with its own imagewright store (IMAGEWRIGHT_HOME) and temp dir. Stopping it
signals the processes of that session only (Ray's workers have process groups of their own, but
stay in it), never `ray stop`, which would end every Ray process on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from .registry_helpers import free_port

HEAD_IP, NODE_IP, GPU_NODE_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
_NODE_PORTS, _GPU_NODE_PORTS = (47300, 47499), (47500, 47699)


class Node(NamedTuple):
    ip: str
    home: Path  # its imagewright store
    process: subprocess.Popen[bytes]
    log: Path
    temp: Path  # Ray's temp dir, removed when the node stops


class RayCluster(NamedTuple):
    address: str  # ray://HOST:PORT, for --cluster
    nodes: tuple[Node, ...]  # the head first
    gcs: str  # the head's HOST:PORT, where more nodes join

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def node(self) -> Node:
        """The second node."""
        return self.nodes[1]


def _start(
    ip: str,
    root: Path,
    args: list[str],
    ports: tuple[int, int],
    env: dict[str, str] | None = None,
) -> Node:
    home = root / f"home-{ip}"
    home.mkdir(parents=True)
    # Ray's sockets live under its temp dir, and a socket's path has at most 107 bytes
    temp = Path(tempfile.mkdtemp(prefix=f"iwray-{ip}-", dir="/tmp"))
    log = root / f"ray-{ip}.log"
    argv = [
        str(Path(sys.executable).parent / "ray"), "start", "--block",
        "--node-ip-address", ip, "--num-cpus", "2", "--disable-usage-stats",
        "--temp-dir", str(temp),
        "--min-worker-port", str(ports[0]), "--max-worker-port", str(ports[1]),
        *args,
    ]  # fmt: skip
    env = {
        **os.environ,
        "IMAGEWRIGHT_HOME": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        **(env or {}),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Node(ip, home, process, log, temp)


def _wait_started(node: Node, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while "Ray runtime started" not in node.log.read_text(errors="replace"):
        if node.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Ray on {node.ip} did not start:\n{node.log.read_text()}")
        time.sleep(0.2)


def _stop(node: Node) -> None:
    """SIGTERM `ray start` (it stops the node's processes), then SIGKILL what is left of its
    session."""
    node.process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.process.wait(timeout=20)
    for pid in session_pids(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    node.process.wait()
    shutil.rmtree(node.temp, ignore_errors=True)


@contextlib.contextmanager
def ray_cluster(root: Path, nodes: int = 2) -> Iterator[RayCluster]:
    """A head node and (unless `nodes` is 1) a second node, 2 CPUs each, both on loopback."""
    gcs, client = free_port(), free_port()
    head = _start(
        HEAD_IP,
        root,
        ["--head", "--port", str(gcs), "--ray-client-server-port", str(client),
         "--include-dashboard", "false"],
        (47100, 47299),
    )  # fmt: skip
    started = [head]
    try:
        _wait_started(head)
        if nodes > 1:
            node = _start(NODE_IP, root, ["--address", f"{HEAD_IP}:{gcs}"], _NODE_PORTS)
            started.append(node)
            _wait_started(node)
        yield RayCluster(f"ray://{HEAD_IP}:{client}", tuple(started), f"{HEAD_IP}:{gcs}")
    finally:
        for one in reversed(started):
            _stop(one)


@contextlib.contextmanager
def gpu_node(cluster: RayCluster, root: Path) -> Iterator[Node]:
    """One more node, on 127.0.0.4, that declares a T4 GPU it does not have (Ray takes
    `--num-gpus` on trust), and whose imagewright runs GPU functions on the CPU
    (IMAGEWRIGHT_ALLOW_NO_GPU): for where Ray places a GPU function."""
    args = [
        "--address",
        cluster.gcs,
        "--num-gpus",
        "1",
        "--resources",
        '{"accelerator_type:T4": 1}',
    ]
    node = _start(GPU_NODE_IP, root, args, _GPU_NODE_PORTS, {"IMAGEWRIGHT_ALLOW_NO_GPU": "1"})
    try:
        _wait_started(node)
        yield node
    finally:
        _stop(node)


def session_pids(node: Node, title: str = "") -> list[int]:
    """The processes of `node`'s session (its own, not the test's) whose command line starts
    with `title`: Ray names an actor's worker process `ray::CLASS`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == node.process.pid:
            continue
        with contextlib.suppress(OSError):
            if os.getsid(int(entry.name)) != node.process.pid:
                continue
            if (entry / "cmdline").read_bytes().startswith(title.encode()):
                found.append(int(entry.name))
    return found


def processes_using(path: Path) -> list[int]:
    """The processes whose command line names `path`: a node's containers name its store."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            with contextlib.suppress(OSError):
                if str(path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found

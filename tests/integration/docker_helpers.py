"""A private Docker engine for the tests and benchmarks: its own socket, data root and cgroup,
stopped after.

Started as /work/shared/reference/machine.md describes for this kind of host: no bridge and no
iptables (so builds need --network=host), and cleaned up afterwards (the netns mount dockerd
leaves behind, and its cgroup directories).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Debian's 20.10 CLI, BuildKit built in: the static 28.x one first in PATH here has no buildx.
DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
CGROUP = "iwtestdocker"


def docker_missing() -> str | None:
    """Why the engine cannot run here, or None."""
    if not (os.path.exists(DOCKER) and os.path.exists(DOCKERD)):
        return "docker.io is not installed (apt-get install docker.io; `make test` does)"
    return None


class DockerdError(RuntimeError):
    """dockerd did not come up."""


def answers(env: dict[str, str]) -> bool:
    """Whether a Docker engine answers where `env` points the docker CLI."""
    probe = subprocess.run([DOCKER, "info"], env=env, capture_output=True)
    return probe.returncode == 0


@contextlib.contextmanager
def dockerd(root: Path, name: str, log: Path) -> Iterator[dict[str, str]]:
    """Run dockerd with its data, exec root and socket under `root`, its cgroup parent and
    containerd namespaces called `name`, and its output in `log`; yield the environment that
    points the docker CLI at it. Afterwards it is stopped and what it left on the host (its
    mounts, its cgroups) is removed; `root` stays, so its image store can be reused."""
    socket = root / "docker.sock"  # its path must fit in sockaddr_un (108 bytes)
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket}", "DOCKER_BUILDKIT": "1"}
    argv = [DOCKERD, "--data-root", str(root / "data"), "--exec-root", str(root / "exec")]
    argv += ["-H", f"unix://{socket}", "--pidfile", str(root / "dockerd.pid")]
    argv += ["--bridge=none", "--iptables=false", "--ip-masq=false", f"--cgroup-parent={name}"]
    argv += ["--containerd-namespace", name, "--containerd-plugins-namespace", f"{name}-p"]
    with open(log, "a") as out:
        daemon = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not answers(env):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise DockerdError(f"dockerd did not start; see its log, {log}")
            time.sleep(0.5)
        yield env
    finally:
        _stop(daemon, root, name)


@contextlib.contextmanager
def docker_engine() -> Iterator[dict[str, str]]:
    """A dockerd of its own for a test session, in a temporary directory removed after."""
    root = Path(tempfile.mkdtemp(prefix="iwd-", dir="/tmp"))  # short: the socket path
    try:
        with dockerd(root, CGROUP, root / "dockerd.log") as env:
            yield env
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stop(daemon: subprocess.Popen[bytes], root: Path, name: str) -> None:
    if daemon.poll() is None:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    # The netns nsfs mount (and any overlay a killed daemon left) would outlive it.
    prefix = f"{root}/"
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", target], stderr=subprocess.DEVNULL)
    for directory in _cgroup_dirs(name):
        for sub, _dirs, _files in sorted(os.walk(directory), key=lambda e: -len(e[0])):
            with contextlib.suppress(OSError):
                os.rmdir(sub)


def _cgroup_dirs(name: str) -> list[Path]:
    """cgroup-v1 directories called `name`, at each hierarchy's root and below our own cgroup."""
    found = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _id, controllers, own = line.rstrip("\n").split(":", 2)
            mount = controllers.removeprefix("name=") or "unified"
            for parent in {"/", own}:
                path = Path("/sys/fs/cgroup", mount, parent.lstrip("/"), name)
                if path.is_dir():
                    found.append(path)
    return found


def docker(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    """Run the docker CLI against the test engine; its stdout, or an assertion with the log."""
    proc = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"docker {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout

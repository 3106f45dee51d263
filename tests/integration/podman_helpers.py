"""A private podman for tests: its own config and storage, removed after.

Debian's podman picks crun, which fails on this kind of host (hybrid cgroups), so the config
selects runc with cgroupfs, ulimits under the hard limits and the host network
(/work/shared/reference/machine.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path


def podman_missing() -> str | None:
    """Why podman cannot run here, or None."""
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            return f"{tool} is not installed (`make setup` installs it)"
    return None


@contextlib.contextmanager
def podman_engine(root: Path) -> Iterator[dict[str, str]]:
    """Yield the environment that points podman at a private store under `root`."""
    root.mkdir()
    (root / "containers.conf").write_text(
        textwrap.dedent(f"""
        [engine]
        runtime = "runc"
        cgroup_manager = "cgroupfs"
        events_logger = "file"
        events_logfile_path = "{root}/events.log"
        tmp_dir = "{root}/libpod-tmp"
        [containers]
        default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
        netns = "host"
        """)
    )
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\nrunroot = "{root}/run"\ngraphroot = "{root}/graph"\n'
    )
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
    }
    try:
        yield env
    finally:
        subprocess.run(["podman", "rmi", "--all", "--force"], env=env, capture_output=True)
        with open("/proc/self/mountinfo") as f:  # the overlay driver may leave its home mounted
            mounts = [line.split()[4] for line in f if f" {root}/" in line]
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", mount], capture_output=True)


def podman(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    """Run podman against the private store; its stdout, or an assertion with its output."""
    proc = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"podman {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout

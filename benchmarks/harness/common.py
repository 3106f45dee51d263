"""What every driver and scenario shares: the work directory's layout, setup commands that log,
the timed subprocess, and the error a failed step raises."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = REPO / "benchmarks" / "workloads"
WORKLOAD_FILE = "images.py"
CALLS_FILE = "calls.py"  # imports images.py; times function calls from inside one process
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PREFIX = "imagewright-bench"  # image names in Docker and Podman, and the dockerd cgroup parent


class BenchError(RuntimeError):
    """A build or a setup command failed; the message names its log."""


class Outcome(NamedTuple):
    """One timed build: wall seconds and how many steps ran rather than came from cache."""

    seconds: float
    steps_run: int


class Paths(NamedTuple):
    """Where everything lives under the work directory."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def context(self) -> Path:
        return self.root / "context"

    @property
    def docker_base_context(self) -> Path:
        """The stage that adds uv and the CA bundle to the imported base (Docker and Podman)."""
        return self.root / "docker-base"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def docker(self) -> Path:
        return self.root / "docker"

    @property
    def docker_socket(self) -> Path:
        return self.docker / "docker.sock"

    @property
    def podman(self) -> Path:
        """Podman's store for builds and `podman run`: made for each run, removed after it."""
        return self.root / "podman"

    @property
    def transfers(self) -> Path:
        """Exported files, the OCI layout skopeo pushes, pulls, and each registry's storage."""
        return self.root / "transfers"


def log_file(paths: Paths, name: str) -> Path:
    paths.logs.mkdir(parents=True, exist_ok=True)
    return paths.logs / f"{name}.log"


def check_call(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
    """Run a setup command with its output appended to `log`; raise BenchError on failure."""
    with open(log, "a") as out:
        out.write(f"$ {shlex.join(argv)}\n")
        out.flush()
        status = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise BenchError(f"{shlex.join(argv)} exited with {status}; see {log}")


def timed_run(
    argv: Sequence[str], log: Path, env: dict[str, str], cwd: Path | None = None
) -> tuple[float, str]:
    """Time `argv` as one process; return its wall seconds and its output (stdout and stderr,
    also appended to `log`). Raise BenchError on failure."""
    started = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seconds = time.perf_counter() - started
    with open(log, "a") as out:
        out.write(f"$ {shlex.join(argv)}\n{proc.stdout}")
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} exited with {proc.returncode}; see {log}")
    return seconds, proc.stdout


def apt_get_install(paths: Paths, package: str, *programs: str) -> None:
    """Install `package` with apt-get unless every one of `programs` is there already."""
    if all(os.path.exists(program) for program in programs):
        return
    print(f"Installing {package} with apt-get ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = log_file(paths, "apt-get")
    check_call(["apt-get", "update", "-q"], log, env=env)
    check_call(["apt-get", "install", "-y", "-q", package], log, env=env)


def show(name: str, what: str, i: int, repeat: int, seconds: float) -> None:
    """Report one timed run on stderr as it finishes."""
    print(f"  {name:<12} {what} {i + 1}/{repeat}: {seconds:7.3f} s", file=sys.stderr)

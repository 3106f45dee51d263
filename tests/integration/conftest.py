"""Shared fixtures: one layer store per test session, so each base image is built once.

Set IMAGEWRIGHT_TEST_HOME to reuse a store across sessions while developing.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagewright import Image
from imagewright.execute.builder import build_image
from imagewright.execute.container import run_container
from imagewright.execute.events import BuildResult, StepResult
from imagewright.store.store import Store

from .docker_helpers import docker, docker_engine, docker_missing
from .podman_helpers import podman_engine, podman_missing

if os.geteuid() != 0:
    pytest.exit("imagewright's tests build real images and must run as root", returncode=2)

# Each `imagewright build` these tests run builds in its own process, as a CLI test expects of
# the process it started (its signals, its children). test_build_server.py turns the build
# server (cli/launch.py) on and tests it, against the same store.
os.environ["IMAGEWRIGHT_BUILD_SERVER"] = "0"


class Recorder:
    """A Reporter that keeps every event, for assertions."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.lines: list[str] = []
        self.result: BuildResult | None = None

    def build_started(self, plan: object) -> None:
        pass

    def step_started(self, index: int, step: object) -> None:
        self.started.append(step.description)

    def step_output(self, index: int, line: str) -> None:
        self.lines.append(line)

    def step_finished(self, index: int, step: object, result: StepResult) -> None:
        pass

    def build_finished(self, result: BuildResult | None) -> None:
        self.result = result


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    home = os.environ.get("IMAGEWRIGHT_TEST_HOME") or str(tmp_path_factory.mktemp("store"))
    os.environ["IMAGEWRIGHT_HOME"] = home
    return Store(Path(home))


class Builder:
    """Build images and run commands in them against the session store."""

    def __init__(self, store: Store):
        self.store = store

    def build(self, image: Image, **kwargs: object) -> tuple[BuildResult, Recorder]:
        recorder = Recorder()
        result = build_image(image, store=self.store, reporter=recorder, **kwargs)
        return result, recorder

    def run(self, image: Image, command: str, expect: int = 0) -> str:
        """Build `image` if needed, run `command` in a fresh container, return its output."""
        result, _ = self.build(image)
        status, output = run_container(
            result.plan, self.store, ["/bin/sh", "-c", command], capture=True
        )
        assert status == expect, f"exit {status} from {command!r}:\n{output}"
        return output


@pytest.fixture(scope="session")
def builder(store: Store) -> Builder:
    return Builder(store)


@pytest.fixture(scope="session")
def docker_env(
    builder: Builder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A private Docker engine for the session, with our 3.11 base loaded under the public
    names Dockerfiles use for it (python:3.11-slim-bookworm, ...): there is no Docker Hub here."""
    reason = docker_missing()
    if reason:
        pytest.skip(reason)
    base = Image.debian_slim(python_version="3.11")
    builder.build(base)
    archive = tmp_path_factory.mktemp("docker") / "base.tar"
    base.export(archive, format="docker", compression="none", tag="python:3.11-slim-bookworm")
    with docker_engine() as env:
        docker(env, "load", "-i", str(archive))
        archive.unlink()
        for alias in ("python:3.11-slim", "debian:bookworm-slim"):
            docker(env, "tag", "python:3.11-slim-bookworm", alias)
        yield env


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve `root` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1: (the directory, its base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    with serve_directory(root) as url:
        yield root, url


@pytest.fixture
def podman_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private podman store for one test."""
    reason = podman_missing()
    assert reason is None, reason  # a core check: `make test` installs podman
    with podman_engine(tmp_path / "podman") as env:
        yield env


@pytest.fixture(scope="session")
def fresh() -> Image:
    """A 3.11 base plus a step unique to this session: what follows it always runs, so tests
    that read build output see it even with a reused IMAGEWRIGHT_TEST_HOME store."""
    return Image.debian_slim(python_version="3.11").env({"IW_TEST_SESSION": str(time.time_ns())})


@pytest.fixture(scope="session")
def py311() -> Image:
    return Image.debian_slim(python_version="3.11")


def cli(
    *args: str,
    cwd: str | Path | None = None,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the imagewright CLI as a user would (`env` adds to the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "imagewright", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "IMAGEWRIGHT_PROGRESS": "plain", **(env or {})},
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free loopback port, saving nothing; its URL."""
    server = shutil.which("redis-server")
    assert server, "redis-server is missing: `make test` installs it (apt-get install redis-server)"
    workdir = tmp_path_factory.mktemp("redis")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = workdir / "redis.conf"
    config.write_text(
        f'bind 127.0.0.1\nport {port}\ndir {workdir}\nsave ""\nappendonly no\n'
        'daemonize no\nprotected-mode yes\nlogfile ""\n'
    )
    process = subprocess.Popen([server, str(config)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not start listening"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)

"""Private registries for push and pull: Debian's docker-registry on 127.0.0.1, one per side,
with empty storage, stopped and removed after; and what their storage and logs show."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from harness.common import BenchError

DOCKER_REGISTRY = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def registry(root: Path, log: Path) -> Iterator[tuple[str, Path]]:
    """A docker-registry on 127.0.0.1 with empty storage under `root`; yields (host:port, its
    storage). At the end, also after a failure, it is stopped and `root` removed."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: info}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    with open(log, "a") as out:
        server = subprocess.Popen(
            [DOCKER_REGISTRY, "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_registry(port, server, log)
        yield f"127.0.0.1:{port}", root / "data"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


def wait_for_registry(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), opener.open(f"http://127.0.0.1:{port}/v2/", timeout=2):
            return  # 200: urllib raises HTTPError, an OSError, for anything else
        if server.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"docker-registry did not come up; see {log}")
        time.sleep(0.1)


def stored_bytes(storage: Path) -> int:
    """Bytes of all blobs (layers, config and manifest) in a docker-registry's storage."""
    blobs = storage.glob("docker/registry/v2/blobs/sha256/*/*/data")
    return sum(blob.stat().st_size for blob in blobs)


def uploads_started(registry_log: Path, since: int) -> int:
    """Blob uploads (POST .../blobs/uploads/) the registry logged after byte `since` of its log."""
    with open(registry_log) as f:
        f.seek(since)
        return len(re.findall(r'"POST /v2/[^ ]*/blobs/uploads/', f.read()))

"""Test helpers for registries: a docker-registry per test module, a connection-dropping
proxy, and raw uploads of hand-made images (for layers our own builder would never write)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from imagewright.registry.client import RegistryClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def registry(root: Path, htpasswd: str | None = None) -> Iterator[str]:
    """A docker-registry on 127.0.0.1 (with htpasswd auth if given); yields host:port."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd is not None:
        (root / "htpasswd").write_text(htpasswd)
        auth = f"auth: {{htpasswd: {{realm: iw-test, path: {root / 'htpasswd'}}}}}\n"
    (root / "config.yml").write_text(
        "version: 0.1\nlog: {level: info}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n{auth}"
    )
    log = open(root / "registry.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(root / "config.yml")], stdout=log, stderr=log
    )
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/v2/").status_code in (200, 401):
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(
                f"docker-registry did not start: {(root / 'registry.log').read_text()}"
            )
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


class DroppingProxy:
    """Forwards 127.0.0.1:port to a registry; closes the connection once, after `drop_after`
    request bytes in all (so mid-upload), then forwards everything."""

    def __init__(self, upstream: str, drop_after: int):
        self.upstream = upstream
        self.drop_after = drop_after
        self.sent = 0
        self.dropped = False
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            host, port = self.upstream.split(":")
            upstream = socket.create_connection((host, int(port)))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        try:
            while data := src.recv(65536):
                if request and not self.dropped:
                    self.sent += len(data)
                    if self.sent > self.drop_after:
                        self.dropped = True
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.server.close()


def push_raw(registry: str, repository: str, tag: str, layers: list[bytes], config: dict) -> str:
    """Upload raw layer blobs, a config and an OCI manifest as given; returns the manifest digest."""

    def digest(data: bytes) -> str:
        return f"sha256:{hashlib.sha256(data).hexdigest()}"

    config_bytes = json.dumps(config).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(config_bytes),
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        }
    ).encode()
    with RegistryClient(registry, repository) as client:
        for blob in [*layers, config_bytes]:
            client.upload_blob(digest(blob), blob)
        client.put_manifest(
            tag, manifest, "application/vnd.oci.image.manifest.v1+json", digest(manifest)
        )
    return digest(manifest)

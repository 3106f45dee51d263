"""Test helpers for registries: a docker-registry per test module, a connection-dropping
proxy, raw uploads of hand-made images (for layers our own builder would never write), and a
fake HTTP server that records the credentials each origin is sent."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

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


class Request(NamedTuple):
    method: str
    path: str
    authorization: str | None


Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


class FakeServer:
    """An HTTP server on 127.0.0.1 (a port of its own: an origin of its own) that records every
    request's method, path and Authorization header, and answers with `answer(method, path,
    authorization)`. Use as a context manager; `url` is its origin."""

    def __init__(self, answer: Callable[[str, str, str | None], Answer]):
        self.requests: list[Request] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                auth = self.headers.get("Authorization")
                fake.requests.append(Request(self.command, self.path, auth))
                status, headers, body = answer(self.command, self.path, auth)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_port}"
        self.url = f"http://{self.address}"

    def __enter__(self) -> FakeServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def authorizations(self) -> set[str | None]:
        return {r.authorization for r in self.requests}

"""The manifest HEAD without httpx (registry/quickhead.py): it confirms a digest only on a clear
200, sends no credentials, and answers None to everything else, so that RegistryClient asks
again. Real HTTP and HTTPS servers on 127.0.0.1; no root."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagewright.registry import quickhead
from imagewright.registry.quickhead import manifest_digest

DIGEST = "sha256:" + "ab" * 32
MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
PATH = "/v2/iw/app/manifests/v1"

Answer = Callable[[http.server.BaseHTTPRequestHandler], None]


def _digest_200(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Docker-Content-Digest", DIGEST)
    handler.send_header("Content-Length", "1234")
    handler.end_headers()


def _status(code: int, **headers: str) -> Answer:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(code)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()

    return answer


class _Server:
    """An HTTP(S) server on 127.0.0.1 that gives `answer` to every HEAD and keeps the requests."""

    def __init__(self, answer: Answer, context: ssl.SSLContext | None = None):
        seen: list[tuple[str, dict[str, str]]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.seen = seen
        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.registry = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    servers: list[_Server] = []

    def start(answer: Answer, context: ssl.SSLContext | None = None) -> _Server:
        servers.append(_Server(answer, context))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_a_200_naming_a_digest_gives_it_and_sends_no_credentials(serve) -> None:
    server = serve(_digest_200)
    assert manifest_digest(server.registry, PATH, MEDIA_TYPE, tls=False) == DIGEST
    [(path, headers)] = server.seen
    assert path == PATH
    assert headers["host"] == server.registry and headers["accept"] == MEDIA_TYPE
    assert "authorization" not in headers


@pytest.mark.parametrize(
    "answer",
    [
        _status(404),
        _status(401, WWW_Authenticate='Bearer realm="http://127.0.0.1/token"'),
        _status(307, Location="/v2/elsewhere", Docker_Content_Digest=DIGEST),
        _status(200),  # no digest header
        _status(500, Docker_Content_Digest=DIGEST),
    ],
    ids=["404", "401", "redirect", "no-digest", "500"],
)
def test_anything_but_a_200_with_a_digest_is_no_answer(serve, answer: Answer) -> None:
    server = serve(answer)
    assert manifest_digest(server.registry, PATH, MEDIA_TYPE, tls=False) is None
    assert len(server.seen) == 1


def _raw_server(reply: bytes) -> tuple[str, threading.Thread]:
    """A server that sends `reply` to its one connection, whatever was asked."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            conn.recv(65536)
            conn.sendall(reply)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"127.0.0.1:{listener.getsockname()[1]}", thread


@pytest.mark.parametrize(
    "reply",
    [
        b"",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nDocker-Content-Digest: " + DIGEST.encode(),  # never ends
        b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * (70 << 10) + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nDocker-Content-Digest: \xff\xfe\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    ],
    ids=["closed", "garbage", "unfinished", "huge", "not-ascii", "not-http"],
)
def test_a_garbled_answer_is_no_answer(reply: bytes) -> None:
    registry, thread = _raw_server(reply)
    assert manifest_digest(registry, PATH, MEDIA_TYPE, tls=False) is None
    thread.join(10)


def test_a_refused_connection_is_no_answer() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    assert manifest_digest(f"127.0.0.1:{port}", PATH, MEDIA_TYPE, tls=False) is None


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "https_proxy", "ALL_PROXY"])
def test_a_proxy_is_left_to_httpx(serve, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    server = serve(_digest_200)
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    assert manifest_digest(server.registry, PATH, MEDIA_TYPE, tls=False) is None
    assert server.seen == []


def _tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


def test_tls_is_verified_against_the_host_store(
    serve, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(_digest_200, _tls(certificate))
    # untrusted: no answer, and no request reached the server
    assert manifest_digest(server.registry, PATH, MEDIA_TYPE, tls=True) is None
    assert server.seen == []
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # now the host trusts it
    assert manifest_digest(server.registry, PATH, MEDIA_TYPE, tls=True) == DIGEST
    # plain HTTP to a TLS port is no answer either
    assert manifest_digest(server.registry, PATH, MEDIA_TYPE, tls=False) is None


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_registry_that_never_answers_is_no_answer(
    monkeypatch: pytest.MonkeyPatch, tls: bool
) -> None:
    """A server that accepts and then says nothing (not even a TLS handshake) costs the
    timeout, then the question goes to the client."""
    monkeypatch.setattr(quickhead, "_TIMEOUT", 0.5)
    answers: list[str | None] = []
    with socket.create_server(("127.0.0.1", 0)) as silent:
        registry = f"127.0.0.1:{silent.getsockname()[1]}"
        asking = threading.Thread(
            target=lambda: answers.append(manifest_digest(registry, PATH, MEDIA_TYPE, tls=tls)),
            daemon=True,
        )
        asking.start()
        asking.join(60)  # (without a timeout on every socket it would wait forever)
    assert answers == [None]


@pytest.mark.parametrize(
    "registry",
    ["127.0.0.1:70000", "127.0.0.1:0", "127.0.0.1:99999999999999999999", "127.0.0.1:٣٠", "[::1]:x"],
)
def test_a_port_that_is_no_port_is_no_answer(registry: str) -> None:
    assert manifest_digest(registry, PATH, MEDIA_TYPE, tls=False) is None


@pytest.mark.parametrize(
    ("registry", "address"),
    [
        ("registry.example", ("registry.example", 443)),
        ("registry.example:5000", ("registry.example", 5000)),
        ("[::1]", ("::1", 443)),
        ("[::1]:5000", ("::1", 5000)),
    ],
)
def test_host_and_port(registry: str, address: tuple[str, int]) -> None:
    assert quickhead._address(registry, 443) == address

"""The registry HTTP client checks TLS against the host's CA store, read at the first handshake
(not when the client is made), and skips the check only when told to."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imagewright._http import http_client


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(certificate: tuple[Path, Path]) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 with that certificate; yields its URL."""
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_untrusted_certificate_is_refused(server: str) -> None:
    with http_client() as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
        client.get(server)


def test_a_certificate_the_host_trusts_is_accepted(
    server: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with http_client() as client:
        # the host's store is read at the first handshake, so a store set after the client
        # was made (as SSL_CERT_FILE names it) is the one used
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        assert client.get(server).text == "hello"


def test_insecure_skips_the_check(server: str) -> None:
    with http_client(insecure=True) as client:
        assert client.get(server).text == "hello"

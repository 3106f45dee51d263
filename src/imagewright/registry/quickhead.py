"""One anonymous HEAD of a manifest, without httpx: how pushing an unchanged image learns that
the tag already names it.

That is the whole of a second push once the image is built, and importing httpx with httpcore
and h11 costs about 300 M instructions (90 ms here), several times the rest of such a push. The
question is narrow, so one HTTP/1.1 request on a socket answers it: the standard library's
http.client would import ssl and the email parser even for plain HTTP (about a third of
httpx's cost). It only ever confirms: a 200 whose Docker-Content-Digest is the one expected.
Anything else (a 404, a 401, a redirect, a refused or garbled answer, a proxy to go through,
credentials to present) answers None, and RegistryClient asks again with everything it does.

The registry's answer is untrusted: at most 64 KiB of headers are read, and only compared.
"""

from __future__ import annotations

# socket's C core: socket.py adds enums and file objects, which cost ~3 ms to load and which a
# plain-HTTP request needs neither of (ssl, for HTTPS, loads socket.py anyway)
import _socket
import os
import time

__all__ = ["manifest_digest"]

_MAX_HEAD = 64 << 10  # bytes of status line and headers read before giving up
_TIMEOUT = 15  # seconds, as RegistryClient's connect timeout
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def manifest_digest(registry: str, path: str, media_type: str, *, tls: bool) -> str | None:
    """The Docker-Content-Digest a 200 to `HEAD <path>` on `registry` (host[:port]) gives, over
    verified TLS (the host's CA store, as RegistryClient's) when `tls`, else plain HTTP; None
    for any other outcome."""
    if any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARIABLES):
        return None  # httpx honours them; going around a proxy may not even connect
    try:
        host, port = _address(registry, 443 if tls else 80)
        request = (
            f"HEAD {path} HTTP/1.1\r\nHost: {registry}\r\nAccept: {media_type}\r\n"
            "User-Agent: imagewright\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        conn = _connect(host, port)
        try:
            if not tls:
                return _answer(conn, request)
            import socket

            from .._http import host_trust

            with socket.socket(fileno=conn.detach()) as raw:
                raw.settimeout(_TIMEOUT)  # (a socket made from a descriptor has none)
                with host_trust().wrap_socket(raw, server_hostname=host) as secure:
                    return _answer(secure, request)
        finally:
            conn.close()
    except (OSError, UnicodeError, ValueError):  # ssl.SSLError and timeouts are OSErrors
        return None


def _address(registry: str, default_port: int) -> tuple[str, int]:
    """(host, port) of host[:port], an IPv6 host in brackets; ValueError for a port that is
    no port (which RegistryClient then reports)."""
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = registry.rpartition(":")
        host, port = (host, port) if sep else (registry, "")
    if not port:
        return host, default_port
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"no port: {port!r}")
    return host, int(port)


def _connect(host: str, port: int) -> _socket.socket:
    """A socket connected to the first of host's addresses that answers."""
    # bytes, which getaddrinfo takes as they are: a str would load the IDNA codec, and
    # unicodedata with it (~5 ms)
    found = _socket.getaddrinfo(host.encode("ascii"), port, 0, _socket.SOCK_STREAM)
    refused: OSError = OSError(f"{host} has no address")
    for family, kind, proto, _, address in found:
        conn = _socket.socket(family, kind, proto)
        conn.settimeout(_TIMEOUT)
        try:
            conn.connect(address)
            return conn
        except OSError as exc:
            conn.close()
            refused = exc
    raise refused


def _answer(conn: _socket.socket, request: bytes) -> str | None:
    conn.sendall(request)
    head = b""
    deadline = time.monotonic() + _TIMEOUT  # for the whole answer, not each piece of it
    while b"\r\n\r\n" not in head:
        piece = conn.recv(4096)
        if not piece or len(head) > _MAX_HEAD or time.monotonic() > deadline:
            return None
        head += piece
    status, *lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    version, _, rest = status.partition(b" ")
    if not version.startswith(b"HTTP/1.") or rest.split(b" ", 1)[0] != b"200":
        return None
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"docker-content-digest":
            return value.strip().decode("ascii")
    return None

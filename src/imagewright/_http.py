"""HTTP clients for registries and Dockerfile `ADD <url>`.

They verify TLS against the host's CA store rather than certifi's bundle, so a TLS-intercepting
corporate proxy that the host trusts is trusted here too, and they honour the proxy variables.
The store is read at the first TLS handshake, not when a client is made: reading it costs
30-50 ms here, and a registry on loopback speaks plain HTTP and may never need it.
"""

from __future__ import annotations

import ssl
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["host_trust", "http_client"]


def http_client(*, insecure: bool = False, follow_redirects: bool = False) -> httpx.Client:
    """A client; `insecure` turns TLS verification off (plain-HTTP and self-signed registries)."""
    # httpx imports its command-line client (click, rich and pygments: about 90 ms here) whenever
    # click is installed, and uvicorn's bundle for web containers installs it. We never run that
    # client: None in sys.modules makes its import fail at once, which httpx expects and handles.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None blocks an import
    import httpx

    verify: ssl.SSLContext | bool = False if insecure else host_trust()
    timeout = httpx.Timeout(120, connect=15)
    return httpx.Client(timeout=timeout, verify=verify, follow_redirects=follow_redirects)


def host_trust() -> ssl.SSLContext:
    """A context that checks hostname and certificate against the host's CA store."""
    return _HostTrust(ssl.PROTOCOL_TLS_CLIENT)


class _HostTrust(ssl.SSLContext):
    """ssl.create_default_context()'s context (hostname and certificate checked against the
    host's CA store), with the store loaded at the first handshake."""

    _lock = threading.Lock()
    _loaded = False

    def _load(self) -> None:
        with self._lock:
            if not self._loaded:
                self.load_default_certs(ssl.Purpose.SERVER_AUTH)
                self._loaded = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load()
        return super().wrap_bio(*args, **kwargs)

"""HTTP clients for registries and Dockerfile `ADD <url>`.

They verify TLS against the host's CA store rather than certifi's bundle, so a TLS-intercepting
corporate proxy that the host trusts is trusted here too, and they honour the proxy variables.
"""

from __future__ import annotations

import ssl
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["http_client"]


def http_client(*, insecure: bool = False, follow_redirects: bool = False) -> httpx.Client:
    """A client; `insecure` turns TLS verification off (plain-HTTP and self-signed registries)."""
    # httpx imports its command-line client (click, rich and pygments: about 90 ms here) whenever
    # click is installed, and uvicorn's bundle for web containers installs it. We never run that
    # client: None in sys.modules makes its import fail at once, which httpx expects and handles.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None blocks an import
    import httpx

    verify: ssl.SSLContext | bool = False if insecure else ssl.create_default_context()
    timeout = httpx.Timeout(120, connect=15)
    return httpx.Client(timeout=timeout, verify=verify, follow_redirects=follow_redirects)

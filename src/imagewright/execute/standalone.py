"""uv-managed standalone CPython for series no distribution release packages, and for exact
versions ("3.11.4") a release does not ship.

uv downloads the build on the host (honouring UV_PYTHON_INSTALL_MIRROR) into the store once;
base setup then copies the tree into the image. Fetching happens before any step runs, so an
unreachable download source fails the build at once with the list of series on offer.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..exception import InvalidError
from ..store.store import Store

__all__ = ["fetch_standalone"]

_TIMEOUT = 300


def fetch_standalone(store: Store, series: str, unavailable: str) -> Path:
    """The installed tree of standalone CPython `series` (major.minor, or an exact version);
    InvalidError(`unavailable`) if none."""
    root = store.root / "tools" / "python"
    found = _installed(root, series)
    if found is not None:
        return found
    from .environment import uv_binary

    with store.lock(f"python-{series}"):
        found = _installed(root, series)
        if found is not None:
            return found
        try:
            proc = subprocess.run(
                [uv_binary(store, ""), "python", "install", series, "--install-dir", str(root)],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT,
                env={**os.environ, "UV_PYTHON_INSTALL_DIR": str(root)},
            )
            reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        except subprocess.TimeoutExpired:
            reason = f"no answer within {_TIMEOUT} s"
        found = _installed(root, series)
        if found is None:
            raise InvalidError(
                f"{unavailable}\nuv could not download a standalone CPython {series}: "
                f"{reason.strip()}"
            )
    return found


def _installed(root: Path, version: str) -> Path | None:
    """The tree of `version` under `root`: any micro version of a series, or that exact one."""
    series = ".".join(version.split(".")[:2])
    pattern = f"cpython-{series}.*-linux-*" if version == series else f"cpython-{version}-linux-*"
    for path in sorted(root.glob(pattern)):
        if (path / "bin" / f"python{series}").exists():
            return path
    return None

"""Mount: a local directory named for Modal's `context_mount=` (the Dockerfile build context)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

__all__ = ["Mount"]


class Mount(NamedTuple):
    """A local directory and where it would appear; from_dockerfile uses `local_dir` as context."""

    local_dir: str
    remote_path: str

    @staticmethod
    def from_local_dir(local_path: str | Path, *, remote_path: str | Path) -> Mount:
        return Mount(os.path.abspath(os.path.expanduser(local_path)), str(remote_path))

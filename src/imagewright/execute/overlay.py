"""What a sandbox runs over and with: the overlay to mount, host paths bound in, the command.

Plain records, apart from sandbox.py, so that a step which runs no sandbox (a cached one, a copy
the builder writes itself) never imports subprocess and the rest of what starting one takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["Bind", "Overlay", "SandboxCommand"]


# NamedTuples, not dataclasses: dataclasses imports inspect, ~3 ms of the first step a build
# runs, and these are plain records.
class Overlay(NamedTuple):
    """A root filesystem to mount: lower dirs (top first) relative to `cwd`, plus upper/work."""

    cwd: Path
    lowers: tuple[str, ...]
    upper: Path
    work: Path
    merged: Path


class Bind(NamedTuple):
    """A host path bound into the sandbox."""

    source: str
    target: str
    readonly: bool = True
    # Whether a mount point bwrap had to create stays in the layer (as Docker leaves those of
    # RUN --mount=type=cache) or is removed after the command.
    keep_mount_point: bool = False


class SandboxCommand(NamedTuple):
    """What to run, and with what environment, directory and extra mounts."""

    argv: Sequence[str]
    env: Mapping[str, str]
    workdir: str = "/"
    binds: tuple[Bind, ...] = ()
    interactive: bool = False
    user: str = ""  # USER: run argv as this user (execute/user.py); "" for root
    private_tmp: bool = True  # a fresh tmpfs on /tmp, rather than the image's /tmp
    own_network: bool = False  # a network namespace of its own (network.py), not the host's

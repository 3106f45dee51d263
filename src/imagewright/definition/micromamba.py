"""Image.micromamba and micromamba_install: Modal's conda images, as the ops that build them.

The base is Modal's: the mambaorg/micromamba image of Modal's current image builder, its
Dockerfile shell (which activates the base environment in every RUN), and Python plus pip
installed into that environment from conda-forge.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from .ops import CopyLocal, Run, SetConfig

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from .ops import Op

__all__ = ["MICROMAMBA_IMAGE", "micromamba_install_ops", "micromamba_setup_ops"]

# The micromamba image of Modal's image builder 2026.10 (its builder/base-images.json).
MICROMAMBA_IMAGE = "mambaorg/micromamba:2.9.0-debian13-slim"


def micromamba_setup_ops(python_version: str) -> tuple[Op, ...]:
    """The lines Modal's micromamba Dockerfile adds after its FROM."""
    python = shlex.quote(python_version)
    return (
        SetConfig("shell", ("/usr/local/bin/_dockerfile_shell.sh",)),
        SetConfig("env", (("MAMBA_DOCKERFILE_ACTIVATE", "1"),)),
        Run(f"micromamba install -n base -y python={python} pip -c conda-forge"),
        # as Modal's bases: a container started without a command stays up for 48 hours
        SetConfig("cmd", ("sleep", str(48 * 3600))),
    )


def micromamba_install_ops(
    packages: Sequence[str], spec_file: str | None, channels: Sequence[str]
) -> list[Op]:
    """`micromamba install` of `packages` and of a local spec file (copied to /NAME) into the
    base environment."""
    ops: list[Op] = []
    args = ["micromamba install"]
    args += [shlex.join(packages)] if packages else []
    if spec_file is not None:
        remote = f"/{os.path.basename(spec_file)}"
        ops.append(CopyLocal(os.path.expanduser(spec_file), remote))
        args.append(f"-f {shlex.quote(remote)} -n base")
    args += [f"-c {shlex.quote(channel)}" for channel in channels]
    args.append("--yes")
    ops.append(Run(" ".join(args)))
    return ops

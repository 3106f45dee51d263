"""The command lines of the package methods (apt_install, pip_install*, uv_pip_install,
uv_sync): arguments Image has already checked become the ops that install them.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from .ops import CopyLocal, Op, Run, SetConfig

__all__ = [
    "apt_install_ops",
    "pip_flags",
    "pip_install_op",
    "pip_requirements_ops",
    "uv_pip_install_ops",
    "uv_sync_ops",
]

_UV = "/.uv/uv"  # where a step's Run(uv=...) binds uv


def apt_install_ops(packages: Sequence[str]) -> tuple[Op, ...]:
    return (Run("apt-get update"), Run(f"apt-get install -y {shlex.join(packages)}"))


def pip_flags(
    find_links: str | None,
    index_url: str | None,
    extra_index_url: str | None,
    pre: bool,
    extra_options: str,
) -> str:
    pairs = (
        ("--find-links", find_links),
        ("--index-url", index_url),
        ("--extra-index-url", extra_index_url),
    )
    flags = [f"{flag} {shlex.quote(value)}" for flag, value in pairs if value is not None]
    flags += ["--pre"] if pre else []
    flags += [extra_options] if extra_options else []
    return " ".join(flags)


def pip_install_op(packages: Sequence[str], flags: str) -> Run:
    """`pip install` of `packages` into the image's Python; `flags` from pip_flags."""
    return Run(_join("python -m pip install", shlex.join(packages), flags))


def pip_requirements_ops(requirements_txt: str, flags: str) -> tuple[Op, ...]:
    """Copy a local requirements file in, then `pip install -r` it."""
    return (
        CopyLocal(requirements_txt, "/.requirements.txt"),
        Run(_join("python -m pip install -r /.requirements.txt", flags)),
    )


def uv_pip_install_ops(
    packages: Sequence[str],
    requirements: Sequence[str],
    find_links: str | None,
    index_url: str | None,
    extra_index_url: str | None,
    pre: bool,
    extra_options: str,
    uv: str,
) -> list[Op]:
    """`uv pip install` into the first `python` on PATH, each requirements file copied in."""
    ops: list[Op] = []
    args = [f"{_UV} pip install --python $(command -v python) --compile-bytecode"]
    args += [f"--find-links {shlex.quote(find_links)}"] if find_links else []
    args += [f"--index-url {shlex.quote(index_url)}"] if index_url else []
    args += [f"--extra-index-url {shlex.quote(extra_index_url)}"] if extra_index_url else []
    args += ["--prerelease allow"] if pre else []
    args += [extra_options] if extra_options else []
    for i, req in enumerate(requirements):
        target = f"/.uv/{i}/{os.path.basename(req)}"
        ops.append(CopyLocal(os.path.expanduser(req), target))
        args.append(f"--requirements {target}")
    args += [shlex.quote(p) for p in packages]
    ops.append(Run(" ".join(args), uv=uv))
    return ops


def uv_sync_ops(
    project: Path,
    groups: Sequence[str],
    extras: Sequence[str],
    frozen: bool,
    extra_options: str,
    uv: str,
) -> list[Op]:
    """`uv sync` of a project's locked dependencies into /.uv/.venv, then that venv on PATH."""
    lock = project / "uv.lock"
    ops: list[Op] = [CopyLocal(str(project / "pyproject.toml"), "/.uv/pyproject.toml")]
    if lock.exists():
        ops.append(CopyLocal(str(lock), "/.uv/uv.lock"))
    cmd = [f"{_UV} sync --project=/.uv --no-install-workspace --compile-bytecode"]
    cmd += [f"--group={g}" for g in groups] + [f"--extra={e}" for e in extras]
    cmd += [extra_options] if extra_options else []
    cmd += ["--frozen"] if frozen and lock.exists() else []
    ops.append(Run(" ".join(cmd), uv=uv))
    ops.append(SetConfig("env_expand", (("PATH", "/.uv/.venv/bin:$PATH"),)))
    return ops


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)

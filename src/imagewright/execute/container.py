"""Containers of built images: a fresh, throwaway overlay over the image's layers.

The image's layers lie under its attached local files (layers.py). Whatever the container
writes lands in a scratch upper directory that is deleted when it exits. This module runs a
command in one; functions.py starts ones that serve function calls.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from ..definition.config import ImageConfig
from ..definition.layer import LocalMount
from ..plan.planner import Plan
from ..store.store import Store
from .environment import container_env, host_ca_bundle
from .layers import container_lowers
from .overlay import Bind, Overlay, SandboxCommand
from .sandbox import spawn

__all__ = ["run_container", "run_in_container", "runtime_binds"]


def runtime_binds() -> list[Bind]:
    """What every container gets from the host: the resolver and the CA bundle."""
    binds = [Bind("/etc/resolv.conf", "/etc/resolv.conf")]
    ca = host_ca_bundle()
    if ca:
        binds.append(Bind(ca, "/tmp/.imagewright/ca-certificates.crt"))
    return binds


def run_container(
    plan: Plan,
    store: Store,
    argv: Sequence[str],
    *,
    interactive: bool = False,
    env: Mapping[str, str] = {},
    capture: bool = False,
    extra_mounts: tuple[LocalMount, ...] = (),
) -> tuple[int, str]:
    """Run `argv` in a fresh container of the built image.

    Returns the exit status and, with `capture`, the combined stdout and stderr (otherwise the
    container writes to ours).
    """
    lowers = container_lowers(plan, store, extra_mounts)
    return run_in_container(
        lowers, plan.config, store, argv, interactive=interactive, env=env, capture=capture
    )


def run_in_container(
    lowers: tuple[str, ...],
    config: ImageConfig,
    store: Store,
    argv: Sequence[str],
    *,
    interactive: bool = False,
    env: Mapping[str, str] = {},
    capture: bool = False,
) -> tuple[int, str]:
    """Run `argv` in a fresh container over `lowers` (store-relative, top first) with the
    settings of `config`; what `run_container` returns. `shell --failed` runs its shell over a
    failed step's kept area (failed.py) with this."""
    extra = dict(env)
    if interactive and "TERM" in os.environ:
        extra.setdefault("TERM", os.environ["TERM"])
    cmd = SandboxCommand(
        argv,
        container_env(config, extra),
        config.workdir,
        tuple(runtime_binds()),
        interactive,
        config.user,
    )
    pipe = subprocess.PIPE if capture else None
    with store.scratch() as area:
        overlay = Overlay(store.root, lowers, area.upper, area.work, area.merged)
        proc = spawn(overlay, cmd, stdout=pipe, stderr=subprocess.STDOUT if capture else None)
        try:
            out, _ = proc.communicate()
            return proc.returncode, (out or b"").decode("utf-8", "replace")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

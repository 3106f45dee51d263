"""Containers of built images: a fresh, throwaway overlay over the image's layers.

Files added with `copy=False` become one more cached lower layer, keyed by their contents, so
attaching them costs nothing after the first start. Whatever the container writes lands in a
scratch upper directory that is deleted when it exits.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from ..definition.config import ImageConfig
from ..exception import ExecutionError
from ..plan.canonical import digest
from ..plan.planner import Plan, resolve_mounts
from ..store.store import LayerRecord, Store, dir_size
from .builder import lowers_for
from .environment import host_ca_bundle, step_env
from .sandbox import Bind, Overlay, SandboxCommand, spawn
from .steps import copy_into

__all__ = ["container_env", "mount_layer", "run_container"]


def container_env(config: ImageConfig, extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The environment of a container: the image's ENV plus `extra` (secrets, TERM)."""
    env = {k: v for k, v in step_env(config, {}).items() if not k.startswith(("UV_", "PIP_C"))}
    env.update(extra)
    return env


def mount_layer(plan: Plan, store: Store) -> str | None:
    """The cached layer holding the image's copy=False files, built on first use."""
    entries = resolve_mounts(plan.mounts)
    if not entries:
        return None
    key = digest(
        {"type": "imagewright.mounts.v1", "image": plan.key, "files": [e.key() for e in entries]}
    )
    if store.lookup(key) is None:
        with store.lock(key), store.scratch() as area:
            if store.lookup(key) is None:
                overlay = Overlay(
                    store.root, lowers_for(plan, store), area.upper, area.work, area.merged
                )
                output: list[str] = []
                if copy_into(overlay, entries, output.append) != 0:
                    raise ExecutionError("Could not attach local files:\n" + "\n".join(output))
                store.commit(
                    area,
                    LayerRecord(
                        key,
                        plan.key,
                        "local files (copy=False)",
                        0.0,
                        0.0,
                        dir_size(area.upper),
                        False,
                    ),
                )
    return store.lower_name(key)


def run_container(
    plan: Plan,
    store: Store,
    argv: Sequence[str],
    *,
    interactive: bool = False,
    env: Mapping[str, str] = {},
    capture: bool = False,
) -> tuple[int, str]:
    """Run `argv` in a fresh container of the built image.

    Returns the exit status and, with `capture`, the combined stdout and stderr (otherwise the
    container writes to ours).
    """
    lowers = lowers_for(plan, store)
    mounts = mount_layer(plan, store)
    if mounts:
        lowers = (mounts, *lowers)
    extra = dict(env)
    if interactive and "TERM" in os.environ:
        extra.setdefault("TERM", os.environ["TERM"])
    binds = [Bind("/etc/resolv.conf", "/etc/resolv.conf")]
    ca = host_ca_bundle()
    if ca:
        binds.append(Bind(ca, "/tmp/.imagewright/ca-certificates.crt"))
    cmd = SandboxCommand(
        argv, container_env(plan.config, extra), plan.config.workdir, tuple(binds), interactive
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

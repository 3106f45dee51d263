"""Containers of built images: a fresh, throwaway overlay over the image's layers.

Files added with `copy=False` (and a function's own source) become one more cached lower layer,
keyed by their contents, so attaching them costs nothing after the first start. Whatever the
container writes lands in a scratch upper directory that is deleted when it exits.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from ..definition.layer import LocalMount
from ..exception import ExecutionError
from ..plan.canonical import digest
from ..plan.files import FileEntry
from ..plan.planner import Plan, resolve_mounts
from ..store.store import Store
from .builder import lowers_for
from .environment import container_env, host_ca_bundle
from .sandbox import Bind, Overlay, SandboxCommand, spawn
from .steps import copy_into

__all__ = [
    "attach_files",
    "container_lowers",
    "run_container",
    "runtime_binds",
]


def runtime_binds() -> list[Bind]:
    """What every container gets from the host: the resolver and the CA bundle."""
    binds = [Bind("/etc/resolv.conf", "/etc/resolv.conf")]
    ca = host_ca_bundle()
    if ca:
        binds.append(Bind(ca, "/tmp/.imagewright/ca-certificates.crt"))
    return binds


def container_lowers(
    plan: Plan, store: Store, extra: tuple[LocalMount, ...] = ()
) -> tuple[str, ...]:
    """Lower dirs for a container: the image's layers under its attached local files."""
    entries = resolve_mounts((*plan.mounts, *extra))
    open_root = not plan.config.runs_as_root
    return attach_files(store, plan.key, lowers_for(plan, store), entries, open_root)


def attach_files(
    store: Store,
    base_key: str,
    lowers: tuple[str, ...],
    entries: tuple[FileEntry, ...],
    open_root: bool = False,
) -> tuple[str, ...]:
    """`lowers` with one more layer on top holding `entries`, cached by their contents.

    With `open_root` (the image's USER is not root), /root becomes 755 in that layer, so the
    user can import the function source attached there (Python lists the directories it imports
    from).
    """
    if not entries:
        return lowers
    files = [e.key() for e in entries]
    # (open_root follows from the image, which base_key names)
    key = digest({"type": "imagewright.mounts.v1", "image": base_key, "files": files})
    if store.lookup(key) is None:
        with store.lock(key), store.scratch() as area:
            if store.lookup(key) is None:
                overlay = Overlay(store.root, lowers, area.upper, area.work, area.merged)
                output: list[str] = []
                if copy_into(overlay, entries, output.append) != 0:
                    raise ExecutionError("Could not attach local files:\n" + "\n".join(output))
                if open_root and (area.upper / "root").is_dir():
                    (area.upper / "root").chmod(0o755)
                store.commit(area, key, base_key, "local files (copy=False)")
    return (store.lower_name(key), *lowers)


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
    extra = dict(env)
    if interactive and "TERM" in os.environ:
        extra.setdefault("TERM", os.environ["TERM"])
    cmd = SandboxCommand(
        argv,
        container_env(plan.config, extra),
        plan.config.workdir,
        tuple(runtime_binds()),
        interactive,
        plan.config.user,
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

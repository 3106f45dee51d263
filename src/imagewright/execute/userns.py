"""The user namespace every sandbox runs in: the host's uids, without the host's privileges.

It maps every uid and gid to itself, so a layer's files keep their owners (root's files stay
root's, apt's `_apt` stays uid 42) and overlayfs, mounted outside it, needs no id shifting. What
changes is where capabilities count: a process's capabilities in a child user namespace apply
only to what that namespace owns. The host's network namespace, keyrings, sysctls, modules and
mounts belong to the initial namespace, so root in a sandbox cannot touch them.

One namespace serves every sandbox this process starts (bwrap joins it with --userns); sandboxes
stay apart through their own PID, mount and IPC namespaces.
"""

from __future__ import annotations

import os
import subprocess
import threading

from ..exception import ExecutionError

__all__ = ["identity_userns"]

_FULL_RANGE = "0 0 4294967295\n"
_lock = threading.Lock()
_fd: int | None = None


def identity_userns() -> int:
    """An fd of the identity-mapped user namespace (opened once, kept for the process)."""
    global _fd
    with _lock:
        if _fd is None:
            _fd = _create()
        return _fd


def _create() -> int:
    # A child enters a new user namespace and waits; as root outside it, we write its maps,
    # keep a handle on the namespace, and let the child go.
    holder = subprocess.Popen(
        ["unshare", "--user", "--", "/bin/sh", "-c", "echo ready; read _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        if holder.stdout.readline() != b"ready\n":
            detail = holder.stderr.read().decode(errors="replace").strip() if holder.stderr else ""
            raise ExecutionError(f"could not create a user namespace for the sandbox: {detail}")
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{holder.pid}/{name}", "w") as f:
                f.write(_FULL_RANGE)
        return os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ExecutionError(f"could not set up the sandbox's user namespace: {exc}") from None
    finally:
        holder.stdin.close()
        holder.wait()

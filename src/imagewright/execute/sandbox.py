"""The sandbox: our own overlay mount in a private mount namespace, then bubblewrap over it.

bubblewrap 0.8 (Debian 12) cannot mount overlays itself, so `unshare` gives the step a private
mount namespace, a few lines of sh mount the overlay there, and bwrap runs the command with the
merged tree as `/`. The mount vanishes with the namespace, so a killed build leaves none behind;
bwrap's --die-with-parent takes the whole PID namespace down if the builder dies.

The step gets its own PID, IPC and UTS namespaces, a private /tmp, /proc and /dev, a clean
environment, the host network, and Docker's default capabilities minus CAP_MKNOD (and so without
CAP_SYS_ADMIN): it can install packages but cannot mount, make device nodes or load modules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .user import as_user

__all__ = [
    "Bind",
    "Overlay",
    "SandboxCommand",
    "remove_placeholders",
    "run_sandboxed",
    "spawn",
    "spawn_in_namespace",
    "stream",
]

# Docker's default capability set without CAP_MKNOD.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip

# Mount the overlay (and a read-only one of another image, for COPY --from), note which bind
# targets are missing (bwrap creates them in the upper dir and we remove those placeholders
# afterwards), then become bwrap.
_MOUNT_SCRIPT = r"""
set -e
options="lowerdir=$1,upperdir=$2,workdir=$3,redirect_dir=off,metacopy=off,index=off"
mount -t overlay overlay -o "$options" "$4"
[ -z "$IW_RO_LOWERS" ] || mount -t overlay overlay -o "ro,lowerdir=$IW_RO_LOWERS" "$IW_RO_MERGED"
merged=$4; created=$5; shift 5
: > "$created"
for target in $IW_BIND_TARGETS; do
  path=
  IFS=/
  for part in $target; do
    [ -n "$part" ] || continue
    path="$path/$part"
    [ -e "$merged$path" ] || [ -L "$merged$path" ] || echo "$path" >> "$created"
  done
  unset IFS
done
exec "$@"
"""


@dataclass(frozen=True)
class Overlay:
    """A root filesystem to mount: lower dirs (top first) relative to `cwd`, plus upper/work."""

    cwd: Path
    lowers: tuple[str, ...]
    upper: Path
    work: Path
    merged: Path


@dataclass(frozen=True)
class Bind:
    """A host path bound into the sandbox."""

    source: str
    target: str
    readonly: bool = True
    # Whether a mount point bwrap had to create stays in the layer (as Docker leaves those of
    # RUN --mount=type=cache) or is removed after the command.
    keep_mount_point: bool = False


@dataclass(frozen=True)
class SandboxCommand:
    """What to run, and with what environment, directory and extra mounts."""

    argv: Sequence[str]
    env: Mapping[str, str]
    workdir: str = "/"
    binds: tuple[Bind, ...] = field(default=())
    interactive: bool = False
    user: str = ""  # USER: run argv as this user (execute/user.py); "" for root
    private_tmp: bool = True  # a fresh tmpfs on /tmp, rather than the image's /tmp


def _bwrap_argv(merged: Path, cmd: SandboxCommand) -> list[str]:
    args = [
        "bwrap", "--bind", str(merged), "/",
        "--dev", "/dev", "--tmpfs", "/dev/shm", "--proc", "/proc",
        "--ro-bind", "/sys", "/sys",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "imagewright",
        "--die-with-parent", "--clearenv", "--cap-drop", "ALL",
    ]  # fmt: skip
    if cmd.private_tmp:
        args += ["--perms", "1777", "--tmpfs", "/tmp"]
    for cap in CAPABILITIES:
        args += ["--cap-add", cap]
    if not cmd.interactive:
        args.append("--new-session")  # no controlling terminal to inject keystrokes into
    for bind in cmd.binds:
        if cmd.private_tmp and bind.target.startswith("/tmp/"):
            args += ["--dir", os.path.dirname(bind.target)]
        args += ["--ro-bind" if bind.readonly else "--bind", bind.source, bind.target]
    for key, value in cmd.env.items():
        args += ["--setenv", key, value]
    args += ["--chdir", cmd.workdir, "--", *as_user(cmd.argv, cmd.user)]
    return args


def spawn_in_namespace(
    overlay: Overlay,
    inner: Sequence[str],
    bind_targets: Sequence[str] = (),
    readonly: tuple[tuple[str, ...], Path] | None = None,
    **popen: object,
) -> subprocess.Popen[bytes]:
    """Mount `overlay` in a private mount namespace and exec `inner` there.

    `readonly` is (lower dirs, mount point) of a second tree mounted read-only beside it.
    """
    if not shutil.which("bwrap") or not shutil.which("unshare"):
        from ..exception import ExecutionError

        raise ExecutionError(
            "bubblewrap (bwrap) and unshare are needed to run build steps: "
            "apt-get install bubblewrap util-linux"
        )
    created = overlay.work.parent / "placeholders"
    argv = [
        "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _MOUNT_SCRIPT, "sh",
        ":".join(overlay.lowers), str(overlay.upper), str(overlay.work), str(overlay.merged),
        str(created), *inner,
    ]  # fmt: skip
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "IW_BIND_TARGETS": " ".join(bind_targets),
    }
    if readonly is not None:
        env["IW_RO_LOWERS"], env["IW_RO_MERGED"] = ":".join(readonly[0]), str(readonly[1])
    return subprocess.Popen(argv, cwd=overlay.cwd, env=env, **popen)  # type: ignore[call-overload]


def spawn(overlay: Overlay, cmd: SandboxCommand, **popen: object) -> subprocess.Popen[bytes]:
    """Start `cmd` in a sandbox over `overlay`. The caller owns the returned process."""
    # mount points bwrap must create in the image are removed afterwards (not those in a tmpfs)
    in_tmpfs = ("/tmp/",) if cmd.private_tmp else ()
    targets = [
        b.target for b in cmd.binds if not (b.target.startswith(in_tmpfs) or b.keep_mount_point)
    ]
    return spawn_in_namespace(overlay, _bwrap_argv(overlay.merged, cmd), targets, **popen)


def stream(proc: subprocess.Popen[bytes], on_line: Callable[[str], None]) -> int:
    """Pass each output line of `proc` to `on_line`; kill it if interrupted. Returns its status."""
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
        return proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: bwrap's death takes its PID namespace down
            proc.kill()
            proc.wait()


def run_sandboxed(overlay: Overlay, cmd: SandboxCommand, on_line: Callable[[str], None]) -> int:
    """Run `cmd` to completion, passing each output line (stdout and stderr) to `on_line`."""
    proc = spawn(
        overlay,
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        return stream(proc, on_line)
    finally:
        remove_placeholders(overlay)


def remove_placeholders(overlay: Overlay) -> None:
    """Delete the empty files and directories bwrap made as mount points in the upper dir."""
    created = overlay.work.parent / "placeholders"
    try:
        paths = created.read_text().split()
    except FileNotFoundError:
        return
    for path in sorted(paths, key=len, reverse=True):
        full = overlay.upper / path.lstrip("/")
        try:
            if full.is_dir() and not full.is_symlink():
                full.rmdir()
            elif full.is_file() and full.stat().st_size == 0:
                full.unlink()
        except OSError:
            pass  # not empty: the step wrote real content there, so it stays
    created.unlink()

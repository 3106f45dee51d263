"""The sandbox: our own overlay mount in a private mount namespace, then bubblewrap over it.

bubblewrap 0.8 (Debian 12) cannot mount overlays itself, so `unshare` gives the step a private
mount namespace, a few lines of sh mount the overlay there (as the host's root, so overlayfs
keeps its privileged whiteouts and xattrs), and bwrap runs the command with the merged tree as
`/`. The mount vanishes with the namespace, so a killed build leaves none behind; bwrap's
--die-with-parent takes the whole PID namespace down if the builder dies. Copies run our own
standard-library scripts in a helper sandbox (spawn_helper) with the same walls, fewer
capabilities, no network and no /proc, /sys or devices at all.

What a sandboxed process is, and is not:
- It runs in a user namespace of its own (userns.py). Its uids are the host's, so files it
  writes in a layer belong to the right owners, but its capabilities count only inside that
  namespace: not for the host's network (no raw sockets, no privileged ports), keyrings, kernel
  modules, mounts or sysctls.
- It keeps Docker's default capabilities minus CAP_MKNOD and CAP_NET_RAW, under a seccomp
  filter at least as strict as Docker's default profile (seccomp.py): no new namespaces, no
  keyctl, bpf or perf_event_open, no TIOCSTI.
- /proc is its own, with /proc/sys, /proc/sysrq-trigger and the other host-global files read-only
  or masked, as in Docker; /sys is read-only with its firmware masked.
- It has its own PID, IPC and UTS namespaces, a private /tmp and /dev, the host network (steps
  download packages) unless it asks for its own (network.py), and only the environment we
  give it. The environment reaches bwrap through
  its own environ, never its argv, so `ps` shows no secret.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .overlay import Bind, Overlay, SandboxCommand
from .seccomp import filter_fd
from .user import as_user
from .userns import identity_userns

__all__ = [
    "remove_placeholders",
    "run_sandboxed",
    "spawn",
    "spawn_helper",
    "spawn_host_tool",
    "spawn_in_namespace",
    "stream",
]

# Docker's default capability set without CAP_MKNOD and CAP_NET_RAW.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)  # fmt: skip
# The copy helpers only create files, with any owner, and chroot into images.
HELPER_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SYS_CHROOT",
)  # fmt: skip
# Docker's masked and read-only paths: host-global files a container has no business with.
_PROC_READONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
_PROC_MASKED_FILES = (
    "/proc/kcore", "/proc/keys", "/proc/key-users", "/proc/timer_list", "/proc/sched_debug",
    "/proc/latency_stats", "/proc/kallsyms", "/proc/kmsg", "/proc/kpagecount", "/proc/kpageflags",
    "/proc/kpagecgroup", "/proc/config.gz", "/proc/vmallocinfo",
)  # fmt: skip
# The package's own directory: the copy script (copyfrom.py) imports _copyrules.py from it.
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
# What of the host's /etc a package tool needs: apt's and dpkg's settings, trust stores, name
# resolution and the account files apt drops privileges with. Nothing else of /etc is visible.
_HOST_ETC = (
    "apt", "dpkg", "mmdebstrap", "ssl", "ca-certificates", "alternatives", "resolv.conf", "hosts",
    "gai.conf", "nsswitch.conf", "passwd", "group", "localtime", "ld.so.cache",
)  # fmt: skip
_MASKED_DIRS = ("/proc/acpi", "/proc/scsi", "/proc/asound", "/sys/firmware", "/sys/kernel/debug")

# Mount the overlay (and a read-only one of another image, for COPY --from), note which bind
# targets are missing (bwrap creates them in the upper dir and we remove those placeholders
# afterwards), then become bwrap. Our IW_ variables leave the environment before bwrap: the
# rest of it is the sandbox's.
_MOUNT_SCRIPT = r"""
set -e
mount=$IW_MOUNT; targets=$IW_BIND_TARGETS; ro_lowers=$IW_RO_LOWERS; ro_merged=$IW_RO_MERGED
unset IW_MOUNT IW_BIND_TARGETS IW_RO_LOWERS IW_RO_MERGED
options="lowerdir=$1,upperdir=$2,workdir=$3,redirect_dir=off,metacopy=off,index=off"
"$mount" -t overlay overlay -o "$options" "$4"
[ -z "$ro_lowers" ] || "$mount" -t overlay overlay -o "ro,lowerdir=$ro_lowers" "$ro_merged"
merged=$4; created=$5; shift 5
: > "$created"
for target in $targets; do
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


def _isolation_args(
    capabilities: tuple[str, ...], seccomp: int, *, system: bool = True
) -> list[str]:
    """What every sandbox gets: its own user, PID, IPC and UTS namespaces, the seccomp filter
    (an fd bwrap reads at start) and `capabilities`; with `system`, /proc and /dev of its own
    with host-global files read-only or masked, and /sys read-only."""
    args = [
        "--userns", str(identity_userns()), "--seccomp", str(seccomp),
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--hostname", "imagewright", "--die-with-parent",
    ]  # fmt: skip
    if not system:
        return [*args, "--cap-drop", "ALL", *_cap_args(capabilities)]
    args += ["--dev", "/dev", "--tmpfs", "/dev/shm", "--proc", "/proc", "--ro-bind", "/sys", "/sys"]
    for path in _PROC_READONLY:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    for path in _PROC_MASKED_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", "/dev/null", path]
    for path in _MASKED_DIRS:
        if os.path.isdir(path):
            args += ["--tmpfs", path, "--remount-ro", path]
    return [*args, "--cap-drop", "ALL", *_cap_args(capabilities)]


def _cap_args(capabilities: tuple[str, ...]) -> list[str]:
    return [arg for cap in capabilities for arg in ("--cap-add", cap)]


def _bwrap_argv(merged: Path, cmd: SandboxCommand, seccomp: int) -> list[str]:
    args = ["bwrap", "--bind", str(merged), "/", *_isolation_args(CAPABILITIES, seccomp)]
    if cmd.private_tmp:
        args += ["--perms", "1777", "--tmpfs", "/tmp"]
    if not cmd.interactive:
        args.append("--new-session")  # no controlling terminal to inject keystrokes into
    if cmd.own_network:
        args.append("--unshare-net")
    for bind in cmd.binds:
        if cmd.private_tmp and bind.target.startswith("/tmp/"):
            args += ["--dir", os.path.dirname(bind.target)]
        args += ["--ro-bind" if bind.readonly else "--bind", bind.source, bind.target]
    args += ["--chdir", cmd.workdir, "--", *as_user(cmd.argv, cmd.user)]
    return args


def _host_root_args(etc: tuple[str, ...]) -> list[str]:
    """Binds that make the host's own programs usable inside a sandbox, read-only: /usr and its
    merged-usr links, this interpreter's prefix, and the files `etc` names under /etc."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in etc:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefix = os.path.realpath(sys.base_prefix)
    if not prefix.startswith("/usr/"):
        args += ["--ro-bind", prefix, prefix]
    return args


def spawn_in_namespace(
    overlay: Overlay,
    inner: Sequence[str],
    bind_targets: Sequence[str] = (),
    readonly: tuple[tuple[str, ...], Path] | None = None,
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Mount `overlay` in a private mount namespace and exec `inner` (a bwrap command) there,
    with `env` as its environment.

    `readonly` is (lower dirs, mount point) of a second tree mounted read-only beside it.
    """
    bwrap, unshare, mount = shutil.which("bwrap"), shutil.which("unshare"), shutil.which("mount")
    if bwrap is None or unshare is None or mount is None:
        from ..exception import ExecutionError

        raise ExecutionError(
            "bubblewrap (bwrap), unshare and mount are needed to run build steps: "
            "apt-get install bubblewrap util-linux mount"
        )
    created = overlay.work.parent / "placeholders"
    argv = [
        unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", _MOUNT_SCRIPT,
        "sh", ":".join(overlay.lowers), str(overlay.upper), str(overlay.work),
        str(overlay.merged), str(created), bwrap, *inner[1:],
    ]  # fmt: skip
    control = {"IW_MOUNT": mount, "IW_BIND_TARGETS": " ".join(bind_targets)}
    if readonly is not None:
        control["IW_RO_LOWERS"], control["IW_RO_MERGED"] = ":".join(readonly[0]), str(readonly[1])
    return subprocess.Popen(argv, cwd=overlay.cwd, env={**(env or {}), **control}, **popen)


@contextlib.contextmanager
def _isolated(popen: dict[str, Any], mounts: bool = False) -> Iterator[int]:
    """The seccomp filter's fd for one bwrap start; `popen` gains the fds bwrap must inherit."""
    seccomp = filter_fd(mounts)
    try:
        popen["pass_fds"] = (*popen.get("pass_fds", ()), identity_userns(), seccomp)
        yield seccomp
    finally:
        os.close(seccomp)


def spawn(overlay: Overlay, cmd: SandboxCommand, **popen: Any) -> subprocess.Popen[bytes]:
    """Start `cmd` in a sandbox over `overlay`. The caller owns the returned process."""
    # mount points bwrap must create in the image are removed afterwards (not those in a tmpfs)
    in_tmpfs = ("/tmp/",) if cmd.private_tmp else ()
    targets = [
        b.target for b in cmd.binds if not (b.target.startswith(in_tmpfs) or b.keep_mount_point)
    ]
    with _isolated(popen) as seccomp:
        argv = _bwrap_argv(overlay.merged, cmd, seccomp)
        return spawn_in_namespace(overlay, argv, targets, env=cmd.env, **popen)


def spawn_helper(
    overlay: Overlay,
    script: str,
    args: Sequence[str],
    binds: Sequence[Bind],
    readonly: tuple[tuple[str, ...], Path] | None = None,
) -> subprocess.Popen[bytes]:
    """Run one of our standard-library scripts (`python -I -S script args`) on the host's own
    interpreter, but sandboxed: the image's merged tree is bound at /image, and `binds` add
    what else it may read. It gets no network, only the capabilities a copy needs, and no host
    file beyond its interpreter and `binds`; it may chroot into the image, and whatever it meets
    there meets the same walls as a build step. It has no /proc, /sys or /dev: a script that
    only opens, hashes and writes files needs none, and each costs mounts at every start.
    Output (stdout and stderr) comes on a pipe.
    """
    popen: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
    }
    with _isolated(popen) as seccomp:
        argv = [
            "bwrap", *_host_root_args(("ld.so.cache",)),
            *_isolation_args(HELPER_CAPABILITIES, seccomp, system=False),
            "--unshare-net", "--new-session",
            "--bind", str(overlay.merged), "/image",
            "--ro-bind", _PACKAGE_DIR, _PACKAGE_DIR,
        ]  # fmt: skip
        for bind in binds:
            argv += ["--ro-bind" if bind.readonly else "--bind", bind.source, bind.target]
        argv += ["--chdir", "/", "--", os.path.realpath(sys.executable), "-I", "-S", script, *args]
        return spawn_in_namespace(overlay, argv, readonly=readonly, **popen)


def spawn_host_tool(
    argv: Sequence[str], writable: Sequence[str], readable: Sequence[str], env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Run a host program that executes package code (mmdebstrap runs maintainer scripts) in a
    sandbox: the host's /usr and the few /etc files a package tool reads, `readable` paths
    read-only and `writable` ones read-write, a private /tmp, and the host network. It keeps
    CAP_SYS_ADMIN, but only over its own user and mount namespaces, and its seccomp filter lets
    it mount (a bootstrap mounts /proc and /dev into the tree it builds) and nothing more than a
    build step otherwise. Output (stdout and stderr) comes on a pipe."""
    popen: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
        "start_new_session": True,
        "env": dict(env),
    }
    with _isolated(popen, mounts=True) as seccomp:
        args = [
            shutil.which("bwrap") or "bwrap", *_host_root_args(_HOST_ETC),
            *_isolation_args((*CAPABILITIES, "CAP_SYS_ADMIN"), seccomp),
            "--new-session", "--tmpfs", "/tmp",
        ]  # fmt: skip
        for path in readable:
            args += ["--ro-bind", path, path]
        for path in writable:
            args += ["--bind", path, path]
        return subprocess.Popen([*args, "--", *argv], **popen)


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

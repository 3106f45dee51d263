"""Containers with a network of their own: a private namespace, the internet through slirp4netns,
and the host's way in.

A web endpoint's container listens on a port, and `serve` may run several containers of one
endpoint. In the host's network they would collide over that port, and a server listening on
0.0.0.0 would face the machine's interfaces. So each gets a network namespace of its own
(bwrap --unshare-net), where only its loopback exists, and:

- slirp4netns, the user-mode TCP/IP stack rootless Podman uses, gives it the internet through a
  tap device, with no bridge, veth or firewall rule on the host. It runs sandboxed
  (--enable-sandbox, --enable-seccomp) and with --disable-host-loopback, so a container cannot
  reach services listening on the host's 127.0.0.1. Its DNS forwarder is 10.0.2.3.
- The host reaches a port inside by creating its socket in the container's namespace: a
  socket belongs to the namespace it was created in, and setns() moves only the calling thread,
  back again right after. Connections then run over the container's loopback at kernel speed,
  with no forwarder in the container.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..exception import ExecutionError

__all__ = ["RESOLV_CONF", "Internet", "namespace_child", "socket_in"]

RESOLV_CONF = "nameserver 10.0.2.3\n"  # slirp4netns' DNS forwarder
_CLONE_NEWNET = 0x40000000
_READY_TIMEOUT = 10.0
_setns_lock = threading.Lock()
_libc: ctypes.CDLL | None = None


def namespace_child(bwrap_pid: int, timeout: float = _READY_TIMEOUT) -> int:
    """The PID of bwrap's child once it is in a network namespace other than ours and done
    setting it up (bwrap brings the loopback up itself, and slirp4netns must not configure
    the namespace at the same moment: bwrap's netlink requests then fail).

    Before bwrap runs, the same process is the mount script, whose children (mount) live in
    our namespace and come and go. bwrap's child, the namespace's init, starts the command
    once its setup is done: a child of its own says so.
    """
    ours = os.stat("/proc/self/ns/net").st_ino
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            raise ExecutionError("the container exited while it was being set up") from None
        for child in children:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                if os.stat(f"/proc/{child}/ns/net").st_ino != ours and _has_child(child):
                    return int(child)
        time.sleep(0.002)
    raise ExecutionError(f"the container's network was not set up within {timeout:g} s")


def _has_child(pid: str) -> bool:
    return bool(Path(f"/proc/{pid}/task/{pid}/children").read_text().strip())


class Internet:
    """slirp4netns giving the namespace of process `pid` the internet, until `close()`."""

    def __init__(
        self, pid: int, popen: Callable[[Sequence[str], tuple[int, ...]], subprocess.Popen[bytes]]
    ):
        """`popen(argv, pass_fds)` starts the process (the caller ties its life to ours)."""
        slirp = shutil.which("slirp4netns")
        if slirp is None:
            raise ExecutionError(
                "web endpoints run in a network namespace of their own, which reaches the "
                "internet through slirp4netns: apt-get install slirp4netns"
            )
        ready_r, ready_w = os.pipe()
        self._exit_r, self._exit_w = os.pipe()  # slirp4netns exits when we close our end
        argv = [
            slirp, "--configure", "--mtu=65520", "--disable-host-loopback",
            "--enable-sandbox", "--enable-seccomp",
            f"--ready-fd={ready_w}", f"--exit-fd={self._exit_r}", str(pid), "tap0",
        ]  # fmt: skip
        try:
            self._proc = popen(argv, (ready_w, self._exit_r))
        finally:
            os.close(ready_w)
            os.close(self._exit_r)
        try:
            if not _read_ready(ready_r, _READY_TIMEOUT):
                self.close()
                raise ExecutionError("slirp4netns did not set up the container's network")
        finally:
            os.close(ready_r)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._exit_w)
        try:
            self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _read_ready(fd: int, timeout: float) -> bool:
    import select

    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable) and os.read(fd, 1) == b"1"


def socket_in(pid: int) -> socket.socket:
    """A TCP socket (non-blocking) created in the network namespace of process `pid`."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    setns = _libc.setns
    with _setns_lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            os.close(home)
            raise ConnectionRefusedError("the container is gone") from None
        try:
            if setns(target, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the container's network failed")
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                if setns(home, _CLONE_NEWNET) != 0:  # never leave this thread in there
                    os._exit(70)
        finally:
            os.close(target)
            os.close(home)
    sock.setblocking(False)
    return sock

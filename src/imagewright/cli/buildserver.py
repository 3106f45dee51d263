"""The build server: a process that has imported imagewright's build machinery once, and forks
a child per `imagewright build` that cli/launch.py hands it, so a cached build skips Python's
imports (see launch.py for the why, the context a server shares with its clients, and how it
is started and turned off).

One server serves one context, on the socket DIR/KEY.sock; DIR/KEY.lock, held for its life,
keeps a second server for the key from starting. Each request is checked before anything runs:
- the peer is this user, with this process's privileges: its uids, groups, capabilities,
  seccomp and no_new_privs state, namespaces, cgroup, root directory, security label and
  resource limits, read from /proc/PID (SO_PEERCRED gives the pid), are this server's. The key
  a client sends only routes it; this check is what a client cannot choose. (/proc shows a
  seccomp filter's presence and count, not its rules, and no Landlock domain at all: a process
  of this user confined only by those, and otherwise alike, would be served outside them);
- it carries exactly the four descriptors (stdin, stdout, stderr, working directory);
- no module this server has imported has changed on disk since (a reinstall, an edit): else the
  server says no, gives up its socket and lock at once, and exits once its builds are done.

The child becomes the client's process for the command: its streams, directory, environment,
umask, argv and ignored signals, a process group of its own, and SIGTERM should the server die.
The server passes on the signals the client forwards, sends SIGTERM if the client goes away
(and SIGKILL if the build is still there 30 s later), and reports the child's exit status. It
exits after IMAGEWRIGHT_BUILD_SERVER_IDLE seconds without work.

Descriptors received from a client are closed in the server as soon as a child has them, and
on every path that refuses the request: a server holding a client's stdout would keep whoever
reads it waiting for an end that never comes.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import marshal
import math
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from .launch import FORWARDED, IDLE, PROTOCOL, RELAYED, context_key, privileges, send_framed

__all__ = ["serve"]

# The modules a cached build imports; a child finds them loaded.
_PRELOAD = (
    "json",
    "imagewright.cli.main",
    "imagewright.cli.commands",
    "imagewright.cli.loader",
    "imagewright.definition.image",
    "imagewright.plan.planner",
    "imagewright.execute.builder",
    "imagewright.execute.failed",
    "imagewright.execute.progress",
    "imagewright.registry.resolve",
    "imagewright.store.builds",
)
_MAX_REQUEST = 1 << 20  # argv and environment; more is not a client of ours
_REQUEST_SECONDS = 5  # a client sends its request at once: one that stalls is dropped
_KILL_AFTER = 30.0  # seconds a build whose client went away has to stop after SIGTERM
_PR_SET_PDEATHSIG = 1
_MADV_POPULATE_WRITE = 23  # Linux 5.14
_CHILD_FAILED = 70  # a child that could not become a build (EX_SOFTWARE)


class _Request(NamedTuple):
    """One build a client handed over: the command and the process state it runs in."""

    payload: bytes  # as it came, to hand to the spare
    key: str
    argv: list[str]
    env: dict[str, str]
    umask: int
    ignored: list[int]  # the forwarded signals the client ignores (nohup)
    fds: list[int]  # stdin, stdout, stderr, working directory


def serve(where: str, key: str) -> None:
    """Serve builds for `key` from the directory `where` until idle; in each child, run its
    build and exit as the interpreter exits."""
    if context_key() != key:
        sys.stderr.write("imagewright build server: this process's context is not its client's\n")
        sys.exit(1)
    lock = os.open(
        os.path.join(where, f"{key}.lock"),
        os.O_CREAT | os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW,
        0o600,
    )
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(0)  # another server has the key
    idle = _idle_seconds()
    listener = _listen(where, key)  # clients that come while the modules load wait for them
    for name in _PRELOAD:
        __import__(name)
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    server = _Server(key, listener, os.path.join(where, f"{key}.sock"), lock, idle, libc)
    gc.freeze()  # what the children share stays shared: the collector never touches it
    request = server.run()
    if request is None:
        sys.exit(0)
    try:
        _become(request)
    except BaseException:
        os._exit(_CHILD_FAILED)  # (never back into the server's loop)
    from .main import main

    main()  # and the interpreter's own exit: at-exit work, flushed files, threads joined


def _idle_seconds() -> float:
    value = os.environ.get(IDLE) or "600"
    try:
        idle = float(value)
    except ValueError:
        idle = math.nan
    if not (math.isfinite(idle) and 0 < idle <= 7 * 86400):
        sys.stderr.write(f"imagewright build server: {IDLE}={value!r} is not 1 s to 7 days: 600\n")
        return 600.0
    return idle


def _listen(where: str, key: str) -> socket.socket:
    """The listening socket at WHERE/KEY.sock, put there only once it listens, so no client
    finds a socket that refuses it."""
    path = os.path.join(where, f"{key}.sock")
    temporary = os.path.join(where, f".{key}.{os.getpid()}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mask = os.umask(0o077)  # the socket is this user's alone, as its directory is
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        listener.bind(temporary)
    finally:
        os.umask(mask)
    listener.listen(64)
    os.replace(temporary, path)  # (over a dead server's: the lock says no live one has it)
    return listener


def _module_files() -> dict[str, tuple[int, int, int]]:
    """Every source file this process imported, with what a change would alter."""
    found = {}
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if isinstance(name, str):
            try:
                st = os.stat(name)
            except OSError:
                continue
            found[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


class _Server:
    """The accept loop: requests in, children out, signals and exit statuses relayed."""

    def __init__(
        self, key: str, listener: socket.socket, path: str, lock: int, idle: float, libc: Any
    ):
        self.listener: socket.socket | None = listener
        self.key, self.path, self.lock, self.idle = key, path, lock, idle
        self.libc = libc  # ctypes' handle on the C library: prctl and madvise
        self.watched = _module_files()
        self.pid = os.getpid()
        self.inode = os.stat(path).st_ino
        self.children: dict[int, socket.socket] = {}  # each build's child, and its client
        self.doomed: dict[int, float] = {}  # builds whose client went away: when to SIGKILL
        self.spare: tuple[int, socket.socket] | None = None
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)  # (a handler, so the wakeup fd hears it)
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)

    def run(self) -> _Request | None:
        """Serve until idle (None), or return a request in the child that is to run it."""
        last = time.monotonic()
        request = self._prepare_spare()
        while request is None and (self.listener is not None or self.children):
            now = time.monotonic()
            timeout = None if self.children else last + self.idle - now
            if self.doomed:
                soonest = max(0.0, min(self.doomed.values()) - now)
                timeout = soonest if timeout is None else min(timeout, soonest)
            if timeout is not None and timeout <= 0 and not self.children:
                break
            for found, _ in self.selector.select(timeout):
                sock = found.fileobj
                if sock is self.listener:
                    request = self._accept()
                elif sock is self.wake_r:
                    if self._reap():
                        last = time.monotonic()
                        request = self._prepare_spare()
                elif self.children.get(found.data) is sock:  # (not one reaped just now)
                    self._from_client(found.data, sock)
                if request is not None:
                    break
            self._kill_overdue()
        if request is None:
            self._retire()
        return request

    def _prepare_spare(self) -> _Request | None:
        """Fork the child that will run the next build, ahead of it. The spare copies every
        page it may write now, while nothing waits: after a fork, each first write to a page
        the server shares costs a fault, about 850 of them in a cached build (6 ms here).
        Returns the request in the spare, once one comes; None in the server."""
        if self.spare is not None or self.listener is None:
            return None
        try:
            ours, theirs = socket.socketpair()
        except OSError:
            return None  # (no spare: the next build gets a child forked for it)
        try:
            pid = self._fork()
        except OSError:
            ours.close()
            theirs.close()
            return None
        if pid != 0:
            theirs.close()
            self.spare = (pid, ours)
            return None
        try:
            ours.close()  # (so that the server's closing its end is the end of the spare)
            self._leave(keep=theirs)
            with contextlib.suppress(OSError):
                _populate(self.libc.madvise)
            request, _ = _receive(theirs)  # (its descriptors are in the request)
        except BaseException:
            os._exit(_CHILD_FAILED)
        if request is None:  # the server retired its spare, or handed it nothing usable
            os._exit(_CHILD_FAILED)
        theirs.close()
        return request

    def _fork(self) -> int:
        pid = os.fork()
        if pid == 0:  # a child stops with the server, whatever stops it
            if self.libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
                os._exit(_CHILD_FAILED)
            if os.getppid() != self.pid:  # it died before the line above took effect
                os._exit(_CHILD_FAILED)
        return pid

    def _accept(self) -> _Request | None:
        """Take one request: refuse it, or start its build (returning it in the child).

        A build starts only once its client has confirmed ("R", then "G" back): a client that
        gave up waiting builds in its own process, and must not find this one building too.
        """
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return None
        request: _Request | None = None
        try:
            conn.settimeout(_REQUEST_SECONDS)
            if _peer_is_us(conn):
                request, _ = _receive(conn)
            if request is not None and request.key == self.key and self._stale():
                self._retire()  # (first: the client may start the next server at once)
                raise _Refused
            if request is None or request.key != self.key:
                raise _Refused
            conn.sendall(b"R")
            if conn.recv(1) != b"G":
                raise _Refused
            pid = self._hand_to_spare(request)
        except Exception as exc:  # refused, the client went away, no fork: never the server's end
            if request is not None:
                _close_all(request.fds)  # (before the answer: then nothing of its client is here)
            if isinstance(exc, _Refused):
                with contextlib.suppress(OSError):
                    conn.sendall(b"N")
            conn.close()
            return None
        if pid == 0:  # the child: the streams are its own now, the rest the server's
            conn.close()
            self._leave(keep=None)
            return request
        _close_all(request.fds)
        self.children[pid] = conn
        try:
            conn.setblocking(False)
            self.selector.register(conn, selectors.EVENT_READ, pid)
        except (OSError, ValueError):  # it went away already: stop its build as SIGTERM would
            self._lost_client(pid, conn)
        return None

    def _hand_to_spare(self, request: _Request) -> int:
        """The pid of the child that runs `request`: the spare, else a new child (in which 0)."""
        if self.spare is not None:
            pid, ours = self.spare
            self.spare = None
            try:
                send_framed(ours, request.payload, request.fds)  # (the client's framing)
                return pid
            except OSError:  # it died meanwhile: the reaper collects it
                pass
            finally:
                ours.close()
        return self._fork()

    def _stale(self) -> bool:
        """Whether an imported file changed since this server started."""
        for name, seen in self.watched.items():
            try:
                st = os.stat(name)
            except OSError:
                return True
            if (st.st_ino, st.st_size, st.st_mtime_ns) != seen:
                return True
        return False

    def _from_client(self, pid: int, conn: socket.socket) -> None:
        try:
            data = conn.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost_client(pid, conn)
            return
        for signum in data:
            if signum in RELAYED:
                _signal_child(pid, signum)

    def _lost_client(self, pid: int, conn: socket.socket) -> None:
        """The client is gone: stop its build as SIGTERM would have, SIGKILL if it lingers."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        self.children.setdefault(pid, conn)
        if pid not in self.doomed:
            _signal_child(pid, signal.SIGTERM)
            _signal_child(pid, signal.SIGCONT)  # (a build stopped by Ctrl-Z hears it too)
            self.doomed[pid] = time.monotonic() + _KILL_AFTER

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, deadline in list(self.doomed.items()):
            if deadline <= now:
                _signal_child(pid, signal.SIGKILL)
                del self.doomed[pid]

    def _reap(self) -> bool:
        """Report each finished build to its client; whether any build finished."""
        with contextlib.suppress(BlockingIOError):
            while self.wake_r.recv(512):
                pass
        finished = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if self.spare is not None and pid == self.spare[0]:  # it died unused: made
                self.spare[1].close()  # again after the next build, not in a loop now
                self.spare = None
            self.doomed.pop(pid, None)
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            finished = True
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                conn.setblocking(True)
                conn.sendall(b"S" + code.to_bytes(4, "big", signed=True))
            with contextlib.suppress(KeyError, ValueError):  # (gone, if the client went away)
                self.selector.unregister(conn)
            conn.close()
        return finished

    def _retire(self) -> None:
        """Give up the socket, the key and the spare at once; builds under way still finish."""
        if self.spare is not None:
            self.spare[1].close()  # (it reads the end of its socket, and exits)
            self.spare = None
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:  # (not yet replaced by a new server's)
                os.unlink(self.path)
        self.listener.close()
        self.listener = None
        with contextlib.suppress(OSError):
            if os.fstat(2).st_size == 0:  # its log (launch.py) says nothing: leave none
                os.unlink(self.path.removesuffix(".sock") + ".log")
        os.close(self.lock)

    def _leave(self, keep: socket.socket | None) -> None:
        """In a new child: drop everything of the server's but `keep`."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        socks = [self.listener, self.wake_r, self.wake_w, *self.children.values()]
        if self.spare is not None:
            socks.append(self.spare[1])
        for sock in socks:
            if sock is not None and sock is not keep:
                sock.close()
        if self.listener is not None:
            os.close(self.lock)
        self.listener, self.spare, self.children, self.doomed = None, None, {}, {}


class _Refused(Exception):
    """A request this server does not run: its client builds in its own process."""


def _peer_is_us(conn: socket.socket) -> bool:
    """Whether the process at the other end has this one's user and privileges (see the
    module's docstring). What a process could change about itself without privilege (its
    working directory, umask, environment) comes with the request instead."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    pid = int.from_bytes(creds[:4], sys.byteorder)
    if int.from_bytes(creds[4:8], sys.byteorder) != os.geteuid() or pid <= 0:
        return False
    try:
        return privileges(str(pid)) == privileges("self")  # (the server's may change too)
    except OSError:
        return False


def _receive(conn: socket.socket) -> tuple[_Request | None, list[int]]:
    """A request as launch.py sends it, with the descriptors that came with it (the caller
    closes them, or keeps them); None, with every descriptor closed, for anything else."""
    fds: list[int] = []
    try:
        data, ancillary, _, _ = conn.recvmsg(
            _MAX_REQUEST, socket.CMSG_SPACE(4 * 4 * 2), socket.MSG_CMSG_CLOEXEC
        )
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds += [
                    int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)
                ]
        request = _parse(data, conn, fds) if len(fds) == 4 else None
    except BaseException:
        _close_all(fds)
        raise
    if request is None:
        _close_all(fds)
        return None, []
    return request, fds


def _parse(data: bytes, conn: socket.socket, fds: list[int]) -> _Request | None:
    if len(data) < 4:
        return None
    size = int.from_bytes(data[:4], "big")
    if size > _MAX_REQUEST:
        return None
    body = data[4:]
    while len(body) < size:
        part = conn.recv(size - len(body))
        if not part:
            return None
        body += part
    # marshal, not pickle: it makes only plain values. The peer is this user, checked above.
    try:
        protocol, key, argv, env, umask, ignored = marshal.loads(body)
        if protocol != PROTOCOL:
            return None
        return _Request(
            body,
            str(key),
            [str(a) for a in argv],
            {str(k): str(v) for k, v in env.items()},
            int(umask) & 0o777,
            [int(s) for s in ignored if s in FORWARDED],
            fds,
        )
    except Exception:  # (any shape that is not a request's)
        return None


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _signal_child(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)  # (an unreaped child of ours: its pid cannot have been reused)


def _become(request: _Request) -> None:
    """Make this child the client's process for its command (see the module's docstring)."""
    os.setpgid(0, 0)
    stdin, stdout, stderr, cwd = request.fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)  # (inheritable, as the client's own are)
        os.close(fd)
    os.fchdir(cwd)
    os.close(cwd)
    os.environ.clear()
    os.environ.update(request.env)
    os.umask(request.umask)
    sys.argv = request.argv
    sys.stdout.reconfigure(line_buffering=sys.stdout.isatty())  # type: ignore[union-attr]
    for signum in FORWARDED:
        if signum in request.ignored:
            signal.signal(signum, signal.SIG_IGN)
        elif signum == signal.SIGINT:
            signal.signal(signum, signal.default_int_handler)
        else:
            signal.signal(signum, signal.SIG_DFL)


def _populate(madvise: Callable[..., int]) -> None:
    """Copy now every private writable page this process shares with the server (the heap,
    the interpreter's arenas), as writing to each would, but in one call per mapping. A kernel
    without MADV_POPULATE_WRITE refuses it, and the pages are copied at first write instead."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            named = fields[5] if len(fields) > 5 else ""
            if fields[1] != "rw-p" or (named.startswith("[") and named != "[heap]"):
                continue  # (the stack, vdso and the like are not the server's objects)
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            if madvise(start, end - start, _MADV_POPULATE_WRITE) != 0:
                return

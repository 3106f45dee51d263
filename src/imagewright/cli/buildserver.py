"""The build server: a process that has imported imagewright's build machinery once, and forks
a child per `imagewright build` that cli/launch.py hands it, so a cached build skips Python's
imports (see launch.py for the why, the context a server shares with its clients, and how it
is started and turned off).

One server serves one context, on the socket DIR/KEY.sock; DIR/KEY.lock, held for its life,
keeps a second server for the key from starting. Each request is checked before anything runs:
- the peer is this user (SO_PEERCRED): the directory admits no one else, and this says so twice;
- it carries exactly the four descriptors (stdin, stdout, stderr, working directory) and the
  context key this server computed for itself;
- no module this server has imported has changed on disk since (a reinstall, an edit): else the
  server says no, gives up its socket and lock at once, and exits once its builds are done.

The child becomes the client's process for the command: its streams, directory, environment,
umask and argv, a process group of its own, and SIGTERM should the server die. The server
passes on the signals the client forwards, sends SIGTERM if the client goes away, and reports
the child's exit status. It exits after IMAGEWRIGHT_BUILD_SERVER_IDLE seconds without work.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gc
import marshal
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from .launch import FORWARDED, IDLE, PROTOCOL, context_key

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
_PR_SET_PDEATHSIG = 1


class _Request(NamedTuple):
    """One build a client handed over: the command and the process state it runs in."""

    payload: bytes  # as it came, to hand to the spare
    key: str
    argv: list[str]
    env: dict[str, str]
    umask: int
    fds: list[int]  # stdin, stdout, stderr, working directory


def serve(where: str, key: str) -> None:
    """Serve builds for `key` from the directory `where` until idle; in each child, return to
    run its build (the caller's next line)."""
    if context_key() != key:
        sys.stderr.write("imagewright build server: this process's context is not its client's\n")
        sys.exit(0)
    lock = os.open(os.path.join(where, f"{key}.lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(0)  # another server has the key
    for name in _PRELOAD:
        __import__(name)
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    watched = _module_files()
    try:
        idle = float(os.environ.get(IDLE) or 600)
    except ValueError:
        sys.stderr.write(f"imagewright build server: {IDLE} is not a number of seconds: 600\n")
        idle = 600
    path = os.path.join(where, f"{key}.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a dead server's: the lock says no live one has it
    mask = os.umask(0o077)  # the socket is this user's alone, as its directory is
    try:
        listener.bind(path)
    finally:
        os.umask(mask)
    listener.listen(64)
    server = _Server(listener, path, lock, watched, idle, libc)
    gc.freeze()  # what the children share stays shared: the collector never touches it
    request = server.run(key)
    if request is None:
        with contextlib.suppress(OSError):
            if os.fstat(2).st_size == 0:  # its log (launch.py) says nothing: leave none
                os.unlink(os.path.join(where, f"{key}.log"))
        sys.exit(0)
    _become(request)
    _run_command()


def _run_command() -> None:
    """Run the command as cli/main.py's main would, then exit without tearing the interpreter
    down: nothing of the server's needs it, and it costs a child a third of its time. What the
    command registered to run at exit runs, and the streams are flushed, as at any exit."""
    from .main import main

    try:
        main()
        code = 0
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except BaseException:  # a bug: shown as the interpreter would show it
        sys.excepthook(*sys.exc_info())
        code = 1
    atexit._run_exitfuncs()  # (what the interpreter's own exit calls first)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _exit_status(code: object) -> int:
    """The status sys.exit(code) leaves, as the interpreter reckons it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


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
        self,
        listener: socket.socket,
        path: str,
        lock: int,
        watched: dict[str, tuple[int, int, int]],
        idle: float,
        libc: Any,  # ctypes' handle on the C library: prctl and madvise
    ):
        self.listener: socket.socket | None = listener
        self.path, self.lock, self.watched, self.idle = path, lock, watched, idle
        self.libc = libc
        self.pid = os.getpid()
        self.inode = os.stat(path).st_ino
        self.children: dict[int, socket.socket] = {}  # each build's child, and its client
        self.spare: tuple[int, socket.socket] | None = None
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)  # (a handler, so the wakeup fd hears it)
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)

    def run(self, key: str) -> _Request | None:
        """Serve until idle (None), or return a request in the child that is to run it."""
        last = time.monotonic()
        request = self._prepare_spare()
        if request is not None:
            return request
        while self.listener is not None or self.children:
            timeout = None if self.children else last + self.idle - time.monotonic()
            if timeout is not None and timeout <= 0:
                break
            for found, _ in self.selector.select(timeout):
                sock = found.fileobj
                if sock is self.listener:
                    request = self._accept(key)
                elif sock is self.wake_r:
                    request = self._reap()
                    last = time.monotonic()
                else:
                    self._from_client(found.data, sock)  # type: ignore[arg-type]
                if request is not None:
                    return request
        self._retire()
        return None

    def _prepare_spare(self) -> _Request | None:
        """Fork the child that will run the next build, ahead of it. The spare copies every
        page it may write now, while nothing waits: after a fork, each first write to a page
        the server shares costs a fault, about 850 of them in a cached build (6 ms here).
        Returns the request in the spare, once one comes; None in the server."""
        if self.spare is not None or self.listener is None:
            return None
        ours, theirs = socket.socketpair()
        pid = self._fork()
        if pid != 0:
            theirs.close()
            self.spare = (pid, ours)
            return None
        self._leave(keep=theirs)
        _populate(self.libc.madvise)
        request, _ = _receive(theirs)  # (its descriptors are in the request)
        if request is None:  # the server is gone, or retired its spare
            os._exit(0)
        theirs.close()
        return request

    def _fork(self) -> int:
        pid = os.fork()
        if pid == 0:  # a child stops with the server, whatever stops it
            if self.libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
                os._exit(1)
            if os.getppid() != self.pid:  # it died before the line above took effect
                os._exit(143)
        return pid

    def _accept(self, key: str) -> _Request | None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return None
        fds: list[int] = []
        try:
            conn.settimeout(10)
            request, fds = _receive(conn) if _peer_is_us(conn) else (None, [])
            if request is None or request.key != key or self._stale():
                conn.sendall(b"N")
                if request is not None and request.key == key:
                    self._retire()  # (stale: a client's build runs in its own process now)
                raise _Refused
            pid = self._hand_to_spare(request, fds)
            if pid == 0:
                self._leave(keep=None)
                return request
            conn.sendall(b"R")
            conn.setblocking(False)
        except (_Refused, OSError):
            conn.close()
            return None
        finally:
            if os.getpid() == self.pid:  # (a child keeps them: they are its streams)
                for fd in fds:
                    os.close(fd)
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)
        return None

    def _hand_to_spare(self, request: _Request, fds: list[int]) -> int:
        """The pid of the child that runs `request`: the spare, else a new child (in which 0)."""
        if self.spare is not None:
            pid, ours = self.spare
            self.spare = None
            try:
                _send(ours, request.payload, fds)
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
        if not data:  # the client is gone: stop its build as SIGTERM would have
            self.selector.unregister(conn)
            _signal_child(pid, signal.SIGTERM)
            return
        for signum in data:
            if signum in FORWARDED:
                _signal_child(pid, signum)

    def _reap(self) -> _Request | None:
        """Report each finished build to its client; then prepare the next spare (returning
        its request in it)."""
        with contextlib.suppress(BlockingIOError):
            while self.wake_r.recv(512):
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if self.spare is not None and pid == self.spare[0]:
                self.spare[1].close()
                self.spare = None
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                conn.setblocking(True)
                conn.sendall(b"S" + code.to_bytes(4, "big", signed=True))
            with contextlib.suppress(KeyError):  # (already, when the client went away)
                self.selector.unregister(conn)
            conn.close()
        return self._prepare_spare()

    def _retire(self) -> None:
        """Give up the socket, the key and the spare at once; builds under way still finish."""
        if self.spare is not None:
            self.spare[1].close()  # (it reads the end of its socket, and exits)
            self.spare = None
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        try:
            if os.stat(self.path).st_ino == self.inode:  # (not yet replaced by a new server's)
                os.unlink(self.path)
        except OSError:
            pass
        self.listener.close()
        self.listener = None
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
        self.listener, self.spare, self.children = None, None, {}


class _Refused(Exception):
    """A request this server does not run: the client builds in its own process."""


def _peer_is_us(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[4:8], sys.byteorder) == os.geteuid()


def _receive(conn: socket.socket) -> tuple[_Request | None, list[int]]:
    """A request as launch.py sends it, with the descriptors that came with it (which the
    caller closes, or keeps); None for anything else."""
    data, ancillary, _, _ = conn.recvmsg(_MAX_REQUEST, socket.CMSG_SPACE(4 * 4 * 2))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
    if len(fds) != 4 or len(data) < 4:
        return None, fds
    size = int.from_bytes(data[:4], "big")
    if size > _MAX_REQUEST:
        return None, fds
    body = data[4:]
    while len(body) < size:
        part = conn.recv(size - len(body))
        if not part:
            return None, fds
        body += part
    try:
        protocol, key, argv, env, umask = marshal.loads(body)
        request = _Request(body, str(key), list(argv), dict(env), int(umask), fds)
    except (ValueError, EOFError, TypeError):
        return None, fds
    return (request if protocol == PROTOCOL else None), fds


def _send(conn: socket.socket, payload: bytes, fds: list[int]) -> None:
    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    conn.sendmsg(
        [len(payload).to_bytes(4, "big"), payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)]
    )


def _signal_child(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)  # (an unreaped child of ours: its pid cannot have been reused)


def _become(request: _Request) -> None:
    """Make this child the client's process for its command (see the module's docstring)."""
    os.setpgid(0, 0)
    stdin, stdout, stderr, cwd = request.fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.fchdir(cwd)
    os.close(cwd)
    os.environ.clear()
    os.environ.update(request.env)
    os.umask(request.umask)
    sys.argv = request.argv
    sys.stdout.reconfigure(line_buffering=sys.stdout.isatty())  # type: ignore[union-attr]
    signal.signal(signal.SIGINT, signal.default_int_handler)


_MADV_POPULATE_WRITE = 23  # Linux 5.14


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

"""The `imagewright` console entry point: hands a `build` to a warm build server when one runs
in this very context, and runs every other command (and a build no server can take) here.

A fully cached build is mostly Python importing imagewright, json, re and pathlib: about 100 M
of its 147 M instructions. The build server (cli/buildserver.py) has imported them once, and
forks a child per build, which runs the command exactly as this process would have: with this
process's arguments, environment, working directory, umask and standard streams (passed over a
Unix socket as file descriptors), and its exit status comes back here. So this side pays only
Python's start and this module: it imports nothing beyond the built-in modules below.

"This very context" is everything that could make the child differ from this process, hashed
into the socket's name (see _context): the interpreter and its flags, sys.path, the user and
groups, the cgroup, namespaces, resource limits, capabilities, and the environment variables
Python reads at start (PYTHON*, locale, TZ). A server whose own context differs has another
socket, so it is never asked. A server whose code changed on disk since it started refuses and
retires (buildserver.py), and this process builds itself.

The first build that finds no server starts one in the background, then builds here. The
server exits after IMAGEWRIGHT_BUILD_SERVER_IDLE seconds without work (600 by default);
IMAGEWRIGHT_BUILD_SERVER=0 turns it off. Signals this process gets (Ctrl-C, SIGTERM, SIGHUP)
are passed on to the build; if this process dies, the server stops the build as SIGTERM would.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (signal.py makes enums on import: ~0.5 ms)
import os
import sys

__all__ = ["IDLE", "SERVER_OFF", "context_key", "main", "runtime_dir"]

SERVER_OFF = "IMAGEWRIGHT_BUILD_SERVER"  # "0" turns the build server off
IDLE = "IMAGEWRIGHT_BUILD_SERVER_IDLE"  # seconds a server waits for work before it exits
PROTOCOL = 1

# What the client passes on to the build: the signals a terminal or a supervisor sends. The
# server passes on only these.
FORWARDED = tuple(
    getattr(_signal, name)
    for name in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGWINCH")
)


def main() -> None:
    """Console entry point."""
    argv = sys.argv[1:]
    if argv[:1] == ["build"] and os.environ.get(SERVER_OFF, "1") != "0":
        code = _hand_over(argv)
        if code is not None:
            _exit_as(code)
    from .main import main as run_here

    run_here()


# ---- the context a server must share --------------------------------------------------------

_STARTUP_ENV = ("LANG", "TZ")  # with every PYTHON* and LC_* variable


def _context() -> tuple[object, ...]:
    """Everything that could make a server's child run differently from this process."""
    env = sorted(
        (k, v)
        for k, v in os.environ.items()
        if k.startswith(("PYTHON", "LC_")) or k in _STARTUP_ENV
    )
    status = _read("/proc/self/status").splitlines()
    import resource  # (a built-in module: no Python source to load)

    limits = tuple(
        resource.getrlimit(getattr(resource, name))
        for name in sorted(dir(resource))
        if name.startswith("RLIMIT_")
    )
    namespaces = tuple(
        _readlink(f"/proc/self/ns/{ns}")
        for ns in ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
    )
    return (
        PROTOCOL,
        sys.executable,
        sys.version,
        tuple(sys.flags),
        tuple(sys.warnoptions),
        tuple(sorted((str(k), str(v)) for k, v in sys._xoptions.items())),
        tuple(sys.path),
        (os.getuid(), os.geteuid(), os.getgid(), os.getegid(), tuple(sorted(os.getgroups()))),
        tuple(env),
        _read("/proc/self/cgroup"),
        namespaces,
        limits,
        os.getpriority(os.PRIO_PROCESS, 0),
        tuple(sorted(os.sched_getaffinity(0))),
        tuple(line for line in status if line.startswith(("Cap", "NoNewPrivs", "Seccomp"))),
    )


def context_key() -> str:
    """The hash of _context(): the server's socket is named after it."""
    import marshal

    from .._digest import hexdigest

    return hexdigest(marshal.dumps(_context()))[:32]  # type: ignore[arg-type]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def runtime_dir(create: bool = False) -> str | None:
    """This user's directory for server sockets (_directory). None when it is missing (and not
    to be made), or is not a directory of this user's that no one else may enter: then no
    server is used."""
    path, uid = _directory(), os.geteuid()
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        found = os.lstat(path)
    except OSError:
        return None
    if not (found.st_mode & 0o170000 == 0o040000 and found.st_uid == uid):
        return None  # a link, a file, or someone else's: never trusted
    if found.st_mode & 0o077:
        return None
    return path


def _directory() -> str:
    """$XDG_RUNTIME_DIR/imagewright, else /tmp/imagewright-UID."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(base, "imagewright") if base else f"/tmp/imagewright-{os.geteuid()}"


# ---- the client -----------------------------------------------------------------------------


def _hand_over(argv: list[str]) -> int | None:
    """Run `argv` in a build server's child and return its exit status (negative: killed by
    that signal), or None when no server took it: then one is started for next time."""
    import _socket  # (built in, unlike socket.py, which imports selectors, enum and more)

    key = context_key()
    where = runtime_dir()
    conn = None
    if where is not None:
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            conn.connect(os.path.join(where, f"{key}.sock"))
            accepted = _send_request(conn, key, argv)
        except OSError:
            accepted = False
        if accepted:
            return _wait(conn)
        conn.close()
    _start_server(key)
    return None


def _send_request(conn: object, key: str, argv: list[str]) -> bool:
    """Send the command, with this process's streams and working directory as descriptors;
    True once the server has started the build."""
    import _socket
    import marshal

    assert isinstance(conn, _socket.socket)
    uid = int.from_bytes(
        conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)[4:8], sys.byteorder
    )
    if uid != os.geteuid():
        return False
    umask = os.umask(0o022)
    os.umask(umask)
    payload = marshal.dumps((PROTOCOL, key, sys.argv[:1] + argv, dict(os.environ), umask))
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd))
        conn.settimeout(30)  # a server that takes no request in that time is stuck: build here
        conn.sendmsg(
            [len(payload).to_bytes(4, "big"), payload],
            [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)],
        )
    finally:
        os.close(cwd)
    accepted = conn.recv(1) == b"R"
    conn.settimeout(None)
    return accepted


def _wait(conn: object) -> int:
    """Pass signals on to the build until its exit status arrives."""
    import _socket

    assert isinstance(conn, _socket.socket)

    def forward(signum: int, frame: object) -> None:
        try:  # noqa: SIM105 (contextlib costs this process more than all the rest of it)
            conn.send(bytes([signum]))
        except OSError:
            pass

    for signum in FORWARDED:
        _signal.signal(signum, forward)
    answer = b""
    while len(answer) < 5:
        try:
            part = conn.recv(5 - len(answer))
        except InterruptedError:
            continue
        if not part:
            sys.stderr.write("imagewright: the build server stopped before the build ended\n")
            return 1
        answer += part
    return int.from_bytes(answer[1:], "big", signed=True)


def _exit_as(code: int) -> None:
    """Exit with the build's status; a build killed by a signal kills this process likewise."""
    if code < 0:
        _signal.signal(-code, _signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    sys.stdout.flush()
    os._exit(code)


def _start_server(key: str) -> None:
    """Start a build server for this context in the background, detached from this process's
    session and streams; it gives up by itself if another one for the key is already there."""
    where = runtime_dir(create=True)
    if where is None:
        return
    import marshal
    import subprocess

    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("PYTHON", "LC_")) or k in _STARTUP_ENV or k == IDLE
    }
    # The server closes every descriptor it inherited, moves to /, and finds sys.path before
    # it imports anything of imagewright's (buildserver.py).
    code = (
        "import os, sys, marshal; os.closerange(3, 1 << 20); os.chdir('/');"
        "sys.path[:] = marshal.loads(bytes.fromhex(sys.argv[1]));"
        "from imagewright.cli.buildserver import serve; serve(sys.argv[2], sys.argv[3])"
    )
    flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    argv = [sys.executable, *flags, "-c", code, marshal.dumps(sys.path).hex(), where, key]
    # Its log holds only its own failures: a build's output goes to that build's client.
    log = os.open(os.path.join(where, f"{key}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:  # (never waited for: it outlives this process by design)
        os.posix_spawn(
            sys.executable,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log)

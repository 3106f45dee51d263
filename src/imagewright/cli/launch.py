"""The `imagewright` console entry point: hands a `build` to a warm build server when one runs
in this very context, and runs every other command (and a build no server can take) here.

A fully cached build is mostly Python importing imagewright, json, re and pathlib: about 100 M
of its 147 M instructions. The build server (cli/buildserver.py) has imported them once, and
forks a child per build, which runs the command exactly as this process would have: with this
process's arguments, environment, working directory, umask, standard streams (passed over a
Unix socket as file descriptors) and ignored signals, and its exit status comes back here. So
this side pays only Python's start and this module, which imports only built-in modules
(`_signal`, `_socket`, `marshal`, `_sha256`) on the way to a served build.

"This very context" is everything that could make the child differ from this process, hashed
into the socket's name (see _context): the interpreter, its options and sys.path, the
environment variables Python reads at start (PYTHON*, locale, TZ), and what the kernel says
decides what this process may do (privileges(): uids and groups, capabilities, seccomp,
cgroup, limits, namespaces, root). A server whose own context differs has another socket, so
it is never asked; the server checks the privileges of whoever connects again itself. A server
whose code changed on disk since it started refuses and retires, and this process builds
itself.

The exchange: the request (marshal: argv, environment, umask, ignored signals, with the four
descriptors); the server's "R" once it would run it; this side's "G", after which the build is
the server's; then, while it runs, the signals this process gets, one byte each; and at the end
"S" and the exit status (negative: the signal that killed it, which then kills this process).

The first build that finds no server starts one in the background, then builds here. The
server exits after IMAGEWRIGHT_BUILD_SERVER_IDLE seconds without work (600 by default);
IMAGEWRIGHT_BUILD_SERVER=0 turns it off. If this process dies, the server stops the build as
SIGTERM would.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (signal.py makes enums on import: ~0.5 ms)
import os
import sys

__all__ = [
    "FORWARDED",
    "IDLE",
    "RELAYED",
    "SERVER_OFF",
    "context_key",
    "main",
    "privileges",
    "runtime_dir",
    "send_framed",
]

SERVER_OFF = "IMAGEWRIGHT_BUILD_SERVER"  # "0" turns the build server off
IDLE = "IMAGEWRIGHT_BUILD_SERVER_IDLE"  # seconds a server waits for work before it exits
PROTOCOL = 2

# What the client passes on to the build: the signals a terminal or a supervisor sends, Ctrl-Z
# included (the client stops too, and the build goes on with it). The server passes on only
# these, and SIGCONT, which the client sends when it is itself continued.
FORWARDED = tuple(
    getattr(_signal, name)
    for name in (
        "SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGTSTP"
    )
)  # fmt: skip
RELAYED = (*FORWARDED, _signal.SIGCONT)


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
    env = sorted(_startup_env().items())
    try:
        kernel: tuple[object, ...] = privileges("self")
    except OSError:
        kernel = ("unreadable",)  # (no /proc: a key no server can share)
    return (
        PROTOCOL,
        sys.executable,
        sys.version,
        tuple(sys.flags),
        tuple(sys.warnoptions),
        tuple(sorted((str(k), str(v)) for k, v in sys._xoptions.items())),
        tuple(sys.path),
        tuple(env),
        kernel,
        os.getpriority(os.PRIO_PROCESS, 0),
        tuple(sorted(os.sched_getaffinity(0))),
    )


def _startup_env() -> dict[str, str]:
    """The environment variables Python reads as it starts: the server gets these, and they are
    part of the context."""
    return {
        k: v for k, v in os.environ.items() if k.startswith(("PYTHON", "LC_")) or k in _STARTUP_ENV
    }


_STATUS_LINES = ("Uid:", "Gid:", "Groups:", "Cap", "NoNewPrivs:", "Seccomp")
_NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")


def privileges(pid: str) -> tuple[object, ...]:
    """What the kernel says about process `pid` ("self" for this one) that decides what it may
    do: its uids and groups, capabilities, no_new_privs and seccomp state, cgroup, resource
    limits, security label, namespaces and root directory. Part of the context key, and what
    the server checks of each peer itself (buildserver.py). OSError when it cannot be read."""
    with open(f"/proc/{pid}/status") as f:
        status = tuple(line for line in f if line.startswith(_STATUS_LINES))
    with open(f"/proc/{pid}/cgroup") as f:
        cgroup = f.read()
    with open(f"/proc/{pid}/limits") as f:
        limits = f.read()
    try:
        with open(f"/proc/{pid}/attr/current") as f:
            label = f.read()
    except OSError:  # (no security module)
        label = ""
    namespaces = []
    for ns in _NAMESPACES:
        try:
            namespaces.append(os.readlink(f"/proc/{pid}/ns/{ns}"))
        except FileNotFoundError:  # (a kernel without it: the time namespace came in 5.6)
            namespaces.append("")
    return (status, cgroup, limits, label, tuple(namespaces), os.readlink(f"/proc/{pid}/root"))


def context_key() -> str:
    """The hash of _context(): the server's socket is named after it."""
    import marshal

    from .._digest import hexdigest

    return hexdigest(marshal.dumps(_context()))[:32]  # type: ignore[arg-type]


def runtime_dir(create: bool = False) -> str | None:
    """This user's directory for server sockets (_directory), or None, and then no server is
    used: when it is missing (and not to be made); when it is not a directory of this user's
    that no one else may enter; when the directory holding it lets another user replace it
    (not this user's or root's, or writable by others without the sticky bit); or when a
    socket's name in it would pass the 107 bytes a Unix socket's address may have."""
    path, uid = _directory(), os.geteuid()
    if len(os.fsencode(path)) > 107 - 48:  # (KEY.sock, and the server's temporary name)
        return None
    try:
        parent = os.stat(os.path.dirname(path))
    except OSError:
        return None
    if parent.st_uid not in (uid, 0) or (parent.st_mode & 0o022 and not parent.st_mode & 0o1000):
        return None
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
    ignored = [signum for signum in FORWARDED if _signal.getsignal(signum) == _signal.SIG_IGN]
    request = (PROTOCOL, key, sys.argv[:1] + argv, dict(os.environ), umask, ignored)
    payload = marshal.dumps(request)
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        conn.settimeout(30)  # a server that takes no request in that time is stuck: build here
        send_framed(conn, payload, [0, 1, 2, cwd])
    finally:
        os.close(cwd)
    if conn.recv(1) != b"R":
        return False
    conn.sendall(b"G")  # from here on the build is the server's: no more giving up on it
    conn.settimeout(None)
    return True


def send_framed(conn: object, payload: bytes, fds: list[int]) -> None:
    """Send a request: its length, then itself, with `fds` along (SCM_RIGHTS); all of it. The
    client sends it so to the server, and the server so to its spare (buildserver.py)."""
    import _socket

    assert isinstance(conn, _socket.socket)
    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    data = len(payload).to_bytes(4, "big") + payload
    sent = conn.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    if sent < len(data):  # (sendall sends even nothing, which an end already closed refuses)
        conn.sendall(data[sent:])


def _wait(conn: object) -> int:
    """Pass signals on to the build until its exit status arrives."""
    import _socket

    assert isinstance(conn, _socket.socket)

    def send(signum: int) -> None:
        try:  # noqa: SIM105 (contextlib costs this process more than all the rest of it)
            conn.send(bytes([signum]))
        except OSError:
            pass

    def forward(signum: int, frame: object) -> None:
        send(signum)
        if signum == _signal.SIGTSTP:  # Ctrl-Z: the build stops, and so does this process
            _signal.signal(signum, _signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            _signal.signal(signum, forward)  # (continued: `fg` or `bg`)
            send(_signal.SIGCONT)

    for signum in FORWARDED:
        if _signal.getsignal(signum) != _signal.SIG_IGN:  # (nohup: what is ignored stays so)
            _signal.signal(signum, forward)
    answer = b""
    while len(answer) < 5:
        try:
            part = conn.recv(5 - len(answer))
        except InterruptedError:
            continue
        except OSError:  # (reset: as good as the end)
            part = b""
        if not part:
            sys.stderr.write("imagewright: the build server stopped before the build ended\n")
            return 1
        answer += part
    return int.from_bytes(answer[1:], "big", signed=True)


def _exit_as(code: int) -> None:
    """Exit with the build's status; a build killed by a signal kills this process likewise."""
    if code < 0:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # (the build dumped its own core)
        try:  # noqa: SIM105 (see above)
            _signal.signal(-code, _signal.SIG_DFL)
        except OSError:  # SIGKILL, SIGSTOP: their action is the default anyway
            pass
        os.kill(os.getpid(), -code)
        code = 128 - code
    sys.stdout.flush()
    os._exit(code)


def _start_server(key: str) -> None:
    """Start a build server for this context in the background, detached from this process's
    session, streams and signal dispositions; it gives up by itself if another one for the key
    is already there. Not again within a minute of one that wrote to its log (it failed): a
    server that cannot start costs each build no more than a look at the log."""
    where = runtime_dir(create=True)
    if where is None:
        return
    import marshal
    import time  # (built-in modules, like all this one imports)

    if _server_alive(where, key):  # (one that refused this process, or is still starting)
        return
    log_path = os.path.join(where, f"{key}.log")
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        found = os.fstat(log)
        if found.st_size and found.st_mtime > time.time() - 60:
            return
        env = _startup_env()
        if IDLE in os.environ:
            env[IDLE] = os.environ[IDLE]
        # The server closes every descriptor it inherited, moves to /, and finds sys.path
        # before it imports anything of imagewright's (buildserver.py).
        code = (
            "import os, sys, marshal; os.closerange(3, 1 << 20); os.chdir('/');"
            "sys.path[:] = marshal.loads(bytes.fromhex(sys.argv[1]));"
            "from imagewright.cli.buildserver import serve; serve(sys.argv[2], sys.argv[3])"
        )
        path = marshal.dumps(sys.path).hex()
        argv = [sys.executable, *_interpreter_options(), "-c", code, path, where, key]
        os.posix_spawn(  # (never waited for: it outlives this process by design)
            sys.executable,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 2),  # its own failures only: builds write elsewhere
            ],
            setsid=True,
            setsigmask=(),
            setsigdef=RELAYED,
        )
    except OSError:
        pass
    finally:
        os.close(log)


def _server_alive(where: str, key: str) -> bool:
    """Whether a server holds the key's lock (buildserver.py takes it first thing)."""
    import fcntl

    try:
        lock = os.open(os.path.join(where, f"{key}.lock"), os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(lock)
    return False


def _interpreter_options() -> list[str]:
    """The options this interpreter was started with, up to the script, -c or -m: the server
    starts with the same ones, and so gets the same flags (its environment does the rest)."""
    options: list[str] = []
    words = iter(sys.orig_argv[1:])
    for word in words:
        if word in ("-", "--") or not word.startswith("-"):
            break
        if word.startswith("--"):
            options.append(word)
            if word == "--check-hash-based-pycs":
                options.append(next(words, ""))
            continue
        letters = word[1:]
        for i, letter in enumerate(letters):
            if letter in "cm":  # the command starts here
                if i:
                    options.append(f"-{letters[:i]}")
                return options
            if letter in "WX":  # the rest of the word, or the next one, is its value
                options.append(word)
                if i == len(letters) - 1:
                    options.append(next(words, ""))
                break
        else:
            options.append(word)
    return options

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
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd))
        conn.settimeout(30)  # a server that takes no request in that time is stuck: build here
        data = len(payload).to_bytes(4, "big") + payload
        sent = conn.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        if sent < len(data):  # (sendall sends even nothing, which a closed end refuses)
            conn.sendall(data[sent:])
    finally:
        os.close(cwd)
    accepted = conn.recv(1) == b"R"
    conn.settimeout(None)
    return accepted


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
        if not part:
            sys.stderr.write("imagewright: the build server stopped before the build ended\n")
            return 1
        answer += part
    return int.from_bytes(answer[1:], "big", signed=True)


def _exit_as(code: int) -> None:
    """Exit with the build's status; a build killed by a signal kills this process likewise."""
    if code < 0:
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

    log_path = os.path.join(where, f"{key}.log")
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        found = os.fstat(log)
        if found.st_size and found.st_mtime > _now() - 60:
            return
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("PYTHON", "LC_")) or k in _STARTUP_ENV or k == IDLE
        }
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


def _now() -> float:
    import time  # (a built-in module)

    return time.time()


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

"""The first process of a sandbox (Sandbox.create): starts its command and serves exec and file
requests from the host.

It runs on the image's own python3 (standard library only, Python 3.9), inside the sandbox and
under all of its walls, so whatever it starts is in the same namespaces, under the same seccomp
filter and with the same capabilities. The host reaches it over a listening unix socket it
inherits (SOCKET_FD_ENV): one SOCK_SEQPACKET connection per request, JSON messages, and the host's
ends of pipes or files passed back with SCM_RIGHTS, so output and input never go through us.

Requests: {"op": "exec", "argv", "env", "workdir", "timeout"} answers with the process's stdin,
stdout and stderr pipes, then, on the same connection, {"returncode": n} or {"timeout": true};
{"op": "stdin"} answers with the main command's stdin; {"op": "stdin_eof"} closes ours of it;
{"op": "open", "path", "flags"} answers with the opened file. Failures answer {"error", "errno"}.

The main command (argv) runs once the host writes a byte to GO_FD_ENV (its network is ready);
when it exits, so do we, with its status (128 + signal for a signal), and the sandbox ends.
Without a command we wait until the sandbox is terminated.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

SOCKET_FD_ENV = "IMAGEWRIGHT_SANDBOX_SOCKET_FD"
GO_FD_ENV = "IMAGEWRIGHT_SANDBOX_GO_FD"
MAX_MESSAGE = 1 << 20

_stdin_lock = threading.Lock()
_main_stdin = [-1]  # our end of the main command's stdin, until stdin_eof


def _reply(conn: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(conn, [data], list(fds))
    else:
        conn.sendall(data)


def _error(conn: socket.socket, exc: OSError) -> None:
    _reply(conn, {"error": str(exc.strerror or exc), "errno": exc.errno or 0})


def _exec(conn: socket.socket, request: dict[str, Any]) -> None:
    env = dict(os.environ)
    for key, value in (request.get("env") or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    try:
        proc = subprocess.Popen(
            request["argv"],
            stdin=stdin_r,
            stdout=stdout_w,
            stderr=stderr_w,
            cwd=request.get("workdir") or None,
            env=env,
            start_new_session=True,  # its own group, which a timeout kills whole
        )
    except OSError as exc:
        for fd in (stdin_r, stdin_w, stdout_r, stdout_w, stderr_r, stderr_w):
            os.close(fd)
        _error(conn, exc)
        return
    for fd in (stdin_r, stdout_w, stderr_w):
        os.close(fd)
    try:
        _reply(conn, {"pid": proc.pid}, (stdin_w, stdout_r, stderr_r))
    finally:
        for fd in (stdin_w, stdout_r, stderr_r):
            os.close(fd)
    try:
        proc.wait(request.get("timeout"))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _reply(conn, {"timeout": True})
        return
    code = proc.returncode
    _reply(conn, {"returncode": code if code >= 0 else 128 - code})


def _stdin(conn: socket.socket) -> None:
    with _stdin_lock:
        if _main_stdin[0] < 0:
            _reply(conn, {"error": "the sandbox's stdin is closed", "errno": 0})
            return
        fd = os.dup(_main_stdin[0])
    try:
        _reply(conn, {}, (fd,))
    finally:
        os.close(fd)


def _stdin_eof(conn: socket.socket) -> None:
    _reply(conn, {})  # first: the command may end, and we with it, as soon as its stdin does
    with _stdin_lock:
        if _main_stdin[0] >= 0:
            os.close(_main_stdin[0])
            _main_stdin[0] = -1


def _open(conn: socket.socket, request: dict[str, Any]) -> None:
    try:
        fd = os.open(request["path"], int(request["flags"]) | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        _error(conn, exc)
        return
    try:
        _reply(conn, {}, (fd,))
    finally:
        os.close(fd)


def _serve(conn: socket.socket) -> None:
    try:
        request = json.loads(conn.recv(MAX_MESSAGE))
        op = request.get("op")
        if op == "exec":
            _exec(conn, request)
        elif op == "stdin":
            _stdin(conn)
        elif op == "stdin_eof":
            _stdin_eof(conn)
        elif op == "open":
            _open(conn, request)
        else:
            _reply(conn, {"error": f"unknown request {op!r}", "errno": 0})
    except (OSError, ValueError, KeyError, TypeError):
        pass  # the host went away, or sent what we do not know: nothing to answer
    finally:
        conn.close()


def _accept(listener: socket.socket) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


def main() -> None:
    listener = socket.socket(fileno=int(os.environ.pop(SOCKET_FD_ENV)))
    go = int(os.environ.pop(GO_FD_ENV))
    os.set_inheritable(listener.fileno(), False)
    if os.read(go, 1) != b"1":
        sys.exit(1)  # the host gave up on setting the sandbox up
    os.close(go)
    argv = sys.argv[1:]
    if not argv:
        _accept(listener)
    stdin_r, _main_stdin[0] = os.pipe()  # (before any request can ask for it)
    os.set_inheritable(_main_stdin[0], False)
    threading.Thread(target=_accept, args=(listener,), daemon=True).start()
    try:
        proc = subprocess.Popen(argv, stdin=stdin_r)
    except OSError as exc:
        sys.stderr.write(f"{argv[0]}: {exc.strerror or exc}\n")
        sys.exit(127 if isinstance(exc, FileNotFoundError) else 126)
    os.close(stdin_r)
    code = proc.wait()
    sys.stdout.flush()
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()

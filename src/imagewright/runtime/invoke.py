"""Host side of a function call: start a container, talk to it over a socket, relay output.

A container runs the image's own Python on our bootstrap (bound in read-only, with cloudpickle),
imports the function by name and serves calls one after another until it is stopped. Its stdout
and stderr are relayed live. A call that runs past its timeout, or a container that dies, is
killed and reported as an error; nothing waits forever.
"""

from __future__ import annotations

import atexit
import contextlib
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from ..definition.config import ImageConfig
from ..exception import ExecutionError, FunctionTimeoutError, RemoteError
from ..execute.container import runtime_binds
from ..execute.environment import container_env
from ..execute.sandbox import Bind, Overlay, SandboxCommand, spawn
from ..store.store import Scratch, Store
from .protocol import dumps, loads, recv_message, send_message

__all__ = ["Container", "RemoteTraceback"]

_PY_IN_CONTAINER = "/tmp/.imagewright/py"
_IPC_IN_CONTAINER = "/tmp/.imagewright/ipc"
_START_TIMEOUT = 120.0
_LAUNCH = (
    "import sys; sys.path[:0] = ['/root', '" + _PY_IN_CONTAINER + "']; "
    "from imagewright.runtime.bootstrap import main; main()"
)

_live: set[Container] = set()  # stopped on interpreter exit, so no container outlives us
_live_lock = threading.Lock()


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised inside a container."""

    def __str__(self) -> str:
        return str(self.args[0])


def _package_binds() -> list[Bind]:
    import cloudpickle

    ours = Path(__file__).resolve().parents[1]
    theirs = Path(cloudpickle.__file__).resolve().parent
    return [
        Bind(str(ours), f"{_PY_IN_CONTAINER}/imagewright"),
        Bind(str(theirs), f"{_PY_IN_CONTAINER}/cloudpickle"),
    ]


def _writer(target: IO[str]) -> Callable[[str], None]:
    def write(line: str) -> None:
        if target.closed:  # a spare container's last words after its caller's stream is gone
            return
        target.write(line + "\n")
        target.flush()

    return write


def _relay(pipe: IO[bytes], sink: Callable[[str], None]) -> None:
    for raw in iter(pipe.readline, b""):
        sink(raw.decode("utf-8", "replace").rstrip("\n"))


_spawn_requests: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]]] = queue.Queue()
_spawner_started = threading.Lock()
_spawner: threading.Thread | None = None


def _spawner_loop() -> None:
    while True:
        start, reply = _spawn_requests.get()
        try:
            reply.put((True, start()))
        except BaseException as exc:
            reply.put((False, exc))


def _from_spawner_thread(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Run `start` on one thread that lives as long as the process.

    bwrap's --die-with-parent fires when the *thread* that forked it exits, so a container
    started from a short-lived thread (a spare started ahead, a map worker) would be killed
    with it. Forking every container from one long-lived thread ties them to the process.
    """
    global _spawner
    with _spawner_started:
        if _spawner is None:
            _spawner = threading.Thread(
                target=_spawner_loop, name="imagewright-spawner", daemon=True
            )
            _spawner.start()
    reply: queue.Queue[Any] = queue.Queue(maxsize=1)
    _spawn_requests.put((start, reply))
    ok, value = reply.get()
    if not ok:
        raise value
    return value


class Container:
    """One running container of a function's image, serving calls over a unix socket."""

    def __init__(
        self,
        store: Store,
        config: ImageConfig,
        lowers: tuple[str, ...],
        function_ref: str,
        *,
        env: Mapping[str, str],
        area: Scratch | None = None,
        on_output: Callable[[str], None] | None = None,
    ):
        """A container over `lowers` (top first) running `function_ref` ("module:qualname").

        With `area`, the container writes into that scratch area (a build step's layer)
        instead of a throwaway one. `on_output` receives output lines instead of our stdout.
        """
        self.store, self.config, self.lowers = store, config, lowers
        self.function_ref = function_ref
        self._env, self._area, self._on_output = dict(env), area, on_output
        self._stack = contextlib.ExitStack()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._relays: list[threading.Thread] = []

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> Container:
        """Start the container and wait until the function is imported inside it."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        area = self._area or self._stack.enter_context(self.store.scratch())
        ipc = area.root / "ipc"
        ipc.mkdir()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._stack.callback(listener.close)
        listener.bind(str(ipc / "sock"))
        if not self.config.runs_as_root:  # the image's USER must be able to connect
            (ipc / "sock").chmod(0o666)
        listener.listen(1)
        env = {
            **self._env,
            "IMAGEWRIGHT_IN_CONTAINER": "1",
            "PYTHONUNBUFFERED": "1",
            # never write bytecode: it would land in a run_function layer. (A pycache prefix
            # would also keep it out, but makes Python ignore every compiled file the image has.)
            "PYTHONDONTWRITEBYTECODE": "1",
            "IMAGEWRIGHT_SOCKET": f"{_IPC_IN_CONTAINER}/sock",
            "IMAGEWRIGHT_FUNCTION": self.function_ref,
        }
        workdir = self.config.workdir if self.config.workdir != "/" else "/root"
        binds = (*runtime_binds(), *_package_binds(), Bind(str(ipc), _IPC_IN_CONTAINER, False))
        argv = [
            "/bin/sh",
            "-c",
            'exec "$(command -v python3 || command -v python)" -c "$0"',
            _LAUNCH,
        ]
        env = container_env(self.config, env)
        cmd = SandboxCommand(argv, env, workdir, binds, user=self.config.user)
        overlay = Overlay(self.store.root, self.lowers, area.upper, area.work, area.merged)
        self._proc = _from_spawner_thread(
            lambda: spawn(
                overlay,
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        )
        with _live_lock:
            _live.add(self)
        for pipe, target in ((self._proc.stdout, sys.stdout), (self._proc.stderr, sys.stderr)):
            sink = self._on_output or _writer(target)
            relay = threading.Thread(target=_relay, args=(pipe, sink), daemon=True)
            relay.start()
            self._relays.append(relay)
        self._sock = self._accept(listener)
        hello = self._receive(_START_TIMEOUT, "starting")
        if hello["kind"] != "ready":
            raise self._remote_exception(hello, "import")

    def _accept(self, listener: socket.socket) -> socket.socket:
        deadline = time.monotonic() + _START_TIMEOUT
        listener.settimeout(0.05)
        while True:
            try:
                conn, _ = listener.accept()
                conn.settimeout(None)
                return conn
            except TimeoutError:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise self._died("starting") from None
                if time.monotonic() > deadline:
                    raise ExecutionError(
                        f"container for {self.function_ref} did not start"
                    ) from None

    def stop(self) -> None:
        """Stop the container and drop its scratch area.

        Its filesystem is thrown away, so there is nothing to shut down cleanly: killing bwrap
        takes the whole PID namespace down at once, which is faster than waiting for an exit.
        """
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            self.kill()
            self._proc.wait()
            for relay in self._relays:
                relay.join(timeout=5)  # everything the function printed is shown first
            self._proc = None
        with _live_lock:
            _live.discard(self)
        self._stack.close()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    # ---- calls ------------------------------------------------------------------------------

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> Any:
        """Run one call; returns its value or raises what the function raised."""
        assert self._sock is not None
        send_message(self._sock, {"kind": "call", "args": dumps((args, kwargs))})
        reply = self._receive(timeout, "running")
        if reply["kind"] == "result":
            return loads(reply["value"])
        raise self._remote_exception(reply, "call")

    def _receive(self, timeout: float | None, doing: str) -> dict[str, Any]:
        assert self._sock is not None
        self._sock.settimeout(timeout)
        try:
            message = recv_message(self._sock)
        except TimeoutError:
            self.kill()
            raise FunctionTimeoutError(
                f"{self.function_ref} timed out after {timeout:g} s; its container was killed"
            ) from None
        except ConnectionError:
            message = None
        if message is None:
            raise self._died(doing)
        return message

    def _died(self, doing: str) -> RemoteError:
        assert self._proc is not None
        try:
            status = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            status = self._proc.wait()
        # bwrap reports a child killed by signal N as status 128 + N
        signum = -status if status < 0 else status - 128 if status > 128 else 0
        if signum:
            name = signal.Signals(signum).name if signum in signal.valid_signals() else "?"
            how = f"was killed by signal {signum} ({name}"
            how += {9: ": out of memory, or killed from outside)", 11: ": segmentation fault)"}.get(
                signum, ")"
            )
        else:
            how = f"exited with status {status}"
        return RemoteError(f"The container {doing} {self.function_ref} {how}")

    def _remote_exception(self, reply: dict[str, Any], phase: str) -> BaseException:
        remote_tb = RemoteTraceback(f"\n\nRemote traceback:\n{reply['traceback']}")
        exc: BaseException | None = None
        if reply.get("exc") is not None:
            with contextlib.suppress(Exception):
                exc = pickle.loads(reply["exc"])
        if exc is None:
            what = "importing" if phase == "import" else "running"
            exc = RemoteError(
                f"{reply['type']} while {what} {self.function_ref}: {reply['message']}"
            )
        exc.__cause__ = remote_tb
        return exc


def stop_all() -> None:
    """Kill every container this process started (Ctrl-C, interpreter exit)."""
    with _live_lock:
        live = list(_live)
    for container in live:
        container.kill()
        container.stop()


atexit.register(stop_all)

"""Host side of a function call: start a container, talk to it over a channel, relay output.

A container runs the image's own Python on our bootstrap (bound in read-only, with cloudpickle),
imports the function by name and serves calls one after another until it is stopped. Its stdout
and stderr are relayed live. A call that runs past its timeout, or a container that dies, is
killed and reported as an error; nothing waits forever.

The channel is a socketpair whose other end the container inherits (runtime/protocol.py): nothing
else can reach it, and what the container sends is trusted only with the token we sent it first.
No container outlives this process: each is killed when the thread that forked it exits (one
thread forks them all, and lives as long as the process), and its bootstrap exits when our end
of the channel closes.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from .. import settings
from ..definition.config import ImageConfig
from ..exception import ExecutionError, FunctionTimeoutError, RemoteError
from ..runtime.errors import exception_message, rebuild_exception
from ..runtime.protocol import (
    CALLS_FD_ENV,
    CHANNEL_FD_ENV,
    FUNCTION_ENV,
    TOKEN_SIZE,
    ProtocolError,
    dumps,
    loads,
    recv_message,
    send_message,
)
from ..store.store import Scratch, Store
from .container import runtime_binds
from .environment import container_env
from .limits import Cgroup, Limits
from .network import RESOLV_CONF, Internet, namespace_child, socket_in
from .overlay import Bind, Overlay, SandboxCommand
from .sandbox import spawn

__all__ = ["Container", "ContainerLost", "Runner", "serve_calls", "start_thread", "stop_all"]

_PY_IN_CONTAINER = "/tmp/.imagewright/py"
_START_TIMEOUT = 120.0
# Run with -S, read the token first: nothing from the image's site (.pth files, sitecustomize)
# runs before it is out of the socket (bootstrap.py turns site on afterwards). posix is built
# in, so no file on sys.path can stand in for it.
_LAUNCH = (
    f"import posix, sys; fd = int(posix.environ[b'{CHANNEL_FD_ENV}']); "
    f"token = posix.read(fd, {TOKEN_SIZE}); "
    "sys.path[:0] = ['/root', '" + _PY_IN_CONTAINER + "']; "
    "from imagewright.runtime.bootstrap import main; main(fd, globals().pop('token'))"
)
_PR_SET_PDEATHSIG = 1
# Runs calls a container makes to other functions: (target, verb, pickled inputs) -> replies,
# each a "result" or "exception" header with its pickled payload.
Relay = Callable[
    [dict[str, Any], str, list[bytes]], list[tuple[dict[str, Any], bytes | memoryview]]
]
# Ctrl-C and SIGTERM become KeyboardInterrupt in the main thread, and only there: one the kernel
# hands to another thread waits until the main thread next runs Python code, which a call
# blocked on its container for minutes does not. Our threads block them, so it never does.
_MAIN_THREAD_SIGNALS = {signal.SIGINT, signal.SIGTERM}

_live: set[Container] = set()  # stopped on interpreter exit, so no container outlives us
_live_lock = threading.Lock()
_live_changed = threading.Condition(_live_lock)
_starting = 0  # containers in start(), which interpreter exit waits for
_exiting = False  # set at interpreter exit: containers still starting then stop themselves


def _package_binds() -> list[Bind]:
    import cloudpickle

    ours = Path(__file__).resolve().parents[1]
    theirs = Path(cloudpickle.__file__).resolve().parent
    return [
        Bind(str(ours), f"{_PY_IN_CONTAINER}/imagewright"),
        Bind(str(theirs), f"{_PY_IN_CONTAINER}/cloudpickle"),
    ]


def _web_binds() -> list[Bind]:
    """uvicorn and what it imports, for web containers whose image has none (runtime/web.py)."""
    import importlib.util

    from ..runtime.web import WEB_PACKAGES

    binds = []
    for name in ("uvicorn", "h11", "wsproto", "click", "typing_extensions"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ExecutionError(f"imagewright's {name} package is missing: reinstall imagewright")
        path = Path(spec.origin)
        if path.name == "__init__.py":
            binds.append(Bind(str(path.parent), f"{WEB_PACKAGES}/{name}"))
        else:  # a one-file module (typing_extensions)
            binds.append(Bind(str(path), f"{WEB_PACKAGES}/{path.name}"))
    return binds


def _writer(target: IO[str]) -> Callable[[str], None]:
    def write(line: str) -> None:
        if target.closed:  # a spare container's last words after its caller's stream is gone
            return
        target.write(line + "\n")
        target.flush()

    return write


def start_thread(
    target: Callable[..., object], *args: object, name: str | None = None
) -> threading.Thread:
    """Start a daemon thread that leaves Ctrl-C and SIGTERM to the main thread."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    # blocked around start(), so that the thread has them blocked from its first instruction
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _MAIN_THREAD_SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return thread


def _relay(pipe: IO[bytes], sink: Callable[[str], None]) -> None:
    for raw in iter(pipe.readline, b""):
        sink(raw.decode("utf-8", "replace").rstrip("\n"))


_Spawned = subprocess.Popen[bytes] | BaseException  # the process, or why it failed
_spawn_requests: queue.Queue[
    tuple[Callable[[], subprocess.Popen[bytes]], queue.Queue[_Spawned]]
] = queue.Queue()
_spawner_started = threading.Lock()
_spawner: threading.Thread | None = None


def _spawner_loop() -> None:
    while True:
        start, reply = _spawn_requests.get()
        try:
            reply.put(start())
        except BaseException as exc:
            reply.put(exc)


def _from_spawner_thread(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Run `start` on one thread that lives as long as the process.

    A parent-death signal (ours, and bwrap's --die-with-parent) fires when the *thread* that
    forked the process exits, so a container started from a short-lived thread (a spare started
    ahead, a map worker) would be killed with it. Forking every container from one long-lived
    thread ties them to the process.
    """
    global _spawner
    with _spawner_started:
        if _spawner is None:
            _spawner = start_thread(_spawner_loop, name="imagewright-spawner")
    reply: queue.Queue[_Spawned] = queue.Queue(maxsize=1)
    _spawn_requests.put((start, reply))
    spawned = reply.get()
    if isinstance(spawned, BaseException):
        raise spawned
    return spawned


_prctl: Any = None


def _killed_with_us() -> Callable[[], None]:
    """A preexec_fn giving the child SIGKILL when the thread that forks it exits.

    bwrap's --die-with-parent arms the same signal, but only once bwrap runs: unshare and the
    overlay mount come first, and a container whose parent died in between would live on.
    The signal survives those execs (none is set-user-ID).
    """
    global _prctl
    if _prctl is None:
        import ctypes

        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl, parent = _prctl, os.getpid()

    def arm() -> None:
        # what our threads block is the process's to get: exec keeps a blocked signal blocked
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _MAIN_THREAD_SIGNALS)
        if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError("prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # we died before it was armed: no signal will come
            os._exit(1)

    return arm


def _spawn_attached(argv: Sequence[str], fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    """Start a helper process of a container (slirp4netns), killed with us like the container."""
    preexec = _killed_with_us()
    return _from_spawner_thread(
        lambda: subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # (its failures show as no "ready")
            pass_fds=fds,
            preexec_fn=preexec,
            start_new_session=True,
        )
    )


def _in_cgroup(arm: Callable[[], None], cgroup: Cgroup | None) -> Callable[[], None]:
    """A preexec_fn arming the parent-death signal, then joining the container's cgroups, so
    that everything the container starts is inside them from its first instruction."""
    if cgroup is None:
        return arm

    def start() -> None:
        arm()
        cgroup.join()

    return start


class ContainerLost(RemoteError):
    """The machine running a container went away (a cluster's node or its worker died): what
    the container was running is not the input's fault, so it runs again elsewhere."""


Reply = tuple[dict[str, Any], memoryview | bytes]  # a "result" or "exception" message, pickled


class Runner(Protocol):
    """What runs a function's inputs: a Container on this machine, or one that a cluster's
    node holds (cluster/driver.py). Both answer with the container's own messages."""

    function_ref: str

    def call(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> Any: ...

    def call_raw(
        self,
        payload: bytes,
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> Reply: ...

    def call_many(
        self,
        payloads: list[bytes],
        timeout: float | None,
        *,
        method: str = "",
        ids: list[tuple[str, str]],
    ) -> Iterator[Reply]: ...

    def call_gen(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> Iterator[Any]: ...

    def stop(self, grace: float = 0) -> None: ...

    def alive(self) -> bool: ...

    def kill(self) -> None: ...

    def remote_exception(self, reply: Reply, phase: str) -> BaseException:
        """The exception a "exception" message stands for, rebuilt here."""
        ...


class Container:
    """One running container of a function's image, serving calls over a socketpair."""

    def __init__(
        self,
        store: Store,
        config: ImageConfig,
        lowers: tuple[str, ...],
        function_ref: str,
        *,
        env: Mapping[str, str],
        binds: Sequence[Bind] = (),
        limits: Limits | None = None,
        relay: Relay | None = None,
        area: Scratch | None = None,
        on_output: Callable[[str], None] | None = None,
        web: str | None = None,
    ):
        """A container over `lowers` (top first) running `function_ref` ("module:qualname").

        `binds` are host directories mounted over the image (volumes); `limits` are memory and
        CPU limits, applied through a cgroup where the machine allows. `relay` runs the calls
        the container makes to other functions (on a channel of their own). With `area`, the
        container writes into that scratch area (a build step's layer) instead of a throwaway
        one. `on_output` receives output lines instead of our stdout. With `web`, it serves that
        web endpoint of what it runs (runtime/web.py), in a network namespace of its own.
        """
        self.store, self.config, self.lowers = store, config, lowers
        self.function_ref = function_ref
        self._env, self._binds = dict(env), tuple(binds)
        self._area, self._on_output = area, on_output
        self.web = web
        self._netns_pid = 0  # with `web`: a process in the container's network namespace
        self._internet: Internet | None = None
        self._limits = limits
        self._cgroup: Cgroup | None = None
        self._relay = relay
        self._calls: socket.socket | None = None  # our end of the calls channel
        self._stack = contextlib.ExitStack()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._out: socket.socket | None = None  # a dup of _sock for sending, with its own timeout
        self._token = secrets.token_bytes(TOKEN_SIZE)
        self._relays: list[threading.Thread] = []
        self._stop_lock = threading.Lock()
        # Inputs in flight share the channel: each has an id, and its replies wait in its box.
        # Whichever caller finds nobody reading reads for all (one reader at a time), so a
        # container serving one input at a time costs no extra thread.
        self._ids = itertools.count(1)
        self._boxes: dict[int, collections.deque[tuple[dict[str, Any], memoryview]]] = {}
        self._reading = False
        self._mail = threading.Condition()
        self._send_lock = threading.Lock()

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self, init: Any = None) -> Container:
        """Start the container and wait until it is ready to serve.

        `init` reaches what the container serves: a class's parameters. The container imports
        the function or class, builds it from them and runs its @enter hooks before it is ready.
        """
        global _starting
        with _live_lock:
            if _exiting:
                raise ExecutionError("imagewright is exiting")
            _starting += 1
        try:
            self._start(dumps(init))
        except BaseException:
            self.stop()
            raise
        finally:
            with _live_lock:
                _starting -= 1
                _live_changed.notify_all()
        return self

    def _start(self, init: bytes) -> None:
        area = self._area or self._stack.enter_context(self.store.scratch())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock, self._out = ours, ours.dup()
        handed = [theirs]  # the fds the container inherits
        if self._relay is not None:
            self._calls, calls_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            handed.append(calls_theirs)
        env = {
            **self._env,
            settings.IN_CONTAINER: "1",
            "PYTHONUNBUFFERED": "1",
            # never write bytecode: it would land in a run_function layer. (A pycache prefix
            # would also keep it out, but makes Python ignore every compiled file the image has.)
            "PYTHONDONTWRITEBYTECODE": "1",
            CHANNEL_FD_ENV: str(theirs.fileno()),
            FUNCTION_ENV: self.function_ref,
        }
        if len(handed) > 1:
            env[CALLS_FD_ENV] = str(handed[1].fileno())
        workdir = self.config.workdir if self.config.workdir != "/" else "/root"
        binds = (*runtime_binds(), *_package_binds(), *self._binds)
        if self.web is not None:
            resolv = area.root / "resolv.conf"  # slirp4netns' resolver, not the host's
            resolv.write_text(RESOLV_CONF)
            binds = (
                *(b for b in binds if b.target != "/etc/resolv.conf"),
                Bind(str(resolv), "/etc/resolv.conf"),
                *_web_binds(),
            )
        argv = [
            "/bin/sh",
            "-c",
            'exec "$(command -v python3 || command -v python)" -S -c "$0"',
            _LAUNCH,
        ]
        env = container_env(self.config, env)
        cmd = SandboxCommand(
            argv, env, workdir, binds, user=self.config.user, own_network=self.web is not None
        )
        overlay = Overlay(self.store.root, self.lowers, area.upper, area.work, area.merged)
        if self._limits is not None:
            self._cgroup = Cgroup.create(self._limits)
        preexec = _in_cgroup(_killed_with_us(), self._cgroup)
        try:
            self._proc = _from_spawner_thread(
                lambda: spawn(
                    overlay,
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=tuple(sock.fileno() for sock in handed),
                    preexec_fn=preexec,
                )
            )
        finally:
            for sock in handed:  # the container holds them now: they close when it is gone
                sock.close()
        with _live_lock:
            if _exiting:
                raise ExecutionError("imagewright is exiting")
            _live.add(self)
        for pipe, target in ((self._proc.stdout, sys.stdout), (self._proc.stderr, sys.stderr)):
            sink = self._on_output or _writer(target)
            self._relays.append(start_thread(_relay, pipe, sink))
        if self.web is not None:  # online before the container runs any of the user's code
            self._netns_pid = namespace_child(self._proc.pid)
            self._internet = Internet(self._netns_pid, _spawn_attached)
        init_header: dict[str, Any] = {"kind": "init"}
        if self.web is not None:
            init_header["web"] = self.web
        with contextlib.suppress(ConnectionError):  # then the receive below says how it died
            ours.send(self._token)
            send_message(ours, init_header, init)
        if self._calls is not None:  # (@enter hooks may already call other functions)
            start_thread(self._serve_calls, self._calls, name="imagewright-relay")
        hello = self._receive(_START_TIMEOUT, "starting")
        if hello[0]["kind"] == "exception":
            raise self.remote_exception(hello, "import")
        if hello[0]["kind"] != "ready":
            raise self._protocol_error(f"a {hello[0]['kind']!r} message while starting")

    def stop(self, grace: float = 0) -> None:
        """Stop the container and drop its scratch area.

        With `grace`, the container is first asked to stop and given that many seconds to run
        its @exit hooks. Otherwise there is nothing to shut down cleanly (its filesystem is
        thrown away): killing bwrap takes the whole PID namespace down at once, which is faster
        than waiting for an exit. It dies before its channel closes: the other way round, a
        container still writing or reading would see the connection reset, and print a
        traceback about it.
        """
        if grace and self.alive():
            self._ask_to_stop(grace)
        with self._stop_lock:
            if self._proc is not None:
                self.kill()
                self._proc.wait()
                for relay in self._relays:
                    relay.join(timeout=5)  # everything the function printed is shown first
                self._proc = None
            for sock in (self._sock, self._out, self._calls):
                if sock is not None:
                    sock.close()
            self._sock = self._out = self._calls = None
            if self._cgroup is not None:  # (also after a failed start)
                self._cgroup.remove()
                self._cgroup = None
            if self._internet is not None:
                self._internet.close()
                self._internet = None
            with _live_lock:
                _live.discard(self)
            self._stack.close()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def socket_to(self) -> socket.socket:
        """A fresh, unconnected TCP socket inside the web container's network namespace."""
        if not self._netns_pid or not self.alive():
            raise ConnectionRefusedError(f"the container of {self.function_ref} is not serving")
        return socket_in(self._netns_pid)

    def _ask_to_stop(self, grace: float) -> None:
        """Send "stop" and wait until the container says its @exit hooks ran (or `grace`)."""
        deadline = time.monotonic() + grace
        try:
            with self._send_lock:
                if self._out is None:
                    return
                self._out.settimeout(grace)
                send_message(self._out, {"kind": "stop", "grace": grace})
            while True:
                message = self._receive(max(deadline - time.monotonic(), 0.0), "stopping", grace)
                if message[0]["kind"] == "stopped":
                    return
        except (OSError, ExecutionError, RemoteError):
            return  # it died or overran: stop() kills it either way

    def kill(self) -> None:
        """Kill bwrap, which takes the container's PID namespace down, and bwrap's child.

        Until bwrap has set its child up (the namespace's future init), that child waits for it
        on an eventfd, without a parent-death signal yet: killing bwrap alone in that moment
        would leave it waiting forever, holding the container's pipes and channel.
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGSTOP)  # no new child from here on
            os.waitid(os.P_PID, proc.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
        proc.kill()

    # ---- calls ------------------------------------------------------------------------------

    def call(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> Any:
        """Run one input; returns its value or raises what the function raised.

        `method` names a class's method; `ids` are the input's and its call's ids, which the
        function sees as current_input_id() and current_function_call_id().
        """
        header, payload = self.call_raw(dumps((args, kwargs)), timeout, method=method, ids=ids)
        if header["kind"] == "exception":
            raise self.remote_exception((header, payload), "call")
        return loads(payload)

    def call_raw(
        self,
        payload: bytes,
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> tuple[dict[str, Any], memoryview]:
        """Run one input already pickled; its "result" or "exception" message, still pickled
        (a call relayed from another container passes it on without unpickling it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        call = self._submit(payload, method, ids, timeout)
        try:
            reply = self._next_reply(call, deadline, timeout)
            if reply[0]["kind"] in ("result", "exception"):
                return reply
            raise self._protocol_error(f"a {reply[0]['kind']!r} message in answer to a call")
        finally:
            with self._mail:
                self._boxes.pop(call, None)

    def call_many(
        self,
        payloads: list[bytes],
        timeout: float | None,
        *,
        method: str = "",
        ids: list[tuple[str, str]],
    ) -> Iterator[tuple[dict[str, Any], memoryview]]:
        """Run several inputs, already pickled, sent in one message; yields each one's
        "result" or "exception" message, in order.

        For a container that takes one input at a time: they run one after another, so each
        input's timeout counts from the moment the one before it answered.
        """
        sock = self._out
        if sock is None:
            raise self._died("running")
        calls = [next(self._ids) for _ in payloads]
        header = {
            "kind": "calls",
            "ids": calls,
            "method": method,
            "inputs": [input_id for input_id, _ in ids],
            "call": ids[0][1] if ids else "",
            "sizes": [len(p) for p in payloads],
        }
        with self._mail:
            for call in calls:
                self._boxes[call] = collections.deque()
        try:
            try:
                with self._send_lock:
                    sock.settimeout(timeout)
                    send_message(sock, header, b"".join(payloads))
            except TimeoutError:
                raise self._timed_out(timeout) from None
            except (ConnectionError, OSError):
                raise self._died("running") from None
            for call in calls:
                deadline = None if timeout is None else time.monotonic() + timeout
                reply = self._next_reply(call, deadline, timeout)
                if reply[0]["kind"] not in ("result", "exception"):
                    raise self._protocol_error(
                        f"a {reply[0]['kind']!r} message in answer to a call"
                    )
                yield reply
        finally:
            with self._mail:
                for call in calls:
                    self._boxes.pop(call, None)

    def call_gen(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> Iterator[Any]:
        """Run one input of a generator; yields its values as they come."""
        for reply in self.call_gen_raw(dumps((args, kwargs)), timeout, method=method, ids=ids):
            if reply[0]["kind"] == "exception":
                raise self.remote_exception(reply, "call")
            yield loads(reply[1])

    def call_gen_raw(
        self,
        payload: bytes,
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> Iterator[tuple[dict[str, Any], memoryview]]:
        """Run one input of a generator, already pickled; yields its "item" messages as they
        come, still pickled, and last its "exception" message if it raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        call = self._submit(payload, method, ids, timeout)
        try:
            while True:
                reply = self._next_reply(call, deadline, timeout)
                kind = reply[0]["kind"]
                if kind == "done":
                    return
                if kind not in ("item", "exception"):
                    raise self._protocol_error(f"a {kind!r} message in answer to a call")
                yield reply
                if kind == "exception":
                    return
        finally:
            with self._mail:
                self._boxes.pop(call, None)

    def _submit(
        self,
        payload: bytes,
        method: str,
        ids: tuple[str, str],
        timeout: float | None,
    ) -> int:
        sock = self._out
        if sock is None:
            raise self._died("running")
        call = next(self._ids)
        header = {"kind": "call", "id": call, "method": method, "input": ids[0], "call": ids[1]}
        with self._mail:
            self._boxes[call] = collections.deque()
        try:
            with self._send_lock:
                sock.settimeout(timeout)
                send_message(sock, header, payload)
        except TimeoutError:
            raise self._timed_out(timeout) from None
        except (ConnectionError, OSError):
            raise self._died("running") from None
        return call

    def _next_reply(
        self, call: int, deadline: float | None, timeout: float | None
    ) -> tuple[dict[str, Any], memoryview]:
        """The next message for input `call`: from its box, or read off the channel."""
        while True:
            with self._mail:
                box = self._boxes[call]
                while not box and self._reading:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise self._timed_out(timeout)
                    self._mail.wait(left)
                if box:
                    return box.popleft()
                self._reading = True
            try:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                message = self._receive(left, "running", timeout)
            finally:
                with self._mail:
                    self._reading = False
                    self._mail.notify_all()
            if message[0].get("id") == call:
                return message
            with self._mail:
                other = self._boxes.get(message[0].get("id", -1))
                if other is not None:  # (an input given up on has no box: its reply is dropped)
                    other.append(message)
                    self._mail.notify_all()

    def _serve_calls(self, sock: socket.socket) -> None:
        """Answer the calls the container makes to other functions, until it is gone."""
        assert self._relay is not None
        serve_calls(sock, self._token, self._relay)

    def _receive(
        self, timeout: float | None, doing: str, call_timeout: float | None = None
    ) -> tuple[dict[str, Any], memoryview]:
        """The container's next message, dropping what does not carry our token."""
        sock = self._sock
        if sock is None:
            raise self._died(doing)
        try:
            message = recv_message(sock, self._token, timeout)
        except TimeoutError:
            if doing == "starting":
                self.kill()
                raise ExecutionError(
                    f"the container for {self.function_ref} did not start within "
                    f"{timeout:g} s; it was killed"
                ) from None
            raise self._timed_out(call_timeout) from None
        except ProtocolError as exc:
            raise self._protocol_error(str(exc)) from None
        except ConnectionError:
            message = None
        if message is None:
            raise self._died(doing)
        return message

    def _timed_out(self, timeout: float | None) -> FunctionTimeoutError:
        self.kill()
        return FunctionTimeoutError(
            f"{self.function_ref} timed out after {timeout:g} s; its container was killed"
        )

    def _protocol_error(self, what: str) -> RemoteError:
        self.kill()
        return RemoteError(f"The container of {self.function_ref} broke the protocol: {what}")

    def _died(self, doing: str) -> RemoteError:
        proc = self._proc
        if proc is None:  # stop() got there first, from another thread (Ctrl-C, exit)
            return RemoteError(f"The container {doing} {self.function_ref} was stopped")
        try:
            status = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait()
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
        if self._cgroup is not None and self._limits is not None and self._cgroup.oom_killed():
            how = (
                f"went over its memory limit of {self._limits.memory_limit_mib} MiB and was killed"
            )
        return RemoteError(f"The container {doing} {self.function_ref} {how}")

    def remote_exception(self, reply: Reply, phase: str) -> BaseException:
        what = "importing" if phase == "import" else "running"
        return rebuild_exception(reply[0], reply[1], f"{what} {self.function_ref}")


def serve_calls(sock: socket.socket, token: bytes, relay: Relay) -> None:
    """Answer calls to other functions arriving on `sock` (runtime/calls.py), until it closes.

    Each runs in a thread of its own, so that a caller can have many in flight (a `.map` from
    inside). Only the JSON header is read here: inputs and replies pass through as the bytes
    the callers made. `token` is the one the caller's messages carry.
    """
    lock = threading.Lock()
    try:
        while True:
            try:
                request = recv_message(sock, token)
            except (OSError, ValueError, ProtocolError):  # (ValueError: stop() closed it)
                return
            if request is None:
                return
            header, payload = request
            start_thread(_answer_call, sock, lock, relay, header, bytes(payload))
    finally:
        sock.close()


def _answer_call(
    sock: socket.socket,
    lock: threading.Lock,
    relay: Relay,
    header: dict[str, Any],
    payload: bytes,
) -> None:
    sizes = header.get("sizes") or []
    try:
        if not isinstance(sizes, list) or sum(sizes) != len(payload):
            raise RemoteError("a call with inputs of the wrong sizes")
        inputs, at = [], 0
        for size in sizes:
            inputs.append(payload[at : at + size])
            at += size
        replies = relay(header.get("target") or {}, str(header.get("verb")), inputs)
    except Exception as exc:
        replies = [exception_message(exc)] * max(len(sizes), 1)
    headers = [{**reply, "size": len(data)} for reply, data in replies]
    message = {"kind": "answer", "id": header.get("id"), "replies": headers}
    with lock, contextlib.suppress(OSError):  # a caller gone meanwhile needs no answer
        send_message(sock, message, b"".join(bytes(data) for _, data in replies))


def stop_all() -> None:
    """Kill every container this process started (Ctrl-C, interpreter exit)."""
    with _live_lock:
        live = list(_live)
    for container in live:
        container.kill()
    for container in live:
        container.stop()


@atexit.register
def _stop_all_at_exit() -> None:
    global _exiting
    with _live_lock:
        _exiting = True  # a spare that is still starting stops itself instead of registering
    stop_all()
    # A container still starting (the spare started ahead) stops itself, now that it is killed
    # or sees _exiting: wait the moment that takes, so that its scratch area goes too.
    deadline = time.monotonic() + 10
    with _live_lock:
        while _starting and time.monotonic() < deadline:
            _live_changed.wait(deadline - time.monotonic())
    stop_all()

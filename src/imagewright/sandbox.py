"""Modal's `Sandbox`: a container created and driven at run time, here a local one; and
`SandboxSnapshot` and `Probe`.

`Sandbox.create(...)` builds the image and starts a sandbox that outlives this program, as on
Modal, under the same walls as build steps and functions (execute/sandbox.py), with a network of
its own. Its keeper and the supervisor inside it are execute/sandboxes.py and
runtime/supervisor.py; this module is the handle: streams, exec, wait, terminate, tunnels, files,
and finding sandboxes again by id, by name, or by listing. Imported in containers (Python 3.9),
so the machinery is imported only when used.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

from ._aio import IterTwin, Twin, twin
from ._unsupported import no_local_meaning, not_yet
from .cloud import ModalObject
from .exception import (
    ConflictError,
    ExecutionError,
    InvalidError,
    NotFoundError,
    SandboxFilesystemError,
    SandboxFilesystemIsADirectoryError,
    SandboxFilesystemNotADirectoryError,
    SandboxFilesystemNotFoundError,
    SandboxFilesystemPathAlreadyExistsError,
    SandboxFilesystemPermissionError,
    SandboxTerminatedError,
    SandboxTimeoutError,
    TimeoutError,
)
from .tunnel import Tunnel

if TYPE_CHECKING:
    from .cloud import Client, CloudBucketMount, NetworkFileSystem, Proxy
    from .definition.image import Image
    from .secret import Secret

__all__ = [
    "ContainerProcess",
    "Probe",
    "Sandbox",
    "SandboxSnapshot",
    "StreamReader",
    "StreamWriter",
]

T = TypeVar("T", str, bytes)
_FOLLOW_POLL = (0.002, 0.05)  # how often a followed output file is read again: first, at most
_TIMEOUT_CODE, _TERMINATED_CODE = 124, 137  # Modal's returncodes for those endings
_FS_ERRORS: dict[int, type[SandboxFilesystemError]] = {
    errno.ENOENT: SandboxFilesystemNotFoundError,
    errno.EISDIR: SandboxFilesystemIsADirectoryError,
    errno.ENOTDIR: SandboxFilesystemNotADirectoryError,
    errno.EACCES: SandboxFilesystemPermissionError,
    errno.EPERM: SandboxFilesystemPermissionError,
    errno.EROFS: SandboxFilesystemPermissionError,
    errno.EEXIST: SandboxFilesystemPathAlreadyExistsError,
}
# create()'s arguments that only mean something on Modal's service: refused when given, as
# silently dropping them would leave a sandbox less fenced in than asked
_REFUSED = (
    "network_file_systems", "outbound_cidr_allowlist", "outbound_domain_allowlist",
    "inbound_cidr_allowlist", "cidr_allowlist", "custom_domain", "proxy",
)  # fmt: skip
# ...and those that change nothing here: a warning, once
_IGNORED = (
    "idle_timeout", "cloud", "region", "runtime", "pty", "include_oidc_identity_token",
    "experimental_options",
)  # fmt: skip
_warned: set[str] = set()
# Probe.with_tcp, tried from inside: the sandbox's port is in its own network namespace
_TCP_PROBE = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)"


@dataclass(frozen=True)
class Probe:
    """A sandbox's readiness check: a TCP port that accepts connections, or a command that
    exits 0; tried every `interval_ms`. Make one with `Probe.with_tcp` or `Probe.with_exec`."""

    tcp_port: int | None = None
    exec_argv: tuple[str, ...] | None = None
    interval_ms: int = 100

    def __post_init__(self) -> None:
        if (self.tcp_port is None) == (self.exec_argv is None):
            raise InvalidError(
                "Probe must be created with Probe.with_tcp(...) or Probe.with_exec(...)"
            )

    @classmethod
    def with_tcp(cls, port: int, *, interval_ms: int = 100) -> Probe:
        if not isinstance(port, int):
            raise InvalidError("Probe.with_tcp() expects an integer `port`")
        if not 0 < port <= 65535:
            raise InvalidError(f"Probe.with_tcp() expects `port` in [1, 65535], got {port}")
        _check_interval("with_tcp", interval_ms)
        return cls(tcp_port=port, interval_ms=interval_ms)

    @classmethod
    def with_exec(cls, *argv: str, interval_ms: int = 100) -> Probe:
        if not argv:
            raise InvalidError("Probe.with_exec() requires at least one argument")
        if not all(isinstance(arg, str) for arg in argv):
            raise InvalidError("Probe.with_exec() expects all arguments to be strings")
        _check_interval("with_exec", interval_ms)
        return cls(exec_argv=tuple(argv), interval_ms=interval_ms)


def _check_interval(method: str, interval_ms: int) -> None:
    if not isinstance(interval_ms, int):
        raise InvalidError(f"Probe.{method}() expects an integer `interval_ms`")
    if interval_ms <= 0:
        raise InvalidError(f"Probe.{method}() expects `interval_ms` > 0, got {interval_ms}")


def _create(
    *args: str,
    app: object | None = None,  # an App
    name: str | None = None,
    tags: dict[str, str] | None = None,
    image: Image | None = None,
    env: dict[str, str | None] | None = None,
    secrets: Collection[Secret] | None = None,
    network_file_systems: dict[str | os.PathLike[str], NetworkFileSystem] | None = None,
    timeout: int | None = 300,
    idle_timeout: int | None = None,
    workdir: str | None = None,
    gpu: str | None = None,
    cloud: str | None = None,
    region: str | Sequence[str] | None = None,
    cpu: float | tuple[float, float] | None = None,
    memory: int | tuple[int, int] | None = None,
    runtime: str | None = None,
    block_network: bool = False,
    outbound_cidr_allowlist: Sequence[str] | None = None,
    outbound_domain_allowlist: Sequence[str] | None = None,
    inbound_cidr_allowlist: Sequence[str] | None = None,
    volumes: dict[str | os.PathLike[str], object | CloudBucketMount] | None = None,  # Volume too
    pty: bool = False,
    encrypted_ports: Sequence[int] = (),
    h2_ports: Sequence[int] = (),
    unencrypted_ports: Sequence[int] = (),
    custom_domain: str | None = None,
    proxy: Proxy | None = None,
    include_oidc_identity_token: bool = False,
    readiness_probe: Probe | None = None,
    verbose: bool = False,
    experimental_options: dict[str, Any] | None = None,
    client: Client | None = None,
    environment_name: str | None = None,
    pty_info: object | None = None,
    cidr_allowlist: Sequence[str] | None = None,
) -> Sandbox:
    """Sandbox.create: a new sandbox running `args` in `image` (Debian slim by default); with
    no `args`, it runs until terminated or past its `timeout` (seconds; None for none)."""
    given = dict(locals())
    for option in _REFUSED:
        if given[option]:
            raise no_local_meaning(f"Sandbox.create({option}=...)")
    for option in _IGNORED:
        if given[option] and option not in _warned:
            from ._callsite import warn_user

            _warned.add(option)
            warn_user(f"Sandbox.create: {option}={given[option]!r} has no effect locally")
    if readiness_probe is not None and not isinstance(readiness_probe, Probe):
        raise InvalidError("readiness_probe= takes a modal.Probe")
    from .settings import IN_CONTAINER

    if os.environ.get(IN_CONTAINER) == "1":
        raise not_yet("Sandbox.create() from inside a container")
    if not all(isinstance(arg, str) for arg in args):
        raise InvalidError("All entrypoint arguments must be strings")
    if workdir is not None and not workdir.startswith("/"):
        raise InvalidError(f"workdir must be an absolute path, got: {workdir}")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise InvalidError(f"timeout must be a positive number of seconds, got {timeout!r}")
    ports = [*encrypted_ports, *h2_ports, *unencrypted_ports]
    if not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        raise InvalidError(f"ports must be integers in [1, 65535], got {ports!r}")
    if name is not None:
        app_name = getattr(app, "name", None)
        if any(s._state.get("name") == name for s in _list() if s._state.get("app") == app_name):
            from .exception import AlreadyExistsError

            raise AlreadyExistsError(f"A sandbox named {name!r} is already running")
    return _start(
        args, app, name, tags, image, env, secrets, timeout, workdir, gpu, cpu, memory,
        block_network, volumes or {}, sorted(set(ports)), readiness_probe,
    )  # fmt: skip


def _start(
    args: Sequence[str],
    app: object | None,
    name: str | None,
    tags: dict[str, str] | None,
    image: Image | None,
    env: dict[str, str | None] | None,
    secrets: Collection[Secret] | None,
    timeout: float | None,
    workdir: str | None,
    gpu: str | None,
    cpu: float | tuple[float, float] | None,
    memory: int | tuple[int, int] | None,
    block_network: bool,
    volumes: dict[str | os.PathLike[str], object],
    ports: list[int],
    probe: Probe | None,
) -> Sandbox:
    """Build the image and start the sandbox's keeper (execute/sandboxes.py)."""
    import dataclasses
    import secrets as token

    from .app import App
    from .cloud import CloudBucketMount
    from .definition.image import Image
    from .execute.builder import build_image
    from .execute.environment import container_env
    from .execute.layers import container_lowers
    from .execute.limits import Limits
    from .execute.sandboxes import Spec, start_keeper
    from .execute.volumes import volume_binds
    from .function import check_gpu_arg, require_gpu
    from .store.store import Store
    from .volume import check_volumes

    if app is not None and not isinstance(app, App):
        raise InvalidError("`app=` has to be an `imagewright.App`")
    if image is None:
        image = Image.debian_slim()
    if not isinstance(image, Image):
        raise InvalidError("`image=` has to be an `imagewright.Image` object")
    if any(isinstance(v, CloudBucketMount) for v in volumes.values()):
        raise no_local_meaning("Sandbox.create(volumes={...: CloudBucketMount})")
    wanted_gpu = check_gpu_arg(gpu)
    if wanted_gpu:
        require_gpu(wanted_gpu)
    limits = Limits.from_modal(memory, cpu)
    binds, volume_env = volume_binds(check_volumes(volumes))  # type: ignore[arg-type]
    store = app._store if app is not None else Store.default()
    plan = build_image(image, store=store).plan
    lowers = container_lowers(plan, store)
    extra = {k: v for s in secrets or () for k, v in s.env.items()}
    extra.update(volume_env)
    for key, value in (env or {}).items():
        if value is None:
            extra.pop(key, None)
        else:
            extra[key] = value
    config = plan.config
    spec = Spec(
        id=f"sb-{token.token_hex(12)}",
        store=str(store.root),
        keys=[step.key for step in plan.steps],
        lowers=list(lowers),
        argv=list(args),
        env=container_env(config, extra),
        workdir=workdir or config.workdir,
        user=config.user,
        binds=[(b.source, b.target, b.readonly) for b in binds],
        timeout=timeout,
        block_network=bool(block_network),
        ports=ports,
        limits=dataclasses.asdict(limits) if limits != Limits() else None,
        app=getattr(app, "name", None),
        name=name,
        tags=dict(tags or {}),
        probe=None if probe is None else dataclasses.asdict(probe),
    )
    start_keeper(spec)
    return Sandbox._attach(spec.id)


def _list(
    *, app_id: str | None = None, tags: dict[str, str] | None = None, client: Client | None = None
) -> Iterator[Sandbox]:
    """Sandbox.list: the running sandboxes of this machine; of an app (by name, or by id,
    `ap-<name>`), or with at least these tags."""
    from .execute.sandboxes import sandboxes_root

    try:
        names = sorted(os.listdir(sandboxes_root()))
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith("sb-"):
            continue
        try:
            sandbox = Sandbox._attach(name)
        except NotFoundError:
            continue  # it ended meanwhile
        if sandbox._finished():
            continue
        app = sandbox._state.get("app")
        if app_id is not None and app_id not in (app, f"ap-{app}"):
            continue
        own = sandbox._state.get("tags") or {}
        if tags and any(own.get(k) != v for k, v in tags.items()):
            continue
        yield sandbox


# ---- streams --------------------------------------------------------------------------------


class StreamReader(Generic[T]):
    """A process's stdout or stderr: `read()` all of it, or iterate over its lines (also with
    `async for`, and `await reader.read.aio()`)."""

    def __init__(self, fd: int | None, text: bool, ended: Callable[[], bool] | None = None):
        """Reads `fd` (None: nothing to read) until its end; with `ended`, `fd` is a file
        that grows while the sandbox runs, and its end is when `ended()` says so."""
        self._file = None if fd is None else io.FileIO(fd, "r")
        self._text, self._ended = text, ended
        self._lock = threading.Lock()
        self._pending = b""

    def _chunk(self) -> bytes:
        """The next bytes, b"" at the end."""
        if self._file is None:
            return b""
        delay = _FOLLOW_POLL[0]
        while True:
            data = self._file.read(65536)
            if data or self._ended is None:
                break
            if self._ended():  # it ended: what it wrote last is in the file by now
                data = self._file.read(65536)
                if data:
                    break
                self._file.close()
                self._file = None
                return b""
            time.sleep(delay)
            delay = min(delay * 2, _FOLLOW_POLL[1])
        if not data:
            self._file.close()
            self._file = None
        return data or b""

    def _decode(self, data: bytes) -> T:
        return data.decode("utf-8", "replace") if self._text else data  # type: ignore[return-value]

    @twin
    def read(self) -> T:
        """Everything up to the end of the stream (blocks until then)."""
        with self._lock:
            parts = [self._pending]
            self._pending = b""
            while chunk := self._chunk():
                parts.append(chunk)
        return self._decode(b"".join(parts))

    def _next_line(self) -> bytes:
        with self._lock:
            while b"\n" not in self._pending:
                chunk = self._chunk()
                if not chunk:
                    line, self._pending = self._pending, b""
                    return line
                self._pending += chunk
            line, _, self._pending = self._pending.partition(b"\n")
            return line + b"\n"

    def __iter__(self) -> Iterator[T]:
        while line := self._next_line():
            yield self._decode(line)

    async def __aiter__(self) -> AsyncIterator[T]:
        import asyncio

        while line := await asyncio.to_thread(self._next_line):
            yield self._decode(line)


class StreamWriter:
    """A process's stdin: `write()` buffers, `drain()` sends, `write_eof()` then `drain()`
    closes it."""

    def __init__(self, open_fd: Callable[[], int], on_eof: Callable[[], None] | None = None):
        """`open_fd()` gives the pipe's fd, on first use; `on_eof` runs after our end closes."""
        self._open_fd, self._on_eof = open_fd, on_eof
        self._fd: int | None = None
        self._buffer = bytearray()
        self._closed = self._eof_sent = False
        self._lock = threading.Lock()

    def write(self, data: bytes | bytearray | memoryview | str) -> None:
        """Add `data` to what the next `drain()` sends."""
        if self._closed:
            raise ValueError("Stdin is closed. Cannot write to it.")
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__}")
        self._buffer.extend(data)

    def write_eof(self) -> None:
        """Close the stream once the buffered data is drained."""
        self._closed = True

    @twin
    def drain(self) -> None:
        """Send what was written (blocks while the process does not read it), and the end of
        the stream after `write_eof()`."""
        with self._lock:
            if self._eof_sent:
                return
            if self._fd is None:
                self._fd = self._open_fd()
            data, self._buffer = bytes(self._buffer), bytearray()
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except BrokenPipeError:
                pass  # the process is gone, or closed its stdin: as on Modal, the data is lost
            if self._closed:
                os.close(self._fd)
                self._eof_sent = True
                if self._on_eof is not None:
                    self._on_eof()


class ContainerProcess(Generic[T]):
    """A command started with `Sandbox.exec`: its streams, and its exit status."""

    def __init__(self, conn: socket.socket, fds: Sequence[int], text: bool, pid: int):
        if not all(stat.S_ISFIFO(os.fstat(fd).st_mode) for fd in fds):
            for fd in fds:
                os.close(fd)
            raise ExecutionError("the sandbox's supervisor passed a file of the wrong kind")
        stdin, stdout, stderr = fds
        self._conn, self._pid = conn, pid
        self._stdin = StreamWriter(lambda: stdin)
        self._stdout: StreamReader[T] = StreamReader(stdout, text)
        self._stderr: StreamReader[T] = StreamReader(stderr, text)
        self._returncode: int | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ContainerProcess(process_id={self._pid!r})"

    @property
    def stdout(self) -> StreamReader[T]:
        return self._stdout

    @property
    def stderr(self) -> StreamReader[T]:
        return self._stderr

    @property
    def stdin(self) -> StreamWriter:
        return self._stdin

    @property
    def returncode(self) -> int:
        if self._returncode is None:
            raise InvalidError(
                "You must call wait() before accessing the returncode. "
                "To poll for the status of a running process, use poll() instead."
            )
        return self._returncode

    def _settle(self, block: bool) -> int | None:
        from .execute.sandboxes import receive_line

        with self._lock:
            if self._returncode is not None:
                return self._returncode
            self._conn.setblocking(block)
            try:
                message = receive_line(self._conn) if block or _readable(self._conn) else {}
            finally:
                self._conn.setblocking(True)
            if message == {}:
                return None
            if message is None:  # the sandbox ended under it
                self._returncode = _TERMINATED_CODE
            elif message.get("timeout") is True:
                self._returncode = -1  # Modal's value for an exec past its timeout
            else:
                code = message.get("returncode")
                self._returncode = code if isinstance(code, int) else -1
            self._conn.close()
            return self._returncode

    @twin
    def poll(self) -> int | None:
        """None while the process runs, then its exit code."""
        return self._settle(block=False)

    @twin
    def wait(self) -> int:
        """Wait for the process to exit; returns its exit code (128 + n for signal n)."""
        code = self._settle(block=True)
        assert code is not None
        return code


@dataclass(frozen=True)
class _LocalTunnel(Tunnel):
    """A sandbox's port, forwarded as plain TCP from this machine's 127.0.0.1: no TLS, so its
    URL is http://."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _readable(conn: socket.socket) -> bool:
    import select

    return bool(select.select([conn], [], [], 0)[0])


# ---- sandboxes ------------------------------------------------------------------------------


class Sandbox(ModalObject):
    """A container running arbitrary commands, created and driven at run time."""

    _id_prefix = "sb"

    def __init__(self) -> None:
        raise InvalidError(
            "Class Sandbox has no constructor. Use class constructor methods instead."
        )

    @classmethod
    def _attach(cls, sandbox_id: str) -> Sandbox:
        """A handle on sandbox `sandbox_id`, running or ended; NotFoundError if unknown."""
        self = cls.__new__(cls)
        self._open(sandbox_id)
        return self

    def _open(self, sandbox_id: str) -> None:
        import json

        from .execute.sandboxes import ended_record, sandbox_dir

        self._sandbox_id = sandbox_id
        self._result: dict[str, Any] | None = None
        directory = sandbox_dir(sandbox_id)
        fds: list[int] = []
        try:
            self._state: dict[str, Any] = json.loads((directory / "state.json").read_text())
            for name in ("alive", "stdout", "stderr"):
                fds.append(os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC))
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            fds = []
            self._result = ended_record(sandbox_id)
            if self._result is None:
                raise NotFoundError(f"Sandbox with id {sandbox_id!r} not found") from None
            self._state = {"tunnels": {}}
        # `alive` is flocked by the keeper while the sandbox runs; the outputs are followed
        # until it ends (and remain readable through these fds once its directory is gone)
        self._alive: int | None = fds[0] if fds else None
        out, err = (fds[1], fds[2]) if fds else (None, None)
        self._stdout: StreamReader[str] = StreamReader(out, True, self._finished)
        self._stderr: StreamReader[str] = StreamReader(err, True, self._finished)
        self._stdin = StreamWriter(self._main_stdin, self._main_stdin_eof)

    def __del__(self) -> None:
        alive = getattr(self, "_alive", None)
        if alive is not None:
            os.close(alive)

    def __repr__(self) -> str:
        return f"Sandbox({self._sandbox_id})"

    @property
    def object_id(self) -> str:
        return self._sandbox_id

    create = Twin(_create)

    @staticmethod
    def from_id(sandbox_id: str, client: Client | None = None) -> Sandbox:
        """The sandbox with this id, started by any program on this machine."""
        if not isinstance(sandbox_id, str) or not sandbox_id.startswith("sb-"):
            raise InvalidError(f"Invalid sandbox id {sandbox_id!r}")
        if "/" in sandbox_id or sandbox_id in ("sb-.", "sb-.."):
            raise InvalidError(f"Invalid sandbox id {sandbox_id!r}")
        return Sandbox._attach(sandbox_id)

    @staticmethod
    def from_name(
        app_name: str,
        name: str,
        *,
        environment_name: str | None = None,
        include_terminated: bool = False,
        client: Client | None = None,
    ) -> Sandbox:
        """The running sandbox created with `name=name` in the app named `app_name`."""
        for sandbox in _list():
            if sandbox._state.get("app") == app_name and sandbox._state.get("name") == name:
                return sandbox
        raise NotFoundError(f"Sandbox with name {name!r} not found in app {app_name!r}")

    list = IterTwin(_list)

    # ---- state --------------------------------------------------------------------------

    def _finished(self) -> bool:
        """Whether the sandbox has ended; then `_result` says how."""
        import fcntl

        from .execute.sandboxes import ended_record, sandbox_dir

        if self._result is not None:
            return True
        assert self._alive is not None
        try:
            fcntl.flock(self._alive, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._result = ended_record(self._sandbox_id)
        if self._result is None:  # its keeper was killed (SIGKILL) and could record nothing
            import shutil

            self._result = {"status": "terminated"}
            shutil.rmtree(sandbox_dir(self._sandbox_id), ignore_errors=True)
        return True

    @property
    def returncode(self) -> int | None:
        """None while the sandbox runs; then its command's exit code, 124 after its timeout,
        137 when it was terminated."""
        if not self._finished():
            return None
        assert self._result is not None
        status = self._result.get("status")
        if status == "timeout":
            return _TIMEOUT_CODE
        if status == "terminated":
            return _TERMINATED_CODE
        code = self._result.get("returncode")
        return code if isinstance(code, int) else _TERMINATED_CODE

    @twin
    def wait(self, raise_on_termination: bool = True) -> None:
        """Wait for the sandbox to end. Raises SandboxTimeoutError after its timeout, and
        SandboxTerminatedError when it was terminated (unless `raise_on_termination=False`)."""
        import fcntl

        if self._alive is not None and self._result is None:
            fcntl.flock(self._alive, fcntl.LOCK_SH)
        self._finished()
        assert self._result is not None
        if self._result.get("status") == "timeout":
            raise SandboxTimeoutError()
        if self._result.get("status") == "terminated" and raise_on_termination:
            raise SandboxTerminatedError()

    @twin
    def poll(self) -> int | None:
        """None while the sandbox runs, then its returncode."""
        return self.returncode

    @twin
    def terminate(self, *, wait: bool = False) -> int | None:
        """Stop the sandbox (nothing happens if it has ended); with `wait=True`, wait for it
        and return its returncode."""
        import signal

        pid = self._state.get("pid")
        if not self._finished() and isinstance(pid, int) and self._is_keeper(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if wait:
            self.wait(raise_on_termination=False)
            return self.returncode
        return None

    def _is_keeper(self, pid: int) -> bool:
        """Whether process `pid` is still this sandbox's keeper (not a reused pid)."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            return False
        return b"imagewright.execute.sandboxes" in args and any(
            arg.endswith(b"/" + self._sandbox_id.encode()) for arg in args
        )

    @twin
    def wait_until_ready(self, *, timeout: int = 300) -> None:
        """Wait until the sandbox's readiness_probe passes: its TCP port accepts a connection
        (tried from inside the sandbox), or its command exits 0; tried every interval_ms."""
        if timeout <= 0:
            raise InvalidError(f"`timeout` must be positive, got: {timeout}")
        probe = self._state.get("probe")
        if not isinstance(probe, dict):
            raise InvalidError("wait_until_ready() needs a sandbox created with a readiness_probe")
        if probe.get("tcp_port") is not None:
            argv = ["python3", "-c", _TCP_PROBE, str(probe["tcp_port"])]
        else:
            argv = [str(arg) for arg in probe.get("exec_argv") or ()]
        interval = float(probe.get("interval_ms") or 100) / 1000
        deadline = time.monotonic() + timeout
        while True:
            if self._finished():
                raise ConflictError(f"sandbox {self._sandbox_id} has finished")
            with contextlib.suppress(ExecutionError):  # (a probe command not there yet)
                if self.exec(*argv, timeout=max(1, int(timeout))).wait() == 0:
                    return
            if time.monotonic() + interval > deadline:
                raise TimeoutError(f"sandbox {self._sandbox_id} was not ready within {timeout} s")
            time.sleep(interval)

    @twin
    def detach(self) -> None:
        """Let go of the sandbox (it goes on running)."""

    # ---- streams and processes ----------------------------------------------------------

    @property
    def stdout(self) -> StreamReader[str]:
        """The sandbox command's stdout, from its start."""
        return self._stdout

    @property
    def stderr(self) -> StreamReader[str]:
        """The sandbox command's stderr, from its start."""
        return self._stderr

    @property
    def stdin(self) -> StreamWriter:
        """The sandbox command's stdin."""
        return self._stdin

    def _main_stdin(self) -> int:
        from .execute.sandboxes import check_fd, request

        conn, reply, fds = request(self._sandbox_id, {"op": "stdin"}, 1)
        conn.close()
        if not fds:
            raise ExecutionError(str(reply.get("error")))
        return check_fd(fds[0], stat.S_ISFIFO)

    def _main_stdin_eof(self) -> None:
        from .execute.sandboxes import request

        with contextlib.suppress(SandboxTerminatedError):  # (ended: no stdin to close)
            conn, _, _ = request(self._sandbox_id, {"op": "stdin_eof"}, 0)
            conn.close()

    @twin
    def exec(
        self,
        *args: str,
        stdout: object = None,
        stderr: object = None,
        timeout: int | None = None,
        workdir: str | None = None,
        env: dict[str, str | None] | None = None,
        secrets: Collection[Secret] | None = None,
        text: bool = True,
        bufsize: int = -1,
        pty: bool = False,
        _pty_info: object = None,
        pty_info: object = None,
    ) -> ContainerProcess[Any]:
        """Run a command in the running sandbox: same namespaces, filter and capabilities as
        its own command. Its output comes as text, or as bytes with `text=False`."""
        from .execute.sandboxes import request

        if not args:
            raise InvalidError("exec() needs a command to run")
        if not all(isinstance(arg, str) for arg in args):
            raise InvalidError("All entrypoint arguments must be strings")
        if workdir is not None and not workdir.startswith("/"):
            raise InvalidError(f"workdir must be an absolute path, got: {workdir}")
        if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
            raise InvalidError(f"timeout must be a positive number of seconds, got {timeout!r}")
        merged: dict[str, str | None] = {}
        for secret in secrets or ():
            merged.update(secret.env)
        merged.update(env or {})
        message: dict[str, Any] = {"op": "exec", "argv": list(args), "env": merged}
        message.update(workdir=workdir, timeout=timeout)
        if self._finished():
            raise SandboxTerminatedError(f"sandbox {self._sandbox_id} is no longer running")
        conn, reply, fds = request(self._sandbox_id, message, 3)
        if not fds:
            conn.close()
            raise ExecutionError(f"could not run {args[0]!r} in the sandbox: {reply['error']}")
        pid = reply.get("pid")
        return ContainerProcess(conn, fds, text, pid if isinstance(pid, int) else 0)

    @twin
    def tunnels(self, timeout: int = 50) -> dict[int, Tunnel]:
        """The sandbox's ports (encrypted_ports, unencrypted_ports, h2_ports), each forwarded
        from a port of this machine's 127.0.0.1 (plain TCP: the URL is http://)."""
        found: dict[int, Tunnel] = {}
        for port, host_port in self._state.get("tunnels", {}).items():
            found[int(port)] = _LocalTunnel("127.0.0.1", host_port, "127.0.0.1", host_port)
        return found

    def open(self, path: str, mode: str = "r") -> IO[Any]:
        """A file in the sandbox, opened with `mode` as built-in open() does ("r", "w", "a",
        "x", with "b" and "+"); read and write it as any file object."""
        from .execute.sandboxes import check_fd, request

        flags = _open_flags(mode)
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidError(f"open() needs an absolute path in the sandbox, got {path!r}")
        conn, reply, fds = request(
            self._sandbox_id, {"op": "open", "path": path, "flags": flags}, 1
        )
        conn.close()
        if not fds:
            code = reply.get("errno")
            error = _FS_ERRORS.get(code if isinstance(code, int) else 0, SandboxFilesystemError)
            raise error(f"{path}: {reply.get('error')}")
        fd = fds[0]
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise SandboxFilesystemIsADirectoryError(f"{path}: is a directory")
        return os.fdopen(check_fd(fd, stat.S_ISREG), mode.replace("x", "w"))

    def get_tags(self) -> dict[str, str]:
        return dict(self._state.get("tags") or {})


def _open_flags(mode: str) -> int:
    """open()'s flags for a mode string, checked as built-in open() checks it."""
    kinds = [c for c in mode if c in "rwax"]
    if (
        len(kinds) != 1
        or any(c not in "rwaxbt+" for c in mode)
        or len(set(mode)) != len(mode)
        or ("b" in mode and "t" in mode)
    ):
        raise InvalidError(f"invalid file mode {mode!r}")
    plus = "+" in mode
    flags = {
        "r": os.O_RDONLY,
        "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    }[kinds[0]]
    if plus:
        flags = (flags & ~os.O_WRONLY) | os.O_RDWR
    return flags


class SandboxSnapshot(ModalObject):
    """A saved sandbox state that new sandboxes can start from."""

    _id_prefix = "sn"

    def __init__(self) -> None:
        raise InvalidError(
            "Class SandboxSnapshot has no constructor. Use class constructor methods instead."
        )

    @classmethod
    def from_id(cls, sandbox_snapshot_id: str, client: Client | None = None) -> SandboxSnapshot:
        raise not_yet("modal.SandboxSnapshot")

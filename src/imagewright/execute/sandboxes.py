"""Host side of Modal's Sandbox: the keeper process that runs one, and how others reach it.

A sandbox outlives the program that created it, as on Modal, so each has a keeper of its own,
`python -m imagewright.execute.sandboxes DIR`, started detached: in a new session, and forked
once more so that init, not the creator, is its parent. The keeper owns the sandbox's scratch
area and bwrap process, gives it a network namespace of its own (the internet through
slirp4netns, or nothing under block_network), serves its tunnels on 127.0.0.1, enforces its
timeout, and, when it ends, records how, removes the scratch area and DIR, and exits. It is a
child subreaper, so what is left of the sandbox then is its to reap.

DIR is `<home>/sandboxes/<id>/` (0700). What to run, secrets' values included, reaches the
keeper on its stdin, never in a file or its argv. DIR holds state.json (id, keeper pid, app,
tunnels; its appearance means "running"), stdout and stderr (the sandbox's own output,
appended as it comes), `alive` (the keeper holds an exclusive flock on it for its whole life,
so anyone can wait for it to end, or ask whether it has) and `sock`, the supervisor's
listening socket (runtime/supervisor.py), which only the host can reach by path: the sandbox
only inherits it. How a sandbox ended stays in `<home>/sandboxes/ended/<id>.json` for a day.

Whatever the supervisor sends is untrusted: JSON only, bounded in size, and the fds it passes are
checked to be what was asked for (pipes, or a regular file) before use.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
from ..exception import ExecutionError, SandboxTerminatedError
from ..runtime import supervisor
from ..store.store import Store
from .container import runtime_binds
from .limits import Cgroup, Limits
from .network import RESOLV_CONF, Internet, namespace_child, socket_in
from .overlay import Bind, Overlay, SandboxCommand
from .sandbox import spawn

__all__ = [
    "Spec",
    "check_fd",
    "ended_record",
    "receive_line",
    "request",
    "sandbox_dir",
    "sandboxes_root",
    "start_keeper",
]

_SUPERVISOR_IN_SANDBOX = "/tmp/.imagewright/supervisor.py"
# The image's python3 runs the supervisor: isolated (-I) and without site (-S), so nothing of
# the image's environment or site-packages runs inside it.
_LAUNCH = (
    'py=$(command -v python3 || command -v python) || { echo "imagewright: Sandbox needs '
    'python3 in its image, and this one has none" >&2; exit 127; }; '
    f'exec "$py" -I -S {_SUPERVISOR_IN_SANDBOX} "$@"'
)
_START_TIMEOUT = 60.0
_REPLY_TIMEOUT = 30.0
_ENDED_KEPT = 24 * 3600.0
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
TIMEOUT, TERMINATED, EXITED = "timeout", "terminated", "exited"


@dataclass(frozen=True)
class Spec:
    """What a keeper runs: written by Sandbox.create, read by the keeper."""

    id: str
    store: str
    keys: list[str]  # the image's layer keys, which the keeper keeps from being pruned
    lowers: list[str]
    argv: list[str]
    env: dict[str, str]
    workdir: str
    user: str
    binds: list[tuple[str, str, bool]]
    timeout: float | None
    block_network: bool
    ports: list[int]
    limits: dict[str, Any] | None
    app: str | None = None
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    probe: dict[str, Any] | None = None  # a readiness Probe's fields, for wait_until_ready


def sandboxes_root() -> Path:
    return settings.home() / "sandboxes"


def sandbox_dir(sandbox_id: str) -> Path:
    return sandboxes_root() / sandbox_id


def ended_record(sandbox_id: str) -> dict[str, Any] | None:
    """How sandbox `sandbox_id` ended (status, returncode), or None if it has not (or is
    unknown)."""
    try:
        data = json.loads((sandboxes_root() / "ended" / f"{sandbox_id}.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ---- the creator's side ---------------------------------------------------------------------


def start_keeper(spec: Spec) -> None:
    """Start the keeper of a new sandbox and wait until the sandbox runs."""
    root = sandboxes_root()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = root / spec.id
    directory.mkdir(mode=0o700)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "imagewright.execute.sandboxes", str(directory)],
        stdin=subprocess.PIPE,  # the spec, secrets' values included: never a file or argv
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # it outlives us, and our Ctrl-C
        cwd="/",
    )
    assert launcher.stdin is not None
    with contextlib.suppress(BrokenPipeError), launcher.stdin:  # (it died: the wait says so)
        launcher.stdin.write(json.dumps(asdict(spec)).encode())
    launcher.wait()  # it forks the keeper and exits, so no keeper is ever our zombie
    state_path = directory / "state.json"
    deadline = time.monotonic() + _START_TIMEOUT
    while not state_path.exists():
        record = ended_record(spec.id)
        why = None
        if record is not None or launcher.returncode != 0:
            why = (record or {}).get("error") or "its keeper exited"
        elif time.monotonic() > deadline:
            why = "it did not start within a minute"
        if why is not None:
            shutil.rmtree(directory, ignore_errors=True)
            raise ExecutionError(f"the sandbox could not start: {why}")
        time.sleep(0.005)


def request(
    sandbox_id: str, message: dict[str, Any], nfds: int
) -> tuple[socket.socket, dict[str, Any], list[int]]:
    """Send `message` to the sandbox's supervisor; returns the connection (open, for what more
    it may say), its reply and the `nfds` fds that came with it (none for an error reply)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        conn.settimeout(_REPLY_TIMEOUT)
        try:
            conn.connect(str(sandbox_dir(sandbox_id) / "sock"))
            conn.sendall(json.dumps(message).encode())
            data, fds, flags, _ = socket.recv_fds(conn, supervisor.MAX_MESSAGE, max(nfds, 1))
        except TimeoutError:
            raise ExecutionError(
                f"sandbox {sandbox_id} did not answer within {_REPLY_TIMEOUT:g} s"
            ) from None
        except (FileNotFoundError, ConnectionError) as exc:
            raise _gone(sandbox_id) from exc
        try:
            reply = json.loads(data) if data else None
        except ValueError:
            reply = None
        wanted = nfds if isinstance(reply, dict) and "error" not in reply else 0
        if not isinstance(reply, dict) or len(fds) != wanted or flags & socket.MSG_CTRUNC:
            for fd in fds:
                os.close(fd)
            if not data:
                raise _gone(sandbox_id)
            raise ExecutionError("the sandbox's supervisor sent a malformed reply")
        conn.settimeout(None)
        return conn, reply, fds
    except BaseException:
        conn.close()
        raise


def _gone(sandbox_id: str) -> SandboxTerminatedError:
    return SandboxTerminatedError(f"sandbox {sandbox_id} is no longer running")


def check_fd(fd: int, kind: Callable[[int], bool]) -> int:
    """`fd` if it is of `kind` (stat.S_ISFIFO, stat.S_ISREG); else it is closed and refused."""
    if not kind(os.fstat(fd).st_mode):
        os.close(fd)
        raise ExecutionError("the sandbox's supervisor passed a file of the wrong kind")
    return fd


def receive_line(conn: socket.socket) -> dict[str, Any] | None:
    """The next message the supervisor sends on `conn` (None when it closes)."""
    try:
        data = conn.recv(supervisor.MAX_MESSAGE)
    except OSError:
        return None
    try:
        message = json.loads(data) if data else None
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


# ---- the keeper -----------------------------------------------------------------------------


class _Keeper:
    def __init__(self, directory: Path, spec: Spec):
        self.directory, self.spec = directory, spec
        self.store = Store(Path(spec.store))
        self.status = EXITED
        self.proc: subprocess.Popen[bytes] | None = None
        self.internet: Internet | None = None
        self.cgroup: Cgroup | None = None
        self.netns_pid = 0
        self.listeners: list[socket.socket] = []
        self.error: str | None = None  # why it failed to start, for its creator

    def run(self) -> None:
        for key in self.spec.keys:  # our use record keeps prune away from them while we run
            self.store.lookup(key)
        returncode: int | None = None
        try:
            with self.store.scratch() as area:
                try:
                    returncode = self._run(area.root, area.upper, area.work, area.merged)
                except Exception as exc:
                    self.error = f"{exc}{self._last_words()}"
                    raise
                finally:
                    self._stop()
        finally:
            self._record(returncode)
            shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, root: Path, upper: Path, work: Path, merged: Path) -> int:
        spec = self.spec
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(self.directory / "sock"))
        os.chmod(self.directory / "sock", 0o600)
        listener.listen(64)
        go_r, go_w = os.pipe()
        binds = [*runtime_binds(), *(Bind(s, t, ro) for s, t, ro in spec.binds)]
        binds.append(Bind(supervisor.__file__, _SUPERVISOR_IN_SANDBOX))
        if not spec.block_network:  # slirp4netns' resolver, not the host's
            (root / "resolv.conf").write_text(RESOLV_CONF)
            binds = [b for b in binds if b.target != "/etc/resolv.conf"]
            binds.append(Bind(str(root / "resolv.conf"), "/etc/resolv.conf"))
        env = {
            **spec.env,
            supervisor.SOCKET_FD_ENV: str(listener.fileno()),
            supervisor.GO_FD_ENV: str(go_r),
        }
        argv = ["/bin/sh", "-c", _LAUNCH, "sh", *spec.argv]
        cmd = SandboxCommand(
            argv, env, spec.workdir, tuple(binds), user=spec.user, own_network=True
        )
        overlay = Overlay(self.store.root, tuple(spec.lowers), upper, work, merged)
        if spec.limits is not None:
            self.cgroup = Cgroup.create(Limits(**spec.limits))
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        out = os.open(self.directory / "stdout", flags, 0o600)
        err = os.open(self.directory / "stderr", flags, 0o600)
        try:
            self.proc = spawn(
                overlay,
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(listener.fileno(), go_r),
                preexec_fn=_tied_to_us(self.cgroup),
            )
        finally:
            for fd in (out, err, go_r):
                os.close(fd)
            listener.close()  # the sandbox holds it now: connecting fails once it is gone
        if self.status == TERMINATED:  # (asked before there was a process to kill)
            self.proc.kill()
        started = time.monotonic()
        self.netns_pid = namespace_child(self.proc.pid)
        if not spec.block_network:
            self.internet = Internet(self.netns_pid, _helper)
        tunnels = {port: self._tunnel(port) for port in spec.ports}
        state = {
            "id": spec.id,
            "pid": os.getpid(),
            "created": time.time(),
            "app": spec.app,
            "name": spec.name,
            "tags": spec.tags,
            "probe": spec.probe,
            "tunnels": {str(port): hostport for port, hostport in tunnels.items()},
        }
        _write_atomic(self.directory / "state.json", json.dumps(state))
        os.write(go_w, b"1")
        os.close(go_w)
        remaining = None if spec.timeout is None else spec.timeout - (time.monotonic() - started)
        try:
            return self.proc.wait(remaining)
        except subprocess.TimeoutExpired:
            self.status = TIMEOUT
            self.proc.kill()
            return self.proc.wait()

    def _last_words(self) -> str:
        """The sandbox's last line on stderr, which says why its setup failed."""
        try:
            lines = (self.directory / "stderr").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f" ({lines[-1].strip()})" if lines else ""

    def terminate(self, signum: int, frame: object) -> None:
        self.status = TERMINATED
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()  # bwrap's --die-with-parent takes its PID namespace down

    def _tunnel(self, port: int) -> int:
        """Listen on a free port of the host's 127.0.0.1 and forward it to `port` inside."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.listeners.append(listener)
        threading.Thread(target=self._accept, args=(listener, port), daemon=True).start()
        host_port: int = listener.getsockname()[1]
        return host_port

    def _accept(self, listener: socket.socket, port: int) -> None:
        while True:
            try:
                outside, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(outside, port), daemon=True).start()

    def _forward(self, outside: socket.socket, port: int) -> None:
        try:
            inside = socket_in(self.netns_pid)
        except OSError:
            outside.close()
            return
        try:
            inside.setblocking(True)
            inside.connect(("127.0.0.1", port))
        except OSError:
            inside.close()
            outside.close()
            return
        threading.Thread(target=_pump, args=(inside, outside), daemon=True).start()
        _pump(outside, inside)

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for listener in self.listeners:
            listener.close()
        if self.internet is not None:
            self.internet.close()
        if self.cgroup is not None:
            self.cgroup.remove()
        _reap_orphans()

    def _record(self, returncode: int | None) -> None:
        ended = sandboxes_root() / "ended"
        ended.mkdir(mode=0o700, exist_ok=True)
        now = time.time()
        for old in ended.iterdir():
            with contextlib.suppress(OSError):
                if now - old.stat().st_mtime > _ENDED_KEPT:
                    old.unlink()
        if returncode is not None and returncode < 0:
            returncode = 128 - returncode
        record = {"status": self.status, "returncode": returncode, "error": self.error}
        _write_atomic(ended / f"{self.spec.id}.json", json.dumps(record))


def _reap_orphans() -> None:
    """Wait for what is left of the sandbox: the keeper is a child subreaper, so bwrap's inner
    process, orphaned when the outer one is killed, is ours to reap rather than init's (which,
    in a container, may never reap it)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes from `source` to `sink` until either end closes."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)
            source.shutdown(socket.SHUT_RDWR)
    finally:
        source.close()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.rename(path)


def _tied_to_us(cgroup: Cgroup | None) -> Callable[[], None]:
    """A preexec_fn: SIGKILL the child when the keeper dies, and put it in `cgroup`."""
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def arm() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError("prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os._exit(1)
        if cgroup is not None:
            cgroup.join()

    return arm


def _helper(argv: Sequence[str], fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    """Start slirp4netns, killed with the keeper."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=fds,
        preexec_fn=_tied_to_us(None),
        start_new_session=True,
    )


def _main(directory: Path) -> None:
    data = json.load(sys.stdin)  # the spec, from its creator, before anything else
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if os.fork() > 0:  # the launcher: its child, the keeper, becomes init's
        os._exit(0)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    lock = os.open(directory / "alive", os.O_RDWR | os.O_CREAT, 0o600)
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)  # held until we exit: waiters block on it
    data["binds"] = [tuple(b) for b in data["binds"]]
    keeper = _Keeper(directory, Spec(**data))
    signal.signal(signal.SIGTERM, keeper.terminate)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    keeper.run()


if __name__ == "__main__":
    try:
        _main(Path(sys.argv[1]))
    except Exception:  # its creator reads why in the ended record
        sys.exit(1)

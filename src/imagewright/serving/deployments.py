"""Deployed apps: a `serve` that runs in the background under a name, and how to reach it.

`imagewright deploy app.py` starts `imagewright serve app.py --deployment NAME` as a process of
its own session (it outlives the terminal), with its output in the deployment's log, and waits
until it serves. A deployment's directory under settings.apps_dir() holds:
- state.json: its process, file, URLs and functions, written once it serves;
- log: everything it printed;
- calls.sock: where other processes on the machine call its functions (Function.from_name),
  in the same framing containers use to call functions (runtime/calls.py). The directory is
  the store owner's only (0700): the socket is as private as the store.

Deploying a name again starts the new version beside the old one: fronts listen with
SO_REUSEPORT, so both accept on the same ports until the new one is up, and only then is the
old one stopped. Clients see no gap.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import settings
from ..exception import ExecutionError, InvalidError, NotFoundError

if TYPE_CHECKING:
    from ..execute.functions import Relay

__all__ = [
    "CallServer",
    "deploy",
    "deployment_dir",
    "list_deployments",
    "read_state",
    "stop_deployment",
    "write_state",
]

_READY_TIMEOUT = 900.0  # a first deploy builds its images
_STOP_TIMEOUT = 40.0  # containers get 30 s for their @exit hooks


def deployment_dir(name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise InvalidError(f"{name!r} is not a deployment name: no '/', no leading '.'")
    return settings.apps_dir() / name


def read_state(name: str) -> dict[str, Any] | None:
    """The running deployment's state, or None when there is none (or its process is gone)."""
    try:
        state: dict[str, Any] = json.loads((deployment_dir(name) / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state if _alive(int(state.get("pid", 0))) else None


def write_state(name: str, state: dict[str, Any]) -> None:
    directory = deployment_dir(name)
    tmp = directory / f"state.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, directory / "state.json")


def list_deployments() -> list[dict[str, Any]]:
    root = settings.apps_dir()
    found = []
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        state = read_state(directory.name)
        if state is not None:
            found.append(state)
    return found


def deploy(path: str, name: str, ports: list[str], on_line: Any = print) -> dict[str, Any]:
    """Start (or replace) deployment `name` of the app in `path`; its state once it serves."""
    directory = deployment_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    previous = read_state(name)
    log = directory / "log"
    started = time.time()
    argv = [sys.executable, "-m", "imagewright", "serve", os.path.abspath(path)]
    argv += ["--deployment", name, "--no-reload", *(f"--port={p}" for p in ports)]
    with open(log, "ab") as out:
        out.write(f"\n==== deploy of {path} at {time.ctime(started)} ====\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no SIGHUP or Ctrl-C from the terminal reaches it
            cwd=os.getcwd(),
        )
    deadline = time.monotonic() + _READY_TIMEOUT
    with open(log, "rb") as follow:
        follow.seek(0, os.SEEK_END)
        while True:
            for line in follow.read().decode("utf-8", "replace").splitlines():
                on_line(line)
            state = read_state(name)
            if state is not None and state.get("pid") == proc.pid:
                break
            if proc.poll() is not None:
                raise ExecutionError(
                    f"the deployment {name!r} did not start (exit status {proc.returncode}); "
                    f"its log: {log}"
                )
            if time.monotonic() > deadline:
                proc.kill()
                raise ExecutionError(f"the deployment {name!r} did not start in time; see {log}")
            time.sleep(0.2)
    if previous is not None:
        _stop_pid(int(previous["pid"]))
    return state


def stop_deployment(name: str) -> None:
    state = read_state(name)
    if state is None:
        raise NotFoundError(f"No running deployment named {name!r} (see `imagewright app list`)")
    _stop_pid(int(state["pid"]))
    with contextlib.suppress(FileNotFoundError):
        (deployment_dir(name) / "state.json").unlink()


def _stop_pid(pid: int) -> None:
    """SIGTERM (containers run their @exit hooks), then SIGKILL if it takes too long."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is as good as gone


class CallServer:
    """The deployment's calls socket: other processes call its functions through `relay`."""

    def __init__(self, name: str, relay: Relay):
        from ..execute.functions import serve_calls, start_thread

        path = deployment_dir(name) / "calls.sock"
        tmp = path.with_name(f"calls.{os.getpid()}.sock")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock.bind(str(tmp))
        os.chmod(tmp, 0o600)
        self._sock.listen()
        os.replace(tmp, path)  # a redeploy's socket takes over the name at once
        self._relay, self._serve = relay, serve_calls
        start_thread(self._accept, name="imagewright-calls-server")

    def set_relay(self, relay: Relay) -> None:
        self._relay = relay  # after a reload, calls go to the new version

    def _accept(self) -> None:
        from ..execute.functions import start_thread

        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            start_thread(self._serve, conn, b"", lambda *a: self._relay(*a))

    def close(self) -> None:
        self._sock.close()

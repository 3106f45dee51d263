"""No container outlives the imagewright that started it, and none ends in a stray traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from imagewright.cli.loader import load_module

from .conftest import cli

# The mark, a secret of every function, is in the environment of each container process; the
# slow image's step prints it. Each test writes its own.
APP = """
import os, subprocess, time
import imagewright as modal

image = modal.Image.debian_slim(python_version="3.11")
app = modal.App("life", image=image)
mark = modal.Secret.from_dict({"IW_LIFE_MARK": "@MARK@"})
slow = image.run_commands("echo @MARK@ && sleep 60")


@app.function(secrets=[mark])
def nap(seconds: float = 0):
    print("napping", flush=True)
    time.sleep(seconds)
    return seconds


@app.function(secrets=[mark])
def start_daemon(seconds: float = 0):
    # leave a process running; or, given seconds, stay busy that long
    if not seconds:
        subprocess.Popen(["sleep", "1000"], start_new_session=True)
        return "started"
    time.sleep(seconds)


@app.function(secrets=[mark])
def crash():
    os._exit(3)  # the container dies with its input, so the next call starts another


@app.local_entrypoint()
def main(calls: int = 1, idle: float = 0, crashing: int = 0):
    for _ in range(calls):
        if crashing:
            try:
                crash.remote()
            except modal.exception.RemoteError:
                pass
        else:
            nap.remote()
        print("called", flush=True)
        time.sleep(idle)
"""


@pytest.fixture
def life(tmp_path: Path, store) -> tuple[Path, str]:
    """The app's file, and its mark."""
    mark = f"iw-life-{time.time_ns()}"
    path = tmp_path / "life_app.py"
    path.write_text(APP.replace("@MARK@", mark))
    return path, mark


def _left_behind(mark: str, pid: int) -> list[str]:
    """Live processes of the containers imagewright process `pid` started, as "PID NAME ARGV":
    those whose environment or command line holds `mark`, or whose command line names one of
    its scratch areas (bwrap's does, and so do those that mount the overlay before it)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
            comm = Path(f"/proc/{name}/comm").read_text().strip()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except (OSError, IndexError):
            continue
        if state == "Z":  # exited; reaping it is its parent's (or init's) business
            continue
        if mark.encode() in environ + cmdline or f"/tmp/{pid}-".encode() in cmdline:
            argv = cmdline.replace(b"\0", b" ")[:100].decode(errors="replace")
            found.append(f"{name} {comm} {argv}")
    return found


def _still_there(mark: str, pid: int, grace: float = 3.0) -> list[str]:
    """What is left of `pid`'s containers once `grace` seconds have passed (a process killed
    a moment ago may need that long to be gone)."""
    deadline = time.monotonic() + grace
    while (left := _left_behind(mark, pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _start(args: list[str], until: str, log: Path) -> subprocess.Popen[str]:
    """Start `imagewright ARGS`; return once it printed a line containing `until`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagewright", *args],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, "IMAGEWRIGHT_PROGRESS": "plain"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if until in line:
            return proc
    proc.wait()
    raise AssertionError(f"exit {proc.returncode} before {until!r}:\n{log.read_text()}")


@pytest.mark.parametrize("moment", ["mid-call", "idle between calls", "starting a container"])
def test_sigkill_leaves_no_container(life, tmp_path, moment):
    path, mark = life
    log = tmp_path / "stderr"
    if moment == "mid-call":
        proc = _start(["run", f"{path}::nap", "--seconds", "60"], "napping", log)
    elif moment == "idle between calls":
        # the first call's container is kept warm for the next, and waits
        proc = _start(["run", str(path), "--calls", "2", "--idle", "60"], "called", log)
        time.sleep(1)
    else:
        # One call after another, each killing its container, so each starts another. Catch
        # one before bwrap (and its --die-with-parent) runs, and hold it there: then only what
        # imagewright armed when it forked can end it.
        proc = _start(["run", str(path), "--calls", "100000", "--crashing", "1"], "called", log)
        held = _hold_a_starting_container(proc.pid)
    try:
        proc.kill()
        proc.wait()
        assert _still_there(mark, proc.pid) == []
    finally:
        if moment == "starting a container" and _state(held) not in ("", "Z"):
            os.kill(held, signal.SIGKILL)


def _state(pid: int) -> str:
    """`pid`'s state letter (S, R, T, Z...), "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _hold_a_starting_container(parent: int) -> int:
    """Stop (SIGSTOP) a child of `parent` that is a container not in bwrap yet: still unshare,
    or the sh that mounts the overlay. Returns its pid."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            try:
                stat = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
                comm = Path(f"/proc/{name}/comm").read_text().strip()
            except (OSError, IndexError):
                continue
            if int(stat[1]) != parent or comm not in ("unshare", "sh"):
                continue
            pid = int(name)
            os.kill(pid, signal.SIGSTOP)
            while _state(pid) not in ("T", "", "Z"):
                time.sleep(0.001)
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() in ("unshare", "sh"):
                    return pid
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)  # it became bwrap meanwhile: try the next one
    raise AssertionError("no container was caught before bwrap")


@pytest.mark.parametrize("command", ["run", "shell", "build"])
def test_sigterm_cleans_up_like_ctrl_c(life, store, tmp_path, command):
    path, mark = life
    log = tmp_path / "stderr"
    if command == "run":
        proc = _start(["run", f"{path}::nap", "--seconds", "60"], "napping", log)
    elif command == "shell":
        proc = _start(["shell", f"{path}::nap", "--cmd", "echo up; sleep 60"], "up", log)
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagewright", "build", f"{path}::slow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "IMAGEWRIGHT_PROGRESS": "plain"},
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == mark:  # the step's own output: it runs
                break
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 143
    assert _still_there(mark, proc.pid) == []
    assert list((store.root / "tmp").glob(f"{proc.pid}-*")) == []  # scratch areas removed


def test_a_container_ends_when_its_host_goes_away(life):
    """A container whose host is gone ends at once, mid-call and daemons and all.

    bwrap's --die-with-parent normally takes it down with the host, but not when bwrap's parent
    died while bwrap was still setting up: the container then lives on, with nothing to tell it
    but its channel. Shutting our end of it down, without killing, is that case.
    """
    path, mark = life
    mod = load_module(str(path))
    with mod.app.run():
        container = mod.start_daemon._container()
        try:
            assert container.call((), {}, 60) == "started"
            deadline = time.monotonic() + 10
            while not any(p.split()[1] == "sleep" for p in _left_behind(mark, os.getpid())):
                assert time.monotonic() < deadline, "the daemon did not start"
                time.sleep(0.05)
            call = threading.Thread(target=_call_quietly, args=(container, (60,)), daemon=True)
            call.start()
            time.sleep(1)  # the call is in the function, which sleeps
            container._sock.shutdown(socket.SHUT_RDWR)
            # (the call, seeing the channel closed, would kill it too, but only after 5 s)
            container._proc.wait(timeout=2)
            assert _still_there(mark, os.getpid()) == []
        finally:
            container.stop()


def _call_quietly(container: Any, args: tuple[Any, ...]) -> None:
    with contextlib.suppress(Exception):
        container.call(args, {}, 120)


def test_no_stray_traceback_after_a_result(life):
    """A container stopped while it was still starting or reading printed a traceback about the
    connection it lost, after the right result (one run in five or ten)."""
    path, _ = life
    for _ in range(20):
        proc = cli("run", f"{path}::nap")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["napping", "0"]
        assert "Traceback" not in proc.stderr, proc.stderr

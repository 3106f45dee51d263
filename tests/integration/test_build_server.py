"""The build server (cli/launch.py, cli/buildserver.py): a build it runs is the build the user's
own process would have run, it serves no one else, it never runs stale code, and a client that
goes away, or is interrupted, takes its build down with it.

The rest of the suite runs builds in their own process (conftest.py turns the server off); each
test here turns it on, with its own runtime directory, and stops its servers at the end.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import imagewright

# The program records, each time it is loaded, the process it runs in and that process's
# parent, working directory, MARK variable and umask.
PROGRAM = """
import os
import imagewright as modal

umask = os.umask(0)
os.umask(umask)
with open("ran.txt", "a") as f:
    f.write(f"{os.getpid()} {os.getppid()} {os.getcwd()} {os.environ.get('MARK')} {umask:o}\\n")
image = modal.Image.debian_slim(python_version="3.11").env({"IW_SERVED": "1"})
slow = image.run_commands("echo @MARK@ && sleep 300")
"""


@pytest.fixture
def served(tmp_path: Path, store: object) -> Iterator[tuple[Path, dict[str, str]]]:
    """A project directory with PROGRAM, and an environment with the build server on."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(PROGRAM.replace("@MARK@", uuid.uuid4().hex))
    # (a short path: a socket's address holds 107 bytes, and tmp_path may be longer)
    run = Path(tempfile.mkdtemp(prefix="iw-run-"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "IMAGEWRIGHT_PROGRESS": "plain"}
    env.pop("IMAGEWRIGHT_BUILD_SERVER")
    try:
        yield project, env
    finally:
        for pid in _servers(run):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(run)


@pytest.fixture
def started(served: tuple[Path, dict[str, str]]) -> tuple[Path, dict[str, str], Path, Path]:
    """`served`, after a first build (in its own process) has started a server: the project,
    the environment, the runtime directory and the server's socket."""
    project, env = served
    run = Path(env["XDG_RUNTIME_DIR"])
    assert _build(project, env, "app.py::image").returncode == 0
    return project, env, run, _wait_for_socket(run)


def _servers(run: Path) -> list[int]:
    """Live build servers whose sockets are under `run`."""
    found = []
    for name in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(run / "imagewright").encode() in cmdline and state != "Z":
            found.append(int(name))
    return found


def _build(
    project: Path, env: dict[str, str], *args: str, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagewright", "build", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=600, **kw,
    )  # fmt: skip


def _runs(project: Path) -> list[list[str]]:
    """PROGRAM's records: pid, parent, cwd, MARK, umask."""
    return [line.split() for line in (project / "ran.txt").read_text().splitlines()]


def _wait_for_socket(run: Path) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list((run / "imagewright").glob("*.sock"))
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("no build server started")


def test_a_served_build_is_the_build_the_users_process_would_run(served):
    project, env = served
    run = Path(env["XDG_RUNTIME_DIR"])
    first = _build(project, env, "app.py::image", "--json")
    assert first.returncode == 0, first.stderr
    # the first build ran here (its parent is this test), and started a server for next time
    assert _runs(project)[0][1] == str(os.getpid())
    _wait_for_socket(run)

    served_env = {**env, "MARK": "second"}
    second = _build(project, served_env, "app.py::image", "--json", umask=0o027)
    assert second.returncode == 0, second.stderr
    _, parent, cwd, mark, umask = _runs(project)[1]
    assert int(parent) in _servers(run)  # a server's child ran it ...
    assert (cwd, mark, umask) == (str(project), "second", "27")  # ... in the client's state
    assert json.loads(second.stdout)["image_id"] == json.loads(first.stdout)["image_id"]
    assert "0 step(s) run" in second.stderr

    # An error reads exactly as it does from a build in the user's own process.
    here = _build(project, {**env, "IMAGEWRIGHT_BUILD_SERVER": "0"}, "app.py::nothing")
    there = _build(project, env, "app.py::nothing")
    assert len(_runs(project)) == 4 and int(_runs(project)[3][1]) in _servers(run)
    assert (there.returncode, there.stdout, there.stderr) == (
        here.returncode,
        here.stdout,
        here.stderr,
    )
    assert there.returncode == 2 and "nothing" in there.stderr


def test_no_server_when_turned_off(served):
    project, env = served
    off = _build(project, {**env, "IMAGEWRIGHT_BUILD_SERVER": "0"}, "app.py::image")
    assert off.returncode == 0, off.stderr
    # the client makes the directory and the server's log before it starts one: neither exists
    assert not (Path(env["XDG_RUNTIME_DIR"]) / "imagewright").exists()


def test_an_idle_server_exits_and_leaves_nothing(served):
    project, env = served
    run = Path(env["XDG_RUNTIME_DIR"])
    assert (
        _build(project, {**env, "IMAGEWRIGHT_BUILD_SERVER_IDLE": "1"}, "app.py::image").returncode
        == 0
    )
    _wait_for_socket(run)
    deadline = time.monotonic() + 30
    while _servers(run):
        assert time.monotonic() < deadline, "the server is still there"
        time.sleep(0.1)
    # its lock file stays (removing one is a race with the next server); nothing else
    assert [p.suffix for p in (run / "imagewright").iterdir()] == [".lock"]


def test_a_server_whose_code_changed_builds_nothing(served, tmp_path):
    """A reinstall or an edit of imagewright under a running server: the next build runs in
    the user's process, with the new code, and the old server goes away."""
    project, env = served
    run = Path(env["XDG_RUNTIME_DIR"])
    copy = tmp_path / "pkg"
    shutil.copytree(Path(imagewright.__file__).parent, copy / "imagewright",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env = {**env, "PYTHONPATH": str(copy)}
    assert _build(project, env, "app.py::image").returncode == 0
    _wait_for_socket(run)
    assert _build(project, env, "app.py::image").returncode == 0
    old_server = int(_runs(project)[1][1])
    assert old_server in _servers(run)

    version = copy / "imagewright" / "version.py"
    version.write_text(version.read_text() + "\n# edited\n")
    edited = _build(project, env, "app.py::image")
    assert edited.returncode == 0, edited.stderr
    assert _runs(project)[2][1] == str(os.getpid())  # built here, not by the old server
    deadline = time.monotonic() + 30
    while old_server in _servers(run):
        assert time.monotonic() < deadline, "the stale server is still there"
        time.sleep(0.1)


def test_another_user_is_refused(started):
    """Another user cannot reach the socket; and were its directory opened to them, the server
    would still not run their request."""
    _project, _env, run, sock = started
    assert _as_nobody(sock) == "PermissionError"

    for path, mode in ((run, 0o755), (run / "imagewright", 0o755), (sock, 0o777)):
        os.chmod(path, mode)
    # refused ("N"), or hung up on before or after the request: never "R"
    assert _as_nobody(sock) in ("N", "", "BrokenPipeError", "ConnectionResetError")


def _as_nobody(sock: Path) -> str:
    """Send the server a well-formed build request as user nobody; its answer, or the error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # (no exec: the test's interpreter may sit where nobody cannot reach it)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            conn = socket.socket(socket.AF_UNIX)
            conn.settimeout(10)
            conn.connect(str(sock))
            argv = ["imagewright", "build", "app.py::image"]
            payload = marshal.dumps((2, sock.stem, argv, dict(os.environ), 0o022, []))
            fds = [0, 1, 2, os.open("/", os.O_PATH)]
            rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
            conn.sendmsg(
                [len(payload).to_bytes(4, "big"), payload],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)],
            )
            answer = conn.recv(1).decode()
        except Exception as exc:
            answer = type(exc).__name__
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        return f.read()


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_a_build_ends_with_its_client(started, store, how):
    """Ctrl-C reaches a served build as it would the user's own process; a client killed
    outright has the server stop its build as SIGTERM would. Either way nothing is left."""
    project, env, run, _ = started
    mark = (project / "app.py").read_text().split("echo ", 1)[1].split(" ", 1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagewright", "build", "app.py::slow"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    watchdog = threading.Timer(300, proc.kill)  # (a hung build fails the test, not the session)
    watchdog.daemon = True
    watchdog.start()
    output = []
    for line in proc.stdout:
        output.append(line)
        if line.strip() == mark:  # the step's own output: it runs
            break
    child = int(_runs(project)[1][0])
    assert int(_runs(project)[1][1]) in _servers(run), output
    # A build while this one runs finds no spare child ready (this one took it): the server
    # forks one for it there and then.
    meanwhile = _build(project, env, "app.py::image")
    assert meanwhile.returncode == 0, meanwhile.stderr
    assert int(_runs(project)[2][1]) in _servers(run)
    proc.send_signal(getattr(signal, how))
    deadline = time.monotonic() + 30  # (the build holds the output pipe: wait for it first)
    while os.path.exists(f"/proc/{child}") and _state(child) != "Z":
        assert time.monotonic() < deadline, "the build outlived its client"
        time.sleep(0.05)
    rest, _ = proc.communicate(timeout=60)
    if how == "SIGINT":
        assert proc.returncode == 130 and "interrupted" in rest, rest
    assert _holding(mark) == []
    assert list((store.root / "tmp").glob(f"{child}-*")) == []  # scratch areas removed


def test_ctrl_z_stops_the_build_and_fg_goes_on(started):
    project, env, run, _ = started
    mark = (project / "app.py").read_text().split("echo ", 1)[1].split(" ", 1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagewright", "build", "app.py::slow"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        process_group=0,  # (as a shell's job is: a stop signal to an orphaned group is dropped)
    )  # fmt: skip
    assert proc.stdout is not None
    watchdog = threading.Timer(300, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    for line in proc.stdout:
        if line.strip() == mark:
            break
    child = int(_runs(project)[1][0])
    assert int(_runs(project)[1][1]) in _servers(run)  # (served)
    proc.send_signal(signal.SIGTSTP)
    _until(lambda: _state(proc.pid) == "T" and _state(child) == "T", "both stopped")
    proc.send_signal(signal.SIGCONT)
    _until(lambda: _state(proc.pid) != "T" and _state(child) != "T", "both going on")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    watchdog.cancel()


def test_what_the_client_ignores_the_build_ignores(started):
    """Under nohup, a hangup leaves the build running, as it would the user's own process."""
    project, env, run, _ = started
    (project / "app.py").write_text(
        (project / "app.py").read_text() + "import time; time.sleep(2)\n"
    )  # (two seconds in which to hang up on it)
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagewright", "build", "app.py::image"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )  # fmt: skip
    _until(lambda: len(_runs(project)) == 2, "the build started")
    child, parent = (int(n) for n in _runs(project)[1][:2])
    assert parent in _servers(run)  # (served)
    ignored = Path(f"/proc/{child}/status").read_text().split("SigIgn:")[1].split()[0]
    assert int(ignored, 16) & 1 << (signal.SIGHUP - 1)  # the build ignores it too
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def test_a_build_killed_outright_kills_its_client_likewise(started):
    project, env, run, _ = started
    (project / "dies.py").write_text(
        "import os, signal\n"
        "open('died.txt', 'w').write(str(os.getppid()))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = _build(project, env, "dies.py")
    assert int((project / "died.txt").read_text()) in _servers(run)  # (served)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_large_environment_and_garbage_leave_the_server_serving(started):
    """A request larger than a socket's buffer arrives whole; a malformed one, or one for
    another context, is refused and leaves no descriptor of its client open in the server."""
    project, env, _run, sock = started
    assert _build(project, env, "app.py::image").returncode == 0  # (the server is up)
    server = int(_runs(project)[1][1])
    marker = project / "marker"  # what the garbage sends as its streams and directory
    marker.write_text("")
    valid_but_not_its = (2, "0" * 32, ["imagewright", "build", "app.py"], {}, 0o022, [])
    garbage = (b"\x00\x00\x00\x08garbage!", b"\x00\x00\x00\x02", marshal.dumps((2, 1)))
    for payload in (*garbage, marshal.dumps(valid_but_not_its)):
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(str(sock))
        framed = payload.startswith(b"\x00\x00\x00")
        data = payload if framed else len(payload).to_bytes(4, "big") + payload
        with open(marker) as stream:
            fds = [stream.fileno()] * 3 + [os.open(project, os.O_PATH)]
            rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
            conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(1) in (b"N", b"")
            os.close(fds[3])
        conn.close()
    held = {os.readlink(f"/proc/{server}/fd/{fd}") for fd in os.listdir(f"/proc/{server}/fd")}
    assert not {str(marker), str(project)} & held

    big = {**env, **{f"BIG{i}": "x" * 100_000 for i in range(4)}}  # (128 KiB at most each)
    proc = _build(project, big, "app.py::image")
    assert proc.returncode == 0, proc.stderr
    assert int(_runs(project)[2][1]) == server


def test_a_build_that_ignores_sigterm_is_killed_once_its_client_is_gone(started):
    project, env, run, _ = started
    (project / "stubborn.py").write_text(
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open('stubborn.txt', 'w').write(f'{os.getpid()} {os.getppid()}')\n"
        "time.sleep(300)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagewright", "build", "stubborn.py"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _until(lambda: (project / "stubborn.txt").exists(), "the build started")
    child, parent = (int(n) for n in (project / "stubborn.txt").read_text().split())
    assert parent in _servers(run)  # (served)
    proc.kill()
    proc.wait()
    _until(lambda: _state(child) == "Z", "the build killed", seconds=60)  # (30 s after SIGTERM)
    assert parent in _servers(run)  # and the server goes on


def _until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {seconds} s"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _holding(mark: str) -> list[str]:
    """Live processes whose environment or command line holds `mark`, after a short grace."""
    deadline = time.monotonic() + 5
    while True:
        found = []
        for name in os.listdir("/proc"):
            try:
                data = (
                    Path(f"/proc/{name}/cmdline").read_bytes()
                    + Path(f"/proc/{name}/environ").read_bytes()
                )
            except OSError:
                continue
            if mark.encode() in data and _state(int(name)) != "Z" and int(name) != os.getpid():
                found.append(name)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_the_socket_directory_must_be_private(served):
    """A runtime directory anyone may enter is never used: the build runs in its own process."""
    project, env = served
    run = Path(env["XDG_RUNTIME_DIR"])
    (run / "imagewright").mkdir(mode=0o755)
    os.chmod(run / "imagewright", 0o755)
    assert _build(project, env, "app.py::image").returncode == 0
    assert _build(project, env, "app.py::image").returncode == 0
    assert [r[1] for r in _runs(project)] == [str(os.getpid())] * 2
    assert list((run / "imagewright").iterdir()) == []


def test_a_served_builds_own_process_imports_almost_nothing(served):
    """The process the user starts loads the entry module and the built-in modules it needs,
    none of the build machinery: that is the point of the server."""
    project, env = served
    run = Path(env["XDG_RUNTIME_DIR"])
    script = Path(sys.executable).with_name("imagewright")  # the console script users run
    argv = [sys.executable, "-X", "importtime", str(script), "build", "app.py::image"]
    first = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    _wait_for_socket(run)  # (one for this context: -X importtime is part of it)
    second = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert int(_runs(project)[1][1]) in _servers(run)
    imported = {
        line.rsplit("|", 1)[1].strip() for line in second.stderr.splitlines() if "|" in line
    }
    assert "imagewright.cli.launch" in imported  # (the listing is the real one)
    heavy = {"json", "re", "enum", "pathlib", "contextlib", "subprocess", "typing"}
    heavy |= {"imagewright.exception", "imagewright.cli.main", "imagewright.definition.image"}
    assert not heavy & imported, heavy & imported

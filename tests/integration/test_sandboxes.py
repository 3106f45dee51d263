"""Sandboxes for real: streams, exec, files, tunnels, networks, timeouts, and reaching one from
another process; and that none escapes its walls or outlives terminate()."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import imagewright as modal
from imagewright.exception import (
    InvalidError,
    NotFoundError,
    SandboxFilesystemNotFoundError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)
from imagewright.store.store import Store

IMAGE = modal.Image.debian_slim(python_version="3.11")


@pytest.fixture(scope="module")
def app(store: Store) -> modal.App:
    return modal.App.lookup("sandbox-tests", create_if_missing=True)


@pytest.fixture
def started(app: modal.App) -> Iterator[list[modal.Sandbox]]:
    """Sandboxes a test starts, terminated after it whatever happens."""
    sandboxes: list[modal.Sandbox] = []
    yield sandboxes
    for sandbox in sandboxes:
        with contextlib.suppress(SandboxTimeoutError):  # (how one that timed out ends)
            sandbox.terminate(wait=True)


def _create(started: list[modal.Sandbox], app: modal.App, *cmd: str, **kwargs: object):
    sandbox = modal.Sandbox.create(*cmd, app=app, image=IMAGE, **kwargs)  # type: ignore[arg-type]
    started.append(sandbox)
    return sandbox


def _python(sandbox: modal.Sandbox, code: str) -> tuple[int, str, str]:
    process = sandbox.exec("python3", "-c", textwrap.dedent(code))
    out, err = process.stdout.read(), process.stderr.read()
    return process.wait(), out, err


def test_command_with_stdin_and_stdout(app: modal.App, started: list[modal.Sandbox]) -> None:
    code = "import sys\nfor line in sys.stdin: print(line.strip().upper(), flush=True)\n"
    code += "print('done', file=sys.stderr); sys.exit(7)"
    sandbox = _create(started, app, "python3", "-c", code)
    sandbox.stdin.write("hello\n")
    sandbox.stdin.drain()
    assert next(iter(sandbox.stdout)) == "HELLO\n"  # live, before stdin ends
    sandbox.stdin.write(b"world\n")
    sandbox.stdin.write_eof()
    sandbox.stdin.drain()
    assert list(sandbox.stdout) == ["WORLD\n"]
    assert sandbox.stderr.read() == "done\n"
    sandbox.wait()
    assert sandbox.returncode == 7 and sandbox.poll() == 7


def test_exec_runs_in_the_live_sandbox(app: modal.App, started: list[modal.Sandbox]) -> None:
    sandbox = _create(
        started, app, "sh", "-c", "echo made > /tmp/marker; sleep 600", workdir="/srv"
    )
    deadline = time.monotonic() + 10
    while sandbox.exec("test", "-e", "/tmp/marker").wait() != 0:
        assert time.monotonic() < deadline
    process = sandbox.exec("sh", "-c", "cat /tmp/marker; pwd; echo $GREETING; echo oops >&2; exit 3",
                           env={"GREETING": "hi"}, workdir="/tmp")  # fmt: skip
    assert process.stdout.read() == "made\n/tmp\nhi\n"
    assert process.stderr.read() == "oops\n"
    assert process.wait() == 3 and process.returncode == 3
    assert sandbox.poll() is None and sandbox.returncode is None
    raw = sandbox.exec("printf", "\\377", text=False)
    assert raw.stdout.read() == b"\xff"
    slow = sandbox.exec("sleep", "30", timeout=1)
    assert slow.poll() is None
    assert slow.wait() == -1  # Modal's returncode for an exec past its timeout
    with pytest.raises(InvalidError, match="absolute"):
        sandbox.exec("true", workdir="relative")


def test_exec_aio(app: modal.App, started: list[modal.Sandbox]) -> None:
    import asyncio

    sandbox = _create(started, app)

    async def run() -> tuple[list[str], int]:
        process = await sandbox.exec.aio("sh", "-c", "echo a; echo b")
        lines = [line async for line in process.stdout]
        return lines, await process.wait.aio()

    assert asyncio.run(run()) == (["a\n", "b\n"], 0)


def test_open_reads_and_writes(app: modal.App, started: list[modal.Sandbox]) -> None:
    sandbox = _create(started, app)
    with sandbox.open("/tmp/notes.txt", "w") as f:
        f.write("first\n")
    with sandbox.open("/tmp/notes.txt", "a") as f:
        f.write("second\n")
    with sandbox.open("/tmp/notes.txt") as f:
        assert f.readline() == "first\n"
        assert f.read() == "second\n"
    with sandbox.open("/tmp/blob", "wb") as f:
        f.write(bytes(range(256)))
    with sandbox.open("/tmp/blob", "rb") as f:
        assert f.read() == bytes(range(256))
    process = sandbox.exec("sh", "-c", "cat /tmp/notes.txt; wc -c < /tmp/blob")
    assert process.stdout.read() == "first\nsecond\n256\n"
    with pytest.raises(SandboxFilesystemNotFoundError):
        sandbox.open("/no/such/file")
    with pytest.raises(InvalidError):
        sandbox.open("/tmp/notes.txt", "rw")


_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("connected")
except OSError as exc:
    print("failed", exc)
"""


def _connects(sandbox: modal.Sandbox, host: str, port: int) -> bool:
    process = sandbox.exec("python3", "-c", _CONNECT, host, str(port))
    output = process.stdout.read()
    process.wait()
    return output.startswith("connected")


def test_networks(app: modal.App, started: list[modal.Sandbox]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # a service on the host's loopback
    port = listener.getsockname()[1]
    try:
        blocked = _create(started, app, block_network=True)
        online = _create(started, app)
        fetch = (
            "import urllib.request as r; print(r.urlopen('https://pypi.org/simple/pip/').status)"
        )
        status, out, err = _python(online, fetch)
        assert (status, out) == (0, "200\n"), err
        status, out, err = _python(blocked, fetch)
        assert status != 0 and "200" not in out
        assert not _connects(blocked, "1.1.1.1", 443)
        for sandbox in (blocked, online):  # the host's 127.0.0.1 is out of reach of both
            assert not _connects(sandbox, "127.0.0.1", port)
            assert not _connects(sandbox, "10.0.2.2", port)  # (slirp4netns' host address)
    finally:
        listener.close()


def test_tunnel_serves_http(app: modal.App, started: list[modal.Sandbox]) -> None:
    sandbox = _create(
        started, app, "sh", "-c", "sleep 1; exec python3 -m http.server 8000 --directory /srv",
        encrypted_ports=[8000], readiness_probe=modal.Probe.with_tcp(8000),
    )  # fmt: skip
    with sandbox.open("/srv/index.html", "w") as f:
        f.write("hello through the tunnel")
    tunnel = sandbox.tunnels()[8000]
    assert tunnel.url.startswith("http://127.0.0.1:")
    sandbox.wait_until_ready(timeout=30)
    response = httpx.get(tunnel.url + "/index.html", timeout=5)
    assert response.status_code == 200 and response.text == "hello through the tunnel"


def test_readiness_by_command(app: modal.App, started: list[modal.Sandbox]) -> None:
    probe = modal.Probe.with_exec("test", "-e", "/tmp/ready", interval_ms=50)
    sandbox = _create(started, app, "sh", "-c", "sleep 1; touch /tmp/ready; sleep 600",
                      readiness_probe=probe)  # fmt: skip
    start = time.monotonic()
    sandbox.wait_until_ready()
    assert 0.5 < time.monotonic() - start < 10
    never = _create(started, app, readiness_probe=modal.Probe.with_tcp(9))
    with pytest.raises(modal.exception.TimeoutError):
        never.wait_until_ready(timeout=1)
    with pytest.raises(InvalidError, match="readiness_probe"):
        _create(started, app).wait_until_ready()


def test_timeout_kills(app: modal.App, started: list[modal.Sandbox]) -> None:
    start = time.monotonic()
    sandbox = _create(started, app, "sleep", "600", timeout=2)
    with pytest.raises(SandboxTimeoutError):
        sandbox.wait()
    assert time.monotonic() - start < 30
    assert sandbox.returncode == 124
    assert modal.Sandbox.from_id(sandbox.object_id).returncode == 124


def _in_another_process(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_from_id_and_list_from_other_processes(
    app: modal.App, started: list[modal.Sandbox]
) -> None:
    # created by a program that then exits: the sandbox lives on, as on Modal
    sandbox_id = _in_another_process("""
        import imagewright as modal
        app = modal.App.lookup("other-app", create_if_missing=True)
        image = modal.Image.debian_slim(python_version="3.11")
        sandbox = modal.Sandbox.create("sh", "-c", "echo from-main; echo kept > /tmp/kept; sleep 600",
                                       app=app, image=image, name="named", tags={"k": "v"})
        print(sandbox.object_id)
    """).strip()  # fmt: skip
    sandbox = modal.Sandbox.from_id(sandbox_id)
    started.append(sandbox)
    assert next(iter(sandbox.stdout)) == "from-main\n"
    out = _in_another_process(f"""
        import imagewright as modal
        sandbox = modal.Sandbox.from_id({sandbox_id!r})
        process = sandbox.exec("cat", "/tmp/kept")
        print(process.stdout.read().strip(), process.wait())
    """)
    assert out == "kept 0\n"
    mine = _create(started, app)
    listed = {s.object_id for s in modal.Sandbox.list()}
    assert {sandbox_id, mine.object_id} <= listed
    assert [s.object_id for s in modal.Sandbox.list(app_id="other-app")] == [sandbox_id]
    assert [s.object_id for s in modal.Sandbox.list(tags={"k": "v"})] == [sandbox_id]
    assert modal.Sandbox.from_name("other-app", "named").object_id == sandbox_id
    with pytest.raises(NotFoundError):
        modal.Sandbox.from_id("sb-nonesuch")


def test_terminate_leaves_nothing(
    app: modal.App, started: list[modal.Sandbox], store: Store
) -> None:
    sandbox = _create(started, app, "sleep", "600", unencrypted_ports=[9000])
    state = json.loads((store.root / "sandboxes" / sandbox.object_id / "state.json").read_text())
    keeper = state["pid"]
    helpers = Path(f"/proc/{keeper}/task/{keeper}/children").read_text().split()
    assert helpers  # bwrap's launcher, slirp4netns
    tunnel_port = sandbox.tunnels()[9000].port
    sandbox.terminate()
    with pytest.raises(SandboxTerminatedError):
        sandbox.wait()
    sandbox.wait(raise_on_termination=False)
    assert sandbox.returncode == 137
    for pid in [keeper, *helpers]:
        assert not _running(pid)
    assert not (store.root / "sandboxes" / sandbox.object_id).exists()
    assert not [p for p in (store.root / "tmp").iterdir() if p.name.startswith(f"{keeper}-")]
    assert str(store.root) not in Path("/proc/mounts").read_text()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", tunnel_port), timeout=2)
    with pytest.raises(SandboxTerminatedError):
        sandbox.exec("true")
    sandbox.terminate()  # a no-op once ended


def test_a_killed_keeper_takes_its_sandbox_along(
    app: modal.App, started: list[modal.Sandbox], store: Store
) -> None:
    sandbox = _create(started, app, "sleep", "600")
    directory = store.root / "sandboxes" / sandbox.object_id
    keeper = json.loads((directory / "state.json").read_text())["pid"]
    children = Path(f"/proc/{keeper}/task/{keeper}/children").read_text().split()
    os.kill(keeper, 9)
    with pytest.raises(SandboxTerminatedError):
        sandbox.wait()
    deadline = time.monotonic() + 10
    while any(_running(int(pid)) for pid in children):
        assert time.monotonic() < deadline, "the sandbox outlived its keeper"
        time.sleep(0.05)
    assert sandbox.returncode == 137 and not directory.exists()


def test_a_missing_command(app: modal.App, started: list[modal.Sandbox]) -> None:
    sandbox = _create(started, app, "no-such-command")
    sandbox.wait()
    assert sandbox.returncode == 127
    assert "no-such-command" in sandbox.stderr.read()
    with pytest.raises(modal.exception.ExecutionError, match="no-such-program"):
        _create(started, app).exec("no-such-program")


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (an init that does not reap, as in some
    containers, leaves those of orphans behind)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rpartition(")")[2].split()[0] != "Z"


_ESCAPES = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x00020000, 0x40000000
for name, flags in (("user", CLONE_NEWUSER), ("mount", CLONE_NEWNS), ("net", CLONE_NEWNET)):
    print(name, libc.unshare(flags) == 0)
print("mount", libc.mount(b"none", b"/mnt", b"tmpfs", 0, None) == 0)
print("ptrace-host", os.path.exists("/proc/1/root/etc/hostname") and
      open("/proc/1/cmdline", "rb").read().startswith(b"/sbin/init"))
"""


def test_exec_cannot_escape(app: modal.App, started: list[modal.Sandbox]) -> None:
    sandbox = _create(started, app)
    status, out, err = _python(sandbox, _ESCAPES)
    assert status == 0, err
    assert out.split("\n")[:-1] == [
        "user False", "mount False", "net False", "mount False", "ptrace-host False",
    ]  # fmt: skip
    for command in ("mount -t tmpfs none /mnt", "unshare -U true", "unshare -n true"):
        process = sandbox.exec("sh", "-c", command)
        assert process.wait() != 0, command
    status, out, _ = _python(sandbox, "print(open('/proc/self/status').read())")
    cap_eff = next(line for line in out.splitlines() if line.startswith("CapEff"))
    assert int(cap_eff.split()[1], 16) & (1 << 21) == 0  # no CAP_SYS_ADMIN


def test_create_refuses_what_it_cannot_honour(app: modal.App) -> None:
    with pytest.raises(modal.exception.UnimplementedError):
        modal.Sandbox.create(app=app, image=IMAGE, outbound_domain_allowlist=["pypi.org"])
    with pytest.raises(InvalidError):
        modal.Sandbox.create("echo", 1, app=app, image=IMAGE)  # type: ignore[arg-type]


def test_secrets_reach_the_sandbox_and_no_file_or_argv(
    app: modal.App, started: list[modal.Sandbox], store: Store
) -> None:
    value = f"s3cret-{os.urandom(6).hex()}"
    sandbox = _create(started, app, secrets=[modal.Secret.from_dict({"IW_TOKEN": value})])
    status, out, _ = _python(sandbox, "import os; print(os.environ['IW_TOKEN'])")
    assert (status, out.strip()) == (0, value)
    directory = store.root / "sandboxes" / sandbox.object_id
    keeper = json.loads((directory / "state.json").read_text())["pid"]
    for path in directory.iterdir():  # no file of the sandbox's holds it
        if path.is_file():
            assert value.encode() not in path.read_bytes(), path
    pids = [keeper, *Path(f"/proc/{keeper}/task/{keeper}/children").read_text().split()]
    for pid in pids:  # nor the argv of its keeper or of what the keeper started
        assert value.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()

"""Sandbox's pure parts: file modes, streams over pipes, tunnels' URLs, refused arguments, and
the supervisor's protocol, run on the host's Python without a container."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import imagewright as modal
from imagewright.exception import InvalidError, UnimplementedError
from imagewright.runtime import supervisor
from imagewright.sandbox import (
    ContainerProcess,
    StreamReader,
    StreamWriter,
    _LocalTunnel,
    _open_flags,
)


def test_open_flags_follow_builtin_open() -> None:
    assert _open_flags("r") == os.O_RDONLY == _open_flags("rb") == _open_flags("rt")
    assert _open_flags("w") == os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    assert _open_flags("ab") == os.O_WRONLY | os.O_CREAT | os.O_APPEND
    assert _open_flags("x") == os.O_WRONLY | os.O_CREAT | os.O_EXCL
    assert _open_flags("r+") == os.O_RDWR
    assert _open_flags("w+b") == os.O_RDWR | os.O_CREAT | os.O_TRUNC
    for bad in ("", "rw", "rr", "q", "rbt", "b"):
        with pytest.raises(InvalidError):
            _open_flags(bad)


def _reader(data: bytes, text: bool) -> StreamReader:  # type: ignore[type-arg]
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    return StreamReader(read, text)


def test_stream_reader_lines_and_read() -> None:
    assert list(_reader(b"a\nb\n\nlast", True)) == ["a\n", "b\n", "\n", "last"]
    assert _reader("é\n".encode(), True).read() == "é\n"
    assert _reader(b"\xff\x00", False).read() == b"\xff\x00"
    reader = _reader(b"one\ntwo\nthree\n", True)
    assert next(iter(reader)) == "one\n"
    assert reader.read() == "two\nthree\n"  # what iteration had buffered is not lost
    assert StreamReader(None, True).read() == ""

    async def collect() -> list[str]:
        return [line async for line in _reader(b"x\ny\n", True)]

    assert asyncio.run(collect()) == ["x\n", "y\n"]
    assert asyncio.run(_reader(b"z", True).read.aio()) == "z"


def test_stream_reader_follows_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"first\n")
    ended = threading.Event()
    reader: StreamReader[str] = StreamReader(os.open(path, os.O_RDONLY), True, ended.is_set)
    lines = iter(reader)
    assert next(lines) == "first\n"

    def later() -> None:
        with path.open("ab") as f:
            f.write(b"second\n")
        ended.set()

    threading.Timer(0.1, later).start()
    assert list(lines) == ["second\n"]


def test_stream_writer_buffers_until_drain_and_closes_on_eof() -> None:
    read, write = os.pipe()
    eofs: list[bool] = []
    writer = StreamWriter(lambda: write, lambda: eofs.append(True))
    writer.write("hé")
    writer.write(b"!")
    writer.drain()
    assert os.read(read, 100) == "hé!".encode()
    writer.write_eof()
    writer.drain()
    assert os.read(read, 100) == b"" and eofs == [True]
    with pytest.raises(ValueError):
        writer.write("late")
    with pytest.raises(TypeError):
        StreamWriter(lambda: write).write(3)  # type: ignore[arg-type]


def test_local_tunnels_are_plain_http() -> None:
    tunnel = _LocalTunnel("127.0.0.1", 4321, "127.0.0.1", 4321)
    assert isinstance(tunnel, modal.Tunnel)
    assert tunnel.url == "http://127.0.0.1:4321"
    assert tunnel.tcp_socket == ("127.0.0.1", 4321)


def test_create_refuses_before_building() -> None:
    with pytest.raises(UnimplementedError, match="outbound_cidr_allowlist"):
        modal.Sandbox.create(outbound_cidr_allowlist=["10.0.0.0/8"])
    with pytest.raises(InvalidError, match="readiness_probe"):
        modal.Sandbox.create(readiness_probe=80)  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="strings"):
        modal.Sandbox.create("echo", 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="absolute"):
        modal.Sandbox.create(workdir="here")
    with pytest.raises(InvalidError, match="ports"):
        modal.Sandbox.create(encrypted_ports=[70000])
    with pytest.raises(InvalidError):
        modal.Sandbox.from_id("sb-../../etc")
    with pytest.raises(InvalidError):
        modal.Sandbox()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The supervisor on the host's Python (no sandbox), serving at a sandbox's socket path;
    its command echoes its stdin. Yields the sandbox id."""
    import socket

    monkeypatch.setenv("IMAGEWRIGHT_HOME", str(tmp_path))
    directory = tmp_path / "sandboxes" / "sb-test"
    directory.mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(directory / "sock"))
    listener.listen()
    go_r, go_w = os.pipe()
    env = {**os.environ, supervisor.SOCKET_FD_ENV: str(listener.fileno())}
    env[supervisor.GO_FD_ENV] = str(go_r)
    command = ["sh", "-c", "cat; echo end"]
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", supervisor.__file__, *command],
        env=env, pass_fds=(listener.fileno(), go_r), stdout=subprocess.PIPE,
    )  # fmt: skip
    os.close(go_r)
    listener.close()
    os.write(go_w, b"1")
    os.close(go_w)
    try:
        yield "sb-test"
        assert proc.stdout is not None
        assert proc.stdout.read() == b"hello\nend\n"
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_supervisor_protocol(served: str, tmp_path: Path) -> None:
    from imagewright.execute.sandboxes import request

    conn, reply, fds = request(served, {"op": "exec", "argv": ["sh", "-c", "cat; exit 4"]}, 3)
    process: ContainerProcess[str] = ContainerProcess(conn, fds, True, reply["pid"])
    process.stdin.write("piped")
    process.stdin.write_eof()
    process.stdin.drain()
    assert process.stdout.read() == "piped"
    assert process.wait() == 4
    conn, reply, fds = request(served, {"op": "exec", "argv": ["/no/such/program"]}, 3)
    assert fds == [] and reply["errno"] == 2
    (tmp_path / "file").write_text("contents")
    conn, reply, fds = request(
        served, {"op": "open", "path": str(tmp_path / "file"), "flags": 0}, 1
    )
    with os.fdopen(fds[0]) as f:
        assert f.read() == "contents"
    conn, reply, _ = request(served, {"op": "open", "path": "/no/such", "flags": 0}, 1)
    assert reply["errno"] == 2
    conn, _, fds = request(served, {"op": "stdin"}, 1)
    os.write(fds[0], b"hello\n")
    os.close(fds[0])
    request(served, {"op": "stdin_eof"}, 0)  # then the command, and the supervisor, end

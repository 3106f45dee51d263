"""`imagewright serve` and `deploy`: real images, real containers, real HTTP on 127.0.0.1.

One app with an endpoint of every kind is served once for the module (the CLI, as a user runs
it); other tests serve apps of their own for reload, schedules, deployments and errors.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

HEADER = """
import modal

image = modal.Image.debian_slim().uv_pip_install("fastapi==0.165.0", "flask==3.1.3")
app = modal.App("{name}", image=image)
"""

EVERY_KIND = """
@app.function()
@modal.fastapi_endpoint(method="GET", docs=True)
def square(x: int = 3):
    return {"square": x * x}


@app.function()
@modal.fastapi_endpoint(method="POST", requires_proxy_auth=True)
def echo(item: dict):
    return {"got": item}


@app.function()
@modal.asgi_app(label="chat")
def chat():
    from fastapi import FastAPI, WebSocket
    from fastapi.responses import StreamingResponse

    web = FastAPI()

    @web.websocket("/ws")
    async def ws(socket: WebSocket):
        await socket.accept()
        while True:
            text = await socket.receive_text()
            await socket.send_text(text.upper())

    @web.get("/stream")
    def stream():
        def parts():
            for i in range(5):
                yield f"data: part {i}\\n\\n"
        return StreamingResponse(parts(), media_type="text/event-stream")

    @web.post("/upload")
    async def upload(request: __import__("fastapi").Request):
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    @web.get("/url")
    def url():
        return {"url": square.get_web_url()}

    return web


@app.function()
@modal.wsgi_app()
def flask_app():
    from flask import Flask, request

    web = Flask(__name__)

    @web.route("/hello")
    def hello():
        return "hello " + request.args.get("name", "world")

    return web


@app.function()
@modal.web_server(8000, startup_timeout=20)
def files():
    import subprocess

    open("/tmp/served.txt", "w").write("from http.server")
    subprocess.Popen(["python", "-m", "http.server", "8000", "--directory", "/tmp"])


@app.server(port=8000, unauthenticated=True, startup_timeout=20)
class Site:
    @modal.enter()
    def start(self):
        import subprocess

        subprocess.Popen(["python", "-m", "http.server", "8000", "--directory", "/etc"])


@app.function()
@modal.web_endpoint()
def probe(target: str = "host"):
    # what a web container can reach: the internet, and not the host loopback
    import socket
    import subprocess
    import urllib.request

    if target == "internet":
        return urllib.request.urlopen("https://pypi.org/simple/", timeout=30).status
    if target == "mount":
        return subprocess.run(["mount", "-t", "tmpfs", "none", "/mnt"]).returncode
    host, port = target.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__


@app.cls()
class Model:
    @modal.enter()
    def load(self):
        import uuid

        self.loaded = uuid.uuid4().hex
        self.loads = getattr(self, "loads", 0) + 1

    @modal.fastapi_endpoint()
    def predict(self, text: str = "hi"):
        return {"text": text[::-1], "loaded": self.loaded, "loads": self.loads}
"""


class Served:
    """An `imagewright serve` process and what it printed."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.proc = proc
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 900, after: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    found = re.search(pattern, line)
                    if found:
                        return found
                if self.proc.poll() is not None:
                    raise AssertionError(f"serve exited; output:\n{self.text()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r}; output:\n{self.text()}")
                self._changed.wait(min(left, 0.5))

    def text(self) -> str:
        return "\n".join(self.lines)

    def url(self, what: str) -> str:
        return self.wait_for(rf"Created {re.escape(what)} => (http://127\.0\.0\.1:\d+)").group(1)


def _write_app(directory: Path, name: str, body: str) -> Path:
    path = directory / "app.py"
    path.write_text(HEADER.format(name=name) + body)
    return path


@contextlib.contextmanager
def serving(path: Path, *args: str) -> Iterator[Served]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagewright", "serve", path.name, *args],
        cwd=path.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(proc)
    try:
        served.wait_for("Serving... hit Ctrl-C to stop!")
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, served.text()
    assert "Stopped serving." in served.text()
    # Ctrl-C leaves no container, port or scratch area behind
    home = os.environ["IMAGEWRIGHT_HOME"]
    assert not _our_processes(f"{home}/tmp/{proc.pid}-")  # its containers' scratch areas
    for url in re.findall(r"=> (http://127\.0\.0\.1:\d+)", served.text()):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)
    assert not list(Path(home, "tmp").glob(f"{proc.pid}-*"))


def _our_processes(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if marker in cmdline:
                found.append(cmdline)
    return found


@pytest.fixture(scope="module")
def every_kind(store, tmp_path_factory) -> Iterator[Served]:
    path = _write_app(tmp_path_factory.mktemp("every"), "every-kind", EVERY_KIND)
    with serving(path) as served:
        yield served


def test_fastapi_get_and_post_with_proxy_auth(every_kind):
    square = every_kind.url("web function square")
    assert httpx.get(square, params={"x": 7}).json() == {"square": 49}
    assert httpx.get(f"{square}/docs").status_code == 200  # docs=True

    echo = every_kind.url("web function echo")
    assert "🔑" in every_kind.wait_for(r"Created web function echo").string
    token = every_kind.wait_for(r"Modal-Key: (\S+) and Modal-Secret: (\S+)")
    refused = httpx.post(echo, json={"a": 1})
    assert refused.status_code == 401
    headers = {"Modal-Key": token.group(1), "Modal-Secret": token.group(2)}
    assert httpx.post(echo, json={"a": 1}, headers=headers).json() == {"got": {"a": 1}}
    wrong = {**headers, "Modal-Secret": "ws-wrong"}
    assert httpx.post(echo, json={"a": 1}, headers=wrong).status_code == 401


def test_asgi_websocket_stream_and_upload(every_kind):
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Message, Request, TextMessage

    base = every_kind.url("web function chat")
    stream = httpx.get(f"{base}/stream")
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.text.count("data: part") == 5

    big = os.urandom(20 * 1024 * 1024)  # a large upload, streamed through
    assert httpx.post(f"{base}/upload", content=big, timeout=60).json() == {"size": len(big)}

    port = int(base.rsplit(":", 1)[1])
    ws = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(ws.send(Request(host="127.0.0.1", target="/ws")))
        replies: list[str] = []
        sent = False
        while len(replies) < 2:
            ws.receive_data(sock.recv(65536))
            for event in ws.events():
                if isinstance(event, AcceptConnection) and not sent:
                    sock.sendall(ws.send(Message(data="hello")) + ws.send(Message(data="again")))
                    sent = True
                elif isinstance(event, TextMessage):
                    replies.append(event.data)
    assert replies == ["HELLO", "AGAIN"]


def test_wsgi_flask_and_web_server(every_kind):
    flask = every_kind.url("web function flask_app")
    assert httpx.get(f"{flask}/hello", params={"name": "you"}).text == "hello you"
    files = every_kind.url("web function files")
    assert httpx.get(f"{files}/served.txt").text == "from http.server"


def test_class_endpoint_loads_once_and_get_web_url(every_kind):
    predict = every_kind.url("Model.predict")
    answers = [httpx.get(predict, params={"text": "abc"}).json() for _ in range(3)]
    assert answers[0]["text"] == "cba"
    assert {a["loaded"] for a in answers} == {answers[0]["loaded"]}  # one @enter served all
    assert {a["loads"] for a in answers} == {1}
    chat = every_kind.url("web function chat")
    square = every_kind.url("web function square")
    assert httpx.get(f"{chat}/url").json() == {"url": square}  # from inside a container


def test_app_server_class_serves_its_port(every_kind):
    site = every_kind.url("server Site")
    assert "unauthenticated" not in every_kind.wait_for(r"Created server Site").string
    assert "debian_version" in httpx.get(f"{site}/").text  # http.server listing /etc


def test_web_containers_are_isolated_but_online(every_kind):
    probe = every_kind.url("web function probe")
    # a service on the host's loopback, which the container must not reach
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        reached = httpx.get(probe, params={"target": f"127.0.0.1:{port}"}, timeout=30).json()
        assert reached == "ConnectionRefusedError"  # its loopback is its own
        via_gateway = httpx.get(probe, params={"target": f"10.0.2.2:{port}"}, timeout=30).json()
        assert via_gateway != "connected"  # nor through slirp4netns' gateway to the host
    assert httpx.get(probe, params={"target": "internet"}, timeout=60).json() == 200
    assert httpx.get(probe, params={"target": "mount"}, timeout=30).json() != 0  # same sandbox
    # and nothing it listens on faces the host: uvicorn's port inside is not open out here
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 49152), timeout=2).close()


def test_request_logs_are_prefixed_per_endpoint(every_kind):
    square = every_kind.url("web function square")
    httpx.get(square, params={"x": 2})
    every_kind.wait_for(r"^\s+square \| INFO: .*\"GET /\?x=2 HTTP/1.1\" 200", timeout=10)


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of a PNG (8-bit, no interlace), unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks, width = 8, b"", 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + size]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            depth, color = body[8], body[9]
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            chunks += body
        at += 12 + size
    raw, stride, rows, previous = (
        zlib.decompress(chunks),
        width * channels,
        [],
        bytearray(width * channels),
    )
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (
                    line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)
                ) & 255
        rows.append(bytes(line))
        previous = line
    return width, channels, rows


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium (make test installs it)"
)
def test_the_web_example_renders_in_headless_chromium(store, tmp_path):
    example = Path(__file__).parents[2] / "examples" / "web.py"
    shutil.copy(example, tmp_path / "web.py")
    with serving(tmp_path / "web.py") as served:
        site = served.url("web function site")
        assert httpx.get(f"{site}/square", params={"x": 12}).json() == {"square": 144}
        shot = tmp_path / "shot.png"
        subprocess.run(
            [
                "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=640,480",
                f"--screenshot={shot}", site,
            ],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    width, channels, rows = _png_pixels(shot.read_bytes())
    blue = sum(
        1
        for row in rows[:150]
        for x in range(width)
        if row[x * channels : x * channels + 3] == bytes.fromhex("1f6feb")
    )
    assert blue > 0.8 * width * 150  # the page's blue header, across the top
    assert rows[400][600 * channels : 600 * channels + 3] == b"\xff\xff\xff"  # white below
    assert any(  # and the heading's white text on it
        row[x * channels : x * channels + 3] == b"\xff\xff\xff"
        for row in rows[24:80]
        for x in range(24, 300)
    )


def test_live_reload_swaps_without_dropping_a_request(store, tmp_path):
    body = """
@app.function()
@modal.fastapi_endpoint()
def version(wait: float = 0):
    import time

    time.sleep(wait)
    return "v1"


@app.function()
@modal.fastapi_endpoint()
def note():
    return open("/root/note.txt").read()
"""
    path = _write_app(tmp_path, "reload", body)
    (tmp_path / "note.txt").write_text("first")
    path.write_text(
        path.read_text().replace(
            'app = modal.App("reload", image=image)',
            'app = modal.App("reload", image=image.add_local_file("note.txt", "/root/note.txt"))',
        )
    )
    with serving(path) as served:
        url = served.url("web function version")
        assert httpx.get(url).json() == "v1"
        note = served.url("web function note")
        assert httpx.get(note).json() == "first"
        in_flight: list[str] = []
        slow = threading.Thread(
            target=lambda: in_flight.append(httpx.get(url, params={"wait": 6}, timeout=60).json())
        )
        slow.start()
        time.sleep(1)  # the slow request is in its container
        mark = len(served.lines)
        path.write_text(path.read_text().replace('"v1"', '"v2"'))
        served.wait_for(r"✓ Reloaded\.", after=mark, timeout=300)
        assert httpx.get(url).json() == "v2"
        slow.join(timeout=60)
        assert in_flight == ["v1"]  # the old container finished it
        served.wait_for(r"app.py changed: reloading", after=mark)
        # a file the image adds with add_local_file reloads too
        mark = len(served.lines)
        (tmp_path / "note.txt").write_text("second")
        served.wait_for(r"note.txt changed: reloading", after=mark, timeout=60)
        served.wait_for(r"✓ Reloaded\.", after=mark, timeout=300)
        assert httpx.get(note).json() == "second"


def test_containers_scale_with_load_and_settings(store, tmp_path):
    body = """
import uuid

CONTAINER = uuid.uuid4().hex  # one per container


@app.function(max_containers=2, scaledown_window=2)
@modal.fastapi_endpoint()
def single(wait: float = 0):
    import time

    time.sleep(wait)
    return CONTAINER


@app.function(min_containers=2)
@modal.concurrent(max_inputs=8)
@modal.fastapi_endpoint()
def shared(wait: float = 0):
    import time

    time.sleep(wait)
    return CONTAINER
"""
    path = _write_app(tmp_path, "scaling", body)
    with serving(path) as served:
        single, shared = served.url("web function single"), served.url("web function shared")

        def together(url: str, count: int) -> set[str]:
            with httpx.Client(timeout=120) as client:
                threads, answers = [], []
                for _ in range(count):
                    thread = threading.Thread(
                        target=lambda: answers.append(client.get(url, params={"wait": 2}).json())
                    )
                    thread.start()
                    threads.append(thread)
                for thread in threads:
                    thread.join()
            assert len(answers) == count
            return set(answers)

        # one input per container: a second request at once starts a second container, and
        # max_containers=2 holds the third back until one is free
        assert len(together(single, 3)) == 2
        served.wait_for(r"single \| stopping an idle container \(scaledown_window\)", timeout=30)
        # @concurrent: one container takes all eight; min_containers keeps two up
        assert len(together(shared, 8)) <= 2
        time.sleep(3)
        assert not any("shared | stopping an idle container" in line for line in served.lines)


def test_scheduled_function_runs_while_serving(store, tmp_path):
    body = """
@app.function(schedule=modal.Period(seconds=2))
def tick():
    return "tock"


@app.function()
@modal.fastapi_endpoint()
def up():
    return "up"
"""
    path = _write_app(tmp_path, "schedules", body)
    with serving(path) as served:
        served.wait_for(r"tick runs on Period\(seconds=2\)")
        served.wait_for(r"scheduled function tick finished: returned 'tock'", timeout=60)


def test_serve_without_fastapi_names_the_package(store, tmp_path):
    path = tmp_path / "app.py"
    path.write_text("""
import modal

app = modal.App("nofastapi", image=modal.Image.debian_slim())


@app.function()
@modal.fastapi_endpoint()
def hello():
    return "hi"
""")
    proc = subprocess.run(
        [sys.executable, "-m", "imagewright", "serve", "app.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "need FastAPI installed in their image" in proc.stdout + proc.stderr
    assert 'uv_pip_install("fastapi[standard]")' in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_deploy_list_logs_stop(store, tmp_path):
    body = """
@app.function()
@modal.fastapi_endpoint()
def hello(name: str = "world"):
    return f"hello {name}"


@app.function()
def double(x: int) -> int:
    return 2 * x


@app.cls()
class Greeter:
    greeting: str = modal.parameter(default="hi")

    @modal.method()
    def greet(self, name: str) -> str:
        return f"{self.greeting} {name}"
"""
    path = _write_app(tmp_path, "deployed", body)
    cli = [sys.executable, "-m", "imagewright"]
    deployed = subprocess.run(
        [*cli, "deploy", str(path)], capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    url = re.search(r"=> (http://127\.0\.0\.1:\d+)", deployed.stdout).group(1)
    try:
        assert httpx.get(url, params={"name": "you"}).json() == "hello you"
        listing = subprocess.run([*cli, "app", "list"], capture_output=True, text=True)
        assert "deployed" in listing.stdout and url in listing.stdout

        # another process reaches the deployment's functions by name
        caller = tmp_path / "caller.py"
        caller.write_text(
            "import imagewright as modal\n"
            "double = modal.Function.from_name('deployed', 'double')\n"
            "print(double.remote(21), list(double.map([1, 2])))\n"
            "Greeter = modal.Cls.from_name('deployed', 'Greeter')\n"
            "print(Greeter(greeting='hello').greet.remote('you'))\n"
        )
        called = subprocess.run(
            [sys.executable, str(caller)], capture_output=True, text=True, timeout=120
        )
        lines = called.stdout.splitlines()
        assert lines == ["42 [2, 4]", "hello you"], called.stdout + called.stderr

        # the calls socket is the store owner's alone: another user cannot even connect
        sock_path = Path(os.environ["IMAGEWRIGHT_HOME"], "apps", "deployed", "calls.sock")
        attempt = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-c", f"import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); "
             f"s.connect({str(sock_path)!r})"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert attempt.returncode != 0 and "PermissionError" in attempt.stderr, attempt.stderr

        # deploying again replaces it, and the URL keeps answering throughout
        answers: list[int] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                try:
                    answers.append(httpx.get(url, timeout=10).status_code)
                except httpx.HTTPError:
                    answers.append(0)
                time.sleep(0.05)

        poller = threading.Thread(target=poll)
        poller.start()
        again = subprocess.run(
            [*cli, "deploy", str(path)], capture_output=True, text=True, timeout=900, cwd=tmp_path
        )
        stop.set()
        poller.join()
        assert again.returncode == 0, again.stdout + again.stderr
        assert answers and set(answers) == {200}, answers
        logs = subprocess.run([*cli, "app", "logs", "deployed"], capture_output=True, text=True)
        assert "Serving... hit Ctrl-C to stop!" in logs.stdout
    finally:
        stopped = subprocess.run(
            [*cli, "app", "stop", "deployed"], capture_output=True, text=True, timeout=120
        )
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
    assert not _our_processes(str(path))
    gone = subprocess.run([*cli, "app", "stop", "deployed"], capture_output=True, text=True)
    assert gone.returncode == 2 and "No running deployment" in gone.stderr

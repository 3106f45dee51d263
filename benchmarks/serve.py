"""A web endpoint served by `imagewright serve` against the same app under `docker run -p`.

    python benchmarks/serve.py [--workdir DIR] [--rounds N]

Both sides serve a trivial FastAPI GET from the same image: imagewright builds it
(`debian_slim` + fastapi + uvicorn, pinned), exports it as a docker-archive and Docker loads it.
imagewright serves `@modal.fastapi_endpoint() def hello()` through its front on 127.0.0.1 into
the container's own network namespace; Docker runs `uvicorn app:web` in a container of that
image on the host's network (`--network=host`, uvicorn on 127.0.0.1:PORT), the app's directory
bind-mounted, with `uvicorn --reload` for the edit row. This machine's Docker has no bridge
(`--bridge=none`, see /work/shared/reference/machine.md), so `-p` cannot publish a port; the host
network is the faster of the two for Docker anyway, as no docker-proxy sits in between.
Rows:

- latency: median and 90th percentile of sequential GETs on one keep-alive connection (each
  request one write, TCP_NODELAY);
- requests per second: `ab -k -c 8 -n 4000` (apache2-utils);
- start to first 200: from starting `imagewright serve` (image cached) or `docker run` until a
  GET answers 200;
- edit to new code: from rewriting the app's file until a GET returns the new text.

Everything lives under --workdir (a store of its own, Docker's data, the app files); Docker is
the harness's private engine (harness/docker.py). Prints a markdown table with ratios
(imagewright's time over Docker's; below 1, imagewright is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness.common import Paths
from harness.docker import docker_engine
from harness.imagewright import Imagewright
from harness.registry import free_port
from harness.report import machine_facts

IMAGE = "imagewright-bench/serve"
PACKAGES = '"fastapi==0.165.0", "uvicorn==0.35.0"'
IW_APP = """import modal

image = modal.Image.debian_slim(python_version="3.11").uv_pip_install({packages})
app = modal.App("bench-serve", image=image)


@app.function()
@modal.fastapi_endpoint()
def hello():
    return "{text}"
"""
DOCKER_APP = """from fastapi import FastAPI

web = FastAPI()


@web.get("/")
def hello():
    return "{text}"
"""


def get(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def wait_until(port: int, text: str, started: float, timeout: float = 300) -> float:
    """Seconds from `started` until GET / answers 200 with `text` in its body."""
    while time.monotonic() - started < timeout:
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, body = get(port)
            if status == 200 and text in body:
                return time.monotonic() - started
        time.sleep(0.01)
    raise RuntimeError(f"port {port} did not answer {text!r} within {timeout} s")


def latencies(port: int, count: int = 500) -> list[float]:
    """Seconds per GET on one keep-alive connection. Each request leaves in one write with
    TCP_NODELAY (http.client's two writes would meet the server's delayed ACK: 40 ms each)."""
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        for _ in range(count + 20):
            start = time.perf_counter()
            sock.sendall(request)
            while b"\r\n\r\n" not in pending:
                pending += sock.recv(65536)
            head, _, pending = pending.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            while len(pending) < length:
                pending += sock.recv(65536)
            pending = pending[length:]
            times.append(time.perf_counter() - start)
    return times[20:]  # after a warm-up


def requests_per_second(port: int) -> float:
    out = subprocess.run(
        ["ab", "-q", "-k", "-c", "8", "-n", "4000", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


@contextlib.contextmanager
def iw_serving(workdir: Path, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    with open(workdir / "serve.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagewright", "serve", "app.py", f"--port=hello={port}"],
            cwd=workdir / "iw", env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)


@contextlib.contextmanager
def docker_serving(
    workdir: Path, env: dict[str, str], port: int, reload: bool = False
) -> Iterator[None]:
    argv = ["docker", "run", "-d", "--rm", "--name", "imagewright-bench-serve"]
    argv += ["--network=host", "-v", f"{workdir / 'docker'}:/app", "-w", "/app"]
    argv += [
        IMAGE,
        "python",
        "-m",
        "uvicorn",
        "app:web",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    subprocess.run(
        ["docker", "rm", "-f", "imagewright-bench-serve"], env=env, capture_output=True
    )  # fmt: skip  (one a killed run left)
    started = subprocess.run(argv + (["--reload"] if reload else []), env=env,
                             capture_output=True, text=True)  # fmt: skip
    if started.returncode != 0:
        raise RuntimeError(f"docker run failed: {started.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["docker", "rm", "-f", "imagewright-bench-serve"], env=env,
                       capture_output=True)  # fmt: skip


def median_of(rounds: int, measure: Callable[[int], float]) -> float:
    return statistics.median(measure(i) for i in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/imagewright-bench-serve"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir: Path = args.workdir.resolve()
    for side in ("iw", "docker"):
        (workdir / side).mkdir(parents=True, exist_ok=True)
    iw_file, docker_file = workdir / "iw" / "app.py", workdir / "docker" / "app.py"
    iw_file.write_text(IW_APP.format(packages=PACKAGES, text="v0"))
    docker_file.write_text(DOCKER_APP.format(text="v0"))
    env = {**os.environ, "IMAGEWRIGHT_HOME": str(workdir / "home")}
    paths = Paths(workdir)
    iw_port, docker_port = free_port(), free_port()
    rows: list[tuple[str, float, float, str]] = []

    subprocess.run([sys.executable, "-m", "imagewright", "build", "app.py::image"],
                   cwd=workdir / "iw", env=env, check=True, capture_output=True)  # fmt: skip
    archive = workdir / "image.tar"
    subprocess.run(
        [sys.executable, "-m", "imagewright", "export", "app.py::image", "--format", "docker",
         "--tag", IMAGE, "-o", str(archive)],
        cwd=workdir / "iw", env=env, check=True, capture_output=True,
    )  # fmt: skip
    with docker_engine(paths) as denv:
        subprocess.run(["docker", "load", "-i", str(archive)], env=denv, check=True,
                       capture_output=True)  # fmt: skip
        archive.unlink()

        def iw_start(i: int) -> float:
            started = time.monotonic()
            with iw_serving(workdir, env, iw_port):
                return wait_until(iw_port, "v0", started)

        def docker_start(i: int) -> float:
            started = time.monotonic()
            with docker_serving(workdir, denv, docker_port):
                return wait_until(docker_port, "v0", started)

        rows.append(("start to first 200 (s)", median_of(args.rounds, iw_start),
                     median_of(args.rounds, docker_start), "s"))  # fmt: skip

        with iw_serving(workdir, env, iw_port):
            wait_until(iw_port, "v0", time.monotonic())
            iw_lat = latencies(iw_port)
            iw_rps = requests_per_second(iw_port)

            def iw_edit(i: int) -> float:
                time.sleep(1.5)  # untimed: uvicorn's reloader takes its first look after a restart
                iw_file.write_text(IW_APP.format(packages=PACKAGES, text=f"v{i + 1}"))
                return wait_until(iw_port, f"v{i + 1}", time.monotonic())

            iw_reload = median_of(args.rounds, iw_edit)
        iw_file.write_text(IW_APP.format(packages=PACKAGES, text="v0"))
        with docker_serving(workdir, denv, docker_port, reload=True):
            wait_until(docker_port, "v0", time.monotonic())
            docker_lat = latencies(docker_port)
            docker_rps = requests_per_second(docker_port)

            def docker_edit(i: int) -> float:
                time.sleep(1.5)  # untimed: uvicorn's reloader takes its first look after a restart
                docker_file.write_text(DOCKER_APP.format(text=f"v{i + 1}"))
                return wait_until(docker_port, f"v{i + 1}", time.monotonic())

            docker_reload = median_of(args.rounds, docker_edit)
        facts = machine_facts(
            Imagewright(paths, str(Path(sys.executable).parent / "imagewright")), denv
        )

    rows += [
        ("latency, median (ms)", statistics.median(iw_lat) * 1e3,
         statistics.median(docker_lat) * 1e3, "ms"),
        ("latency, 90th percentile (ms)", statistics.quantiles(iw_lat, n=10)[-1] * 1e3,
         statistics.quantiles(docker_lat, n=10)[-1] * 1e3, "ms"),
        ("requests per second (ab -k -c 8)", iw_rps, docker_rps, "rps"),
        ("edit to new code answering (s)", iw_reload, docker_reload, "s"),
    ]  # fmt: skip
    print("\n" + "\n".join(f"- {name}: {value}" for name, value in facts))
    print("\n| row | imagewright | docker run --network=host | ratio |\n|---|---:|---:|---:|")
    for name, iw_value, docker_value, unit in rows:
        ratio = docker_value / iw_value if unit == "rps" else iw_value / docker_value
        print(f"| {name} | {iw_value:.3g} | {docker_value:.3g} | {ratio:.2f} |")
    print("\nratio: imagewright's time over Docker's (for requests per second, Docker's rate "
          "over imagewright's); below 1, imagewright is faster.")  # fmt: skip


if __name__ == "__main__":
    main()

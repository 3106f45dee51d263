"""Dict and Queue operations per second, on both backends, from the host and from a container.

    python benchmarks/state.py [OPERATIONS]

For the SQLite file (in the store's home: IMAGEWRIGHT_HOME or the default) and for a private
redis-server this script starts on a free loopback port (no persistence, stopped at the end),
it times OPERATIONS (default 2000) of each: `d[i] = i`, `d[i]`, and a Queue round trip
`q.put(i); q.get()`, once on the host and once inside a warm function container (Python 3.11),
each on an ephemeral Dict and Queue. Prints a markdown table of operations per second and of
microseconds per operation.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import imagewright as modal

app = modal.App("bench-state", image=modal.Image.debian_slim(python_version="3.11"))
COLUMNS = ("Dict put", "Dict get", "Queue put+get")


def workload(operations: int) -> dict[str, float]:
    """Seconds per operation of each kind."""
    timings: dict[str, float] = {}
    with modal.Dict.ephemeral() as d:
        started = time.perf_counter()
        for i in range(operations):
            d[i] = i
        timings["Dict put"] = (time.perf_counter() - started) / operations
        started = time.perf_counter()
        for i in range(operations):
            assert d[i] == i
        timings["Dict get"] = (time.perf_counter() - started) / operations
    with modal.Queue.ephemeral() as q:
        started = time.perf_counter()
        for i in range(operations):
            q.put(i)
            assert q.get() == i
        timings["Queue put+get"] = (time.perf_counter() - started) / operations
    return timings


@app.function()
def in_container(operations: int) -> dict[str, float]:
    return workload(operations)


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a free loopback port, saving nothing; its URL."""
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is missing: apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        argv = [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", workdir]
        argv += ["--save", "", "--appendonly", "no"]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def measure(operations: int) -> dict[str, dict[str, float]]:
    """Each backend's timings on the host and in a container (the environment picks it)."""
    rows = {}
    with app.run():
        in_container.remote(10)  # warm: the container is up, imports done
        for side, run in (("host", workload), ("container", in_container.remote)):
            run(operations // 10)  # warm: the backend opened, its file or connection ready
            rows[side] = run(operations)
    return rows


def main() -> None:
    operations = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    os.environ.pop("IMAGEWRIGHT_REDIS_URL", None)
    results = {f"SQLite, {side}": row for side, row in measure(operations).items()}
    with redis_server() as url:
        os.environ["IMAGEWRIGHT_REDIS_URL"] = url
        results.update({f"Redis, {side}": row for side, row in measure(operations).items()})
    print(f"\n{operations} operations each; operations per second (µs per operation)\n")
    print("| backend, where | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name, row in results.items():
        cells = [f"{1 / row[c]:,.0f} ({row[c] * 1e6:,.0f} µs)" for c in COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

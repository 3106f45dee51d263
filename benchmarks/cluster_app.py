"""The program benchmarks/cluster.py runs, locally and on a Ray cluster: it prints its timings
as one line, "BENCH {json}"."""

from __future__ import annotations

import json
import os
import time

import imagewright as modal

app = modal.App("bench-cluster", image=modal.Image.debian_slim(python_version="3.11"))


@app.function()
def ident(x: int) -> int:
    return x


@app.function()
def first(x: int) -> int:
    return x


@app.function()
def sleeps(x: int) -> int:
    time.sleep(0.5)
    return x


@app.local_entrypoint()
def main() -> None:
    inputs, sleep_inputs = int(os.environ["BENCH_INPUTS"]), int(os.environ["BENCH_SLEEPS"])
    list(sleeps.map(range(8)))  # untimed: every node gets the image
    started = time.monotonic()
    for _ in first.map(range(4)):
        first_result = time.monotonic() - started
        break
    started = time.monotonic()
    assert list(ident.map(range(inputs))) == list(range(inputs))
    per_input = (time.monotonic() - started) / inputs
    started = time.monotonic()
    assert sorted(sleeps.map(range(sleep_inputs))) == list(range(sleep_inputs))
    throughput = sleep_inputs / (time.monotonic() - started)
    result = {"per_input": per_input, "first_result": first_result, "sleep_throughput": throughput}
    print("BENCH " + json.dumps(result))

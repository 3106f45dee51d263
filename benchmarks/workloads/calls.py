"""Times warm imagewright function calls in one process, for benchmarks/run.py.

    python calls.py remote FUNCTION CALLS   # FUNCTION.remote(i), FUNCTION is ident or square
    python calls.py map INPUTS CALLS        # list(ident.map(range(INPUTS)))

Inside one `with app.run():` (run.py has built the data image already), it makes one untimed
warm-up call, then CALLS timed ones, each checked against its expected result, and prints a
JSON list of wall seconds, one per call (per whole map for `map`), as the last line of stdout.

run.py runs this from its scratch copy of this directory, next to images.py. Containers import
this file as the module `calls` (attached at /root/calls.py), so images.py is attached beside
it (`add_local_python_source`, not a layer: the image is the data image itself).
"""

import json
import sys
import time
from collections.abc import Callable

import images

import imagewright as modal

app = modal.App("bench-calls", image=images.data.add_local_python_source("images"))


@app.function()
def ident(x: int) -> int:
    return x


@app.function()
def square(x: int) -> int:
    import numpy as np

    return int(np.square(x))


FUNCTIONS: dict[str, tuple[modal.Function, Callable[[int], int]]] = {
    "ident": (ident, lambda x: x),
    "square": (square, lambda x: x * x),
}


def time_remote(name: str, calls: int) -> list[float]:
    function, expected = FUNCTIONS[name]
    function.remote(0)
    seconds = []
    for x in range(1, calls + 1):
        started = time.perf_counter()
        result = function.remote(x)
        seconds.append(time.perf_counter() - started)
        if result != expected(x):
            raise SystemExit(f"{name}.remote({x}) returned {result!r}")
    return seconds


def time_map(inputs: int, calls: int) -> list[float]:
    list(ident.map(range(inputs)))
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        results = list(ident.map(range(inputs)))
        seconds.append(time.perf_counter() - started)
        if results != list(range(inputs)):
            raise SystemExit(f"ident.map(range({inputs})) returned wrong results")
    return seconds


def main(mode: str, what: str, calls: str) -> None:
    if mode not in ("remote", "map"):
        raise SystemExit(__doc__)
    with app.run():
        if mode == "remote":
            seconds = time_remote(what, int(calls))
        else:
            seconds = time_map(int(what), int(calls))
    print(json.dumps(seconds))


if __name__ == "__main__":
    main(*sys.argv[1:])

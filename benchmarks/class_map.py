"""Cost per input of `.map` on a plain function and on `@app.cls` methods, in one process.

    python benchmarks/class_map.py [INPUTS] [ROUNDS]

Issue 11 asks what a `@modal.concurrent` class method costs per input under `.map` next to a
plain function. All three answer `x -> x` from warm containers (one untimed warm-up map each),
so what is timed is imagewright's own path: pickling, the channel, the dispatcher. Prints the
median of ROUNDS maps of INPUTS inputs, per input, and each ratio to the plain function.
"""

from __future__ import annotations

import statistics
import sys
import time

import imagewright as modal

app = modal.App("bench-class-map", image=modal.Image.debian_slim(python_version="3.11"))


@app.function()
def ident(x: int) -> int:
    return x


@app.cls()
class Plain:
    @modal.method()
    def ident(self, x: int) -> int:
        return x


@app.cls()
@modal.concurrent(max_inputs=8)
class Concurrent:
    @modal.method()
    def ident(self, x: int) -> int:
        return x


def per_input(run: modal.Function | object, inputs: int, rounds: int) -> float:
    mapper = run.map  # type: ignore[attr-defined]
    list(mapper(range(inputs)))  # warm: containers started, @enter run
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert list(mapper(range(inputs))) == list(range(inputs))
        times.append(time.perf_counter() - started)
    return statistics.median(times) / inputs


def main() -> None:
    inputs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with app.run():
        results = {
            "function": per_input(ident, inputs, rounds),
            "class method": per_input(Plain().ident, inputs, rounds),
            "@concurrent(max_inputs=8) class method": per_input(Concurrent().ident, inputs, rounds),
        }
    base = results["function"]
    print(f"{inputs} inputs, median of {rounds} maps")
    for name, seconds in results.items():
        print(f"{name:42s} {seconds * 1e6:8.1f} us/input  x{seconds / base:.2f}")


if __name__ == "__main__":
    main()

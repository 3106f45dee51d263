"""The function-call scenarios: imagewright's warm `.remote()` and `.map()`, timed inside one
Python process (workloads/calls.py), against one `docker run --rm` or `podman run --rm`
process per call of the same function body on each peer's build of the same image.

Because imagewright's side is one process, the sides cannot take turns call by call as the
builders do: each measurement runs imagewright's calls, then each peer's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from harness.engines import Caller
from harness.units import milliseconds_cell

REMOTE_TARGET_SECONDS = 0.1  # per .remote() of the trivial function
MAP_INPUTS = 1000
MAP_TARGET_SECONDS = 0.005  # per mapped input


class CallRow(NamedTuple):
    """One row of the function-call table: wall seconds per call, or per input, on each side."""

    key: str  # the scenario
    title: str
    imagewright: list[float]
    peers: dict[str, list[float]]  # by the peer's name; only the peers not skipped
    target: float | None = None  # imagewright's median should stay under this


def timed(caller: Caller, what: str, run: Callable[[Caller], list[float]]) -> list[float]:
    """`run(caller)`, reported on stderr as it finishes."""
    seconds = run(caller)
    print(f"  {caller.name:<12} {what}: {milliseconds_cell(seconds)} ms", file=sys.stderr)
    return seconds


def side_by_side(
    iw: Caller, peers: Sequence[Caller], what: str, run: Callable[[Caller], list[float]]
) -> tuple[list[float], dict[str, list[float]]]:
    """`run` imagewright, then each peer."""
    ours = timed(iw, what, run)
    return ours, {peer.name: timed(peer, what, run) for peer in peers}


def run_remote(iw: Caller, peers: Sequence[Caller], calls: int) -> list[CallRow]:
    def row(function: str, title: str, target: float | None) -> CallRow:
        ours, theirs = side_by_side(
            iw, peers, f"{function}, per call", lambda c: c.remote(function, calls)
        )
        return CallRow("remote", title, ours, theirs, target)

    return [
        row("ident", "warm `.remote()` round trip, trivial `ident`", REMOTE_TARGET_SECONDS),
        row("square", "warm `.remote()` round trip, numpy `square`", None),
    ]


def run_map(iw: Caller, peers: Sequence[Caller], calls: int) -> list[CallRow]:
    def per_input(caller: Caller) -> list[float]:
        return [seconds / MAP_INPUTS for seconds in caller.map(MAP_INPUTS, calls)]

    ours, loops = side_by_side(iw, peers, f"ident, per input of {MAP_INPUTS:,}", per_input)
    title = f"per input, `.map(ident)` over {MAP_INPUTS:,} inputs"
    rows = [CallRow("map", f"{title}; peers: one `run` looping", ours, loops, MAP_TARGET_SECONDS)]
    if peers:  # a `run` per input costs what one `.remote()` round trip does
        what = "ident, per run of one input"
        per_run = {p.name: timed(p, what, lambda c: c.remote("ident", calls)) for p in peers}
        rows.append(CallRow("map", f"{title}; peers: one `run` per input", ours, per_run))
    return rows


class CallScenario(NamedTuple):
    title: str
    run: Callable[[Caller, Sequence[Caller], int], list[CallRow]]  # (imagewright, peers, calls)


CALL_SCENARIOS = {
    "remote": CallScenario("warm .remote() round trip: ident, numpy square", run_remote),
    "map": CallScenario(f"cost per input of .map(ident) over {MAP_INPUTS:,} inputs", run_map),
}

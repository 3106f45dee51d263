"""The build scenarios: the same images built by imagewright and by each peer (BuildKit,
`podman build`), the builders taking turns repetition by repetition, so a burst of background
load does not fall on one side only. Each scenario first builds what it needs, untimed."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from harness.common import BenchError, Outcome, Paths
from harness.engines import Builder
from harness.imagewright import Imagewright

# uv-warm adds one of these per rebuild: small, and outside the data image's dependency tree.
EXTRA_PACKAGES = tuple(f"idna=={v}" for v in ("3.10", "3.9", "3.8", "3.7", "3.6", "3.5", "3.4"))
SMALL_TARGET_SECONDS = 0.15

Samples = dict[str, list[Outcome]]  # builder name -> its timed builds


def interleave(
    builders: Sequence[Builder], repeat: int, one: Callable[[Builder, int], Outcome]
) -> Samples:
    """Run `one(builder, i)` for i in range(repeat), alternating builders within each round."""
    samples: Samples = {b.name: [] for b in builders}
    for i in range(repeat):
        for b in builders:
            outcome = one(b, i)
            samples[b.name].append(outcome)
            print(
                f"  {b.name:<12} {i + 1}/{repeat}: {outcome.seconds:7.3f} s "
                f"({outcome.steps_run} step(s) run)",
                file=sys.stderr,
            )
    return samples


def run_cold(builders: Sequence[Builder], repeat: int, paths: Paths) -> Samples:
    def one(b: Builder, _i: int) -> Outcome:
        b.reset()
        return b.build("data")

    return interleave(builders, repeat, one)


def run_cached(builders: Sequence[Builder], repeat: int, paths: Paths) -> Samples:
    for b in builders:
        b.build("data")
    return interleave(builders, repeat, lambda b, _i: b.build("data"))


def run_copy_edit(builders: Sequence[Builder], repeat: int, paths: Paths) -> Samples:
    token = os.urandom(6).hex()  # content never built before, even by an earlier run
    config = paths.context / "config.yaml"

    def one(b: Builder, i: int) -> Outcome:
        config.write_text(f"run: {token}\nbuilder: {b.name}\nedit: {i}\n")
        return b.build("data_config")

    for b in builders:
        b.build("data_config")
    return interleave(builders, repeat, one)


def run_uv_warm(builders: Sequence[Builder], repeat: int, paths: Paths) -> Samples:
    if repeat > len(EXTRA_PACKAGES):
        raise BenchError(f"uv-warm can repeat at most {len(EXTRA_PACKAGES)} times")
    for b in builders:  # no uv layer with an extra package cached; package caches filled
        b.reset()
        b.build("data")
    return interleave(builders, repeat, lambda b, i: b.build("data_extra", EXTRA_PACKAGES[i]))


def run_small(builders: Sequence[Builder], repeat: int, paths: Paths) -> Samples:
    for b in builders:
        b.build("small")
    return interleave(builders, repeat, lambda b, _i: b.build("small"))


def run_small_here(builders: Sequence[Builder], repeat: int, paths: Paths) -> Samples:
    """`small` again, with imagewright's build server off: each build in its own process."""
    ours = next(b for b in builders if isinstance(b, Imagewright))
    ours.server = False
    try:
        return run_small(builders, repeat, paths)
    finally:
        ours.server = True


class Scenario(NamedTuple):
    title: str
    run: Callable[[Sequence[Builder], int, Paths], Samples]
    slow: bool  # repeated --slow-repeat times instead of --repeat
    steps_run: int  # steps each timed build should run; anything else is reported


SCENARIOS = {
    "cold": Scenario("cold build, data image (empty caches)", run_cold, True, 2),
    "cached": Scenario("fully cached rebuild, data image", run_cached, False, 0),
    "copy-edit": Scenario("rebuild after editing a copied file", run_copy_edit, False, 1),
    "uv-warm": Scenario("uv layer rebuilt, package cache warm", run_uv_warm, True, 1),
    "small": Scenario("fully cached rebuild, 6-step image", run_small, False, 0),
    "small-here": Scenario(
        "fully cached rebuild, 6-step image, no build server", run_small_here, False, 0
    ),
}

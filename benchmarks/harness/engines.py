"""What a scenario needs from each side, and what the two container engines (Docker and
Podman) share: building the generated Dockerfiles, importing imagewright's base, and running a
function's body in a throwaway container."""

from __future__ import annotations

import abc
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Protocol

from harness.common import PREFIX, BenchError, Outcome, Paths, check_call, log_file
from harness.dockerfile import (
    base_ref,
    base_stage_context,
    dockerfile_for,
    import_changes,
    rootfs_ref,
)
from harness.imagewright import Imagewright

# What `docker run ... python -c` (or `podman run`) runs: calls.py's functions inline, called on
# input {x}.
RUN_CODE = {
    "ident": "def ident(x):\n    return x\nprint(ident({x}))",
    "square": "def square(x):\n    import numpy as np\n    return int(np.square(x))\n"
    "print(square({x}))",
}
EXPECTED = {"ident": lambda x: x, "square": lambda x: x * x}
# The lower bound for a peer's map: one container calling ident on every input in a loop.
RUN_MAP_CODE = (
    "def ident(x):\n    return x\nresults = [ident(x) for x in range({n})]\nprint(sum(results))"
)


class Builder(Protocol):
    """What a build scenario needs from a builder."""

    name: str

    def reset(self) -> None:
        """Empty the layer cache and the apt and uv package caches, keeping the base image."""

    def build(self, image: str, extra: str | None = None) -> Outcome:
        """Build `image` of the workload (with `extra` as the uv-warm package) and time it."""


class Caller(Protocol):
    """What a function-call scenario needs from each side. Every timing follows one warm-up."""

    name: str

    def prepare(self) -> None:
        """Build the data image the functions run in (untimed; cached after the first time)."""

    def remote(self, function: str, calls: int) -> list[float]:
        """Wall seconds of each of `calls` calls of `function` (ident or square)."""

    def map(self, inputs: int, calls: int) -> list[float]:
        """Wall seconds of each of `calls` runs of ident over `inputs` inputs."""


class DockerfileBuilder(abc.ABC):
    """`CLI build` of the generated Dockerfiles; a subclass says how to count the steps that
    ran and how to empty the caches."""

    name: str
    cli: str
    log_name: str  # logs/{log_name}-IMAGE.log, logs/{log_name}-setup.log
    options: tuple[str, ...] = ()

    def __init__(self, paths: Paths, env: dict[str, str], workload: ModuleType, base: str):
        self.paths = paths
        self.env = env
        self.workload = workload
        self.base_ref = base

    def build(self, image: str, extra: str | None = None) -> Outcome:
        dockerfile = self.paths.context / f"Dockerfile.{image}"
        dockerfile.write_text(dockerfile_for(image, self.workload, self.base_ref, extra))
        argv = [self.cli, "build", "--network=host", *self.options, "-f", str(dockerfile)]
        argv += ["-t", f"{PREFIX}/{image}", str(self.paths.context)]
        started = time.perf_counter()
        proc = subprocess.run(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
        output = proc.stdout.decode("utf-8", "replace")
        log = log_file(self.paths, f"{self.log_name}-{image}")
        with open(log, "a") as out:
            out.write(f"$ {shlex.join(argv)}\n{output}")
        if proc.returncode != 0:
            raise BenchError(
                f"{Path(self.cli).name} build of {image} exited with {proc.returncode}; see {log}"
            )
        return Outcome(seconds, self.steps_run(output))

    @abc.abstractmethod
    def steps_run(self, output: str) -> int:
        """How many RUN and COPY steps the build executed rather than took from its cache."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Empty the layer cache and the apt and uv package caches, keeping the base image."""

    @property
    def setup_log(self) -> Path:
        return log_file(self.paths, f"{self.log_name}-setup")


def import_base(
    cli: str,
    env: dict[str, str],
    log: Path,
    iw: Imagewright,
    rootfs: Callable[[], Path],
    config: dict[str, object],
) -> str:
    """Import imagewright's base into an engine (unless there already), adding uv and the host
    CA bundle; return the image reference to build FROM."""
    tag = iw.base_tag
    ref = base_ref(tag)
    present = subprocess.run(
        [cli, "image", "inspect", ref],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if present.returncode == 0:
        return ref
    argv = [cli, "import", *(f"--change={c}" for c in import_changes(config)), str(rootfs())]
    check_call([*argv, rootfs_ref(tag)], log, env=env)
    ctx = base_stage_context(iw.paths, iw.executable, tag)
    check_call([cli, "build", "--network=host", "-t", ref, str(ctx)], log, env=env)
    return ref


class ContainerRun:
    """`CLI run --rm IMAGE python -c CODE` per call, on the data image `builder` built."""

    def __init__(self, name: str, builder: DockerfileBuilder):
        self.name = name
        self.builder = builder
        self.ref = f"{PREFIX}/data"

    def prepare(self) -> None:
        self.builder.build("data")

    def remote(self, function: str, calls: int) -> list[float]:
        code = RUN_CODE[function]
        self._run(code.format(x=0), EXPECTED[function](0))
        return [self._run(code.format(x=x), EXPECTED[function](x)) for x in range(1, calls + 1)]

    def map(self, inputs: int, calls: int) -> list[float]:
        code = RUN_MAP_CODE.format(n=inputs)
        expected = sum(range(inputs))
        self._run(code, expected)
        return [self._run(code, expected) for _ in range(calls)]

    def _run(self, code: str, expected: int) -> float:
        """Time one container running `code`, which must print `expected`."""
        argv = [self.builder.cli, "run", "--rm", "--network=host", self.ref, "python", "-c", code]
        started = time.perf_counter()
        proc = subprocess.run(
            argv, env=self.builder.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0 or proc.stdout.strip() != str(expected):
            log = log_file(self.builder.paths, self.name.replace(" ", "-"))
            with open(log, "a") as out:
                out.write(f"$ {shlex.join(argv)}\n{proc.stdout}")
            raise BenchError(
                f"{self.name} exited with {proc.returncode} without printing {expected}; see {log}"
            )
        return seconds

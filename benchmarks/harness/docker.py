"""Docker's side: `docker build` with BuildKit and `docker run`, on a private dockerd (own data
root, exec root, socket and cgroup parent; no bridge, no iptables, so builds and containers use
the host network)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from tests.integration.docker_helpers import DOCKER, DOCKERD, answers, dockerd

from harness.common import PREFIX, Paths, apt_get_install, check_call, log_file
from harness.engines import ContainerRun, DockerfileBuilder, import_base
from harness.imagewright import Imagewright


@contextlib.contextmanager
def docker_engine(paths: Paths) -> Iterator[dict[str, str]]:
    """A dockerd answering on our socket: the running one, or one started here and stopped after.

    Its data root stays under the work directory, so later runs reuse the imported base."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": f"unix://{paths.docker_socket}"}
    if os.path.exists(DOCKER) and answers(env):
        yield env
        return
    apt_get_install(paths, "docker.io", DOCKERD, DOCKER)
    paths.docker.mkdir(parents=True, exist_ok=True)
    with dockerd(paths.docker, PREFIX, log_file(paths, "dockerd")) as env:
        yield env


class BuildKit(DockerfileBuilder):
    """`docker build` with BuildKit against the private engine."""

    name = "BuildKit"
    cli = DOCKER
    log_name = "buildkit"
    options = ("--progress=plain",)

    def steps_run(self, output: str) -> int:
        steps = set(re.findall(r"^#(\d+) \[[^\]]*\] (?:RUN|COPY) ", output, re.MULTILINE))
        cached = set(re.findall(r"^#(\d+) CACHED$", output, re.MULTILINE))
        return len(steps - cached)

    def reset(self) -> None:
        """Remove the images built here and all build cache, cache mounts included."""
        listed = subprocess.run(
            [DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}}", f"{PREFIX}/*"],
            env=self.env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout.split()
        built = [r for r in listed if not r.startswith((f"{PREFIX}/base:", f"{PREFIX}/rootfs:"))]
        if built:
            check_call([DOCKER, "image", "rm", "-f", *built], self.setup_log, env=self.env)
        check_call([DOCKER, "builder", "prune", "-af"], self.setup_log, env=self.env)


def buildkit(
    paths: Paths,
    env: dict[str, str],
    workload: ModuleType,
    iw: Imagewright,
    rootfs: Callable[[], Path],
    config: dict[str, object],
) -> BuildKit:
    """BuildKit on imagewright's base, imported into Docker once per base."""
    log = log_file(paths, "buildkit-setup")
    return BuildKit(paths, env, workload, import_base(DOCKER, env, log, iw, rootfs, config))


def docker_run(builder: BuildKit) -> ContainerRun:
    """`docker run --rm` on BuildKit's build of the data image."""
    return ContainerRun("docker run", builder)

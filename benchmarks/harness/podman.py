"""Podman's side: `podman build` (buildah) and `podman run`, Debian's podman with runc and
cgroupfs, on a store of its own set up as the tests set one up (podman_helpers)."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from tests.integration.podman_helpers import podman_engine, podman_missing

from harness.common import PREFIX, BenchError, Paths, check_call, log_file
from harness.engines import ContainerRun, DockerfileBuilder, import_base
from harness.imagewright import Imagewright

PODMAN = "podman"


@contextlib.contextmanager
def podman_store(root: Path) -> Iterator[dict[str, str]]:
    """An empty podman store under `root`; yield the environment pointing podman at it.
    Afterwards its images are removed and `root` deleted, also after a failure.

    TMPDIR is where buildah keeps the cache mounts of `RUN --mount=type=cache` (buildah-cache/
    below it, otherwise under /var/tmp, shared with everyone): under `root` they are this
    store's alone, and go with it.
    """
    reason = podman_missing()
    if reason is not None:
        raise BenchError(f"{reason}; or pass --skip-podman")
    shutil.rmtree(root, ignore_errors=True)
    try:
        with podman_engine(root) as env:
            (root / "tmp").mkdir()
            yield {**env, "TMPDIR": str(root / "tmp")}
    finally:
        shutil.rmtree(root, ignore_errors=True)


class PodmanBuild(DockerfileBuilder):
    """`podman build` with its layer cache (--layers) in the private store."""

    name = "podman build"
    cli = PODMAN
    log_name = "podman"
    options = ("--layers",)

    def steps_run(self, output: str) -> int:
        # Each step opens with "STEP n/m: INSTRUCTION"; a cached one says "--> Using cache".
        steps = re.split(r"^STEP \d+/\d+: ", output, flags=re.MULTILINE)[1:]
        return sum(
            step.startswith(("RUN ", "COPY ")) and "\n--> Using cache " not in step
            for step in steps
        )

    def reset(self) -> None:
        """Remove the images built here with their intermediate layers, and the cache mounts."""
        listed = subprocess.run(
            [PODMAN, "images", "--format", "{{.Repository}}:{{.Tag}}"],
            env=self.env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout.split()
        ours = f"localhost/{PREFIX}/"
        kept = (f"{ours}base:", f"{ours}rootfs:")
        built = [r for r in listed if r.startswith(ours) and not r.startswith(kept)]
        if built:
            check_call([PODMAN, "image", "rm", "-f", *built], self.setup_log, env=self.env)
        check_call([PODMAN, "image", "prune", "-f"], self.setup_log, env=self.env)
        shutil.rmtree(Path(self.env["TMPDIR"], "buildah-cache"), ignore_errors=True)


def podman_build(
    paths: Paths,
    env: dict[str, str],
    workload: ModuleType,
    iw: Imagewright,
    rootfs: Callable[[], Path],
    config: dict[str, object],
) -> PodmanBuild:
    """`podman build` on imagewright's base, imported into the (new) store."""
    log = log_file(paths, "podman-setup")
    return PodmanBuild(paths, env, workload, import_base(PODMAN, env, log, iw, rootfs, config))


def podman_run(builder: PodmanBuild) -> ContainerRun:
    """`podman run --rm` on Podman's build of the data image."""
    return ContainerRun("podman run", builder)

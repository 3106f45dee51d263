"""imagewright's side: its CLI on a private store (builds, exports, pushes, the base's root
filesystem for the peers) and its function calls, timed inside one Python process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.common import (
    CALLS_FILE,
    WORKLOAD_FILE,
    BenchError,
    Outcome,
    Paths,
    check_call,
    log_file,
    timed_run,
)


def imagewright_executable() -> str:
    beside = Path(sys.executable).with_name("imagewright")
    found = str(beside) if beside.exists() else shutil.which("imagewright")
    if found is None:
        raise BenchError("no imagewright command: run with the project's .venv/bin/python")
    return found


class Imagewright:
    """imagewright's CLI on a private store ($IMAGEWRIGHT_HOME under the work directory)."""

    name = "imagewright"

    def __init__(self, paths: Paths, executable: str):
        self.paths = paths
        self.executable = executable
        self.base_id = ""
        # Builds go through the build server, as a user's do; the `small-here` scenario turns
        # it off to show what a build costs in its own process.
        self.server = True

    def env(self, extra: str | None = None) -> dict[str, str]:
        env = {**os.environ, "IMAGEWRIGHT_HOME": str(self.paths.home)}
        if not self.server:  # every build in its own process (cli/launch.py)
            env["IMAGEWRIGHT_BUILD_SERVER"] = "0"
        if extra:
            env["BENCH_EXTRA_PACKAGE"] = extra
        return env

    def build(self, image: str, extra: str | None = None) -> Outcome:
        log = log_file(self.paths, f"imagewright-{image}")
        argv = [self.executable, "build", f"{WORKLOAD_FILE}::{image}", "--json"]
        with open(log, "a") as err:
            err.write(f"$ {shlex.join(argv)}\n")
            err.flush()
            started = time.perf_counter()
            proc = subprocess.run(
                argv,
                cwd=self.paths.context,
                env=self.env(extra),
                stdout=subprocess.PIPE,
                stderr=err,
            )
            seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise BenchError(
                f"imagewright build of {image} exited with {proc.returncode}; see {log}"
            )
        steps = json.loads(proc.stdout)["steps"]
        return Outcome(seconds, sum(not s["cached"] for s in steps))

    def timed(self, *args: str) -> tuple[float, str]:
        """Time one imagewright command (export, push) run in the context directory."""
        log = log_file(self.paths, f"imagewright-{args[0]}")
        return timed_run([self.executable, *args], log, self.env(), cwd=self.paths.context)

    def reset(self) -> None:
        """Forget every image but the base, prune unused layers and empty the package caches."""
        records = json.loads(self.output("images", "--json"))
        for record in records:
            if record["image_id"] != self.base_id:
                (self.paths.home / "images" / f"{record['key']}.json").unlink()
        check_call(
            [self.executable, "prune", "--caches"],
            log_file(self.paths, "imagewright-setup"),
            env=self.env(),
        )

    def output(self, *args: str) -> str:
        """Run an untimed imagewright command and return its stdout (progress goes to a log)."""
        log = log_file(self.paths, "imagewright-setup")
        with open(log, "a") as err:
            err.write(f"$ imagewright {shlex.join(args)}\n")
            err.flush()
            proc = subprocess.run(
                [self.executable, *args],
                cwd=self.paths.context,
                env=self.env(),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        if proc.returncode != 0:
            raise BenchError(f"imagewright {args[0]} exited with {proc.returncode}; see {log}")
        return proc.stdout

    def prepare_base(self) -> dict[str, object]:
        """Build the base image (cached after the first run); return its OCI config."""
        outcome = json.loads(self.output("build", f"{WORKLOAD_FILE}::base", "--json"))
        self.base_id = str(outcome["image_id"])
        for record in json.loads(self.output("images", "--json")):
            if record["image_id"] == self.base_id:
                return dict(record["config"])
        raise BenchError(f"the base image {self.base_id} is not in `imagewright images`")

    @property
    def base_tag(self) -> str:
        """The base's tag in the peers' stores: a new base gets a new image there."""
        return self.base_id.removeprefix("im-")

    def export_base(self, dest: Path) -> None:
        """Write the base's root filesystem as a tar, from inside a container of it.

        /proc, /sys, /dev and /tmp are separate mounts in the container, so --one-file-system
        keeps only their (empty) mount points; /etc/resolv.conf is the host's, bind-mounted.
        """
        tar = (
            "tar --one-file-system --numeric-owner --xattrs --warning=no-file-changed"
            " --exclude=./etc/resolv.conf -C / -cf - . || [ $? -eq 1 ]"  # 1: a file changed
        )
        log = log_file(self.paths, "imagewright-setup")
        with open(dest, "wb") as out, open(log, "a") as err:
            status = subprocess.run(
                [self.executable, "shell", f"{WORKLOAD_FILE}::base", "--cmd", tar],
                cwd=self.paths.context,
                env=self.env(),
                stdout=out,
                stderr=err,
            ).returncode
        if status != 0:
            raise BenchError(f"exporting the base root filesystem failed ({status}); see {log}")
        check_rootfs_tar(dest)


def check_rootfs_tar(path: Path) -> None:
    """Refuse a tar that lacks the base's Python or holds anything from the special mounts."""
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
    for needed in ("./usr/bin/python3", "./etc/os-release", "./usr/bin/apt-get"):
        if needed not in names:
            raise BenchError(f"{path} has no {needed}: not a root filesystem")
    leaked = [n for n in names if re.match(r"\./(proc|sys|dev|tmp)/.", n)]
    if leaked:
        raise BenchError(f"{path} holds files from special mounts, e.g. {leaked[0]}")


@contextlib.contextmanager
def base_rootfs(iw: Imagewright) -> Iterator[Callable[[], Path]]:
    """Yield a function returning the base's root filesystem as a tar, made on its first call
    (only a peer without the base imported yet needs it) and deleted at the end."""
    dest = iw.paths.root / f"rootfs-{iw.base_tag}.tar"

    def get() -> Path:
        if not dest.exists():
            iw.export_base(dest)
        return dest

    try:
        yield get
    finally:
        dest.unlink(missing_ok=True)


class ImagewrightCalls:
    """`.remote()` and `.map()` timed inside one Python process (workloads/calls.py)."""

    name = "imagewright"

    def __init__(self, iw: Imagewright):
        self.iw = iw

    def prepare(self) -> None:
        self.iw.build("data")

    def remote(self, function: str, calls: int) -> list[float]:
        return self._driver("remote", function, calls)

    def map(self, inputs: int, calls: int) -> list[float]:
        return self._driver("map", str(inputs), calls)

    def _driver(self, mode: str, what: str, calls: int) -> list[float]:
        """Run calls.py; its last line of stdout is the JSON list of seconds."""
        log = log_file(self.iw.paths, "imagewright-calls")
        argv = [sys.executable, CALLS_FILE, mode, what, str(calls)]
        with open(log, "a") as err:
            err.write(f"$ {shlex.join(argv)}\n")
            err.flush()
            proc = subprocess.run(
                argv,
                cwd=self.iw.paths.context,
                env=self.iw.env(),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        if proc.returncode != 0:
            raise BenchError(f"{CALLS_FILE} {mode} {what} exited with {proc.returncode}; see {log}")
        return [float(s) for s in json.loads(proc.stdout.splitlines()[-1])]

"""Benchmark imagewright against Docker BuildKit on the same builds, side by side.

Scenarios (see benchmarks/README.md for what each includes):

    cold       the seed's data-processing image on an already-built base, with empty layer
               caches and empty apt and uv package caches (downloads included)
    cached     a fully cached rebuild of that image
    copy-edit  the image plus a final copy of config.yaml, rebuilt after editing the file
    uv-warm    the uv layer rebuilt after adding one small package, package caches warm
    small      a fully cached rebuild of a 6-step image (imagewright's target: under 0.15 s)
    remote     a warm `.remote()` round trip on the data image, for a trivial function and one
               that imports numpy, against `docker run --rm` doing the same (target: 0.1 s)
    map        the cost per input of `.map()` over 1,000 small inputs, against one `docker run`
               looping over them and against one `docker run` per input (target: 5 ms)
    export     `imagewright export` of the data image as a docker-archive (gzip, then
               uncompressed) and as an OCI layout tar (zstd), each with an empty blob store and
               again with the blobs stored, against `docker save` of BuildKit's build of it
    push       `imagewright push` of the data image (gzip) to an empty docker-registry on
               127.0.0.1, then again with every blob there, against `skopeo copy` of the same
               blobs from an OCI layout to another empty docker-registry

Every build is one timed subprocess (`imagewright build FILE::NAME --json` or `docker build`),
and the two builders take turns repetition by repetition, so background load hits both alike.
Function calls are timed inside one Python process on imagewright's side (workloads/calls.py)
and one `docker run` subprocess per call on Docker's side. Exports and pushes are one timed
subprocess each, on both sides; each push goes to a registry started for it and removed after.

Docker runs in a private dockerd (own data root, exec root, socket and cgroup parent; no bridge,
no iptables; builds use --network=host). The script starts it when nothing answers on its
socket, installing docker.io with apt-get if needed, and stops and cleans up after it at the
end. Docker's base image is imported from the root filesystem of imagewright's own base, so
both builders start from the same files. Everything lives under --workdir, with a separate
IMAGEWRIGHT_HOME, so a developer's store is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import NamedTuple, Protocol

REPO = Path(__file__).resolve().parent.parent
# The recipe for a private dockerd on this kind of host is the tests' (one place for both).
sys.path.insert(0, str(REPO))
from tests.integration.docker_helpers import DOCKER, DOCKERD, DockerdError, answers, dockerd  # noqa: E402

WORKLOADS = REPO / "benchmarks" / "workloads"
WORKLOAD_FILE = "images.py"
CALLS_FILE = "calls.py"  # imports images.py; times function calls from inside one process
DOCKER_REGISTRY = "/usr/bin/docker-registry"
SKOPEO = "/usr/bin/skopeo"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PREFIX = "imagewright-bench"  # Docker image names and the dockerd cgroup parent
# uv-warm adds one of these per rebuild: small, and outside the data image's dependency tree.
EXTRA_PACKAGES = tuple(f"idna=={v}" for v in ("3.10", "3.9", "3.8", "3.7", "3.6", "3.5", "3.4"))
SMALL_TARGET_SECONDS = 0.15
REMOTE_TARGET_SECONDS = 0.1  # per .remote() of the trivial function
MAP_INPUTS = 1000
MAP_TARGET_SECONDS = 0.005  # per mapped input
# What `docker run ... python -c` runs: calls.py's functions inline, called on input {x}.
DOCKER_CODE = {
    "ident": "def ident(x):\n    return x\nprint(ident({x}))",
    "square": "def square(x):\n    import numpy as np\n    return int(np.square(x))\n"
    "print(square({x}))",
}
EXPECTED = {"ident": lambda x: x, "square": lambda x: x * x}
# The lower bound for Docker's map: one container calling ident on every input in a loop.
DOCKER_MAP_CODE = (
    "def ident(x):\n    return x\nresults = [ident(x) for x in range({n})]\nprint(sum(results))"
)
# export and push: the data image, exported as (format, compression) twice each, first with an
# empty blob store and then with its blobs stored; pushed (gzip) under this tag.
TRANSFER_IMAGE = "data"
EXPORT_VARIANTS = (("docker", "gzip"), ("oci", "gzip"), ("docker", "none"), ("oci", "zstd"))
PUSH_TAG = "bench"
ATTEMPTS = ("first", "second")


class BenchError(RuntimeError):
    """A build or a setup command failed; the message names its log."""


class Outcome(NamedTuple):
    """One timed build: wall seconds and how many steps ran rather than came from cache."""

    seconds: float
    steps_run: int


class Builder(Protocol):
    """What a scenario needs from a builder."""

    name: str

    def reset(self) -> None:
        """Empty the layer cache and the apt and uv package caches, keeping the base image."""

    def build(self, image: str, extra: str | None = None) -> Outcome:
        """Build `image` of the workload (with `extra` as the uv-warm package) and time it."""


class Paths(NamedTuple):
    """Where everything lives under the work directory."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def context(self) -> Path:
        return self.root / "context"

    @property
    def docker_base_context(self) -> Path:
        return self.root / "docker-base"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def docker(self) -> Path:
        return self.root / "docker"

    @property
    def docker_socket(self) -> Path:
        return self.docker / "docker.sock"

    @property
    def transfers(self) -> Path:
        """Exported files, the OCI layout skopeo pushes, and each registry's storage."""
        return self.root / "transfers"


def log_file(paths: Paths, name: str) -> Path:
    paths.logs.mkdir(parents=True, exist_ok=True)
    return paths.logs / f"{name}.log"


def check_call(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
    """Run a setup command with its output appended to `log`; raise BenchError on failure."""
    with open(log, "a") as out:
        out.write(f"$ {shlex.join(argv)}\n")
        out.flush()
        status = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise BenchError(f"{shlex.join(argv)} exited with {status}; see {log}")


def timed_run(
    argv: Sequence[str], log: Path, env: dict[str, str], cwd: Path | None = None
) -> tuple[float, str]:
    """Time `argv` as one process; return its wall seconds and its output (stdout and stderr,
    also appended to `log`). Raise BenchError on failure."""
    started = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seconds = time.perf_counter() - started
    with open(log, "a") as out:
        out.write(f"$ {shlex.join(argv)}\n{proc.stdout}")
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} exited with {proc.returncode}; see {log}")
    return seconds, proc.stdout


def apt_get_install(paths: Paths, package: str, *programs: str) -> None:
    """Install `package` with apt-get unless every one of `programs` is there already."""
    if all(os.path.exists(program) for program in programs):
        return
    print(f"Installing {package} with apt-get ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = log_file(paths, "apt-get")
    check_call(["apt-get", "update", "-q"], log, env=env)
    check_call(["apt-get", "install", "-y", "-q", package], log, env=env)


# ---- imagewright -------------------------------------------------------------------------------


class Imagewright:
    """imagewright's CLI on a private store ($IMAGEWRIGHT_HOME under the work directory)."""

    name = "imagewright"

    def __init__(self, paths: Paths, executable: str):
        self.paths = paths
        self.executable = executable
        self.base_id = ""

    def _env(self, extra: str | None = None) -> dict[str, str]:
        env = {**os.environ, "IMAGEWRIGHT_HOME": str(self.paths.home)}
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
                env=self._env(extra),
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
        return timed_run([self.executable, *args], log, self._env(), cwd=self.paths.context)

    def reset(self) -> None:
        """Forget every image but the base, prune unused layers and empty the package caches."""
        records = json.loads(self._cli_output("images", "--json"))
        for record in records:
            if record["image_id"] != self.base_id:
                (self.paths.home / "images" / f"{record['key']}.json").unlink()
        check_call(
            [self.executable, "prune", "--caches"],
            log_file(self.paths, "imagewright-setup"),
            env=self._env(),
        )

    def _cli_output(self, *args: str) -> str:
        """Run an untimed imagewright command and return its stdout (progress goes to a log)."""
        log = log_file(self.paths, "imagewright-setup")
        with open(log, "a") as err:
            err.write(f"$ imagewright {shlex.join(args)}\n")
            err.flush()
            proc = subprocess.run(
                [self.executable, *args],
                cwd=self.paths.context,
                env=self._env(),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        if proc.returncode != 0:
            raise BenchError(f"imagewright {args[0]} exited with {proc.returncode}; see {log}")
        return proc.stdout

    def prepare_base(self) -> dict[str, object]:
        """Build the base image (cached after the first run); return its OCI config."""
        outcome = json.loads(self._cli_output("build", f"{WORKLOAD_FILE}::base", "--json"))
        self.base_id = str(outcome["image_id"])
        for record in json.loads(self._cli_output("images", "--json")):
            if record["image_id"] == self.base_id:
                return dict(record["config"])
        raise BenchError(f"the base image {self.base_id} is not in `imagewright images`")

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
                env=self._env(),
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


# ---- Docker BuildKit ---------------------------------------------------------------------------


class BuildKit:
    """`docker build` with BuildKit against the private engine."""

    name = "BuildKit"

    def __init__(self, paths: Paths, env: dict[str, str], workload: ModuleType, base_ref: str):
        self.paths = paths
        self.env = env
        self.workload = workload
        self.base_ref = base_ref

    def build(self, image: str, extra: str | None = None) -> Outcome:
        dockerfile = self.paths.context / f"Dockerfile.{image}"
        dockerfile.write_text(dockerfile_for(image, self.workload, self.base_ref, extra))
        argv = [DOCKER, "build", "--network=host", "--progress=plain", "-f", str(dockerfile)]
        argv += ["-t", f"{PREFIX}/{image}", str(self.paths.context)]
        started = time.perf_counter()
        proc = subprocess.run(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
        output = proc.stdout.decode("utf-8", "replace")
        log = log_file(self.paths, f"buildkit-{image}")
        with open(log, "a") as out:
            out.write(f"$ {shlex.join(argv)}\n{output}")
        if proc.returncode != 0:
            raise BenchError(f"docker build of {image} exited with {proc.returncode}; see {log}")
        return Outcome(seconds, buildkit_steps_run(output))

    def reset(self) -> None:
        """Remove the images built here and all build cache, cache mounts included."""
        log = log_file(self.paths, "buildkit-setup")
        listed = subprocess.run(
            [DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}}", f"{PREFIX}/*"],
            env=self.env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout.split()
        built = [r for r in listed if not r.startswith((f"{PREFIX}/base:", f"{PREFIX}/rootfs:"))]
        if built:
            check_call([DOCKER, "image", "rm", "-f", *built], log, env=self.env)
        check_call([DOCKER, "builder", "prune", "-af"], log, env=self.env)


def buildkit_steps_run(output: str) -> int:
    """How many RUN and COPY steps BuildKit executed rather than took from its cache."""
    steps = set(re.findall(r"^#(\d+) \[[^\]]*\] (?:RUN|COPY) ", output, re.MULTILINE))
    cached = set(re.findall(r"^#(\d+) CACHED$", output, re.MULTILINE))
    return len(steps - cached)


def dockerfile_for(image: str, w: ModuleType, base_ref: str, extra: str | None) -> str:
    """The Dockerfile doing what images.py::`image` does, command for command."""
    lines = [f"FROM {base_ref}"]
    if image == "small":
        lines += [apt_run(w.SMALL_APT_PACKAGES), uv_run(w.SMALL_UV_PACKAGES)]
        lines += [f"ENV {k}={v}" for k, v in w.SMALL_ENV.items()]
        lines += [f"RUN {command}" for command in w.SMALL_COMMANDS]
        return "\n".join(lines) + "\n"
    packages = (
        (*w.UV_PACKAGES, extra or w.EXTRA_PACKAGE) if image == "data_extra" else w.UV_PACKAGES
    )
    lines += [apt_run(w.APT_PACKAGES), uv_run(packages)]
    if image == "data_config":
        lines.append("COPY {} {}".format(*w.CONFIG_FILE))
    return "\n".join(lines) + "\n"


def apt_run(packages: Sequence[str]) -> str:
    # imagewright bind-mounts its apt cache on /var/cache/apt/archives: the .debs stay out of
    # the layer and are reused; a cache mount does the same for Docker.
    return (
        "RUN --mount=type=cache,target=/var/cache/apt/archives,sharing=locked "
        f"apt-get update && apt-get install -y {shlex.join(packages)}"
    )


def uv_run(packages: Sequence[str]) -> str:
    # imagewright's uv_pip_install command, with the packages sorted as it sorts them
    quoted = " ".join(shlex.quote(p) for p in sorted(packages))
    return (
        "RUN --mount=type=cache,target=/root/.cache/uv "
        f"/.uv/uv pip install --python $(command -v python) --compile-bytecode {quoted}"
    )


def prepare_docker_base(
    paths: Paths, env: dict[str, str], iw: Imagewright, config: dict[str, object]
) -> str:
    """Import imagewright's base into Docker (once per base), adding uv and the host CA bundle.

    Returns the image reference to build FROM.
    """
    tag = iw.base_id.removeprefix("im-")
    ref = f"{PREFIX}/base:{tag}"
    present = subprocess.run(
        [DOCKER, "image", "inspect", ref],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if present.returncode == 0:
        return ref
    log = log_file(paths, "buildkit-setup")
    rootfs_tar = paths.root / f"rootfs-{tag}.tar"
    iw.export_base(rootfs_tar)
    changes = [f"ENV {item}" for item in config.get("Env", [])]  # type: ignore[union-attr]
    if config.get("Cmd"):
        changes.append(f"CMD {json.dumps(config['Cmd'])}")
    argv = [DOCKER, "import", *(f"--change={c}" for c in changes), str(rootfs_tar)]
    check_call([*argv, f"{PREFIX}/rootfs:{tag}"], log, env=env)
    rootfs_tar.unlink()
    # imagewright bind-mounts uv and the host CA bundle into build steps; Docker gets copies.
    ctx = paths.docker_base_context
    ctx.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv", path=str(Path(iw.executable).parent))
    if uv is None:
        raise BenchError(f"no uv next to {iw.executable}: install imagewright's dependencies")
    shutil.copy2(uv, ctx / "uv")
    shutil.copy2(CA_BUNDLE, ctx / "ca-certificates.crt")
    (ctx / "Dockerfile").write_text(
        f"FROM {PREFIX}/rootfs:{tag}\n"
        "COPY uv /.uv/uv\n"
        f"COPY ca-certificates.crt {CA_BUNDLE}\n"
        f"ENV SSL_CERT_FILE={CA_BUNDLE} UV_LINK_MODE=copy\n"
    )
    check_call([DOCKER, "build", "--network=host", "-t", ref, str(ctx)], log, env=env)
    return ref


# ---- function calls ----------------------------------------------------------------------------


class Caller(Protocol):
    """What a function-call scenario needs from each side. Every timing follows one warm-up."""

    name: str

    def prepare(self) -> None:
        """Build the data image the functions run in (untimed; cached after the first time)."""

    def remote(self, function: str, calls: int) -> list[float]:
        """Wall seconds of each of `calls` calls of `function` (ident or square)."""

    def map(self, inputs: int, calls: int) -> list[float]:
        """Wall seconds of each of `calls` runs of ident over `inputs` inputs."""


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
                env=self.iw._env(),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        if proc.returncode != 0:
            raise BenchError(f"{CALLS_FILE} {mode} {what} exited with {proc.returncode}; see {log}")
        return [float(s) for s in json.loads(proc.stdout.splitlines()[-1])]


class DockerRun:
    """`docker run --rm IMAGE python -c CODE` per call, on the data image BuildKit built."""

    name = "docker run"

    def __init__(self, buildkit: BuildKit):
        self.buildkit = buildkit
        self.ref = f"{PREFIX}/data"

    def prepare(self) -> None:
        self.buildkit.build("data")

    def remote(self, function: str, calls: int) -> list[float]:
        code = DOCKER_CODE[function]
        self._run(code.format(x=0), EXPECTED[function](0))
        return [self._run(code.format(x=x), EXPECTED[function](x)) for x in range(1, calls + 1)]

    def map(self, inputs: int, calls: int) -> list[float]:
        code = DOCKER_MAP_CODE.format(n=inputs)
        expected = sum(range(inputs))
        self._run(code, expected)
        return [self._run(code, expected) for _ in range(calls)]

    def _run(self, code: str, expected: int) -> float:
        """Time one container running `code`, which must print `expected`."""
        argv = [DOCKER, "run", "--rm", "--network=host", self.ref, "python", "-c", code]
        started = time.perf_counter()
        proc = subprocess.run(
            argv, env=self.buildkit.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0 or proc.stdout.strip() != str(expected):
            log = log_file(self.buildkit.paths, "docker-run")
            with open(log, "a") as out:
                out.write(f"$ {shlex.join(argv)}\n{proc.stdout}")
            raise BenchError(
                f"docker run exited with {proc.returncode} without printing {expected}; see {log}"
            )
        return seconds


# ---- the private Docker engine -----------------------------------------------------------------


def docker_env(paths: Paths) -> dict[str, str]:
    return {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": f"unix://{paths.docker_socket}"}


@contextlib.contextmanager
def docker_engine(paths: Paths) -> Iterator[dict[str, str]]:
    """A dockerd answering on our socket: the running one, or one started here and stopped after."""
    env = docker_env(paths)
    if os.path.exists(DOCKER) and answers(env):
        yield env
        return
    apt_get_install(paths, "docker.io", DOCKERD, DOCKER)
    paths.docker.mkdir(parents=True, exist_ok=True)
    with dockerd(paths.docker, PREFIX, log_file(paths, "dockerd")) as env:
        yield env


# ---- private registries ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def registry(root: Path, log: Path) -> Iterator[tuple[str, Path]]:
    """A docker-registry on 127.0.0.1 with empty storage under `root`; yields (host:port, its
    storage). At the end, also after a failure, it is stopped and `root` removed."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: info}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    with open(log, "a") as out:
        server = subprocess.Popen(
            [DOCKER_REGISTRY, "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_registry(port, server, log)
        yield f"127.0.0.1:{port}", root / "data"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


def wait_for_registry(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), opener.open(f"http://127.0.0.1:{port}/v2/", timeout=2):
            return  # 200: urllib raises HTTPError, an OSError, for anything else
        if server.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"docker-registry did not come up; see {log}")
        time.sleep(0.1)


def stored_bytes(storage: Path) -> int:
    """Bytes of all blobs (layers, config and manifest) in a docker-registry's storage."""
    blobs = storage.glob("docker/registry/v2/blobs/sha256/*/*/data")
    return sum(blob.stat().st_size for blob in blobs)


# ---- scenarios ---------------------------------------------------------------------------------

Samples = dict[str, list[Outcome]]


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
                f"  {b.name:<11} {i + 1}/{repeat}: {outcome.seconds:7.3f} s "
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
}


class CallRow(NamedTuple):
    """One row of the function-call table: wall seconds per call, or per input, on each side."""

    key: str  # the scenario
    title: str
    imagewright: list[float]
    docker: list[float]  # empty with --skip-docker
    target: float | None = None  # imagewright's median should stay under this


def timed(caller: Caller, what: str, run: Callable[[Caller], list[float]]) -> list[float]:
    """`run(caller)`, reported on stderr as it finishes."""
    seconds = run(caller)
    print(f"  {caller.name:<11} {what}: {milliseconds_cell(seconds)} ms", file=sys.stderr)
    return seconds


def side_by_side(
    iw: Caller, docker: Caller | None, what: str, run: Callable[[Caller], list[float]]
) -> tuple[list[float], list[float]]:
    """`run` imagewright, then Docker (unless --skip-docker)."""
    ours = timed(iw, what, run)
    return ours, [] if docker is None else timed(docker, what, run)


def run_remote(iw: Caller, docker: Caller | None, calls: int) -> list[CallRow]:
    def row(function: str, title: str, target: float | None) -> CallRow:
        ours, theirs = side_by_side(
            iw, docker, f"{function}, per call", lambda c: c.remote(function, calls)
        )
        return CallRow("remote", title, ours, theirs, target)

    return [
        row("ident", "warm `.remote()` round trip, trivial `ident`", REMOTE_TARGET_SECONDS),
        row("square", "warm `.remote()` round trip, numpy `square`", None),
    ]


def run_map(iw: Caller, docker: Caller | None, calls: int) -> list[CallRow]:
    def per_input(caller: Caller) -> list[float]:
        return [seconds / MAP_INPUTS for seconds in caller.map(MAP_INPUTS, calls)]

    ours, loop = side_by_side(iw, docker, f"ident, per input of {MAP_INPUTS:,}", per_input)
    title = f"per input, `.map(ident)` over {MAP_INPUTS:,} inputs"
    rows = [
        CallRow("map", f"{title}; Docker: one `docker run` looping", ours, loop, MAP_TARGET_SECONDS)
    ]
    if docker is not None:  # a `docker run` per input costs what one `.remote()` round trip does
        per_run = timed(docker, "ident, per run of one input", lambda c: c.remote("ident", calls))
        rows.append(CallRow("map", f"{title}; Docker: one `docker run` per input", ours, per_run))
    return rows


class CallScenario(NamedTuple):
    title: str
    run: Callable[[Caller, Caller | None, int], list[CallRow]]  # (imagewright, Docker, calls)


CALL_SCENARIOS = {
    "remote": CallScenario("warm .remote() round trip: ident, numpy square", run_remote),
    "map": CallScenario(f"cost per input of .map(ident) over {MAP_INPUTS:,} inputs", run_map),
}


class TransferRow(NamedTuple):
    """One row of the export and push table: wall seconds per run on each side, and sizes."""

    key: str  # the scenario
    title: str
    imagewright: list[float]
    peer: str  # the command imagewright is measured against
    theirs: list[float]  # empty when the peer was skipped
    sizes: str  # MB written (export) or stored (push): imagewright's / the peer's


def show(name: str, what: str, i: int, repeat: int, seconds: float) -> None:
    print(f"  {name:<11} {what} {i + 1}/{repeat}: {seconds:7.3f} s", file=sys.stderr)


def megabytes(size: int | None) -> str:
    return "–" if size is None else f"{size / 1e6:.0f}"


def export_summary(output: str) -> tuple[int, str]:
    """The number of layers and the manifest digest `imagewright export` reports."""
    found = re.search(r"(\d+) layers\): manifest (sha256:[0-9a-f]{64})", output)
    if found is None:
        raise BenchError(f"imagewright export printed no summary: {output[-300:]!r}")
    return int(found.group(1)), found.group(2)


EXPORT_FORMATS = {"docker": "docker-archive", "oci": "OCI layout tar"}
EXPORT_ATTEMPTS = {
    "first": "blob store empty (every layer blob made)",
    "second": "layer blobs stored (copied into the tar)",
}


def imagewright_export(
    iw: Imagewright, dest: Path, fmt: str, compression: str, first: bool
) -> float:
    """Time one `imagewright export` to `dest`; it must make every layer blob when `first` and
    none otherwise (a failed check raises BenchError)."""
    dest.unlink(missing_ok=True)
    seconds, output = iw.timed(
        "export", f"{WORKLOAD_FILE}::{TRANSFER_IMAGE}", "-o", str(dest), "--format", fmt,
        "--compression", compression,
    )  # fmt: skip
    layers, _ = export_summary(output)
    made = output.count("Compressing layer")  # printed before each layer blob is made
    expected = layers if first else 0
    if made != expected:
        log = log_file(iw.paths, "imagewright-export")
        raise BenchError(
            f"export {fmt} {compression}: {made} layer blobs made, expected {expected}; see {log}"
        )
    return seconds


def run_export(iw: Imagewright, buildkit: BuildKit | None, repeat: int) -> list[TransferRow]:
    work = iw.paths.transfers / "export"
    work.mkdir(parents=True, exist_ok=True)
    iw.build(TRANSFER_IMAGE)  # untimed, usually cached, as is BuildKit's build below
    if buildkit is not None:
        buildkit.build(TRANSFER_IMAGE)
    keys = [(f, c, a) for f, c in EXPORT_VARIANTS for a in ATTEMPTS]
    ours: dict[tuple[str, str, str], list[float]] = {k: [] for k in keys}
    sizes: dict[tuple[str, str], int] = {}
    saves: list[float] = []
    save_size = None
    try:
        for i in range(repeat):
            for fmt, compression, attempt in keys:
                if attempt == "first":  # no layer blob stored (docker and OCI share gzip ones)
                    shutil.rmtree(iw.paths.home / "blobs", ignore_errors=True)
                dest = work / f"imagewright-{fmt}-{compression}.tar"
                seconds = imagewright_export(iw, dest, fmt, compression, attempt == "first")
                ours[fmt, compression, attempt].append(seconds)
                sizes[fmt, compression] = dest.stat().st_size
                show(iw.name, f"{fmt} {compression} {attempt}", i, repeat, seconds)
            if buildkit is not None:
                dest = work / "docker-save.tar"
                dest.unlink(missing_ok=True)
                argv = [DOCKER, "save", "-o", str(dest), f"{PREFIX}/{TRANSFER_IMAGE}"]
                seconds, _ = timed_run(argv, log_file(iw.paths, "docker-save"), buildkit.env)
                saves.append(seconds)
                save_size = dest.stat().st_size
                show("docker save", "uncompressed", i, repeat, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        TransferRow(
            "export",
            f"{EXPORT_FORMATS[fmt]}, {compression}: {EXPORT_ATTEMPTS[attempt]}",
            ours[fmt, compression, attempt],
            "docker save",
            saves,
            f"{megabytes(sizes[fmt, compression])} / {megabytes(save_size)}",
        )
        for fmt, compression, attempt in keys
    ]


class PushCheck(NamedTuple):
    """What every push of the scenario must do: send the image's layers and config."""

    layers: int
    manifest: str  # the digest the export reported, which both pushes must give

    def blobs_there(self, attempt: str) -> int:
        return 0 if attempt == "first" else self.layers + 1  # + the config


def imagewright_push(iw: Imagewright, address: str, check: PushCheck, attempt: str) -> float:
    """Time one `imagewright push`; a failed check raises BenchError."""
    source = f"{WORKLOAD_FILE}::{TRANSFER_IMAGE}"
    seconds, output = iw.timed("push", source, f"{address}/bench:{PUSH_TAG}")
    there = check.blobs_there(attempt)
    sent = check.layers + 1 - there
    expected = f"{check.manifest} ({sent} blob(s) sent, 0 mounted, {there} already there)"
    if expected not in output:
        raise BenchError(f"imagewright push {attempt}: expected `{expected}` in {output!r}")
    return seconds


def skopeo_push(paths: Paths, layout: Path, address: str, check: PushCheck, attempt: str) -> float:
    """Time one `skopeo copy` of the OCI layout; a failed check raises BenchError."""
    digest_file = layout.with_name("skopeo-digest")
    argv = [SKOPEO, "copy", "--dest-tls-verify=false", "--digestfile", str(digest_file)]
    argv += [f"oci:{layout}:{PUSH_TAG}", f"docker://{address}/bench2:{PUSH_TAG}"]
    seconds, _ = timed_run(argv, log_file(paths, "skopeo"), dict(os.environ))
    pushed = digest_file.read_text().strip()
    if pushed != check.manifest:
        raise BenchError(f"skopeo copy {attempt}: manifest {pushed}, expected {check.manifest}")
    return seconds


def uploads_started(registry_log: Path, since: int) -> int:
    """Blob uploads (POST .../blobs/uploads/) the registry logged after byte `since` of its log."""
    with open(registry_log) as f:
        f.seek(since)
        return len(re.findall(r'"POST /v2/[^ ]*/blobs/uploads/', f.read()))


def run_push(iw: Imagewright, _buildkit: BuildKit | None, repeat: int) -> list[TransferRow]:
    apt_get_install(iw.paths, "docker-registry", DOCKER_REGISTRY)
    apt_get_install(iw.paths, "skopeo", SKOPEO)
    work = iw.paths.transfers / "push"
    shutil.rmtree(work, ignore_errors=True)
    layout = work / "layout"
    # Untimed: stores the gzip blobs `imagewright push` sends and writes the layout skopeo
    # sends (links to those blobs), so both push the same bytes under the same manifest.
    exported = iw._cli_output(
        "export", f"{WORKLOAD_FILE}::{TRANSFER_IMAGE}", "-o", str(layout), "--format", "oci",
        "--compression", "gzip", "--tag", f"{PREFIX}/{TRANSFER_IMAGE}:{PUSH_TAG}",
    )  # fmt: skip
    check = PushCheck(*export_summary(exported))
    pushes: dict[str, Callable[[str, str], float]] = {
        "imagewright": lambda address, attempt: imagewright_push(iw, address, check, attempt),
        "skopeo": lambda address, attempt: skopeo_push(iw.paths, layout, address, check, attempt),
    }
    times: dict[tuple[str, str], list[float]] = {(s, a): [] for s in pushes for a in ATTEMPTS}
    stored: dict[str, int] = {}
    try:
        for i in range(repeat):
            for side, push in pushes.items():  # each into its own empty registry
                log = log_file(iw.paths, f"registry-{side}")
                with registry(work / f"registry-{side}", log) as (address, storage):
                    for attempt in ATTEMPTS:
                        since = log.stat().st_size
                        times[side, attempt].append(push(address, attempt))
                        show(side, f"push {attempt}", i, repeat, times[side, attempt][-1])
                        expected = check.layers + 1 - check.blobs_there(attempt)
                        if uploads_started(log, since) != expected:
                            raise BenchError(
                                f"{side} push {attempt}: {uploads_started(log, since)} blob "
                                f"uploads, expected {expected}; see {log}"
                            )
                    stored[side] = stored_bytes(storage)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if stored["imagewright"] != stored["skopeo"]:
        raise BenchError(f"push: the two registries hold different numbers of bytes: {stored}")
    sizes = f"{megabytes(stored['imagewright'])} / {megabytes(stored['skopeo'])}"
    titles = {
        "first": "empty registry (every blob uploaded)",
        "second": "again (every blob there: HEAD checks, manifest)",
    }
    return [
        TransferRow(
            "push",
            titles[a],
            times["imagewright", a],
            "skopeo copy",
            times["skopeo", a],
            sizes,
        )
        for a in ATTEMPTS
    ]


class TransferScenario(NamedTuple):
    title: str
    run: Callable[[Imagewright, BuildKit | None, int], list[TransferRow]]  # (.., .., repeat)


TRANSFER_SCENARIOS = {
    "export": TransferScenario(
        "export of the data image (docker gzip and none, OCI gzip and zstd; empty and full "
        "blob store) against docker save",
        run_export,
    ),
    "push": TransferScenario(
        "push of the data image to an empty docker-registry, then again, against skopeo copy",
        run_push,
    ),
}


# ---- report ------------------------------------------------------------------------------------


def command_output(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return "n/a"
    return proc.stdout.decode().strip() if proc.returncode == 0 else "n/a"


def source_revision() -> str:
    """The commit the measured source comes from, and whether src/ differs from it."""
    git = ["git", "-C", str(REPO)]
    commit = command_output([*git, "rev-parse", "--short", "HEAD"])
    changed = command_output([*git, "status", "--porcelain", "--", "src", "pyproject.toml"])
    return f"git {commit}" + (" with uncommitted changes in src/" if changed else "")


def machine_facts(iw: Imagewright, env: dict[str, str] | None) -> list[tuple[str, str]]:
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    docker = "skipped"
    if env is not None:
        server = command_output([DOCKER, "version", "--format", "{{.Server.Version}}"], env)
        docker = f"{server} (`{DOCKER}`, BuildKit, overlay2, runc)"
    return [
        ("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("cpus", f"{os.cpu_count()} ({cpu.group(1) if cpu else 'unknown model'})"),
        ("memory", f"{mem_kib / 2**20:.1f} GiB"),
        ("kernel", platform.release()),
        ("os", command_output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])),
        ("imagewright", f"{command_output([iw.executable, '--version'])}, {source_revision()}"),
        ("docker server", docker),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


def seconds_cell(times: list[float]) -> str:
    if not times:
        return "–"
    return f"{statistics.median(times):.3f} (min {min(times):.3f})"


def milliseconds(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def milliseconds_cell(seconds: list[float]) -> str:
    if not seconds:
        return "–"
    return f"{milliseconds(statistics.median(seconds))} (min {milliseconds(min(seconds))})"


def build_table(
    results: dict[str, Samples], repeats: dict[str, int], warnings: list[str]
) -> list[str]:
    lines = ["| scenario | runs | imagewright s, median (min) | BuildKit s, median (min) |"]
    lines[0] += " BuildKit / imagewright |"
    lines.append("|---|---|---|---|---|")
    for key, samples in results.items():
        scenario = SCENARIOS[key]
        ours = [o.seconds for o in samples.get("imagewright", [])]
        theirs = [o.seconds for o in samples.get("BuildKit", [])]
        ratio = "–"
        if ours and theirs:
            ratio = f"{statistics.median(theirs) / statistics.median(ours):.2f}"
        lines.append(
            f"| {key}: {scenario.title} | {repeats[key]} | {seconds_cell(ours)} "
            f"| {seconds_cell(theirs)} | {ratio} |"
        )
        for name, outcomes in samples.items():
            odd = [o.steps_run for o in outcomes if o.steps_run != scenario.steps_run]
            if odd:
                warnings.append(
                    f"{key}/{name}: expected {scenario.steps_run} step(s) to run, saw {odd}"
                )
        if key == "small" and ours:
            median = statistics.median(ours)
            verdict = "met" if median < SMALL_TARGET_SECONDS else "NOT met"
            warnings.append(f"small: target < {SMALL_TARGET_SECONDS} s for imagewright {verdict}")
    return lines


def call_table(rows: list[CallRow], warnings: list[str]) -> list[str]:
    lines = ["| function calls | runs | imagewright ms, median (min) |"]
    lines[0] += " docker run ms, median (min) | docker run / imagewright |"
    lines.append("|---|---|---|---|---|")
    for row in rows:
        ratio = "–"
        if row.imagewright and row.docker:
            ratio = f"{statistics.median(row.docker) / statistics.median(row.imagewright):.2f}"
        lines.append(
            f"| {row.key}: {row.title} | {len(row.imagewright)} "
            f"| {milliseconds_cell(row.imagewright)} | {milliseconds_cell(row.docker)} | {ratio} |"
        )
        if row.target is not None:
            median = statistics.median(row.imagewright)
            verdict = "met" if median < row.target else "NOT met"
            warnings.append(
                f"{row.key}: target < {row.target * 1000:g} ms for imagewright {verdict} "
                f"(median {milliseconds(median)} ms)"
            )
    return lines


def transfer_table(rows: list[TransferRow]) -> list[str]:
    lines = ["| export and push | runs | imagewright s, median (min) | against |"]
    lines[0] += " their s, median (min) | they / imagewright | MB, imagewright / they |"
    lines.append("|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = "–"
        if row.imagewright and row.theirs:
            ratio = f"{statistics.median(row.theirs) / statistics.median(row.imagewright):.2f}"
        lines.append(
            f"| {row.key}: {row.title} | {len(row.imagewright)} "
            f"| {seconds_cell(row.imagewright)} | {row.peer} | {seconds_cell(row.theirs)} "
            f"| {ratio} | {row.sizes} |"
        )
    return lines


def report(
    results: dict[str, Samples],
    call_rows: list[CallRow],
    transfer_rows: list[TransferRow],
    facts: list[tuple[str, str]],
    repeats: dict[str, int],
) -> str:
    warnings: list[str] = []
    lines: list[str] = []
    if results:
        lines += [*build_table(results, repeats, warnings), ""]
    if call_rows:
        lines += [*call_table(call_rows, warnings), ""]
    if transfer_rows:
        lines += [*transfer_table(transfer_rows), ""]
    lines += ["Machine:", ""]
    lines += [f"- {label}: {value}" for label, value in facts]
    lines.append(f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if warnings:
        lines += ["", "Notes:", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines)


# ---- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure imagewright against Docker on the same builds (BuildKit) and "
        "function calls (docker run), and its export and push against docker save and skopeo "
        "copy, and print markdown tables (median and minimum wall time per build, call, mapped "
        "input, export or push). Run as root.",
        epilog="Scenarios: "
        + "; ".join(
            f"{k} = {s.title}"
            for k, s in [*SCENARIOS.items(), *CALL_SCENARIOS.items(), *TRANSFER_SCENARIOS.items()]
        )
        + ". Logs go to WORKDIR/logs.",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, *CALL_SCENARIOS, *TRANSFER_SCENARIOS],
        help="run only this scenario (repeatable; default: all, in the order listed)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=10,
        help="builds per fast scenario and builder, and timed calls (or maps) per function and "
        "side in remote and map (default 10)",
    )
    parser.add_argument(
        "--slow-repeat",
        type=int,
        default=2,
        help="builds per slow scenario (cold, uv-warm) and builder, and rounds of export and "
        "push (default 2)",
    )
    parser.add_argument(
        "--skip-docker",
        action="store_true",
        help="no dockerd: measure imagewright only (push still runs skopeo)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/var/tmp/imagewright-bench"),
        help="scratch space: IMAGEWRIGHT_HOME, Docker's data root, logs "
        "(default /var/tmp/imagewright-bench; delete it to start over)",
    )
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.slow_repeat < 1:
        parser.error("--repeat and --slow-repeat must be at least 1")
    return args


def load_workload(context: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_workload", context / WORKLOAD_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def imagewright_executable() -> str:
    beside = Path(sys.executable).with_name("imagewright")
    found = str(beside) if beside.exists() else shutil.which("imagewright")
    if found is None:
        raise BenchError("no imagewright command: run with the project's .venv/bin/python")
    return found


def measure(args: argparse.Namespace, paths: Paths, env: dict[str, str] | None) -> str:
    """Set up both builders, run the chosen scenarios, and return the report."""
    paths.context.mkdir(parents=True, exist_ok=True)
    for name in (WORKLOAD_FILE, CALLS_FILE):
        shutil.copy2(WORKLOADS / name, paths.context / name)
    (paths.context / "config.yaml").write_text("edit: 0\n")
    iw = Imagewright(paths, imagewright_executable())
    print("Preparing the base image ...", file=sys.stderr)
    base_config = iw.prepare_base()
    builders: list[Builder] = [iw]
    iw_calls = ImagewrightCalls(iw)
    buildkit: BuildKit | None = None
    docker_run: DockerRun | None = None
    if env is not None:
        base_ref = prepare_docker_base(paths, env, iw, base_config)
        buildkit = BuildKit(paths, env, load_workload(paths.context), base_ref)
        builders.append(buildkit)
        docker_run = DockerRun(buildkit)
    facts = machine_facts(iw, env)
    results: dict[str, Samples] = {}
    repeats: dict[str, int] = {}
    call_rows: list[CallRow] = []
    transfer_rows: list[TransferRow] = []
    for key in args.scenario or [*SCENARIOS, *CALL_SCENARIOS, *TRANSFER_SCENARIOS]:
        if key in TRANSFER_SCENARIOS:
            print(f"Scenario {key}: {TRANSFER_SCENARIOS[key].title}", file=sys.stderr)
            transfer_rows += TRANSFER_SCENARIOS[key].run(iw, buildkit, args.slow_repeat)
            continue
        if key in CALL_SCENARIOS:
            print(f"Scenario {key}: {CALL_SCENARIOS[key].title}", file=sys.stderr)
            iw_calls.prepare()
            if docker_run is not None:
                docker_run.prepare()
            call_rows += CALL_SCENARIOS[key].run(iw_calls, docker_run, args.repeat)
            continue
        scenario = SCENARIOS[key]
        repeats[key] = args.slow_repeat if scenario.slow else args.repeat
        print(f"Scenario {key}: {scenario.title}", file=sys.stderr)
        results[key] = scenario.run(builders, repeats[key], paths)
    return report(results, call_rows, transfer_rows, facts, repeats)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print(
            "benchmarks/run.py must run as root (builds use mounts and namespaces)", file=sys.stderr
        )
        return 2
    paths = Paths(args.workdir.resolve())
    try:
        with contextlib.ExitStack() as stack:
            env = None if args.skip_docker else stack.enter_context(docker_engine(paths))
            text = measure(args, paths, env)
    except (BenchError, DockerdError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Benchmark imagewright against Docker and Podman on the same work, side by side.

Scenarios (see benchmarks/README.md for what each includes; harness/scenarios/ for the code):

    cold       the seed's data-processing image on an already-built base, with empty layer
               caches and empty apt and uv package caches (downloads included)
    cached     a fully cached rebuild of that image
    copy-edit  the image plus a final copy of config.yaml, rebuilt after editing the file
    uv-warm    the uv layer rebuilt after adding one small package, package caches warm
    small      a fully cached rebuild of a 6-step image (imagewright's target: under 0.15 s)
    remote     a warm `.remote()` round trip on the data image, for a trivial function and one
               that imports numpy, against `docker run --rm` and `podman run --rm` doing the
               same (target: 0.1 s)
    map        the cost per input of `.map()` over 1,000 small inputs, against one `docker run`
               (and one `podman run`) looping over them and one per input (target: 5 ms)
    export     `imagewright export` of the data image as a docker-archive (gzip, then
               uncompressed) and as an OCI layout tar (zstd), each with an empty blob store and
               again with the blobs stored, against `docker save` of BuildKit's build of it
    push       `imagewright push` of the data image (gzip) to an empty docker-registry on
               127.0.0.1, then again with every blob there, against `skopeo copy` of the same
               blobs from an OCI layout to another empty docker-registry
    pull       a build of `Image.from_registry` of the data image from a docker-registry on
               127.0.0.1 into an empty store, against `podman pull` into an empty store

The build scenarios are timed against BuildKit and `podman build` of the same generated
Dockerfiles on the same base files. This file chooses the scenarios, sets up each side (a
private dockerd, a podman store made for the run, imagewright's base imported into both) and
prints the report. Everything lives under --workdir, with a separate IMAGEWRIGHT_HOME, so a
developer's store is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from harness.common import CALLS_FILE, WORKLOAD_FILE, WORKLOADS, BenchError, Paths
from harness.docker import buildkit, docker_engine, docker_run
from harness.engines import Builder, Caller
from harness.imagewright import Imagewright, ImagewrightCalls, base_rootfs, imagewright_executable
from harness.podman import podman_build, podman_run, podman_store
from harness.report import machine_facts, report
from harness.scenarios.builds import SCENARIOS, Samples
from harness.scenarios.calls import CALL_SCENARIOS, CallRow
from harness.scenarios.transfers import TRANSFER_SCENARIOS, Peers, TransferRow
from tests.integration.docker_helpers import DockerdError

ALL_SCENARIOS = [*SCENARIOS, *CALL_SCENARIOS, *TRANSFER_SCENARIOS]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    titles = {key: scenario.title for key, scenario in SCENARIOS.items()}
    titles |= {key: scenario.title for key, scenario in CALL_SCENARIOS.items()}
    titles |= {key: scenario.title for key, scenario in TRANSFER_SCENARIOS.items()}
    parser = argparse.ArgumentParser(
        description="Measure imagewright against Docker and Podman on the same builds (BuildKit, "
        "podman build) and function calls (docker run, podman run), and its export, push and "
        "pull against docker save, skopeo copy and podman pull, and print markdown tables "
        "(median and minimum wall time per build, call, mapped input, export, push or pull, "
        "and imagewright's time over each peer's). Run as root.",
        epilog="Scenarios: " + "; ".join(f"{k} = {title}" for k, title in titles.items()) + ". "
        "Logs go to WORKDIR/logs.",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=ALL_SCENARIOS,
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
        help="builds per slow scenario (cold, uv-warm) and builder, and rounds of export, push "
        "and pull (default 2)",
    )
    parser.add_argument(
        "--skip-docker",
        action="store_true",
        help="no dockerd: no BuildKit, docker run or docker save (push still runs skopeo)",
    )
    parser.add_argument(
        "--skip-podman",
        action="store_true",
        help="no Podman: no podman build, podman run or podman pull",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/var/tmp/imagewright-bench"),
        help="scratch space: IMAGEWRIGHT_HOME, Docker's data root, Podman's store, logs "
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


def measure(
    args: argparse.Namespace,
    paths: Paths,
    docker_env: dict[str, str] | None,
    podman_env: dict[str, str] | None,
) -> str:
    """Set up every side, run the chosen scenarios, and return the report."""
    paths.context.mkdir(parents=True, exist_ok=True)
    for name in (WORKLOAD_FILE, CALLS_FILE):
        shutil.copy2(WORKLOADS / name, paths.context / name)
    (paths.context / "config.yaml").write_text("edit: 0\n")
    iw = Imagewright(paths, imagewright_executable())
    print("Preparing the base image ...", file=sys.stderr)
    base_config = iw.prepare_base()
    builders: list[Builder] = [iw]
    peer_callers: list[Caller] = []
    peers = Peers(buildkit=None, podman=not args.skip_podman)
    workload = load_workload(paths.context)
    with base_rootfs(iw) as rootfs:  # made once if a peer lacks the base, deleted after
        if docker_env is not None:
            docker = buildkit(paths, docker_env, workload, iw, rootfs, base_config)
            builders.append(docker)
            peer_callers.append(docker_run(docker))
            peers = peers._replace(buildkit=docker)
        if podman_env is not None:
            print("Importing the base into Podman ...", file=sys.stderr)
            podman = podman_build(paths, podman_env, workload, iw, rootfs, base_config)
            builders.append(podman)
            peer_callers.append(podman_run(podman))
    facts = machine_facts(iw, docker_env, peers.podman)
    results: dict[str, Samples] = {}
    repeats: dict[str, int] = {}
    call_rows: list[CallRow] = []
    transfer_rows: list[TransferRow] = []
    iw_calls = ImagewrightCalls(iw)
    for key in args.scenario or ALL_SCENARIOS:
        if key in TRANSFER_SCENARIOS:
            print(f"Scenario {key}: {TRANSFER_SCENARIOS[key].title}", file=sys.stderr)
            transfer_rows += TRANSFER_SCENARIOS[key].run(iw, peers, args.slow_repeat)
            continue
        if key in CALL_SCENARIOS:
            print(f"Scenario {key}: {CALL_SCENARIOS[key].title}", file=sys.stderr)
            for caller in [iw_calls, *peer_callers]:
                caller.prepare()
            call_rows += CALL_SCENARIOS[key].run(iw_calls, peer_callers, args.repeat)
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
    chosen = args.scenario or ALL_SCENARIOS
    # Podman builds and runs in a store made for this run; pull makes its own stores.
    podman_needed = not args.skip_podman and any(
        key in SCENARIOS or key in CALL_SCENARIOS for key in chosen
    )
    try:
        with contextlib.ExitStack() as stack:
            docker_env = None if args.skip_docker else stack.enter_context(docker_engine(paths))
            podman_env = stack.enter_context(podman_store(paths.podman)) if podman_needed else None
            text = measure(args, paths, docker_env, podman_env)
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

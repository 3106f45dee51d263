"""Pulling a registry image into an empty store: imagewright against `podman pull`.

    python benchmarks/pull.py [--workdir DIR] [--rounds N]

The seed's data-processing image (`workloads/images.py::data`, about 390 MB of gzip layers)
is pushed once, untimed, with `imagewright push` to a docker-registry on 127.0.0.1. Then each
round, on an empty store each time:

- imagewright: `imagewright build pull.py`, where pull.py is `Image.from_registry(REF)`: the
  manifest and config, then every layer fetched (in parallel), its digest checked,
  decompressed and unpacked into the store;
- Podman (Debian's, runc and cgroupfs, overlay storage of its own): `podman pull
  --tls-verify=false REF`, which does the same into its storage.

It reuses run.py's work directory (the data image must be built there: `python
benchmarks/run.py --scenario cached --skip-docker` does it) and prints a markdown table with the
ratio of imagewright's time to Podman's (below 1, imagewright is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1] / "tests" / "integration"))
import run as harness  # (the harness's registry, work directory and machine facts)
from podman_helpers import podman_engine  # (Debian's podman, configured to run here)

TAG = "bench:pull"


@contextlib.contextmanager
def podman_store(root: Path) -> Iterator[dict[str, str]]:
    """An empty podman store under `root`, set up as the tests set one up, removed after."""
    shutil.rmtree(root, ignore_errors=True)
    try:
        with podman_engine(root) as env:
            yield env
    finally:
        shutil.rmtree(root, ignore_errors=True)


def timed(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    started = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.run(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise harness.BenchError(f"{argv[0]} {argv[1]} exited with {proc.returncode}; see {log}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/imagewright-bench"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    paths = harness.Paths(args.workdir.resolve())
    iw = harness.Imagewright(paths, str(Path(sys.executable).parent / "imagewright"))
    work = paths.transfers / "pull"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = harness.log_file(paths, "pull")
    ours: list[float] = []
    theirs: list[float] = []
    try:
        with harness.registry(work / "registry", harness.log_file(paths, "registry-pull")) as (
            address,
            _,
        ):
            ref = f"{address}/{TAG}"
            iw.timed("push", f"{harness.WORKLOAD_FILE}::{harness.TRANSFER_IMAGE}", ref)
            (work / "pull.py").write_text(
                f"import imagewright as modal\nimage = modal.Image.from_registry({ref!r})\n"
            )
            for i in range(args.rounds):
                home = work / "home"
                shutil.rmtree(home, ignore_errors=True)
                env = {**os.environ, "IMAGEWRIGHT_HOME": str(home)}
                argv = [iw.executable, "build", "pull.py"]
                ours.append(timed(argv, env, work, log))
                harness.show("imagewright", "pull into an empty store", i, args.rounds, ours[-1])
                shutil.rmtree(home, ignore_errors=True)
                with podman_store(work / "podman") as penv:
                    argv = ["podman", "pull", "--tls-verify=false", ref]
                    theirs.append(timed(argv, penv, work, log))
                harness.show("podman", "pull into an empty store", i, args.rounds, theirs[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    facts = harness.machine_facts(iw, None)
    print("\n" + "\n".join(f"- {name}: {value}" for name, value in facts))
    print("\n| row | imagewright | podman pull | ratio |\n|---|---:|---:|---:|")
    mine, peer = statistics.median(ours), statistics.median(theirs)
    print(f"| data image from a registry on 127.0.0.1 (s) | {mine:.2f} | {peer:.2f} | "
          f"{mine / peer:.2f} |")  # fmt: skip
    print("\nratio: imagewright's time over Podman's; below 1, imagewright is faster.")


if __name__ == "__main__":
    main()

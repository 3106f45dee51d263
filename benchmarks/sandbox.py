"""`modal.Sandbox` under imagewright against `docker run` / `docker exec` on the same image.

    python benchmarks/sandbox.py [--workdir DIR] [--rounds N]

imagewright builds `debian_slim(python_version="3.11")`, exports it as a docker-archive and
Docker loads it. Rows (medians over --rounds, image cached on both sides):

- create to first output: from `Sandbox.create("python3", "-c", "print('ready')")` (which
  checks the image's build cache, starts the keeper, the sandbox and, by default, slirp4netns)
  until its stdout's first line arrives; Docker: `docker run --rm` of the same command until
  its first line. This machine's Docker has no bridge (see benchmarks/serve.py), so Docker runs
  with `--network=none`; imagewright's row is given with its own network (the default) and with
  `block_network=True` (no network, as Docker's);
- exec to output: `sandbox.exec("echo", "hi")` in a running sandbox until its output has come
  and it has exited; Docker: `docker exec` in a running container.

Everything lives under --workdir (a store of its own, Docker's data); Docker is the harness's
private engine (harness/docker.py). Prints a markdown table with ratios (imagewright's time
over Docker's; below 1, imagewright is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness.common import Paths
from harness.docker import docker_engine
from harness.imagewright import Imagewright
from harness.report import machine_facts

TAG = "imagewright-bench/sandbox"
IMAGE_FILE = 'import imagewright as modal\nimage = modal.Image.debian_slim(python_version="3.11")\n'
COMMAND = ["python3", "-c", "print('ready')"]


def median_of(rounds: int, measure: Callable[[], float]) -> float:
    measure()  # untimed: warms the page cache and Python's imports
    return statistics.median(measure() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/imagewright-bench-sandbox"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "image.py").write_text(IMAGE_FILE)
    os.environ["IMAGEWRIGHT_HOME"] = str(workdir / "home")
    import imagewright as modal  # (after IMAGEWRIGHT_HOME is set)

    image = modal.Image.debian_slim(python_version="3.11")
    image.build()
    archive = workdir / "image.tar"
    subprocess.run(
        [sys.executable, "-m", "imagewright", "export", "image.py::image", "--format", "docker",
         "--tag", TAG, "-o", str(archive)],
        cwd=workdir, check=True, capture_output=True,
    )  # fmt: skip
    app = modal.App.lookup("bench-sandbox", create_if_missing=True)
    paths = Paths(workdir)
    with docker_engine(paths) as denv:
        subprocess.run(["docker", "load", "-i", str(archive)], env=denv, check=True,
                       capture_output=True)  # fmt: skip
        archive.unlink()

        def iw_first_output(block_network: bool) -> Callable[[], float]:
            def measure() -> float:
                started = time.monotonic()
                sandbox = modal.Sandbox.create(
                    *COMMAND, app=app, image=image, block_network=block_network
                )
                line = next(iter(sandbox.stdout))
                elapsed = time.monotonic() - started
                assert line == "ready\n", line
                sandbox.wait()
                return elapsed

            return measure

        def docker_first_output() -> float:
            started = time.monotonic()
            proc = subprocess.Popen(
                ["docker", "run", "--rm", "--network=none", TAG, *COMMAND],
                env=denv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            assert proc.stdout is not None
            line = proc.stdout.readline()
            elapsed = time.monotonic() - started
            assert line == b"ready\n", line
            proc.wait()
            return elapsed

        rows = [
            ("create to first output (s)", median_of(args.rounds, iw_first_output(False)),
             median_of(args.rounds, docker_first_output)),
            ("create to first output, no network (s)",
             median_of(args.rounds, iw_first_output(True)),
             median_of(args.rounds, docker_first_output)),
        ]  # fmt: skip

        sandbox = modal.Sandbox.create(app=app, image=image)
        name = "imagewright-bench-sandbox"
        subprocess.run(["docker", "run", "-d", "--rm", "--network=none", "--name", name, TAG,
                        "sleep", "600"], env=denv, check=True, capture_output=True)  # fmt: skip
        try:

            def iw_exec() -> float:
                started = time.monotonic()
                process = sandbox.exec("echo", "hi")
                assert process.stdout.read() == "hi\n"
                process.wait()
                return time.monotonic() - started

            def docker_exec() -> float:
                started = time.monotonic()
                out = subprocess.run(["docker", "exec", name, "echo", "hi"], env=denv,
                                     check=True, capture_output=True).stdout  # fmt: skip
                assert out == b"hi\n"
                return time.monotonic() - started

            rows.append(("exec to output (s)", median_of(args.rounds, iw_exec),
                         median_of(args.rounds, docker_exec)))  # fmt: skip
        finally:
            sandbox.terminate(wait=True)
            subprocess.run(["docker", "rm", "-f", name], env=denv, capture_output=True)
        facts = machine_facts(
            Imagewright(paths, str(Path(sys.executable).parent / "imagewright")), denv
        )

    print("\n" + "\n".join(f"- {name}: {value}" for name, value in facts))
    print("\n| row | imagewright | docker | ratio |\n|---|---:|---:|---:|")
    for row, iw_value, docker_value in rows:
        print(f"| {row} | {iw_value:.3g} | {docker_value:.3g} | {iw_value / docker_value:.2f} |")
    print("\nratio: imagewright's time over Docker's; below 1, imagewright is faster.")


if __name__ == "__main__":
    main()

"""`.map` on a Ray cluster against `.map` on this machine (issue 16).

    python benchmarks/cluster.py [--inputs N] [--sleeps N] [--workdir DIR]

Starts real Ray clusters on loopback (tests/integration/ray_helpers.py: a head on 127.0.0.2
and, for the two-node rows, a second node on 127.0.0.3, 2 CPUs each, each with an empty
imagewright store) and a docker-registry as the layer cache, then runs `benchmarks/cluster_app.py`
with `imagewright run` three ways: locally, on one node and on two. Each run prints, as JSON:

- the cost per input of a `.map` of N trivial inputs (`x -> x`), the start of its containers
  included, as a `.map` starts its own;
- the time to the first result of a `.map`, the start of its containers included (every node
  has the image by then: an untimed map before pulls it);
- the throughput of a sleep-bound function (0.5 s per input, N inputs): how it grows from one
  node to two.

Everything is on one 2-core machine, so the two "nodes" share its cores: the trivial map shows
Ray's overhead per input, and only the sleep-bound rows can show scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.ray_helpers import HEAD_IP, ray_cluster  # noqa: E402
from tests.integration.registry_helpers import registry  # noqa: E402

APP = Path(__file__).resolve().parent / "cluster_app.py"


def run(where: str, cache: str, cluster: str | None, inputs: int, sleeps: int) -> dict[str, float]:
    argv = [sys.executable, "-m", "imagewright", "run", "--cache-registry", cache, str(APP)]
    if cluster is not None:
        argv += ["--cluster", cluster]
    env = {**os.environ, "IMAGEWRIGHT_PROGRESS": "plain"}
    env.update({"BENCH_INPUTS": str(inputs), "BENCH_SLEEPS": str(sleeps)})
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{where}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    result: dict[str, float] = json.loads(line[len("BENCH ") :])
    print(f"{where}: {result} ({time.monotonic() - started:.0f} s in all)", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=2000, help="trivial inputs per map")
    parser.add_argument("--sleeps", type=int, default=24, help="0.5 s inputs per map")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch (default: a temp dir)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="iw-bench-cluster-"))
    for old in ("registry", "one", "two"):  # every node starts with an empty store
        shutil.rmtree(work / old, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, float]] = {}
    with registry(work / "registry") as address:
        cache = f"{address}/layers"
        rows["this machine"] = run("local", cache, None, args.inputs, args.sleeps)
        with ray_cluster(work / "two") as cluster:
            rows["2 nodes"] = run("2 nodes", cache, cluster.address, args.inputs, args.sleeps)
        # one node: the same cluster without its second node
        with ray_cluster(work / "one", nodes=1) as cluster:
            rows["1 node"] = run("1 node", cache, cluster.address, args.inputs, args.sleeps)
    local = rows["this machine"]
    print(f"\nMachine: {os.cpu_count()} cores; nodes on {HEAD_IP} and the next loopback address.")
    print(f"{args.inputs} trivial inputs, {args.sleeps} inputs of 0.5 s.\n")
    print("| where | per input | ratio to local | first result | sleep-bound inputs/s |")
    print("|---|---:|---:|---:|---:|")
    for where in ("this machine", "1 node", "2 nodes"):
        row = rows[where]
        print(
            f"| {where} | {row['per_input'] * 1000:.2f} ms | "
            f"{row['per_input'] / local['per_input']:.1f} | {row['first_result']:.2f} s | "
            f"{row['sleep_throughput']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

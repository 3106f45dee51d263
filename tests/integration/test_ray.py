"""Running an app's calls on a real Ray cluster: `imagewright run --cluster ray://...`.

One two-node cluster for the module (ray_helpers.py: a head on 127.0.0.2, a second node on
127.0.0.3, each with its own imagewright store), a docker-registry on loopback as the layer
cache, and a redis-server for Dicts. Every run is the CLI, as a user runs it; what the tests
check is what it prints and what is left on the nodes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import cli
from .ray_helpers import (
    NODE_IP,
    RayCluster,
    gpu_node,
    processes_using,
    ray_cluster,
    session_pids,
)
from .registry_helpers import registry

APP = """
import json, os, sys, time
import imagewright as modal


def say(*parts):  # one write per line: Ray's thread relaying container output prints too
    sys.stdout.write(" ".join(str(p) for p in parts) + "\\n")

app = modal.App("ray-test")
image = modal.Image.debian_slim(python_version="3.11")


@app.function(image=image)
def square(x):
    print(f"served {x}")
    return x * x


@app.function(image=image, max_containers=4)
def slow(x):
    print(f"served {x}")
    time.sleep(0.25)
    return x + 1000


@app.function(image=image)
def fails(x):
    if x == 3:
        raise ValueError(f"no {x}")
    return x


@app.function(image=image, timeout=2)
def sleeps(seconds):
    time.sleep(seconds)
    return seconds


@app.function(image=image, retries=modal.Retries(max_retries=2, initial_delay=0.0))
def flaky(marker):
    tries = modal.Dict.from_name("ray-test-tries", create_if_missing=True)
    tries[marker] = tries.get(marker, 0) + 1
    if tries[marker] < 3:
        raise RuntimeError("not yet")
    return tries[marker]


@app.function(image=image)
def counts(n):
    for i in range(n):
        yield i


@app.function(image=image)
def walls():
    import subprocess

    mount = subprocess.run(["mount", "-t", "tmpfs", "none", "/mnt"], capture_output=True)
    status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines())
    hosts = [k for k in os.environ if k.startswith(("IMAGEWRIGHT_HOME", "RAY_"))]
    return {"mount": mount.returncode, "caps": status["CapEff"].strip(), "host_env": hosts}


@app.function(image=image, gpu="any")
def on_any_gpu():
    return "gpu"


@app.function(image=image, gpu="T4")
def on_t4(x):
    print(f"on a T4 {x}")
    return x


@app.cls(image=image, max_containers=3)
class Counter:
    @modal.enter()
    def start(self):
        import uuid

        self.token = uuid.uuid4().hex
        entered = modal.Dict.from_name("ray-test-enters", create_if_missing=True)
        entered[self.token] = entered.get(self.token, 0) + 1

    @modal.method()
    def token_of(self, x):
        return self.token


@app.local_entrypoint()
def squares():
    say("RESULT", json.dumps(list(square.map(range(200)))))


@app.local_entrypoint()
def slow_map():
    say("RESULT", json.dumps(list(slow.map(range(int(os.environ.get("N", "60")))))))


@app.local_entrypoint()
def behaviour():
    out = list(fails.map(range(5), return_exceptions=True))
    say("RESULT map", [repr(x) if isinstance(x, Exception) else x for x in out])
    say("RESULT unordered", sorted(square.map([3, 1, 2], order_outputs=False)))
    try:
        fails.remote(3)
    except ValueError as exc:
        say("RESULT raised", type(exc).__name__, exc)
    try:
        sleeps.remote(30)
    except modal.exception.FunctionTimeoutError as exc:
        say("RESULT timeout", exc)
    say("RESULT retried", flaky.remote(str(time.time())))
    say("RESULT generator", list(counts.remote_gen(4)))
    say("RESULT spawned", square.spawn(12).get())
    say("RESULT starmap", list(square.starmap([(5,), (6,)])))
    say("RESULT walls", json.dumps(walls.remote()))


@app.local_entrypoint()
def enters():
    tokens = list(Counter().token_of.map(range(40)))
    entered = modal.Dict.from_name("ray-test-enters")
    say("RESULT", json.dumps({t: entered[t] for t in set(tokens)}))


@app.local_entrypoint()
def gpu():
    on_any_gpu.remote()


@app.local_entrypoint()
def t4():
    say("RESULT", json.dumps(list(on_t4.map(range(6)))))

"""


VOLUME_APP = """
import json, os, sys
import imagewright as modal

app = modal.App("ray-test-volume")
image = modal.Image.debian_slim(python_version="3.11")
shared = modal.Volume.from_name("ray-test-shared", create_if_missing=True)
secret = modal.Secret.from_dict({"TOKEN": "s3cr3t-on-node"})


@app.function(image=image, volumes={"/data": shared}, secrets=[secret])
def write(name):
    with open(f"/data/{name}", "w") as f:
        f.write(os.environ["TOKEN"][:2])
    return name


@app.local_entrypoint()
def volume():
    sys.stdout.write("RESULT " + json.dumps(sorted(write.map(["a", "b", "c", "d"]))) + "\\n")
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with ray_cluster(tmp_path_factory.mktemp("ray")) as started:
        yield started


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with registry(tmp_path_factory.mktemp("ray-registry")) as address:
        yield f"{address}/layers"


@pytest.fixture(scope="module")
def app_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray-app") / "ray_app.py"
    path.write_text(textwrap.dedent(APP))
    return path


@pytest.fixture
def env(redis_server: str) -> dict[str, str]:
    return {"IMAGEWRIGHT_REDIS_URL": redis_server}


def _run(
    app_file: Path, entry: str, cluster: RayCluster | None, cache: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    flags = ["--cluster", cluster.address] if cluster is not None else []
    return cli("run", "--cache-registry", cache, f"{app_file}::{entry}", *flags, env=env)


def _slow_map(
    app_file: Path, inputs: int, cluster: RayCluster, cache: str, env: dict[str, str], stderr: int
) -> subprocess.Popen[str]:
    """`imagewright run ...::slow_map --cluster ...` over `inputs` inputs, started, its output
    on a pipe to read as it comes."""
    argv = [sys.executable, "-m", "imagewright", "run", "--cache-registry", cache]
    argv += [f"{app_file}::slow_map", "--cluster", cluster.address]
    run_env = {**os.environ, **env, "IMAGEWRIGHT_PROGRESS": "plain", "N": str(inputs)}
    return subprocess.Popen(argv, env=run_env, stdout=subprocess.PIPE, stderr=stderr, text=True)


def _lines(output: str) -> list[str]:
    """The program's "RESULT ..." lines. Ray's thread relaying the containers' output writes
    its line and its newline apart, so one of ours may follow its text on the same line."""
    return [line[line.index("RESULT") :] for line in output.splitlines() if "RESULT" in line]


def _result(output: str) -> object:
    """The JSON of the line "RESULT ..."."""
    for line in _lines(output):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"no RESULT line in:\n{output}")


def _results(output: str) -> dict[str, str]:
    found = {}
    for line in _lines(output):
        key, _, value = line[len("RESULT ") :].partition(" ")
        found[key] = value
    return found


# A container's output line as Ray relays it: "(FUNCTION on NODE pid=N[, ip=NODE]) LINE",
# the prefix perhaps in color.
_RELAYED = r"^(?:\x1b\[\d+m)?\((\w+) on ([\d.]+) pid=\d+(?:, ip=[\d.]+)?\)(?:\x1b\[0m)? "


def _served_by(output: str) -> dict[str, list[int]]:
    """Which inputs each node served, from the containers' "served N" lines."""
    served: dict[str, list[int]] = {}
    for _, node, number in re.findall(_RELAYED + r"served (\d+)(?!\d)", output, re.MULTILINE):
        served.setdefault(node, []).append(int(number))
    return served


def test_map_over_two_nodes_matches_local_and_second_node_pulls(
    cluster: RayCluster, cache: str, app_file: Path, env: dict[str, str]
) -> None:
    local = _run(app_file, "squares", None, cache, env)
    assert local.returncode == 0, local.stderr
    remote = _run(app_file, "squares", cluster, cache, env)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    expected = _result(local.stdout)
    assert _result(remote.stdout) == expected == [x * x for x in range(200)]
    served = _served_by(remote.stdout)
    assert set(served) == {cluster.head.ip, cluster.node.ip}, served
    assert sorted(n for inputs in served.values() for n in inputs) == list(range(200))
    # the second node had an empty store: every layer came from the registry, no step ran
    ready = re.search(
        rf"^\[{re.escape(NODE_IP)}\] image ready in [\d.]+ s: (\d+) layer\(s\) pulled from the "
        r"cache registry, (\d+) step\(s\) run$",
        remote.stdout,
        re.MULTILINE,
    )
    assert ready is not None, remote.stdout
    assert int(ready.group(1)) >= 1 and int(ready.group(2)) == 0
    layers = list((cluster.node.home / "layers").iterdir())
    assert len(layers) >= int(ready.group(1))


def test_calls_behave_as_they_do_locally(
    cluster: RayCluster, cache: str, app_file: Path, env: dict[str, str]
) -> None:
    local = _run(app_file, "behaviour", None, cache, env)
    remote = _run(app_file, "behaviour", cluster, cache, env)
    assert local.returncode == remote.returncode == 0, remote.stdout + remote.stderr
    got, want = _results(remote.stdout), _results(local.stdout)
    timeout = got.pop("timeout")
    assert "timed out after 2 s" in timeout and timeout == want.pop("timeout")
    assert got == want
    assert got["map"] == "[0, 1, 2, \"ValueError('no 3')\", 4]"
    assert got["raised"] == "ValueError no 3"
    assert got["retried"] == "3"
    assert got["generator"] == "[0, 1, 2, 3]"
    # a node's container has the walls of a local one: no mount, the same capabilities, and
    # nothing of the node's environment
    walls = json.loads(got["walls"])
    assert walls["mount"] != 0 and walls["host_env"] == []


def test_class_enter_runs_once_per_actor(
    cluster: RayCluster, cache: str, app_file: Path, env: dict[str, str]
) -> None:
    # the switch as a variable this time
    result = _run(app_file, "enters", None, cache, {**env, "IMAGEWRIGHT_CLUSTER": cluster.address})
    assert result.returncode == 0, result.stdout + result.stderr
    entered = _result(result.stdout)
    assert 1 <= len(entered) <= 3  # max_containers=3 actors
    assert set(entered.values()) == {1}, entered


def test_a_killed_worker_loses_no_input(
    cluster: RayCluster, cache: str, app_file: Path, env: dict[str, str]
) -> None:
    proc = _slow_map(app_file, 80, cluster, cache, env, subprocess.PIPE)
    assert proc.stdout is not None
    lines = []
    killed: list[int] = []
    for line in proc.stdout:
        lines.append(line)
        if not killed and re.match(_RELAYED + "served", line) and f"on {NODE_IP} " in line:
            killed = session_pids(cluster.node, "ray::NodeContainer")
            assert killed, "no NodeContainer worker on the second node"
            os.kill(killed[0], signal.SIGKILL)
    proc.wait(timeout=300)
    output = "".join(lines)
    assert proc.returncode == 0, output + proc.stderr.read() if proc.stderr else output
    results = _result(output)
    assert results == [x + 1000 for x in range(80)]  # each input once, in order


def test_gpu_request_no_node_can_meet_is_a_clear_error(
    cluster: RayCluster, cache: str, app_file: Path, env: dict[str, str]
) -> None:
    started = time.monotonic()
    result = _run(app_file, "gpu", cluster, cache, env)
    assert result.returncode != 0
    assert "No node of the Ray cluster" in result.stderr and "gpu=ANY" in result.stderr
    assert time.monotonic() - started < 120


def test_a_gpu_function_lands_only_where_that_gpu_is(
    cluster: RayCluster, cache: str, app_file: Path, env: dict[str, str], tmp_path: Path
) -> None:
    with gpu_node(cluster, tmp_path) as node:
        result = _run(app_file, "t4", cluster, cache, env)
    # Every input ran where a GPU function may start: the other nodes refuse one (they lack
    # IMAGEWRIGHT_ALLOW_NO_GPU), which would have failed the map.
    assert result.returncode == 0, result.stdout + result.stderr
    assert _result(result.stdout) == list(range(6))
    # And the inputs' output names that node. Ray relays it asynchronously and may drop the
    # last lines when the program ends, so not every input's line need be there.
    where = re.findall(_RELAYED + r"on a T4 \d+", result.stdout, re.MULTILINE)
    assert where and {ip for _, ip in where} == {node.ip}, result.stdout


def test_ctrl_c_leaves_no_actor_behind(
    cluster: RayCluster, cache: str, app_file: Path, env: dict[str, str]
) -> None:
    proc = _slow_map(app_file, 400, cluster, cache, env, subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if " served " in line:
            break
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    deadline = time.monotonic() + 30
    while True:
        actors = [p for n in (cluster.head, cluster.node) for p in session_pids(n, "ray::Node")]
        containers = [p for n in (cluster.head, cluster.node) for p in processes_using(n.home)]
        if not actors + containers or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not actors, f"actors left running after Ctrl-C: {actors}"
    assert not containers, f"containers left running after Ctrl-C: {containers}"
    for node in (cluster.head, cluster.node):
        assert not list((node.home / "tmp").iterdir()), "a container's scratch area is left"
    # and no Ray of its own: Ray's API starts a local cluster when called unconnected
    ours = {p for n in cluster.nodes for p in session_pids(n)}
    assert not set(processes_using(Path("gcs_server"))) - ours


def test_volumes_need_shared_storage(
    cluster: RayCluster, cache: str, env: dict[str, str], tmp_path: Path
) -> None:
    app_file = tmp_path / "ray_volume_app.py"
    app_file.write_text(VOLUME_APP)
    refused = _run(app_file, "volume", cluster, cache, env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "IMAGEWRIGHT_VOLUMES_DIR" in refused.stderr and "write mounts volumes" in refused.stderr
    assert "Traceback" not in refused.stderr
    # with a directory every node sees (one machine: any directory), the nodes write into it
    shared = tmp_path / "shared-volumes"
    result = _run(
        app_file, "volume", cluster, cache, {**env, "IMAGEWRIGHT_VOLUMES_DIR": str(shared)}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _result(result.stdout) == ["a", "b", "c", "d"]
    written = {p.name: p.read_text() for p in (shared / "ray-test-shared").iterdir()}
    assert written == {name: "s3" for name in "abcd"}
    # the secret reached the containers' environment, and no node's store or log
    for node in cluster.nodes:
        for path in node.home.rglob("*"):
            if "layers" in path.parts:  # (the image's files, from the registry)
                continue
            if path.is_file() and not path.is_symlink():
                assert b"s3cr3t-on-node" not in path.read_bytes(), path
        for log in node.temp.rglob("*"):
            if log.is_file() and log.suffix in (".log", ".out", ".err"):
                assert b"s3cr3t-on-node" not in log.read_bytes(), log

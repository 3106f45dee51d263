"""Functions in containers: results, errors, timeouts, dying containers, map, secrets, CLI."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from imagewright.cli.loader import load_module
from imagewright.exception import ExecutionError, FunctionTimeoutError, RemoteError

from .conftest import cli

APP = """
import os, time
import imagewright as modal

image = modal.Image.debian_slim(python_version="3.11").uv_pip_install("numpy")
app = modal.App("t", image=image)
token = modal.Secret.from_dict({"API_TOKEN": "tok-123"})


class Custom(Exception):
    pass


@app.function(timeout=60)
def square(x):
    import numpy as np
    return np.int64(x) * x


@app.function()
def arrays(n):
    import numpy as np
    return np.arange(n, dtype=np.float32)


@app.function()
def fails(kind):
    if kind == "custom":
        raise Custom("boom from inside")
    if kind == "value":
        raise ValueError("bad value " + str(kind))
    return kind


@app.function(timeout=1)
def sleepy(seconds):
    time.sleep(seconds)
    return "woke"


@app.function()
def dies(how):
    if how == "kill":
        os.kill(os.getpid(), 9)
    if how == "segv":
        import ctypes
        ctypes.string_at(0)
    return "alive"


@app.function(max_containers=2)
def where(i):
    time.sleep(0.3)
    if not os.path.exists("/tmp/id"):
        with open("/tmp/id", "w") as f:
            f.write(str(time.time_ns()))
    return open("/tmp/id").read(), i


@app.function()
def waits(i):
    time.sleep(1)
    if not os.path.exists("/tmp/id"):
        with open("/tmp/id", "w") as f:
            f.write(str(time.time_ns()))
    return open("/tmp/id").read()


@app.function(max_containers=1, scaledown_window=2)
def brief(i):
    if not os.path.exists("/tmp/id"):
        with open("/tmp/id", "w") as f:
            f.write(str(time.time_ns()))
    return open("/tmp/id").read()


@app.function(secrets=[token])
def with_secret():
    return os.environ.get("API_TOKEN")


@app.function()
def without_secret():
    return os.environ.get("API_TOKEN")


@app.function()
def context():
    return os.getcwd(), os.environ.get("IMAGEWRIGHT_IN_CONTAINER"), open("/root/t_app.py").read()[:6]


@app.function()
def writes():
    open("/root/left-behind", "w").write("x")
    return os.path.exists("/root/left-behind")


@app.function()
def exists_left_behind():
    return os.path.exists("/root/left-behind")


@app.function()
def noisy():
    print("to stdout from inside")
    import sys
    print("to stderr from inside", file=sys.stderr)
    return 1


@app.function(max_containers=1, timeout=3)
def steady(x):
    # several of these go to the one container in a message: each has its own 3 s
    time.sleep(1)
    if x == "die":
        os.kill(os.getpid(), 9)
    return x


@app.local_entrypoint()
def main(n: int = 3):
    print("entry", sum(square.map(range(n))))
"""


@pytest.fixture(scope="module")
def mod(tmp_path_factory: pytest.TempPathFactory, store) -> ModuleType:
    path = tmp_path_factory.mktemp("fn") / "t_app.py"
    path.write_text(APP)
    return load_module(str(path))


@pytest.fixture(scope="module")
def running(mod: ModuleType):
    with mod.app.run():
        yield mod


def test_return_values_including_numpy(running):
    assert running.square.remote(4) == 16
    assert isinstance(running.square.remote(4), np.integer)
    np.testing.assert_array_equal(running.arrays.remote(4), np.arange(4, dtype=np.float32))
    assert running.square.local(3) == 9


def test_exceptions_keep_their_type_and_remote_traceback(running):
    with pytest.raises(ValueError, match="bad value value") as failure:
        running.fails.remote("value")
    assert "Remote traceback" in str(failure.value.__cause__)
    assert 'raise ValueError("bad value "' in str(failure.value.__cause__)
    with pytest.raises(running.Custom, match="boom from inside"):
        running.fails.remote("custom")


def test_timeout_kills_the_container(running):
    with pytest.raises(FunctionTimeoutError, match="timed out after 1 s"):
        running.sleepy.remote(30)


@pytest.mark.parametrize("how, words", [("kill", "signal 9"), ("segv", "segmentation fault")])
def test_a_dying_container_raises_and_never_hangs(running, how, words):
    with pytest.raises(RemoteError) as failure:
        running.dies.remote(how)
    assert "dies" in str(failure.value)
    assert words in str(failure.value)
    assert running.dies.remote("no") == "alive"


def test_map_order_exceptions_and_parallelism(running):
    assert list(running.square.map(range(20))) == [i * i for i in range(20)]
    unordered = list(running.square.map(range(20), order_outputs=False))
    assert sorted(unordered) == [i * i for i in range(20)]
    results = list(running.fails.map(["ok", "value", "fine"], return_exceptions=True))
    assert results[0] == "ok" and results[2] == "fine"
    assert isinstance(results[1], ValueError)
    with pytest.raises(ValueError):
        list(running.fails.map(["ok", "value"]))
    ids = {container for container, _ in running.where.map(range(8))}
    assert len(ids) == 2  # max_containers=2, each container serving several inputs
    assert list(running.square.starmap([(2,), (3,)])) == [4, 9]
    running.square.for_each(range(3))


def test_containers_stay_warm_until_their_scaledown_window(running):
    first = set(running.where.map(range(4)))
    again = set(running.where.map(range(4)))
    assert {c for c, _ in again} <= {c for c, _ in first}  # the same containers, kept warm
    assert running.where.remote(9)[0] in {c for c, _ in first}  # .remote() too, as on Modal
    (kept,) = set(running.brief.map(range(3)))
    assert set(running.brief.map(range(3))) == {kept}
    assert running.brief.remote(0) == kept
    time.sleep(3.5)  # idle past its scaledown_window=2: stopped, so a new one serves
    (fresh,) = set(running.brief.map(range(3)))
    assert fresh != kept


def test_calls_at_once_get_a_container_each_unless_max_containers_bounds_them(running):
    spawned = [running.waits.spawn(i) for i in range(3)]
    assert len({call.get(timeout=120) for call in spawned}) == 3  # none waited for another
    bounded = [running.where.spawn(i) for i in range(4)]
    assert len({call.get(timeout=120)[0] for call in bounded}) <= 2  # max_containers=2


def test_spawn_and_get(running):
    call = running.square.spawn(7)
    assert call.get(timeout=60) == 49


def test_secrets_reach_only_their_function(running):
    assert running.with_secret.remote() == "tok-123"
    assert running.without_secret.remote() is None


def test_container_context_and_fresh_filesystem(running):
    cwd, flag, source = running.context.remote()
    assert cwd == "/root" and flag == "1" and source == "\nimpor"
    assert running.writes.remote() is True
    assert running.exists_left_behind.remote() is False  # another function: its own containers


def test_output_is_relayed(running, capfd):
    running.noisy.remote()
    out, err = capfd.readouterr()
    assert "to stdout from inside" in out and "to stderr from inside" in err


USER_APP = """
import getpass, os
import imagewright as modal

image = modal.Image.debian_slim(python_version="3.11").dockerfile_commands(
    "RUN useradd -m app", "USER app"
)


def make_file():
    with open(os.path.expanduser("~/made-at-build"), "w") as f:
        f.write(getpass.getuser())


app = modal.App("u", image=image.run_function(make_file))


@app.function()
def who():
    made = os.path.expanduser("~/made-at-build")
    return os.getuid(), getpass.getuser(), os.environ["HOME"], open(made).read(), os.stat(made).st_uid
"""


def test_functions_run_as_the_image_user(tmp_path, store):
    """USER applies to run_function at build time and to every call, as to RUN steps."""
    path = tmp_path / "u_app.py"
    path.write_text(USER_APP)
    mod = load_module(str(path))
    with mod.app.run():
        assert mod.who.remote() == (1000, "app", "/home/app", "app", 1000)


def test_remote_needs_a_running_app(tmp_path):
    (tmp_path / "idle.py").write_text(
        textwrap.dedent("""
        import imagewright as modal
        app = modal.App()

        @app.function()
        def f():
            return 1
    """)
    )
    idle = load_module(str(tmp_path / "idle.py"))
    with pytest.raises(ExecutionError, match=r"app\.run"):
        idle.f.remote()


def test_run_function_layer_is_cached_and_rebuilt_on_edit(builder, tmp_path: Path):
    source = textwrap.dedent("""
        import imagewright as modal
        WEIGHTS = "v1"  # NONCE

        def download(suffix):
            import os
            os.makedirs("/models", exist_ok=True)
            open("/models/w.txt", "w").write(WEIGHTS + suffix)

        image = modal.Image.debian_slim(python_version="3.11").run_function(download, args=("-a",))
    """)
    source = source.replace('"v1"  # NONCE', f'"v1" + "-{time.time_ns()}"')  # a key no store has
    (tmp_path / "rf_mod.py").write_text(source)
    first = load_module(str(tmp_path / "rf_mod.py"))
    builder.build(first.image)
    assert builder.run(first.image, "cat /models/w.txt").startswith("v1-")
    _, recorder = builder.build(first.image)
    assert recorder.started == []
    (tmp_path / "rf_mod.py").write_text(source.replace('"v1"', '"v2"'))
    edited = load_module(str(tmp_path / "rf_mod.py"))
    _, recorder = builder.build(edited.image)
    assert recorder.started == ["run_function(download)"]
    out = builder.run(edited.image, "cat /models/w.txt; echo; ls -a /root")
    assert out.startswith("v2-") and out.endswith(
        "-a\n.\n..\n.bashrc\n.profile\n"
    )  # no source baked in


def test_cli_run_entrypoint_and_function(mod, store):
    path = mod.__file__
    proc = cli("run", path, "--n", "4")
    assert proc.returncode == 0, proc.stderr
    assert "entry 14" in proc.stdout
    proc = cli("run", f"{path}::square", "--x", "3")
    assert proc.returncode == 0 and proc.stdout.strip() == "9"
    proc = cli("run", f"{path}::fails", "--kind", "value")
    assert proc.returncode == 1
    assert "ValueError: bad value value" in proc.stderr and "Remote traceback" in proc.stderr
    proc = cli("shell", f"{path}::with_secret", "--cmd", "echo $API_TOKEN; ls /root")
    assert proc.stdout.split() == ["tok-123", "t_app.py"]


def test_gpu_without_a_gpu_is_a_clear_error(tmp_path):
    (tmp_path / "g.py").write_text(
        textwrap.dedent("""
        import imagewright as modal
        app = modal.App(image=modal.Image.debian_slim(python_version="3.11"))

        @app.function(gpu="A100")
        def f():
            return 1
    """)
    )
    mod = load_module(str(tmp_path / "g.py"))
    with mod.app.run(), pytest.raises(ExecutionError, match="no usable GPU"):
        mod.f.remote()


def test_seed_debugging_example(store):
    proc = cli("run", str(Path(__file__).parents[2] / "examples" / "debugging.py"))
    assert proc.returncode == 0, proc.stderr
    assert "Python: 3.11." in proc.stdout
    assert "requests" in proc.stdout and "pip" in proc.stdout  # pip list
    assert "Desired=Unknown/Install" in proc.stdout  # dpkg -l
    assert proc.stdout.strip().endswith("Debug complete")


def test_ctrl_c_stops_every_container(mod, store):
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imagewright",
            "run",
            f"{mod.__file__}::sleepy",
            "--seconds",
            "0.9123",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (containers := _containers_of(proc.pid)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    assert proc.returncode == 130
    time.sleep(0.3)
    assert [pid for pid in containers if _running(pid)] == []


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie has exited; init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _containers_of(ancestor: int) -> list[int]:
    """Processes of function containers (bwrap and the Python inside) started by `ancestor`."""
    import os

    def parent(pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return 0

    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if b"IMAGEWRIGHT_FUNCTION=" not in environ:
            continue
        pid = int(name)
        while pid > 1 and pid != ancestor:
            pid = parent(pid)
        if pid == ancestor:
            found.append(int(name))
    return found


def test_map_inputs_sent_together_keep_their_own_timeout_and_survive_a_death(running):
    # 12 inputs on one container go several to a message (the first 3 of them together); each
    # sleeps 1 s under a 3 s timeout, so a timeout counted from the message would fire
    inputs = [0, 1, 2, "die", 4, 5, 6, 7, 8, 9, 10, 11]
    results = list(running.steady.map(inputs, return_exceptions=True))
    assert [r for r in results if not isinstance(r, Exception)] == [i for i in inputs if i != "die"]
    (died,) = [r for r in results if isinstance(r, Exception)]
    assert isinstance(died, RemoteError) and "killed by signal 9" in str(died)
    assert results.index(died) == 3  # in its place; the inputs after it ran on a new container

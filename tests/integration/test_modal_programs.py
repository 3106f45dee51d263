"""Modal programs as users write them: classes with lifecycle hooks, concurrent and batched
inputs, async functions, generators, retries, input ids and spawned calls, in real containers.

The program below is written the way Modal's own examples are (its state loads in @enter, a
volume keeps what containers write), and every assertion reads what the containers did.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from imagewright.cli.loader import load_module
from imagewright.exception import InvalidError, NotFoundError, RemoteError

from .conftest import cli

PROGRAM = """
import asyncio, os, threading, time, uuid
import imagewright as modal

app = modal.App("programs-test", image=modal.Image.debian_slim(python_version="3.11"))
vol = modal.Volume.from_name("VOLUME_NAME", create_if_missing=True)


@app.cls(volumes={"/data": vol}, max_containers=2)
class Model:
    size: str = modal.parameter(default="small")
    scale: int = modal.parameter(default=1)

    @modal.enter()
    def load(self):
        self.container = uuid.uuid4().hex  # one per container: enter runs once in each
        os.makedirs("/data/enter", exist_ok=True)
        open(f"/data/enter/{self.container}", "w").write(self.size)
        self.weights = [self.scale] * 1000

    @modal.method()
    def predict(self, x):
        return self.container, self.size, x * self.weights[0], modal.current_input_id()

    @modal.method()
    def tokens(self, n):
        for i in range(n):
            yield f"{self.size}-{i}"

    @modal.exit()
    def unload(self):
        os.makedirs("/data/exit", exist_ok=True)
        open(f"/data/exit/{self.container}", "w").write("bye")


@app.cls()
@modal.concurrent(max_inputs=4)
class Pooled:
    @modal.enter()
    def start(self):
        self.active, self.peak, self.lock = 0, 0, threading.Lock()

    @modal.method()
    def work(self, x):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(0.3)
        with self.lock:
            self.active -= 1
        return self.peak, threading.get_ident() != threading.main_thread().ident


@app.function()
@modal.concurrent(max_inputs=8)
async def async_concurrent(x):
    await asyncio.sleep(0.3)
    return x, modal.current_input_id(), modal.current_function_call_id()


@app.function()
@modal.batched(max_batch_size=4, wait_ms=500)
def batch_double(xs: list[int]) -> list[tuple[int, int]]:
    return [(x * 2, len(xs)) for x in xs]


@app.function()
async def async_plain(x):
    await asyncio.sleep(0.01)
    return "async", x, modal.is_local()


@app.function()
def squares(n):
    for i in range(n):
        yield i * i


@app.function(volumes={"/data": vol}, retries=modal.Retries(max_retries=2, initial_delay=0.0))
def flaky(key):
    os.makedirs(f"/data/{key}", exist_ok=True)
    attempt = len(os.listdir(f"/data/{key}"))
    open(f"/data/{key}/{attempt}", "w").close()
    if attempt < 2:
        raise ValueError(f"attempt {attempt} fails")
    return attempt


@app.function(volumes={"/data": vol}, retries=1)
def always_fails(key):
    os.makedirs(f"/data/{key}", exist_ok=True)
    open(f"/data/{key}/{len(os.listdir(f'/data/{key}'))}", "w").close()
    raise RuntimeError("never works")


@app.function(memory=(64, 128))
def hog(megabytes):
    block = bytearray(megabytes * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page: it is really used
    return len(block) // (1024 * 1024)


@app.function(timeout=60)
def slow(seconds):
    time.sleep(seconds)
    return seconds
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory, store: object) -> ModuleType:
    path = tmp_path_factory.mktemp("programs") / "programs_app.py"
    path.write_text(PROGRAM.replace("VOLUME_NAME", f"programs-{time.time_ns()}"))
    return load_module(str(path))


@pytest.fixture(scope="module")
def volume_dir(program: ModuleType) -> Path:
    from imagewright import settings

    return settings.volumes_dir() / program.vol.name


@pytest.fixture
def running(program: ModuleType):
    with program.app.run():
        yield program


def test_enter_runs_once_per_container_and_state_serves_many_inputs(running, volume_dir):
    model = running.Model(size="big", scale=3)
    results = list(model.predict.map(range(40)))
    assert [r[2] for r in results] == [3 * x for x in range(40)]
    assert {r[1] for r in results} == {"big"}
    containers = {r[0] for r in results}
    assert 1 <= len(containers) <= 2  # max_containers=2: never more
    entered = {p.name for p in (volume_dir / "enter").iterdir() if p.read_text() == "big"}
    assert entered == containers  # each container ran @enter exactly once
    # a later .remote reuses a warm container of the same instance: no new @enter
    again = model.predict.remote(5)
    assert again[0] in containers and again[2] == 15
    # every input had its own id
    assert len({r[3] for r in results}) == 40 and all(r[3].startswith("in-") for r in results)


def test_parameters_are_instances_and_are_checked(running):
    assert running.Model().predict.remote(2)[1:3] == ("small", 2)
    assert running.Model(size="x") is running.Model(size="x")
    with pytest.raises(TypeError, match="Expected int, got str"):
        running.Model(scale="three")
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        running.Model(colour="red")


def test_local_runs_enter_here(running):
    _, size, value, input_id = running.Model(size="local").predict.local(4)
    assert size == "local" and value == 4 and input_id is None


def test_generator_method_and_function_stream(running):
    assert list(running.Model(size="s").tokens.remote_gen(3)) == ["s-0", "s-1", "s-2"]
    assert list(running.squares.remote_gen(5)) == [0, 1, 4, 9, 16]
    with pytest.raises(InvalidError, match="remote_gen"):
        running.squares.remote(3)
    with pytest.raises(InvalidError, match=r"cannot be called with `\.map"):
        list(running.squares.map([1]))


def test_concurrent_class_runs_inputs_at_once_in_threads(running):
    results = list(running.Pooled().work.map(range(8)))
    assert max(peak for peak, _ in results) > 1  # inputs overlapped in one container
    assert all(in_thread for _, in_thread in results)


def test_concurrent_async_function_shares_one_event_loop(running):
    results = list(running.async_concurrent.map(range(16)))
    assert [r[0] for r in results] == list(range(16))
    assert len({r[1] for r in results}) == 16
    assert len({r[2] for r in results}) == 1  # one .map is one function call


def test_batched_inputs_are_grouped_and_split_back(running):
    results = list(running.batch_double.map(range(10)))
    assert [r[0] for r in results] == [2 * x for x in range(10)]
    assert max(r[1] for r in results) > 1  # some inputs reached the function together
    assert running.batch_double.remote(21) == (42, 1)


def test_async_function_remote_and_aio(running):
    assert running.async_plain.remote(3) == ("async", 3, False)
    assert asyncio.run(running.async_plain.remote.aio(4)) == ("async", 4, False)

    async def gather_map():
        return [x async for x in running.async_plain.map.aio([5, 6])]

    assert asyncio.run(gather_map()) == [("async", 5, False), ("async", 6, False)]


def test_retries_retry_each_input(running, volume_dir):
    assert running.flaky.remote("flaky-remote") == 2
    assert len(list((volume_dir / "flaky-remote").iterdir())) == 3
    assert list(running.flaky.map(["flaky-a", "flaky-b"])) == [2, 2]
    with pytest.raises(RuntimeError, match="never works"):
        running.always_fails.remote("fails")
    assert len(list((volume_dir / "fails").iterdir())) == 2  # one try and one retry


def test_spawned_calls_from_id_gather_and_cancel(running):
    import imagewright as modal

    calls = [running.slow.spawn(0.1) for _ in range(3)]
    assert modal.FunctionCall.from_id(calls[0].object_id) is calls[0]
    assert modal.FunctionCall.gather(*calls) == [0.1, 0.1, 0.1]
    long = running.slow.spawn(30)
    time.sleep(1)
    started = time.monotonic()
    long.cancel()
    with pytest.raises(RemoteError, match="cancelled"):
        long.get()
    assert time.monotonic() - started < 20
    with pytest.raises(NotFoundError):
        modal.FunctionCall.from_id("fc-nope")


def test_exit_hooks_run_when_the_app_stops(program, volume_dir):
    with program.app.run():
        program.Model(size="exit-check").predict.remote(1)
        entered = {
            p.name for p in (volume_dir / "enter").iterdir() if p.read_text() == "exit-check"
        }
    exited = {p.name for p in (volume_dir / "exit").iterdir()}
    assert entered and entered <= exited


def test_memory_limit_is_a_cgroup_limit(running):
    from imagewright.execute.limits import Cgroup, Limits

    probe = Cgroup.create(Limits(memory_limit_mib=128))
    if probe is None:
        pytest.skip("this machine's cgroups cannot be written")
    probe.remove()
    assert running.hog.remote(16) == 16
    with pytest.raises(RemoteError, match="memory limit of 128 MiB"):
        running.hog.remote(400)


def test_is_local_on_the_host():
    import imagewright as modal

    assert modal.is_local() is True
    assert modal.current_input_id() is None


def test_modal_program_runs_from_the_cli(tmp_path: Path, store: object):
    (tmp_path / "cli_prog.py").write_text(
        textwrap.dedent(
            """
            import imagewright as modal

            app = modal.App("cli-prog", image=modal.Image.debian_slim(python_version="3.11"))

            @app.cls()
            class Greeter:
                name: str = modal.parameter()

                @modal.enter()
                def ready(self):
                    self.greeting = "hello"

                @modal.method()
                def greet(self, punctuation: str) -> str:
                    return f"{self.greeting} {self.name}{punctuation}"

            @app.local_entrypoint()
            def main(who: str = "world"):
                print(Greeter(name=who).greet.remote("!"))
            """
        )
    )
    result = cli("run", "cli_prog.py", "--who", "imagewright", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hello imagewright!" in result.stdout


def test_concurrent_callers_share_a_class_container(running):
    """Inputs from several threads at once reach one instance's containers correctly."""
    model = running.Model(size="threads")
    out: list[object] = []

    def call(i: int) -> None:
        out.append(model.predict.remote(i)[2])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(out) == list(range(6))

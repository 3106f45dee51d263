"""A function calling another from inside its container: `.remote`, `.map`, a class's method,
during @enter, with exceptions and retries; and the calls channel under attack.

The host runs such calls in the target's own containers and passes the pickled inputs and
replies through without unpickling them; a container cannot make it run anything outside the
app, nor run code on the host with a crafted pickle.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from imagewright.cli.loader import load_module

from .conftest import cli

PROGRAM = """
import os, pickle
import modal  # as Modal's programs say it: imagewright runs them unchanged

app = modal.App("nested-test", image=modal.Image.debian_slim(python_version="3.11"))


@app.function()
def square(x):
    return x * x


@app.function(retries=modal.Retries(max_retries=1, initial_delay=0.0))
def boom(x):
    os.makedirs("/tmp/boom", exist_ok=True)
    raise ValueError(f"boom {x}")


@app.cls()
class Adder:
    base: int = modal.parameter(default=10)

    @modal.enter()
    def setup(self):
        self.warm = square.remote(3)  # a call while the container starts

    @modal.method()
    def add(self, x):
        return self.base + x + self.warm


@app.function()
def orchestrate(n):
    try:
        boom.remote(1)
    except ValueError as exc:
        error = str(exc)
    return {
        "map": list(square.map(range(n))),
        "remote": square.remote(n),
        "method": Adder(base=100).add.remote(1),
        "method_map": list(Adder().add.map([1, 2])),
        "error": error,
        "is_local": modal.is_local(),
    }


class Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@app.function()
def attack(host_path):
    from imagewright.runtime import calls

    found = {}
    # a pickle that writes a file wherever it is unpickled: the host must only pass it on
    crafted = pickle.dumps(((Payload(host_path),), {}))
    header, _ = calls.call({"ref": "nested_app:square", "method": ""}, "remote", [crafted])[0]
    found["crafted"] = header.get("kind"), header.get("type")
    # names outside the app, and verbs that do not exist
    for target in ({"ref": "os:system", "method": ""}, {"ref": "nested_app:Adder", "method": "__init__"}):
        header, _ = calls.call(target, "remote", [pickle.dumps((("id",), {}))])[0]
        found[target["ref"] + target["method"]] = header.get("type"), header.get("message")
    header, _ = calls.call({"ref": "nested_app:square", "method": ""}, "shell", [b""])[0]
    found["verb"] = header.get("message")
    return found
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory, store: object) -> ModuleType:
    path = tmp_path_factory.mktemp("nested") / "nested_app.py"
    path.write_text(PROGRAM)
    return load_module(str(path))


def test_functions_call_functions_and_methods_from_containers(program: ModuleType) -> None:
    with program.app.run():
        result = program.orchestrate.remote(5)
    assert result == {
        "map": [0, 1, 4, 9, 16],
        "remote": 25,
        "method": 100 + 1 + 9,
        "method_map": [10 + 1 + 9, 10 + 2 + 9],
        "error": "boom 1",
        "is_local": False,
    }


def test_the_calls_channel_runs_nothing_outside_the_app(
    program: ModuleType, tmp_path: Path
) -> None:
    planted = tmp_path / "written-by-a-pickle"
    with program.app.run():
        found = program.attack.remote(str(planted))
    assert not planted.exists()  # the crafted pickle was never unpickled on the host
    # it reached the target container, which unpickled it there (no such path inside)
    assert found["crafted"] == ("exception", "builtins.FileNotFoundError")
    assert found["os:system"][0] == "imagewright.exception.NotFoundError"
    assert "not a function of this app" in found["os:system"][1]
    assert found["nested_app:Adder__init__"][0] == "imagewright.exception.NotFoundError"
    assert "'shell'" in found["verb"]


def test_a_modal_program_runs_unchanged_from_the_cli(tmp_path: Path, store: object) -> None:
    (tmp_path / "unchanged.py").write_text(
        textwrap.dedent(
            """
            import modal

            app = modal.App("unchanged")

            @app.function()
            def double(x):
                return 2 * x

            @app.function()
            def fan_out(n):
                return sum(double.map(range(n)))

            @app.local_entrypoint()
            async def main():
                print("total", await fan_out.remote.aio(10))
            """
        )
    )
    result = cli("run", "unchanged.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "total 90" in result.stdout

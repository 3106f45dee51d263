"""Secret.from_name in real builds and containers: made with `imagewright secret create`,
read when a step or container starts, and never found in a layer, a log or an image config."""

from __future__ import annotations

import os
import stat
import textwrap
import time
from pathlib import Path

import pytest

from imagewright import settings
from imagewright.cli.loader import load_module
from imagewright.exception import NotFoundError

from .conftest import cli

APP = """
import os
import imagewright as modal

token = modal.Secret.from_name("NAME", required_keys=["TOKEN"])
image = modal.Image.debian_slim(python_version="3.11").run_commands(
    'test "${#TOKEN}" -eq THE_LENGTH && echo "THE_NONCE token is $TOKEN" && echo layer > /step.txt',
    secrets=[token],
)
app = modal.App("named-secrets", image=image)


@app.function(secrets=[token])
def read():
    return os.environ.get("TOKEN")


@app.function()
def without():
    return os.environ.get("TOKEN")
"""


def test_a_named_secret_reaches_steps_and_functions_only(builder, store, tmp_path: Path) -> None:
    name, value = f"iw-secret-{time.time_ns()}", f"s3cr3t-{time.time_ns()}"
    source = textwrap.dedent(APP).replace('"NAME"', repr(name))
    source = source.replace("THE_LENGTH", str(len(value)))
    source = source.replace("THE_NONCE", name)  # a step no store has built
    (tmp_path / "named.py").write_text(source)
    mod = load_module(str(tmp_path / "named.py"))  # the store has no such secret yet: fine
    with pytest.raises(NotFoundError, match=f"imagewright secret create {name}"):
        builder.build(mod.image)

    made = cli("secret", "create", name, f"TOKEN={value}")
    assert made.returncode == 0, made.stderr
    assert value not in made.stdout + made.stderr
    path = settings.secrets_dir() / f"{name}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    result, recorder = builder.build(mod.image)
    assert f"{name} token is ***" in recorder.lines  # redacted from the build's output
    step = result.plan.steps[-1]
    encoded = value.encode()
    for path in store.layer_dir(step.key).rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert encoded not in path.read_bytes(), path
    assert encoded not in store.log_path(step.key).read_bytes()
    assert value not in repr(result.plan.config)
    assert name in cli("secret", "list").stdout

    with mod.app.run():
        assert mod.read.remote() == value
        assert mod.without.remote() is None

    # rotating the value reaches the next container, and does not rebuild the step
    assert cli("secret", "create", name, "TOKEN=rotated", "--force").returncode == 0
    _, recorder = builder.build(mod.image)
    assert recorder.started == []  # keyed on the names, not the values
    with mod.app.run():
        assert mod.read.remote() == "rotated"

    # a missing key names the command that adds it
    assert cli("secret", "create", name, "OTHER=x", "--force").returncode == 0
    with pytest.raises(NotFoundError, match=f"imagewright secret create {name} TOKEN="):
        builder.build(mod.image)
    assert cli("secret", "delete", name, "--yes").returncode == 0
    assert name not in cli("secret", "list").stdout

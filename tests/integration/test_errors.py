"""Failing steps, bad input and a failing machine (a full disk, a read-only store): clear errors
that name the step, the file or the path, with the CLI's exit codes and no traceback but the
user's own."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

import imagewright as modal
from imagewright.exception import ImageBuildError, InvalidError
from imagewright.execute.builder import build_image
from imagewright.plan.planner import plan_image

from .conftest import Recorder, cli
from .registry_helpers import Answer, FakeServer

THIS_FILE = Path(__file__).name


def test_failing_step_names_call_site_exit_code_and_output(builder, py311, store):
    good = py311.run_commands("echo kept > /kept")
    bad = good.run_commands("echo about to fail; ls /nope")
    with pytest.raises(ImageBuildError) as failure:
        builder.build(bad)
    message = str(failure.value)
    assert "run_commands('echo about to fail; ls /nope')" in message
    assert f"{THIS_FILE}:" in message
    assert "exited with status 2" in message
    assert "about to fail" in message and "No such file or directory" in message
    log = Path(failure.value.log_path)
    assert log.is_file() and "about to fail" in log.read_text()
    # the failed step cached nothing; the steps before it stay cached
    plan = plan_image(bad)
    assert store.lookup(plan.key) is None
    assert store.lookup(plan.steps[-2].key) is not None
    _, recorder = builder.build(good)
    assert recorder.started == []


def test_bad_arguments_fail_before_any_step(builder, py311, tmp_path):
    with pytest.raises(TypeError, match="should be a string, not a float"):
        modal.Image.debian_slim(python_version=3.11)
    with pytest.raises(InvalidError, match="only supports absolute remote_path"):
        py311.add_local_file(__file__, "relative/path.py")
    with pytest.raises(InvalidError, match="cannot contain other arguments"):
        py311.pip_install("numpy", "--upgrade")
    with pytest.raises(InvalidError, match="must be strings"):
        py311.env({"A": 1})
    with pytest.raises(InvalidError, match=r"2\.7") as refused:  # refused at the call itself
        modal.Image.debian_slim(python_version="2.7")
    assert f"{THIS_FILE}:" in str(refused.value)
    recorder_started = []
    with pytest.raises(FileNotFoundError) as failure:
        _, rec = builder.build(py311.copy_local_file(tmp_path / "missing.yaml", "/x"))
        recorder_started = rec.started
    assert recorder_started == []
    assert f"{THIS_FILE}:" in str(failure.value)


def test_unsupported_series_without_a_standalone_download_is_refused_before_any_step(builder):
    # No release packages 3.12 for Debian, and uv's download source is unreachable here (set
    # UV_PYTHON_INSTALL_MIRROR to one that is unreachable everywhere, to be sure).
    image = modal.Image.debian_slim(python_version="3.12")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UV_PYTHON_INSTALL_MIRROR", "http://127.0.0.1:9/nothing-here")
        recorder = Recorder()
        with pytest.raises(InvalidError) as failure:
            build_image(image, store=builder.store, reporter=recorder)
    assert recorder.started == []
    message = str(failure.value)
    assert "uv could not download a standalone CPython 3.12" in message
    assert "Unsupported Python version: '3.12'" in message
    assert "3.11 (bookworm)" in message and "3.13 (trixie)" in message
    assert "Image.ubuntu(python_version='3.12')" in message


def test_cli_build_failure_exits_1_without_traceback(tmp_path, store):
    module = tmp_path / "broken.py"
    module.write_text(
        textwrap.dedent("""
        import imagewright as modal
        image = modal.Image.debian_slim(python_version="3.11").run_commands("exit 3")
    """)
    )
    proc = cli("build", str(module))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "run_commands('exit 3') at " in proc.stderr and "broken.py:3" in proc.stderr
    assert "exited with status 3" in proc.stderr and "Full log:" in proc.stderr


def test_cli_bad_input_exits_2_without_traceback(tmp_path, store):
    module = tmp_path / "bad.py"
    module.write_text(
        textwrap.dedent("""
        import imagewright as modal
        image = modal.Image.debian_slim(python_version="3.11").copy_local_file("nope.txt", "/x")
    """)
    )
    proc = cli("build", str(module), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "FileNotFoundError" in proc.stderr and "bad.py:3" in proc.stderr
    assert "nope.txt" in proc.stderr


def test_cli_refuses_a_definition_file_not_ending_in_py(tmp_path):
    (tmp_path / "app.txt").write_text(
        "import imagewright as modal\nimage = modal.Image.from_scratch()\n"
    )
    proc = cli("build", "app.txt", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "app.txt is not a Python file" in proc.stderr and "end in .py" in proc.stderr


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (
            "import imagewright as modal\n\ndef check():\n    raise ValueError('bad config')\n\n"
            "check()\n",
            ["line 6, in <module>", "line 4, in check", "ValueError: bad config"],
        ),
        ("import imagewright as modal\nimage = (\n", ["line 2", "SyntaxError"]),
    ],
    ids=["raise", "syntax"],
)
def test_errors_in_the_users_module_show_the_users_traceback_only(body, shown, tmp_path):
    (tmp_path / "app.py").write_text(body)
    proc = cli("build", "app.py", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f'File "{tmp_path / "app.py"}"' in proc.stderr, proc.stderr
    for text in shown:
        assert text in proc.stderr, proc.stderr
    assert "/imagewright/" not in proc.stderr and "importlib" not in proc.stderr, proc.stderr
    assert "app.py raised" in proc.stderr.splitlines()[-1]


def test_env_names_and_values_a_process_cannot_hold_are_refused_where_written(py311):
    defines = (py311.env, lambda e: py311.run_commands("true", env=e), modal.Secret.from_dict)
    for bad in ({"A=B": "x"}, {"A\0B": "x"}, {"": "x"}, {"A": "x\0y"}, {"A": "x" * 140_000}):
        for define in defines:
            with pytest.raises(InvalidError, match="Invalid environment variable") as failure:
                define(bad)
            assert "(at " in str(failure.value) and f"{THIS_FILE}:" in str(failure.value)


def test_an_environment_too_large_for_execve_is_refused_before_any_step(builder, py311):
    # each variable is fine alone; together they pass ARG_MAX (2 MiB with an 8 MiB stack)
    image = py311.env({f"BIG{i}": "x" * 100_000 for i in range(25)}).run_commands("true")
    recorder = Recorder()
    with pytest.raises(InvalidError) as failure:
        build_image(image, store=builder.store, reporter=recorder)
    assert recorder.started == []
    message = str(failure.value)
    assert "the environment of this step would be" in message and "E2BIG" in message
    assert "env({'BIG0': " in message and f"{THIS_FILE}:" in message


def test_the_store_tmp_being_a_file_is_a_clear_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "tmp").write_text("not a directory")
    (tmp_path / "app.py").write_text(SCRATCH_APP)
    (tmp_path / "big.bin").write_text("small\n")
    proc = cli("build", "app.py", cwd=tmp_path, env={"IMAGEWRIGHT_HOME": str(home)})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{home / 'tmp'} is not a directory" in proc.stderr, proc.stderr


SCRATCH_APP = (
    "import imagewright as modal\n"
    "image = modal.Image.from_scratch().add_local_file('big.bin', '/big.bin', copy=True)\n"
)


@pytest.fixture
def tiny(tmp_path):
    """A 1 MiB tmpfs."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mountpoint], check=True)
    yield mountpoint
    subprocess.run(["umount", "-l", mountpoint], check=True)


def _no_traceback(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.splitlines()[-1]


def test_a_full_disk_is_a_clear_error(tmp_path, tiny):
    (tmp_path / "app.py").write_text(SCRATCH_APP)
    (tmp_path / "big.bin").write_bytes(os.urandom(3 << 20))
    full = {"IMAGEWRIGHT_HOME": str(tiny / "home")}
    roomy = {"IMAGEWRIGHT_HOME": str(tmp_path / "home")}

    # a step's layer does not fit in the store
    line = _no_traceback(cli("build", "app.py", cwd=tmp_path, env=full), 1)
    assert line.startswith("Error: no space left on device while writing ") and str(tiny) in line

    # an export does not fit where it goes
    for out in ("layout", "image.tar"):
        proc = cli("export", "app.py", "-o", str(tiny / out), "--compression", "none",
                   cwd=tmp_path, env=roomy)  # fmt: skip
        line = _no_traceback(proc, 1)
        assert line.startswith(f"Error: no space left on device while writing {tiny / out}")

    # a pulled layer does not fit in the store
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = 3 << 20
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    blob = layer.getvalue()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode()
    manifest = json.dumps({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _sha(blob), "size": len(blob)}],
    }).encode()  # fmt: skip
    blobs = {_sha(config): config, _sha(blob): blob}

    def answer(method: str, path: str, auth: str | None) -> Answer:
        if "/manifests/" in path:
            return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, manifest
        found = blobs.get(path.rsplit("/", 1)[1])
        return (200, {}, found) if found is not None else (200, {}, b"")

    shutil.rmtree(tiny / "home")
    with FakeServer(answer) as registry:
        (tmp_path / "pull.py").write_text(
            "import imagewright as modal\n"
            f"image = modal.Image.from_registry('{registry.address}/iw/big:1')\n"
        )
        line = _no_traceback(cli("build", "pull.py", cwd=tmp_path, env=full), 1)
    assert line.startswith("Error: no space left on device while writing ") and str(tiny) in line


def test_a_read_only_store_is_a_clear_error(tmp_path):
    (tmp_path / "app.py").write_text(SCRATCH_APP)
    (tmp_path / "big.bin").write_bytes(b"small\n")
    home, frozen = tmp_path / "home", tmp_path / "frozen"
    assert cli("build", "app.py", cwd=tmp_path, env={"IMAGEWRIGHT_HOME": str(home)}).returncode == 0
    frozen.mkdir()
    subprocess.run(["mount", "--bind", home, frozen], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", frozen], check=True)
        env = {"IMAGEWRIGHT_HOME": str(frozen)}
        for command in (["build", "app.py"], ["prune"], ["export", "app.py", "-o", "out"]):
            line = _no_traceback(cli(*command, cwd=tmp_path, env=env), 1)
            assert (
                line == f"Error: the store {frozen} is read-only "
                "(set IMAGEWRIGHT_HOME to a writable directory)"
            ), command
    finally:
        subprocess.run(["umount", "-l", frozen], check=True)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()

"""Failing steps and bad input: clear errors that name the step and where it was written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import imagewright as modal
from imagewright.exception import ImageBuildError, InvalidError
from imagewright.execute.builder import build_image
from imagewright.plan.planner import plan_image

from .conftest import Recorder, cli

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
    for image, error in [
        (modal.Image.debian_slim(python_version="2.7"), InvalidError),
        (py311.copy_local_file(tmp_path / "missing.yaml", "/x"), FileNotFoundError),
    ]:
        recorder_started = []
        with pytest.raises(error) as failure:
            _, rec = builder.build(image)
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

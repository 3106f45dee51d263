"""Poetry, micromamba and private git repositories, built for real.

poetry_install_from_file needs only PyPI. The micromamba image needs Docker Hub and conda-forge
(opt in with IMAGEWRIGHT_SLOW_TESTS=1). A private repository install needs the repository and a
token (opt in with IMAGEWRIGHT_PRIVATE_REPO=github.com/ORG/REPO@REF, IMAGEWRIGHT_GIT_USER,
GITHUB_TOKEN and IMAGEWRIGHT_PRIVATE_MODULE, the module it installs); without them, the tests
here check the missing-token message and that a failed install shows the token nowhere.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from uv import find_uv_bin

import imagewright as modal
from imagewright.exception import ImageBuildError
from imagewright.execute.builder import build_image

from .conftest import Recorder

PYPROJECT = """\
[project]
name = "poetry-demo"
version = "0.1.0"
requires-python = ">=3.9,<4"
dependencies = ["six==1.16.0"]

[tool.poetry]
package-mode = false

# Poetry's default PyPI source reads PyPI's per-release JSON API, which the PyPI mirror of
# some machines (this project's included) does not serve; the simple index works everywhere.
[[tool.poetry.source]]
name = "pypi-simple"
url = "https://pypi.org/simple/"
priority = "primary"
"""


def _poetry_lock(project: Path, scratch: Path) -> None:
    """`poetry lock` with the latest Poetry, in a throwaway environment uv makes under
    `scratch` (the image installs the latest Poetry too)."""
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(scratch / "uv-cache"),
        "UV_TOOL_DIR": str(scratch / "uv-tools"),
        "POETRY_CACHE_DIR": str(scratch / "poetry-cache"),
    }
    subprocess.run(
        [find_uv_bin(), "tool", "run", "--from", "poetry", "poetry", "lock"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )


def test_poetry_installs_the_locked_dependencies_not_the_project(builder, py311, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT)
    _poetry_lock(project, tmp_path)
    assert 'name = "six"' in (project / "poetry.lock").read_text()

    image = py311.poetry_install_from_file(str(project / "pyproject.toml"))
    out = builder.run(
        image,
        "python -c 'import six; print(six.__version__)' && poetry --version"
        " && (python -m pip show poetry-demo >/dev/null 2>&1 && echo root-installed || true)",
    )
    assert out.split()[0] == "1.16.0"
    assert "Poetry" in out
    assert "root-installed" not in out
    # the project's files stay where Modal's COPY puts them (containers get a private /tmp)
    result, _ = builder.build(image)
    layer = builder.store.layer_dir(result.plan.steps[-1].key)
    assert {p.name for p in layer.rglob("*") if p.parent.name == "poetry"} >= {
        "poetry.lock",
        "pyproject.toml",
    }


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("IMAGEWRIGHT_SLOW_TESTS") != "1", reason="opt in with IMAGEWRIGHT_SLOW_TESTS=1"
)
def test_micromamba_image_imports_a_conda_package(builder):
    image = modal.Image.micromamba(python_version="3.11").micromamba_install(
        "pyyaml", channels=["conda-forge"]
    )
    out = builder.run(
        image, "micromamba run -n base python -c 'import sys, yaml; print(sys.version[:4])'"
    )
    assert out.strip() == "3.11"


def test_private_repo_step_without_the_token_fails_with_modals_message(builder, py311):
    secret = modal.Secret.from_dict({"OTHER_TOKEN": "x"})
    image = py311.pip_install_private_repos("github.com/org/repo", git_user="me", secrets=[secret])
    with pytest.raises(ImageBuildError) as caught:
        builder.build(image)
    assert "GITHUB_TOKEN env var not set by provided modal.Secret(s)" in str(caught.value)


def test_failed_private_repo_install_keeps_the_token_out_of_output_and_log(builder, py311):
    """A made-up token and repository: pip fails here whether or not GitHub can be reached."""
    token = "ghp_" + "t0ken" * 8
    image = py311.pip_install_private_repos(
        "github.com/imagewright-tests/no-such-repo@v0",
        git_user="me",
        secrets=[modal.Secret.from_dict({"GITHUB_TOKEN": token})],
    )
    recorder = Recorder()
    with pytest.raises(ImageBuildError) as caught:
        build_image(image, store=builder.store, reporter=recorder)
    assert "python3 -m pip install git+https://me@github.com/" in str(caught.value)
    assert caught.value.log_path
    assert token not in Path(caught.value.log_path).read_text()
    assert not any(token in line for line in recorder.lines)
    assert token not in str(caught.value)


@pytest.mark.skipif(
    not all(
        os.environ.get(name)
        for name in (
            "IMAGEWRIGHT_PRIVATE_REPO",
            "IMAGEWRIGHT_GIT_USER",
            "GITHUB_TOKEN",
            "IMAGEWRIGHT_PRIVATE_MODULE",
        )
    ),
    reason="needs IMAGEWRIGHT_PRIVATE_REPO, IMAGEWRIGHT_GIT_USER, GITHUB_TOKEN and "
    "IMAGEWRIGHT_PRIVATE_MODULE",
)
def test_private_repo_installs_without_the_token_reaching_the_image(builder, py311):
    token = os.environ["GITHUB_TOKEN"]
    module = os.environ["IMAGEWRIGHT_PRIVATE_MODULE"]
    image = py311.pip_install_private_repos(
        os.environ["IMAGEWRIGHT_PRIVATE_REPO"],
        git_user=os.environ["IMAGEWRIGHT_GIT_USER"],
        secrets=[modal.Secret.from_dict({"GITHUB_TOKEN": token})],
    )
    result, recorder = builder.build(image)
    assert all(token not in line for line in recorder.lines)
    step = result.plan.steps[-1]
    assert token not in builder.store.log_path(step.key).read_text()
    for path in builder.store.layer_dir(step.key).rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert token.encode() not in path.read_bytes(), path
    builder.run(image, f"python -c 'import {module}'")

"""Image.poetry_install_from_file, micromamba, micromamba_install and pip_install_private_repos:
their checks, planned commands, keys and Dockerfiles, with Modal's commands and messages.
No building and no network: registry images come from a fake resolver.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

import imagewright as modal
from imagewright.definition.config import ImageConfig
from imagewright.definition.micromamba import MICROMAMBA_IMAGE
from imagewright.definition.packages import GIT_ASKPASS
from imagewright.definition.pythons import local_series
from imagewright.exception import InvalidError, LocalFileNotFoundError, NotFoundError
from imagewright.export.dockerfile import render_dockerfile
from imagewright.plan.planner import CopyFiles, Plan, RunCommand, plan_image

BASE = modal.Image.debian_slim(python_version="3.11")
TOKEN = "ghp_" + "s3cret" * 6
SECRET = modal.Secret.from_dict({"GITHUB_TOKEN": TOKEN})


class _Layer(NamedTuple):
    digest: str
    size: int


class _Pulled(NamedTuple):
    manifest_digest: str
    config: ImageConfig
    layers: tuple[_Layer, ...]


class _Resolver:
    """Answers every registry reference with one small image, and records the references."""

    def __init__(self) -> None:
        self.tags: list[str] = []

    def credentials(self, auth: str, env: object) -> tuple[str, str]:
        raise AssertionError("micromamba's image needs no credentials")

    def resolve_image(self, tag: str, credentials: object, *, refresh: bool) -> _Pulled:
        self.tags.append(tag)
        config = ImageConfig(user="mambauser", shell=("/bin/bash", "-c"))
        return _Pulled("sha256:" + "1" * 64, config, (_Layer("sha256:" + "a" * 64, 10),))

    def fetch_url(self, url: str, where: str, checksum: str | None) -> tuple[str, str]:
        raise AssertionError("no ADD here")


def _plan(image: modal.Image) -> Plan:
    return plan_image(image, resolver=_Resolver())


def commands(image: modal.Image) -> list[str]:
    """The shell commands of the image's last planned step."""
    actions = _plan(image).steps[-1].actions
    return [a.run.command for a in actions if isinstance(a, RunCommand)]


def copied(image: modal.Image) -> list[str]:
    actions = _plan(image).steps[-1].actions
    return [e.dest for a in actions if isinstance(a, CopyFiles) for e in a.entries]


def dockerfile(image: modal.Image) -> list[str]:
    return [line for line in render_dockerfile(image).lines if not line.startswith("#")]


# ---- micromamba ---------------------------------------------------------------------------


def test_micromamba_is_modals_image_with_python_and_pip_from_conda_forge() -> None:
    resolver = _Resolver()
    plan = plan_image(modal.Image.micromamba(python_version="3.12"), resolver=resolver)
    assert resolver.tags == [MICROMAMBA_IMAGE]
    assert MICROMAMBA_IMAGE == "mambaorg/micromamba:2.9.0-debian13-slim"
    setup = plan.steps[-1]
    (run,) = [a for a in setup.actions if isinstance(a, RunCommand)]
    assert run.run.command == "micromamba install -n base -y python=3.12 pip -c conda-forge"
    # the install runs under micromamba's Dockerfile shell, which activates the environment
    assert run.config.shell == ("/usr/local/bin/_dockerfile_shell.sh",)
    assert setup.config.env_dict()["MAMBA_DOCKERFILE_ACTIVATE"] == "1"
    assert setup.config.cmd == ("sleep", "172800")
    assert setup.config.user == "mambauser"  # the image's own, as a Dockerfile FROM keeps it


def test_micromamba_defaults_to_the_host_series_and_keeps_a_micro_version() -> None:
    (cmd,) = commands(modal.Image.micromamba())
    assert f"python={local_series()} pip" in cmd
    (cmd,) = commands(modal.Image.micromamba("3.11.9"))
    assert "python=3.11.9 pip" in cmd


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (3.11, "Python version must be specified as a string, not float"),
        ("3", "Invalid Python version: '3'"),
        ("2.7", "Invalid Python version: '2.7'"),
        ("3.13t", "Free threaded Python is not supported with Image.micromamba"),
    ],
)
def test_micromamba_checks_the_python_version_right_away(version: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        modal.Image.micromamba(python_version=version)  # type: ignore[arg-type]


def test_micromamba_force_build_forces_the_pull_and_the_setup() -> None:
    plan = _plan(modal.Image.micromamba("3.11", force_build=True).micromamba_install("numpy"))
    assert all(step.force for step in plan.steps)
    assert not any(step.force for step in _plan(modal.Image.micromamba("3.11")).steps)


def test_micromamba_install_commands_are_modals() -> None:
    image = modal.Image.micromamba("3.11")
    assert commands(image.micromamba_install("numpy", ["pyyaml>=6", "scipy"])) == [
        "micromamba install numpy 'pyyaml>=6' scipy --yes"
    ]
    assert commands(image.micromamba_install("numpy", channels=["conda-forge", "bioconda"])) == [
        "micromamba install numpy -c conda-forge -c bioconda --yes"
    ]


def test_micromamba_install_copies_the_spec_file_to_the_root(tmp_path: Path) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text("dependencies:\n  - numpy\n")
    image = modal.Image.micromamba("3.11")
    with_packages = image.micromamba_install("scipy", spec_file=str(spec))
    assert commands(with_packages) == ["micromamba install scipy -f /environment.yml -n base --yes"]
    assert copied(with_packages) == ["/environment.yml"]
    alone = image.micromamba_install(spec_file=str(spec), channels=["conda-forge"])
    assert commands(alone) == [
        "micromamba install -f /environment.yml -n base -c conda-forge --yes"
    ]
    spec.write_text("dependencies:\n  - scipy\n")
    assert _plan(alone).key != _plan(image.micromamba_install(spec_file=str(spec))).key


def test_micromamba_install_checks_its_arguments() -> None:
    image = modal.Image.micromamba("3.11")
    assert image.micromamba_install() is image
    assert image.micromamba_install([], channels=["conda-forge"]) is image
    with pytest.raises(InvalidError, match="micromamba_install: packages must only contain"):
        image.micromamba_install("numpy", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="channels must be a list of strings"):
        image.micromamba_install("numpy", channels="conda-forge")  # type: ignore[arg-type]
    with pytest.raises(LocalFileNotFoundError, match=r"test_package_managers\.py:"):
        image.micromamba_install(spec_file="/nonexistent/env.yml")


def test_micromamba_as_a_dockerfile_is_modals(tmp_path: Path) -> None:
    spec = tmp_path / "env.yml"
    spec.write_text("dependencies: [numpy]\n")
    image = modal.Image.micromamba("3.11").micromamba_install(
        "pyyaml", spec_file=str(spec), channels=["conda-forge"]
    )
    lines = dockerfile(image)
    assert lines[:5] == [
        "FROM mambaorg/micromamba:2.9.0-debian13-slim",
        'SHELL ["/usr/local/bin/_dockerfile_shell.sh"]',
        'ENV MAMBA_DOCKERFILE_ACTIVATE="1"',
        "RUN micromamba install -n base -y python=3.11 pip -c conda-forge",
        'CMD ["sleep", "172800"]',
    ]
    assert lines[5].startswith("COPY [") and lines[5].endswith('/env.yml", "/env.yml"]')
    assert lines[6:] == ["RUN micromamba install pyyaml -f /env.yml -n base -c conda-forge --yes"]


# ---- poetry_install_from_file ---------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.poetry]\nname = "demo"\n')
    (tmp_path / "poetry.lock").write_text("# locked\n")
    return tmp_path


POETRY_INSTALL = (
    "cd /tmp/poetry && poetry config virtualenvs.create false && poetry install --no-root"
)


def test_poetry_installs_poetry_then_the_locked_dependencies(project: Path) -> None:
    image = BASE.poetry_install_from_file(str(project / "pyproject.toml"))
    assert commands(image) == [
        "python -m pip install poetry",
        f"{POETRY_INSTALL} --compile",
    ]
    assert copied(image) == ["/tmp/poetry/poetry.lock", "/tmp/poetry/pyproject.toml"]
    # poetry reads the files Modal copies into /tmp/poetry, so it sees the image's /tmp
    runs = [a.run for a in _plan(image).steps[-1].actions if isinstance(a, RunCommand)]
    assert [run.image_tmp for run in runs] == [False, True]


def test_poetry_options_become_modals_flags(project: Path) -> None:
    pyproject = str(project / "pyproject.toml")
    image = BASE.poetry_install_from_file(
        pyproject,
        with_=["dev", "docs"],
        without=["test"],
        only=["main"],
        poetry_version="1.8.3",
        old_installer=True,
    )
    assert commands(image) == [
        "python -m pip install poetry==1.8.3",
        "poetry config experimental.new-installer false",
        f"{POETRY_INSTALL} --with dev,docs --without test --only main --compile",
    ]
    unmanaged = BASE.poetry_install_from_file(pyproject, poetry_version=None)
    assert commands(unmanaged) == [f"{POETRY_INSTALL} --compile"]


def test_poetry_lockfile_is_inferred_given_or_ignored(project: Path, tmp_path: Path) -> None:
    pyproject = str(project / "pyproject.toml")
    other = tmp_path / "elsewhere.lock"
    other.write_text("# other lock\n")
    given = BASE.poetry_install_from_file(pyproject, str(other))
    inferred = BASE.poetry_install_from_file(pyproject)
    assert _plan(given).key != _plan(inferred).key  # the lock's content keys the step
    ignored = BASE.poetry_install_from_file(pyproject, ignore_lockfile=True)
    assert copied(ignored) == ["/tmp/poetry/pyproject.toml"]
    (project / "poetry.lock").unlink()
    assert copied(BASE.poetry_install_from_file(pyproject, ignore_lockfile=True)) == [
        "/tmp/poetry/pyproject.toml"
    ]
    with pytest.raises(NotFoundError) as caught:
        BASE.poetry_install_from_file(pyproject)
    assert str(caught.value).startswith(  # Modal's message, then the user's line
        f"poetry.lock not found at inferred location: {project / 'poetry.lock'}. "
        "If a lockfile is not needed, `ignore_lockfile=True` can be used. (at "
    ) and "test_package_managers.py:" in str(caught.value)


def test_poetry_checks_its_arguments(project: Path) -> None:
    pyproject = str(project / "pyproject.toml")
    with pytest.raises(InvalidError, match="--with groups must be a list of str"):
        BASE.poetry_install_from_file(pyproject, with_="dev")  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="poetry_version must be a str or None"):
        BASE.poetry_install_from_file(pyproject, poetry_version=1.8)  # type: ignore[arg-type]
    with pytest.raises(LocalFileNotFoundError, match=r"test_package_managers\.py:"):
        BASE.poetry_install_from_file(
            str(project / "nope" / "pyproject.toml"), ignore_lockfile=True
        )


def test_poetry_as_a_dockerfile(project: Path) -> None:
    lines = dockerfile(BASE.poetry_install_from_file(str(project / "pyproject.toml")))
    tail = lines[-4:]
    assert tail[0] == "RUN python -m pip install poetry"
    assert tail[1].endswith('/poetry.lock", "/tmp/poetry/poetry.lock"]')
    assert tail[2].endswith('/pyproject.toml", "/tmp/poetry/pyproject.toml"]')
    assert tail[3] == f"RUN {POETRY_INSTALL} --compile"


# ---- pip_install_private_repos --------------------------------------------------------------


def test_private_repos_need_secrets() -> None:
    message = (
        "No secrets provided to function. Installing private packages requires tokens to be "
        "passed via modal.Secret objects."
    )
    with pytest.raises(InvalidError) as caught:
        BASE.pip_install_private_repos("github.com/org/repo", git_user="me")
    assert str(caught.value) == message
    with pytest.raises(InvalidError, match="No secrets provided"):
        BASE.pip_install_private_repos(
            "github.com/org/repo", git_user="me", env={"GITHUB_TOKEN": TOKEN}
        )


def test_private_repos_must_be_on_github_or_gitlab() -> None:
    with pytest.raises(InvalidError) as caught:
        BASE.pip_install_private_repos(
            "github.com/org/ok",
            "bitbucket.org/org/repo",
            "https://github.com/org/repo",
            git_user="me",
            secrets=[SECRET],
        )
    assert str(caught.value) == (
        "2 out of 3 given repository refs are invalid. "
        "Invalid refs: ['bitbucket.org/org/repo', 'https://github.com/org/repo']. "
    )
    with pytest.raises(InvalidError, match="1 out of 1 given repository refs are invalid"):
        BASE.pip_install_private_repos(7, git_user="me", secrets=[SECRET])  # type: ignore[arg-type]


def test_private_repo_commands_keep_the_token_out_of_every_command_line() -> None:
    image = BASE.pip_install_private_repos(
        "github.com/org/one@v1",
        "gitlab.com/group/two#subdirectory=inner",
        git_user="me",
        pre=True,
        secrets=[SECRET],
        env={"GITLAB_TOKEN": "glpat-" + "x" * 20},
    )
    cmds = commands(image)
    assert len(cmds) == 5
    assert cmds[0].startswith('[ -n "${GITHUB_TOKEN+set}" ] || { echo ')
    assert "GITHUB_TOKEN env var not set by provided modal.Secret(s): Secret(keys=" in cmds[0]
    assert cmds[1].startswith('[ -n "${GITLAB_TOKEN+set}" ]')
    assert cmds[2] == "apt-get update && apt-get install -y git"
    assert cmds[3].endswith(
        f"GIT_ASKPASS={GIT_ASKPASS} python3 -m pip install git+https://me@github.com/org/one@v1"
        " --pre"
    )
    assert cmds[4].endswith(
        "python3 -m pip install 'git+https://me@gitlab.com/group/two#subdirectory=inner' --pre"
    )
    assert GIT_ASKPASS.startswith("/tmp/")  # the step's private tmpfs: never in the layer
    assert all(TOKEN not in c and "glpat-" not in c for c in cmds)
    step = _plan(image).steps[-1]
    assert all(not a.run.image_tmp for a in step.actions if isinstance(a, RunCommand))
    assert {k for s in step.layer.secrets for k in s.env} == {"GITHUB_TOKEN", "GITLAB_TOKEN"}


def test_private_repo_token_reaches_git_only_through_the_askpass_helper(tmp_path: Path) -> None:
    """Run the install command on the host, with the helper in tmp_path and a `python3` that
    records its argv and asks GIT_ASKPASS for the password as git would."""
    image = BASE.pip_install_private_repos(
        "github.com/org/one", "gitlab.com/g/two", git_user="me", secrets=[SECRET]
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/argv\n'
        'for a; do case "$a" in git+https://*) host=${a#git+https://}; host=${host%%/*};; esac; done\n'
        '"$GIT_ASKPASS" "Password for \'https://$host\': "\n'
    )
    fake.chmod(0o755)
    helper = tmp_path / "askpass"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "GITHUB_TOKEN": TOKEN,
        "GITLAB_TOKEN": "glpat-token",
    }
    outputs = []
    for command in commands(image)[3:]:
        command = command.replace(GIT_ASKPASS, str(helper))
        done = subprocess.run(
            ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(done.stdout.strip())
    assert outputs == [TOKEN, "glpat-token"]
    assert TOKEN not in (tmp_path / "argv").read_text()
    assert TOKEN not in helper.read_text()
    assert oct(os.stat(helper).st_mode & 0o777) == "0o700"


def test_private_repos_cannot_be_written_as_a_dockerfile() -> None:
    image = BASE.pip_install_private_repos("github.com/org/one", git_user="me", secrets=[SECRET])
    with pytest.raises(InvalidError, match="steps with secrets"):
        render_dockerfile(image)

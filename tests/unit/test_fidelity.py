"""Issue 12, fidelity to Modal: local paths resolved against the current directory when the
method is called (and a missing one refused there, at the user's line), Modal's signatures and
exception types. Each local-path test defines the image in one directory and plans it from
another, as `imagewright build` does when its copy steps run."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import imagewright as modal
from imagewright import settings
from imagewright.exception import InvalidError, LocalFileNotFoundError, NotFoundError
from imagewright.plan.files import FileEntry
from imagewright.plan.planner import CopyFiles, RunCommand, plan_image, resolve_mounts

THIS_FILE = "test_fidelity.py:"
BASE = modal.Image.debian_slim(python_version="3.11")


def sources(image: modal.Image) -> dict[str, str]:
    """Destination → host source of the files the image's last planned step copies."""
    actions = plan_image(image).steps[-1].actions
    entries: list[FileEntry] = [
        e for a in actions if isinstance(a, CopyFiles) for e in a.entries if e.kind == "file"
    ]
    return {e.dest: e.source for e in entries}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory, the current one, holding every kind of local file Image reads."""
    root = tmp_path / "project"
    (root / "uvproj").mkdir(parents=True)
    (root / "requirements.txt").write_text("click\n")
    (root / "pyproject.toml").write_text('[project]\nname = "p"\ndependencies = ["click"]\n')
    (root / "poetry.lock").write_text("")
    (root / "uvproj" / "pyproject.toml").write_text('[project]\nname = "u"\nversion = "0"\n')
    (root / "env.yml").write_text("dependencies: [click]\n")
    (root / "Dockerfile").write_text("FROM scratch\nCOPY data.txt /data.txt\n")
    (root / "data.txt").write_text("data\n")
    (root / "assets").mkdir()
    (root / "assets" / "a.txt").write_text("a\n")
    (root / ".env").write_text("TOKEN=abc\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(root)
    return root


def _leave(project: Path) -> None:
    os.chdir(project.parent / "elsewhere")


def test_requirements_files_resolve_where_the_method_is_called(project: Path) -> None:
    pip = BASE.pip_install_from_requirements("requirements.txt")
    uv = BASE.uv_pip_install(requirements=["requirements.txt"])
    uv_from = BASE.uv_pip_install_from_requirements("requirements.txt")
    _leave(project)
    expected = str(project / "requirements.txt")
    assert sources(pip) == {"/.requirements.txt": expected}
    assert sources(uv) == {"/.uv/0/requirements.txt": expected}
    assert sources(uv_from) == {"/.uv/0/requirements.txt": expected}


def test_project_files_resolve_where_the_method_is_called(project: Path) -> None:
    poetry = BASE.poetry_install_from_file("pyproject.toml")
    uv_sync = BASE.uv_sync("uvproj")
    mamba = BASE.micromamba_install(spec_file="env.yml")
    from_pyproject = BASE.pip_install_from_pyproject("pyproject.toml")
    _leave(project)
    assert sources(poetry) == {
        "/tmp/poetry/poetry.lock": str(project / "poetry.lock"),
        "/tmp/poetry/pyproject.toml": str(project / "pyproject.toml"),
    }
    assert sources(uv_sync) == {"/.uv/pyproject.toml": str(project / "uvproj/pyproject.toml")}
    assert sources(mamba) == {"/env.yml": str(project / "env.yml")}
    (run,) = plan_image(from_pyproject).steps[-1].actions  # read when called: nothing copied
    assert isinstance(run, RunCommand) and run.run.command.endswith("install click")


def test_dockerfile_and_context_dir_resolve_where_the_method_is_called(project: Path) -> None:
    image = modal.Image.from_dockerfile("Dockerfile", context_dir=".")
    commands = BASE.dockerfile_commands(["COPY data.txt /data.txt"], context_dir=".")
    _leave(project)
    assert sources(image) == {"/data.txt": str(project / "data.txt")}
    assert sources(commands) == {"/data.txt": str(project / "data.txt")}


def test_local_files_and_dirs_resolve_where_the_method_is_called(project: Path) -> None:
    copied = BASE.add_local_file("data.txt", "/data.txt", copy=True)
    copied_dir = BASE.add_local_dir("assets", "/assets", copy=True)
    legacy = BASE.copy_local_file("data.txt", "/data.txt")
    legacy_dir = BASE.copy_local_dir("assets", "/assets")
    attached = BASE.add_local_file("data.txt", "/data.txt").add_local_dir("assets", "/assets")
    _leave(project)
    assert sources(copied) == sources(legacy) == {"/data.txt": str(project / "data.txt")}
    assert (
        sources(copied_dir)
        == sources(legacy_dir)
        == {"/assets/a.txt": str(project / "assets/a.txt")}
    )
    mounted = {e.dest: e.source for e in resolve_mounts(attached._mounts) if e.kind == "file"}
    assert mounted == {
        "/data.txt": str(project / "data.txt"),
        "/assets/a.txt": str(project / "assets/a.txt"),
    }


_DEFINITIONS: list[Callable[[Path], object]] = [
    lambda p: BASE.pip_install_from_requirements("requirements.txt"),
    lambda p: BASE.uv_pip_install(requirements=["requirements.txt"]),
    lambda p: BASE.uv_pip_install_from_requirements("requirements.txt"),
    lambda p: BASE.pip_install_from_pyproject("pyproject.toml"),
    lambda p: BASE.poetry_install_from_file("pyproject.toml"),
    lambda p: BASE.poetry_install_from_file(str(p / "pyproject.toml"), "poetry.lock"),
    lambda p: BASE.micromamba_install(spec_file="env.yml"),
    lambda p: BASE.uv_sync("uvproj"),
    lambda p: modal.Image.from_dockerfile("Dockerfile"),
    lambda p: modal.Image.from_dockerfile(p / "Dockerfile", context_dir="assets"),
    lambda p: BASE.dockerfile_commands(["RUN true"], context_dir="assets"),
    lambda p: BASE.dockerfile_commands(["RUN true"], context_files={"/a": "data.txt"}),
]


@pytest.mark.parametrize("define", _DEFINITIONS)
def test_a_missing_local_path_raises_at_the_call(
    project: Path, define: Callable[[Path], object]
) -> None:
    """From a directory without the files, the call itself fails, naming the path it looked
    for (and the directory a relative one is resolved against) and the user's line."""
    _leave(project)
    with pytest.raises(LocalFileNotFoundError) as info:
        define(project)
    message = str(info.value)
    assert THIS_FILE in message, message
    assert f"not found: {project.parent / 'elsewhere'}/" in message, message
    assert "resolved against the current directory" in message, message


def test_missing_local_files_of_add_local_raise_at_plan_time_naming_the_line(
    project: Path,
) -> None:
    _leave(project)
    copied = BASE.add_local_file("data.txt", "/data.txt", copy=True)
    with pytest.raises(LocalFileNotFoundError, match=THIS_FILE + r"\d+: local path not found"):
        plan_image(copied)
    attached = BASE.add_local_dir("assets", "/assets")
    with pytest.raises(LocalFileNotFoundError, match=THIS_FILE + r"\d+: local path not found"):
        resolve_mounts(attached._mounts)


def test_inside_a_container_local_paths_are_not_checked(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container imports the program again without its local files: no call may fail."""
    _leave(project)
    monkeypatch.setenv(settings.IN_CONTAINER, "1")
    BASE.pip_install_from_requirements("requirements.txt")
    BASE.uv_sync("uvproj")
    BASE.pip_install_from_pyproject("pyproject.toml")
    BASE.poetry_install_from_file("pyproject.toml")
    assert modal.Secret.from_dotenv().env == {}


def test_from_dotenv_walks_up_from_the_current_directory(project: Path) -> None:
    (project / "assets" / "deeper").mkdir()
    os.chdir(project / "assets" / "deeper")
    assert modal.Secret.from_dotenv().env == {"TOKEN": "abc"}
    _leave(project)
    with pytest.raises(NotFoundError, match=THIS_FILE + r"\d+: .*no \.env file in"):
        modal.Secret.from_dotenv()


def test_from_dotenv_of_a_file_searches_its_directory(project: Path) -> None:
    """Modal's `Secret.from_dotenv(__file__)`: the .env beside (or above) that file."""
    (project / "app.py").write_text("")
    _leave(project)
    assert modal.Secret.from_dotenv(project / "app.py").env == {"TOKEN": "abc"}
    assert modal.Secret.from_dotenv(project / "assets").env == {"TOKEN": "abc"}
    with pytest.raises(NotFoundError, match=THIS_FILE):
        modal.Secret.from_dotenv(project / "assets", filename=".env-dev")


# ---- signatures ------------------------------------------------------------------------------


def test_file_pattern_matcher_from_file_takes_file_path(tmp_path: Path) -> None:
    ignore = tmp_path / ".ignore"
    ignore.write_text("*.log\n")
    matcher = modal.FilePatternMatcher.from_file(file_path=ignore)
    assert matcher(Path("x.log")) and not matcher(Path("x.py"))


def test_image_build_accepts_modal_app_argument() -> None:
    params = inspect.signature(modal.Image.build).parameters
    assert list(params)[:2] == ["self", "app"]
    assert params["app"].default is None
    assert params["force"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("decorator", ["function", "cls", "local_entrypoint"])
def test_app_decorators_without_parentheses_raise_modal_type_error(decorator: str) -> None:
    app = modal.App()

    def f() -> None:
        pass

    with pytest.raises(TypeError) as info:
        getattr(app, decorator)(f)
    assert not isinstance(info.value, InvalidError)
    assert str(info.value) == f"App.{decorator}() takes 1 positional argument but 2 were given"


def test_env_names_a_key_that_is_not_a_string() -> None:
    with pytest.raises(InvalidError, match=r"Invalid keys: \[1\]"):
        BASE.env({1: "a"})  # type: ignore[dict-item]
    with pytest.raises(InvalidError, match=r"Invalid keys: \['B'\]"):
        BASE.env({"A": "1", "B": 2})  # type: ignore[dict-item]


# ---- --json on failure ---------------------------------------------------------------------


def test_json_commands_print_one_error_object_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from imagewright.cli.main import run

    monkeypatch.setenv("IMAGEWRIGHT_HOME", str(tmp_path / "home"))
    assert run(["volume", "ls", "nope", "--json"]) == 2  # exit codes unchanged
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "NotFoundError" and "nope" in error["message"]
    assert error["where"] is None

    app = tmp_path / "app.py"
    app.write_text("import imagewright as modal\nraise ValueError('bad config')\n")
    assert run(["build", str(app), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error == {"type": "ValueError", "message": "bad config", "where": f"{app}:2"}

    app.write_text(
        "import imagewright as modal\n\nimage = modal.Image.debian_slim().env({1: 'a'})\n"
    )
    assert run(["build", str(app), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "InvalidError" and "Invalid keys: [1]" in error["message"]
    assert error["where"] == f"{app}:3"


def test_without_json_a_failure_prints_nothing_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from imagewright.cli.main import run

    monkeypatch.setenv("IMAGEWRIGHT_HOME", str(tmp_path / "home"))
    assert run(["volume", "ls", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "nope" in captured.err

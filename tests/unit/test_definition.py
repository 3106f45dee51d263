"""Fast, pure tests of the Image definition API and its plan: no building, no root, no network.

Everything here stops at `plan_image` (or `resolve_mounts`), which is where imagewright reads
local files and validates Python versions, so these tests run in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import imagewright as modal
from imagewright.exception import InvalidError, NotFoundError
from imagewright.plan.files import FileEntry
from imagewright.plan.planner import CopyFiles, RunCommand, plan_image, resolve_mounts

THIS_FILE = "test_definition.py:"
BASE = modal.Image.debian_slim(python_version="3.11")


def commands(image: modal.Image) -> list[str]:
    """The shell commands of the image's last planned step."""
    actions = plan_image(image).steps[-1].actions
    return [a.run.command for a in actions if isinstance(a, RunCommand)]


def entries(image: modal.Image) -> dict[str, FileEntry]:
    """The files the image's last planned step creates, by destination path."""
    actions = plan_image(image).steps[-1].actions
    return {e.dest: e for a in actions if isinstance(a, CopyFiles) for e in a.entries}


def keys(image: modal.Image) -> list[str]:
    return [step.key for step in plan_image(image).steps]


# ---- construction and immutability ---------------------------------------------------------


def test_image_has_no_constructor() -> None:
    with pytest.raises(InvalidError, match="no constructor"):
        modal.Image()


def test_methods_return_new_images_and_never_mutate_the_parent(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    parent = BASE.pip_install("numpy")
    before = plan_image(parent)
    children = [
        parent.apt_install("git"),
        parent.run_commands("true"),
        parent.env({"A": "1"}),
        parent.workdir("/app"),
        parent.copy_local_file(tmp_path / "f.txt"),
        parent.add_local_file(tmp_path / "f.txt", "/f.txt"),
        parent.add_local_file(tmp_path / "f.txt", "/f.txt", copy=True),
    ]
    assert all(child is not parent for child in children)
    assert plan_image(parent) == before
    assert plan_image(parent).mounts == ()


def test_empty_package_lists_return_the_same_image() -> None:
    assert BASE.apt_install() is BASE
    assert BASE.pip_install() is BASE
    assert BASE.pip_install([]) is BASE
    assert BASE.uv_pip_install() is BASE
    assert BASE.uv_pip_install(requirements=[]) is BASE
    assert BASE.run_commands() is BASE


def test_empty_env_still_makes_a_step() -> None:
    image = BASE.env({})
    assert image is not BASE
    assert len(plan_image(image).steps) == len(plan_image(BASE).steps) + 1


def test_pipe_calls_the_function_with_the_image_and_arguments() -> None:
    seen = []

    def recipe(image: modal.Image, *args: object, **kwargs: object) -> modal.Image:
        seen.append((image, args, kwargs))
        return image.run_commands("true")

    result = BASE.pipe(recipe, 1, k=2)
    assert seen == [(BASE, (1,), {"k": 2})]
    assert commands(result) == ["true"]


# ---- package arguments ---------------------------------------------------------------------


def test_str_and_list_arguments_flatten_one_level() -> None:
    assert commands(BASE.pip_install("b", ["a", "c"])) == ["python -m pip install a b c"]
    assert commands(BASE.run_commands("echo 1", ["echo 2", "a && b"])) == [
        "echo 1",
        "echo 2",
        "a && b",
    ]


@pytest.mark.parametrize("bad", [("a", "b"), 1, ["a", ["b"]]], ids=["tuple", "int", "nested"])
@pytest.mark.parametrize("method", ["apt_install", "pip_install", "uv_pip_install", "run_commands"])
def test_non_string_package_arguments_are_rejected(method: str, bad: object) -> None:
    with pytest.raises(InvalidError, match=f"{method}: .* must only contain strings"):
        getattr(BASE, method)("ok", bad)


def test_pip_sorts_and_quotes_packages() -> None:
    image = BASE.pip_install("torch==2.0", ["numpy", "a b"], "click")
    assert commands(image) == ["python -m pip install 'a b' click numpy torch==2.0"]


def test_apt_keeps_package_order_and_updates_first() -> None:
    assert commands(BASE.apt_install("git", ["curl", "lib x"])) == [
        "apt-get update",
        "apt-get install -y git curl 'lib x'",
    ]


def test_uv_pip_install_command_sorts_and_quotes_packages() -> None:
    (cmd,) = commands(BASE.uv_pip_install("torch==2.0", ["numpy", "a b"]))
    assert cmd == (
        "/.uv/uv pip install --python $(command -v python) --compile-bytecode"
        " 'a b' numpy torch==2.0"
    )


def test_uv_pip_install_copies_requirements_files(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("numpy\n")
    image = BASE.uv_pip_install("click", requirements=[str(req)])
    (cmd,) = commands(image)
    assert cmd.startswith("/.uv/uv pip install --python $(command -v python) --compile-bytecode")
    assert cmd.endswith(" --requirements /.uv/0/requirements.txt click")
    assert list(entries(image)) == ["/.uv/0/requirements.txt"]


def test_uv_requirements_must_be_a_list() -> None:
    with pytest.raises(InvalidError, match="requirements must be None or a list of strings"):
        BASE.uv_pip_install(requirements="x.txt")


@pytest.mark.parametrize("flag", ["-U", "--pre"])
@pytest.mark.parametrize("method", ["pip_install", "uv_pip_install"])
def test_flags_in_package_lists_point_to_extra_options(method: str, flag: str) -> None:
    with pytest.raises(InvalidError, match=f"Image.{method}.*`extra_options`"):
        getattr(BASE, method)("numpy", flag)


# ---- Python versions -----------------------------------------------------------------------


def test_float_python_version_is_a_type_error_right_away() -> None:
    with pytest.raises(TypeError, match="should be a string, not a float"):
        modal.Image.debian_slim(python_version=3.11)


@pytest.mark.parametrize(
    ("version", "words"),
    [
        ("2.7", "Invalid Python version: '2.7'"),
        ("3", "Invalid Python version: '3'"),
        ("3.11.x", "Invalid Python version: '3.11.x'"),
        ("3.11.4.1", "Invalid Python version: '3.11.4.1'"),
        ("3.13t", "Free threaded Python is not supported with Image.debian_slim()"),
    ],
)
def test_malformed_python_versions_fail_at_the_call(version: str, words: str) -> None:
    with pytest.raises(InvalidError) as info:
        modal.Image.debian_slim(python_version=version)
    message = str(info.value)
    assert words in message
    assert THIS_FILE in message


def test_an_exact_version_debian_ships_is_its_own_python() -> None:
    """bookworm ships CPython 3.11.2: asking for it exactly is the 3.11 base, no download."""
    exact = plan_image(modal.Image.debian_slim(python_version="3.11.2"))
    assert exact.key == plan_image(BASE).key
    assert not any("standalone" in step.description for step in exact.steps)


def test_another_micro_version_is_a_standalone_cpython_of_exactly_it() -> None:
    plan = plan_image(modal.Image.debian_slim(python_version="3.11.4"))
    assert "standalone CPython 3.11.4" in plan.steps[1].description
    release = plan.steps[1].actions[0].release
    assert (release.suite, release.series) == ("bookworm", "3.11.4")
    assert release.interpreter.endswith("/bin/python3.11")
    assert plan.steps[0].key == plan_image(BASE).steps[0].key  # the same Debian below it
    other = plan_image(modal.Image.debian_slim(python_version="3.11.5"))
    assert len({plan.key, other.key, plan_image(BASE).key}) == 3
    message = release.standalone_error
    assert "'3.11.4' exactly" in message and "Debian bookworm ships Python 3.11.2" in message
    assert THIS_FILE in message


def test_a_micro_version_of_a_moving_release_is_always_standalone() -> None:
    plan = plan_image(modal.Image.debian_slim(python_version="3.14.0"))
    assert "standalone CPython 3.14.0" in plan.steps[1].description


def _standalone_error(image: modal.Image) -> str:
    """The error a build raises for this base if uv cannot download a standalone CPython."""
    setup = plan_image(image).steps[1].actions[0]
    return setup.release.standalone_error


@pytest.mark.parametrize(
    ("version", "words"),
    [
        ("3.8", "Unsupported Python version: '3.8'"),
        ("3.12", "use Image.ubuntu(python_version='3.12')"),
        ("3.10", "use Image.ubuntu(python_version='3.10')"),
        ("3.13rc1", "Unsupported Python version: '3.13rc1'"),
    ],
)
def test_series_no_release_packages_fall_back_to_standalone(version: str, words: str) -> None:
    image = modal.Image.debian_slim(python_version=version)
    plan = plan_image(image)
    assert "standalone CPython" in plan.steps[1].description
    message = _standalone_error(image)
    assert words in message and THIS_FILE in message


def test_unsupported_series_lists_the_series_on_offer_in_order() -> None:
    message = _standalone_error(modal.Image.debian_slim(python_version="3.8"))
    assert "series: 3.9 (bullseye), 3.11 (bookworm), 3.13 (trixie), 3.14 (forky)" in message
    assert "Image.ubuntu" not in message


def test_ubuntu_hints_at_debian_for_debian_series() -> None:
    message = _standalone_error(modal.Image.ubuntu(python_version="3.11"))
    assert "use Image.debian_slim(python_version='3.11')" in message


# ---- config: env and workdir ---------------------------------------------------------------


def test_env_values_must_be_strings() -> None:
    with pytest.raises(InvalidError, match=r"must be strings.*\['A'\]"):
        BASE.env({"A": 1})


def test_env_values_are_kept_literally() -> None:
    env = dict(plan_image(BASE.env({"B": "hello world", "C": "$X"})).config.env)
    assert env["B"] == "hello world"
    assert env["C"] == "$X"


def test_copy_local_file_default_remote_resolves_against_workdir(tmp_path: Path) -> None:
    local = tmp_path / "settings.toml"
    local.write_text("x")
    image = BASE.workdir("/app").copy_local_file(local)
    assert list(entries(image)) == ["/app/settings.toml"]
    assert list(entries(image.copy_local_file(local, "/etc/x.conf"))) == ["/etc/x.conf"]


# ---- local files: add_local_* and the "add_local last" rule --------------------------------


@pytest.mark.parametrize("method", ["add_local_file", "add_local_dir"])
def test_add_local_needs_an_absolute_remote_path(tmp_path: Path, method: str) -> None:
    with pytest.raises(InvalidError, match="only supports absolute remote_path values"):
        getattr(BASE, method)(tmp_path, "relative/path")


def test_build_step_after_add_local_fails_at_plan_time(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    image = BASE.add_local_file(tmp_path / "f.txt", "/f.txt").run_commands("true")
    with pytest.raises(InvalidError) as info:
        plan_image(image)
    assert "An image tried to run a build step after using `image.add_local_*`" in str(info.value)
    assert "copy=True" in str(info.value)
    assert THIS_FILE in str(info.value)


def test_consecutive_add_local_mounts_accumulate(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    image = BASE.add_local_file(tmp_path / "f.txt", "/data/").add_local_dir(tmp_path, "/src")
    plan = plan_image(image)
    assert [m.remote for m in plan.mounts] == ["/data/", "/src"]
    assert plan.key == plan_image(BASE).key  # mounts are attached at start, not built
    assert [e.dest for e in resolve_mounts(plan.mounts)] == ["/data/f.txt", "/src/f.txt"]


def test_build_steps_after_copied_adds_are_fine(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    image = (
        BASE.add_local_file(tmp_path / "f.txt", "/f.txt", copy=True)
        .add_local_dir(tmp_path, "/src", copy=True)
        .run_commands("cat /f.txt")
    )
    plan = plan_image(image)
    assert plan.mounts == ()
    assert commands(image) == ["cat /f.txt"]


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("copy_local_file", ()),
        ("add_local_file", ("/m.txt",)),
        ("add_local_dir", ("/m",)),
    ],
)
def test_missing_local_path_fails_at_plan_time_naming_the_call(
    tmp_path: Path, call: str, args: tuple[str, ...]
) -> None:
    method = getattr(BASE, call)
    image = method(tmp_path / "missing.txt", *args, **({"copy": True} if args else {}))
    with pytest.raises(FileNotFoundError) as info:
        plan_image(image)
    assert f"{call}('" in str(info.value)
    assert "missing.txt" in str(info.value)
    assert THIS_FILE in str(info.value)


def test_missing_mounted_file_fails_when_mounts_are_resolved(tmp_path: Path) -> None:
    plan = plan_image(BASE.add_local_file(tmp_path / "missing.txt", "/m.txt"))
    with pytest.raises(FileNotFoundError, match=THIS_FILE):
        resolve_mounts(plan.mounts)


def test_add_local_dir_on_a_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(InvalidError, match=f"{THIS_FILE}.*is not a directory"):
        plan_image(BASE.add_local_dir(tmp_path / "f.txt", "/f", copy=True))


# ---- copied directories: ignore rules and symlinks -----------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small project: top-level a.pyc, __pycache__/x.pyc, x.log, keep.py and sub/b.pyc."""
    root = tmp_path / "project"
    (root / "__pycache__").mkdir(parents=True)
    (root / "sub").mkdir()
    for name in ("a.pyc", "__pycache__/x.pyc", "x.log", "keep.py", "sub/b.pyc"):
        (root / name).write_text(name)
    return root


def test_copy_local_dir_applies_dockerignore_patterns(tree: Path) -> None:
    image = BASE.copy_local_dir(tree, "/app", ignore=["*.pyc", "__pycache__", "*.log"])
    assert sorted(entries(image)) == ["/app/keep.py", "/app/sub", "/app/sub/b.pyc"]


def test_copy_local_dir_accepts_a_callable_ignore(tree: Path) -> None:
    seen: list[Path] = []

    def ignore(path: Path) -> bool:
        seen.append(path)
        return path.suffix in (".pyc", ".log")

    image = BASE.copy_local_dir(tree, "/app", ignore=ignore)
    assert sorted(entries(image)) == ["/app/__pycache__", "/app/keep.py", "/app/sub"]
    assert Path("sub/b.pyc") in seen  # paths are relative to the copied directory


def test_symlinks_are_recorded_not_followed(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("x")
    os.symlink("real.txt", tmp_path / "inside")
    os.symlink("/etc/passwd", tmp_path / "outside")
    found = entries(BASE.copy_local_dir(tmp_path, "/app"))
    assert (found["/app/inside"].kind, found["/app/inside"].target) == ("symlink", "real.txt")
    assert (found["/app/outside"].kind, found["/app/outside"].target) == ("symlink", "/etc/passwd")
    assert found["/app/outside"].source == ""  # nothing is read from the link's target


# ---- cache keys ----------------------------------------------------------------------------


def test_same_definition_gives_the_same_keys() -> None:
    image = BASE.apt_install("git").pip_install("numpy")
    assert keys(image) == keys(image)
    assert keys(image) == keys(BASE.apt_install("git").pip_install("numpy"))


def test_changing_a_late_step_keeps_earlier_keys() -> None:
    first = keys(BASE.apt_install("git").pip_install("numpy"))
    second = keys(BASE.apt_install("git").pip_install("scipy"))
    assert first[:-1] == second[:-1]
    assert first[-1] != second[-1]


def test_editing_a_copied_file_changes_its_step_and_later_ones(tmp_path: Path) -> None:
    local = tmp_path / "app.py"
    local.write_text("print(1)")
    local.chmod(0o644)
    image = BASE.pip_install("numpy").copy_local_file(local, "/app.py").run_commands("true")
    original = keys(image)
    local.write_text("print(2)")
    edited = keys(image)
    local.write_text("print(1)")
    local.chmod(0o755)
    chmodded = keys(image)
    for changed in (edited, chmodded):
        assert changed[:-2] == original[:-2]
        assert all(a != b for a, b in zip(changed[-2:], original[-2:], strict=True))


def test_moving_copied_files_keeps_the_key(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        (root / "pkg").mkdir(parents=True)
        (root / "pkg" / "m.py").write_text("x = 1")
    assert keys(BASE.copy_local_dir(one, "/src")) == keys(BASE.copy_local_dir(two, "/src"))


def test_secrets_change_the_key_by_name_not_value() -> None:
    def key(env: dict[str, str]) -> str:
        return plan_image(BASE.run_commands("true", secrets=[modal.Secret.from_dict(env)])).key

    assert key({"T": "a"}) == key({"T": "b"})
    assert key({"T": "a"}) != key({"U": "a"})


# ---- force_build ---------------------------------------------------------------------------


def test_force_build_applies_to_the_step_and_later_ones() -> None:
    image = BASE.apt_install("git").pip_install("numpy", force_build=True).run_commands("true")
    assert [step.force for step in plan_image(image).steps] == [False] * 3 + [True] * 2


def test_force_build_environment_variable_forces_every_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGEWRIGHT_FORCE_BUILD", "1")
    assert all(step.force for step in plan_image(BASE.pip_install("numpy")).steps)


# ---- secrets -------------------------------------------------------------------------------


def test_secret_from_dict_rejects_non_string_values() -> None:
    with pytest.raises(InvalidError, match=r"values must be strings.*\['N'\]"):
        modal.Secret.from_dict({"N": 1})
    assert modal.Secret.from_dict({"A": "1", "B": None}).env == {"A": "1"}


def test_secret_from_dotenv_reads_comments_quotes_and_export(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# a comment\n\nA=1\nexport B=two words\nC='single $X'\nD=\"double # not a comment\"\n"
    )
    assert modal.Secret.from_dotenv(tmp_path).env == {
        "A": "1",
        "B": "two words",
        "C": "single $X",
        "D": "double # not a comment",
    }
    assert modal.Secret.from_dotenv(dotenv).env["A"] == "1"
    with pytest.raises(NotFoundError, match="no such file"):
        modal.Secret.from_dotenv(tmp_path / "nope.env")


def test_secret_from_dotenv_strips_inline_comments(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TOKEN=abc  # production token\n")
    assert modal.Secret.from_dotenv(tmp_path).env == {"TOKEN": "abc"}


# ---- imports() -----------------------------------------------------------------------------


def test_imports_swallows_import_error_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGEWRIGHT_IN_CONTAINER", raising=False)
    with BASE.imports():
        import imagewright_module_that_does_not_exist
    monkeypatch.setenv("IMAGEWRIGHT_IN_CONTAINER", "1")
    with pytest.raises(ImportError), BASE.imports():
        import imagewright_module_that_does_not_exist  # noqa: F401

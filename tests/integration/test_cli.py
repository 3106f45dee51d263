"""The CLI as scripts use it: --json output, NAME selection, shell exit codes, images, prune."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from .conftest import cli

MODULE = textwrap.dedent("""
    import imagewright as modal
    base = modal.Image.debian_slim(python_version="3.11")
    web = base.env({"ROLE": "web"}).workdir("/srv")
    worker = base.env({"ROLE": "worker"}).run_commands("echo hi > /greeting")
""")


def test_build_json_is_one_object_on_stdout(tmp_path, store):
    (tmp_path / "app.py").write_text(MODULE)
    proc = cli("build", f"{tmp_path}/app.py::worker", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document and nothing else
    assert set(doc) == {"image_id", "seconds", "steps"}
    assert doc["image_id"].startswith("im-")
    descriptions = [s["description"] for s in doc["steps"]]
    assert "root filesystem" in descriptions[0]  # build order starts from the base
    assert descriptions[-1] == "run_commands('echo hi > /greeting')"
    assert all(set(s) == {"description", "cached", "seconds"} for s in doc["steps"])


def test_several_images_need_a_name(tmp_path, store):
    (tmp_path / "app.py").write_text(MODULE)
    proc = cli("build", f"{tmp_path}/app.py")
    assert proc.returncode == 2
    assert "base, web, worker" in proc.stderr and "FILE::NAME" in proc.stderr
    proc = cli("build", f"{tmp_path}/app.py::nope")
    assert proc.returncode == 2 and "No Image named 'nope'" in proc.stderr


def test_shell_cmd_runs_in_image_with_env_and_workdir(tmp_path, store):
    (tmp_path / "app.py").write_text(MODULE)
    proc = cli("shell", f"{tmp_path}/app.py::web", "--cmd", "echo $ROLE; pwd; exit 5")
    assert proc.returncode == 5
    assert proc.stdout.split() == ["web", "/srv"]


def test_shell_attaches_copy_false_files_and_discards_changes(tmp_path, store):
    (tmp_path / "data.txt").write_text("attached\n")
    (tmp_path / "app.py").write_text(
        textwrap.dedent("""
        import imagewright as modal
        image = modal.Image.debian_slim(python_version="3.11").add_local_file(
            "data.txt", "/root/data.txt")
    """)
    )
    proc = cli("shell", "app.py", "--cmd", "cat /root/data.txt; touch /root/new", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "attached"
    proc = cli("shell", "app.py", "--cmd", "ls /root/new", cwd=tmp_path)
    assert proc.returncode != 0  # the last container's changes were thrown away
    (tmp_path / "data.txt").write_text("edited\n")
    proc = cli("shell", "app.py", "--cmd", "cat /root/data.txt", cwd=tmp_path)
    assert proc.stdout.strip() == "edited"  # no rebuild needed to see the edit


def test_images_and_prune(tmp_path, store):
    (tmp_path / "app.py").write_text(MODULE)
    built = json.loads(cli("build", f"{tmp_path}/app.py::worker", "--json").stdout)
    listing = cli("images")
    assert listing.returncode == 0 and built["image_id"] in listing.stdout
    records = json.loads(cli("images", "--json").stdout)
    assert any(r["image_id"] == built["image_id"] for r in records)
    pruned = cli("prune")
    assert pruned.returncode == 0 and "Removed" in pruned.stdout
    again = json.loads(cli("build", f"{tmp_path}/app.py::worker", "--json").stdout)
    assert all(s["cached"] for s in again["steps"])  # prune keeps what recorded images use


def test_every_command_has_help():
    for command in ("build", "shell", "images", "prune", "serve", "deploy", "app", "dict", "queue"):
        proc = cli(command, "--help")
        assert proc.returncode == 0 and "usage: imagewright" in proc.stdout


def test_prune_all_frees_layers_and_exported_blobs(tmp_path):
    home = tmp_path / "home"
    (tmp_path / "hello.txt").write_text("hello\n")
    (tmp_path / "app.py").write_text(
        textwrap.dedent("""
        import imagewright as modal
        image = modal.Image.from_scratch().add_local_file("hello.txt", "/hello.txt", copy=True)
    """)
    )
    env = {"IMAGEWRIGHT_HOME": str(home)}
    assert cli("build", "app.py", cwd=tmp_path, env=env).returncode == 0
    exported = cli("export", "app.py", "-o", str(tmp_path / "out"), cwd=tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr
    assert list((home / "blobs" / "sha256").iterdir())
    pruned = cli("prune", "--all", cwd=tmp_path, env=env)
    assert (
        pruned.returncode == 0 and "Removed 2 layer(s)" in pruned.stdout
    )  # from_scratch + the copy
    assert list((home / "layers").iterdir()) == []
    assert list((home / "blobs" / "sha256").iterdir()) == []
    assert cli("images", env=env).stdout.strip() == "No images built yet."


REQUIREMENTS_APP = textwrap.dedent("""
    import imagewright as modal
    image = modal.Image.debian_slim(python_version="3.11").uv_pip_install_from_requirements(
        "requirements.txt")
""")


def test_a_requirements_file_is_found_from_the_current_directory(tmp_path, store):
    """The spec's own code: relative to the directory it is run from, as in Modal; from any
    other, the call fails at the user's line, naming the file looked for (--json: one object)."""
    project = tmp_path / "project"
    project.mkdir()
    # unique content: a step cached by an earlier run would not copy the file at all
    (project / "requirements.txt").write_text(f"six\n# {tmp_path}\n")
    (project / "app.py").write_text(REQUIREMENTS_APP)
    built = cli("build", "app.py", cwd=project)
    assert built.returncode == 0, built.stderr
    proc = cli("shell", "app.py", "--cmd", 'python -c "import six"', cwd=project)
    assert proc.returncode == 0, proc.stderr
    failed = cli("build", "project/app.py", "--json", cwd=tmp_path)
    assert failed.returncode == 2
    assert f"project/app.py:3: uv_pip_install: file not found: {tmp_path}/requirements.txt" in (
        failed.stderr
    )
    error = json.loads(failed.stdout)["error"]
    assert error["type"] == "LocalFileNotFoundError"
    assert error["where"] == "project/app.py:3"
    assert f"{tmp_path}/requirements.txt" in error["message"]


def test_shell_starts_where_a_function_container_does(tmp_path, store):
    """/root, where add_local_python_source puts packages, when the image sets no WORKDIR."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("VALUE = 1\n")
    (tmp_path / "app.py").write_text(
        textwrap.dedent("""
        import imagewright as modal
        image = modal.Image.debian_slim(python_version="3.11").add_local_python_source("mypkg")
    """)
    )
    script = 'pwd; python -c "import mypkg; print(mypkg.VALUE)"'
    proc = cli("shell", "app.py", "--cmd", script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/root", "1"]


def test_build_json_on_failure_names_the_failing_step(tmp_path, store):
    (tmp_path / "app.py").write_text(
        textwrap.dedent("""
        import imagewright as modal
        image = modal.Image.debian_slim(python_version="3.11").run_commands("exit 3")
    """)
    )
    proc = cli("build", "app.py", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]  # one object on stdout, as on success
    assert error["type"] == "ImageBuildError"
    assert error["where"] == "app.py:3"
    assert error["step"] == {
        "call": "run_commands('exit 3')",
        "where": "app.py:3",
        "command": "exit 3",
        "status": 3,
    }
    assert error["image_id"].startswith("im-") and error["log_path"]
    assert "failed at step run_commands('exit 3') at app.py:3" in proc.stderr  # and on stderr


def test_a_fully_cached_build_imports_nothing_heavy(tmp_path, store):
    """The cached path stays near an interpreter's start: no rich, no httpx, no step runner, no
    argparse, no Secret or Volume, no typing."""
    (tmp_path / "img.py").write_text(
        "import imagewright as modal\n"
        "image = modal.Image.debian_slim(python_version='3.11').env({'IW_LEAN': '1'})\n"
    )
    assert cli("build", str(tmp_path / "img.py")).returncode == 0
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imagewright", "build", "img.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "0 step(s) run" in proc.stderr, proc.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if "|" in line}
    heavy = {"rich", "httpx", "imagewright.execute.steps", "imagewright.execute.sandbox"}
    # nor argparse (a plain build's command line is read without it), nor secret.py and
    # volume.py (with datetime), which an image naming no Secret or Volume does not need
    heavy |= {"argparse", "imagewright.secret", "imagewright.volume", "datetime"}
    heavy |= {"typing"}  # (the modules it needs use _fasttyping.py instead)
    assert not heavy & imported, heavy & imported
    assert "imagewright.definition.image" in imported  # (the listing is the real one)

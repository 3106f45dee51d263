"""The seed's code blocks, built for real and checked from inside the image.

Where the seed pins packages that download gigabytes (torch, transformers, …) these tests keep
the block's shape with small real packages; the seed-exact data-processing image is opt-in
(IMAGEWRIGHT_SLOW_TESTS=1). Network use stays on 127.0.0.1 (a local HTTP server stands in for
the seed's example.com and GitHub URLs).
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import imagewright as modal
from imagewright.exception import ImageBuildError

slow = pytest.mark.skipif(
    os.environ.get("IMAGEWRIGHT_SLOW_TESTS") != "1", reason="opt in with IMAGEWRIGHT_SLOW_TESTS=1"
)


# ---- Base images ---------------------------------------------------------------------------


def test_debian_slim_defaults_to_host_series(builder, py311):
    import sys

    image = modal.Image.debian_slim()
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = builder.run(image, "python --version; python3 --version")
    assert out.count(f"Python {host}.") == 2


def test_debian_slim_base_has_what_modals_has(builder, py311):
    out = builder.run(
        py311,
        "python --version && pip --version && python -m wheel version && uv --version"
        " && gcc --version | head -1 && gfortran --version | head -1"
        " && dpkg -s build-essential | grep Status"
        " && debconf-show debconf | grep frontend"
        " && echo docs=$(find /usr/share/doc -type f ! -name copyright | wc -l)"
        " && echo locales=$(find /usr/share/locale -type f ! -name locale.alias 2>/dev/null | wc -l)"
        " && echo man=$(find /usr/share/man -type f 2>/dev/null | wc -l)",
    )
    assert "Python 3.11." in out and "pip " in out and "uv " in out
    assert "gcc (Debian" in out and "GNU Fortran" in out
    assert "install ok installed" in out
    assert "Noninteractive" in out
    # slim: docs keep only copyright files; no translations or man pages
    assert "docs=0" in out and "locales=0" in out and "man=0" in out


def test_pip_install_into_system_python_works(builder, py311):
    image = py311.pip_install("six==1.16.0")
    out = builder.run(image, "python -c 'import six; print(six.__version__)'")
    assert out.strip() == "1.16.0"


def test_debian_slim_313(builder):
    image = modal.Image.debian_slim(python_version="3.13").uv_pip_install("six")
    out = builder.run(image, "python --version && python -c 'import six; print(six.__file__)'")
    assert "Python 3.13." in out and "six.py" in out


def _ubuntu_archive_reachable() -> bool:
    import urllib.request

    mirror = os.environ.get("IMAGEWRIGHT_UBUNTU_MIRROR", "http://archive.ubuntu.com/ubuntu")
    try:
        with urllib.request.urlopen(f"{mirror}/dists/noble/Release", timeout=10):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _ubuntu_archive_reachable(), reason="Ubuntu's archive is not reachable")
def test_ubuntu_base(builder):
    image = modal.Image.ubuntu().apt_install("jq").uv_pip_install("six")
    out = builder.run(
        image,
        "grep VERSION_ID /etc/os-release; python --version; jq --version; python -c 'import six'",
    )
    assert 'VERSION_ID="24.04"' in out and "Python 3.12." in out and "jq-" in out


def test_later_apt_steps_stay_slim(builder, py311):
    image = py311.apt_install("jq")
    out = builder.run(image, "jq --version; ls /usr/share/doc/jq; ls /usr/share/man/man1 | wc -l")
    assert "jq-1.6" in out
    assert "copyright" in out and "README" not in out
    assert out.strip().splitlines()[-1] == "0"


# ---- Python packages -----------------------------------------------------------------------


def test_uv_pip_install_single_multiple_pinned(builder, py311):
    image = (
        py311.uv_pip_install("requests")
        .uv_pip_install("six", "idna", "attrs")
        .uv_pip_install("six==1.16.0", "idna==3.7")
    )
    out = builder.run(
        image,
        "python -c 'import requests, six, idna, attrs; print(six.__version__, idna.__version__)'",
    )
    assert out.strip() == "1.16.0 3.7"


def test_uv_pip_install_from_requirements(builder, py311, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("six==1.16.0\n")
    image = py311.uv_pip_install_from_requirements(str(req))
    out = builder.run(
        image, "python -c 'import six; print(six.__version__)'; cat /.uv/0/requirements.txt"
    )
    assert "1.16.0" in out and "six==1.16.0" in out


def test_pip_install_and_uv_pip_install_alike(builder, py311):
    slow_way = py311.pip_install("six", "idna")
    fast_way = py311.uv_pip_install("six", "idna")
    for image in (slow_way, fast_way):
        assert "ok" in builder.run(image, "python -c 'import six, idna; print(\"ok\")'")


# ---- System packages and custom commands ---------------------------------------------------


def test_apt_install_combinations(builder, py311):
    opencv_like = py311.apt_install("libsm6", "libxext6", "libxrender-dev").uv_pip_install("six")
    out = builder.run(
        opencv_like, "dpkg -s libsm6 libxext6 libxrender-dev | grep -c 'ok installed'"
    )
    assert out.strip() == "3"


@pytest.fixture
def local_http(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving tmp_path, standing in for the seed's URLs."""
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()


def test_run_commands_download_model(builder, py311, local_http):
    url, root = local_http
    (root / "model.bin").write_bytes(b"weights" * 1000)
    image = py311.apt_install("wget").run_commands(
        "mkdir -p /models", f"wget {url}/model.bin -O /models/model.bin"
    )
    assert builder.run(image, "wc -c < /models/model.bin").strip() == "7000"


def _git_repo(root: Path) -> None:
    src = root / "work"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.10)\nproject(hello C)\n"
        "add_executable(hello hello.c)\ninstall(TARGETS hello DESTINATION bin)\n"
    )
    (src / "hello.c").write_text('#include <stdio.h>\nint main(){puts("hello from lib");}\n')
    git = ["git", "-C", str(src), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(root / "lib.git")], check=True)
    subprocess.run(["git", "-C", str(root / "lib.git"), "update-server-info"], check=True)


def test_run_commands_build_from_source(builder, py311, local_http):
    url, root = local_http
    _git_repo(root)
    # In / a clone named `lib` collides with Debian's /lib symlink (in Modal too), so clone
    # under a work directory.
    base = py311.apt_install("build-essential", "cmake", "git").workdir("/src")
    # The seed's block as written: each command is its own shell, as in Modal and Docker, so
    # the `cd` does not carry over and `cmake ..` runs in /src. It fails with a clear error.
    as_written = base.run_commands(
        f"git clone {url}/lib.git",
        "cd lib && mkdir build && cd build",
        "cmake .. && make && make install",
    )
    with pytest.raises(ImageBuildError) as failure:
        builder.build(as_written)
    assert "'cmake .. && make && make install' exited with status" in str(failure.value)
    # The working form of the same block.
    fixed = base.run_commands(
        f"git clone {url}/lib.git",
        "cd lib && mkdir build && cd build && cmake .. && make && make install",
    )
    assert builder.run(fixed, "hello").strip() == "hello from lib"


def test_run_commands_environment_setup(builder, py311):
    image = py311.run_commands(
        "export PATH=/custom/bin:$PATH", "echo 'export PATH=/custom/bin:$PATH' >> /root/.bashrc"
    )
    out = builder.run(image, "tail -1 /root/.bashrc; echo $PATH")
    assert "export PATH=/custom/bin:$PATH" in out
    assert "/custom/bin" not in out.splitlines()[-1]  # `export` in one step does not persist


# ---- Layering, env and local files ---------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project tree like the seed's: config.yaml, src/ and data/."""
    (tmp_path / "config.yaml").write_text("debug: true\n")
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "app.py").write_text("print('app')\n")
    (src / "app.pyc").write_bytes(b"\x00")
    (src / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\x00")
    (src / "run.log").write_text("log\n")
    (src / "pkg").mkdir()
    (src / "pkg" / "mod.pyc").write_bytes(b"\x00")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text("a,b\n1,2\n")
    return tmp_path


def test_layering_good_order(builder, py311, project):
    image = (
        py311.apt_install("libsm6")
        .uv_pip_install("six")
        .copy_local_file(project / "config.yaml", "/app/config.yaml")
    )
    assert builder.run(image, "cat /app/config.yaml").strip() == "debug: true"


def test_separate_concerns_and_copy_local_dir(builder, py311, project, monkeypatch):
    monkeypatch.chdir(project)
    base_image = py311.apt_install("libsm6").uv_pip_install("six==1.16.0", "idna==3.7")
    app_image = base_image.copy_local_dir("./src", "/app/src").copy_local_file(
        "config.yaml", "/app/config.yaml"
    )
    out = builder.run(app_image, "cd /app && find . -type f | sort")
    assert "./config.yaml" in out and "./src/app.py" in out and "./src/.git/HEAD" in out


def test_copy_local_dir_honours_ignore_patterns(builder, py311, project):
    image = py311.copy_local_dir(
        project / "src", "/app/src", ignore=["*.pyc", "__pycache__", "*.log", ".git"]
    )
    out = builder.run(image, "cd /app/src && find . | sort")
    assert "./app.py" in out
    assert "./app.pyc" not in out and "__pycache__" not in out
    assert "./run.log" not in out and ".git" not in out
    assert "./pkg/mod.pyc" in out  # Docker rules: `*.pyc` matches only at the top level


def test_env_variables(builder, py311):
    image = py311.env({"HF_HOME": "/models/cache"}).env(
        {"TRANSFORMERS_CACHE": "/models/transformers", "TORCH_HOME": "/models/torch"}
    )
    out = builder.run(image, "echo $HF_HOME $TRANSFORMERS_CACHE $TORCH_HOME")
    assert out.strip() == "/models/cache /models/transformers /models/torch"


def test_env_applies_to_later_build_steps(builder, py311):
    image = py311.env({"HF_HOME": "/models/cache"}).run_commands(
        "mkdir -p $HF_HOME && touch $HF_HOME/ok"
    )
    assert builder.run(image, "ls /models/cache").strip() == "ok"


def test_copy_local_file_relative_remote_uses_workdir(builder, py311, project):
    image = py311.workdir("/srv/app").copy_local_file(project / "config.yaml")
    out = builder.run(image, "pwd; cat config.yaml")
    assert out.split() == ["/srv/app", "debug:", "true"]


def test_anti_pattern_copy_everything(builder, py311, project, monkeypatch):
    monkeypatch.chdir(project)
    bad = py311.copy_local_dir(".", "/app")
    good = py311.copy_local_dir(
        "./src", "/app/src", ignore=["*.pyc", "__pycache__", ".git", "node_modules"]
    )
    assert ".git" in builder.run(bad, "ls -a /app/src")
    assert ".git" not in builder.run(good, "ls -a /app/src")


# ---- Complete examples ---------------------------------------------------------------------


def test_data_processing_image_shape(builder, py311):
    data_image = py311.apt_install("postgresql-client", "libpq-dev").uv_pip_install(
        "six==1.16.0", "idna==3.7"
    )
    out = builder.run(data_image, "psql --version && pg_config --version")
    assert "psql (PostgreSQL)" in out


@slow
def test_data_processing_image_seed_exact(builder):
    data_image = (
        modal.Image.debian_slim(python_version="3.11")
        .apt_install("postgresql-client", "libpq-dev")
        .uv_pip_install(
            "pandas==2.1.0",
            "numpy==1.24.0",
            "sqlalchemy==2.0.0",
            "psycopg2-binary==2.9.9",
            "pyarrow==13.0.0",
            "duckdb==0.9.0",
        )
    )
    out = builder.run(
        data_image,
        "python -c 'import pandas, numpy, sqlalchemy, psycopg2, pyarrow, duckdb;"
        " print(pandas.__version__, numpy.__version__, pyarrow.__version__, duckdb.__version__)'",
    )
    assert out.split() == ["2.1.0", "1.24.0", "13.0.0", "0.9.0"]


def test_uv_version_fetches_that_uv(builder, py311, store):
    image = py311.uv_pip_install("six", uv_version="0.8.0")
    builder.build(image)
    fetched = store.root / "tools" / "uv-0.8.0" / "uv"
    assert subprocess.run([fetched, "--version"], capture_output=True, text=True).stdout.startswith(
        "uv 0.8.0"
    )
    assert "six.py" in builder.run(image, "python -c 'import six; print(six.__file__)'")

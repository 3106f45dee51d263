"""`Image.debian_slim(python_version="3.11.4")`: that exact CPython, as Modal gives it.

An exact version Debian ships (bookworm: 3.11.2) is Debian's own python3, with no download;
another micro version is a uv-managed standalone build of exactly it. With its download source
unreachable (UV_PYTHON_INSTALL_MIRROR pointed at a closed port, as on a machine without internet
access) the build fails before any step with an error naming the version and uv's reason.
"""

from __future__ import annotations

import socket

import pytest

from imagewright import Image
from imagewright.exception import InvalidError

THIS_FILE = "test_exact_python.py:"
UNREACHABLE = "http://127.0.0.1:9/unreachable"


def _github_reachable() -> bool:
    """Whether python-build-standalone's releases could be downloaded (uv's default source)."""
    try:
        socket.create_connection(("github.com", 443), timeout=5).close()
    except OSError:
        return False
    return True


def test_the_exact_version_debian_ships_needs_no_download(builder, monkeypatch):
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", UNREACHABLE)
    image = Image.debian_slim(python_version="3.11.2")
    assert builder.run(image, "python --version; python3 --version") == (
        "Python 3.11.2\nPython 3.11.2\n"
    )


def test_another_micro_version_without_a_download_source_says_why(builder, monkeypatch):
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", UNREACHABLE)
    with pytest.raises(InvalidError) as info:
        builder.build(Image.debian_slim(python_version="3.11.4"))
    message = str(info.value)
    assert "'3.11.4' exactly" in message and "Debian bookworm ships Python 3.11.2" in message
    assert "uv could not download a standalone CPython 3.11.4: " in message
    assert THIS_FILE in message


@pytest.mark.skipif(not _github_reachable(), reason="python-build-standalone is unreachable")
def test_another_micro_version_is_a_standalone_build_of_exactly_it(builder):
    image = Image.debian_slim(python_version="3.11.4")
    assert builder.run(image, "python --version; python3 --version") == (
        "Python 3.11.4\nPython 3.11.4\n"
    )

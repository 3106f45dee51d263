"""Which distribution release provides which Python series, and Modal's version validation.

A version with a micro component ("3.11.4") asks for that exact CPython, as Modal's
`python:3.11.4-slim` bases give it: the release's own python3 when it ships exactly that (a
stable release's upstream version never moves), else a uv-managed standalone build of it.
"""

from __future__ import annotations

import re
import sys

from ..exception import InvalidError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["BaseRelease", "local_series", "release_for", "series_of"]

# Where a uv-managed standalone CPython goes in an image.
STANDALONE_ROOT = "/usr/local/python-standalone"
_VERSION_RE = re.compile(r"^3(\.\d{1,2}){1,2}(rc\d*)?t?$")


class BaseRelease(NamedTuple):
    """A distribution release and how to get one Python series from it."""

    distro: str
    suite: str
    # major.minor; for a standalone CPython asked for exactly, that version ("3.11.4"), which
    # is what uv installs and what keys the base apart from other micro versions
    series: str
    packages: tuple[str, ...]
    # When the series is not the release's default python3, the base links python/python3 to it.
    interpreter: str = "python3"
    # Set when no release packages the series: the base then gets a uv-managed standalone
    # CPython, and this is the error to raise if uv cannot download one.
    standalone_error: str = ""
    # The exact CPython the release ships, for a stable release ("" for a moving one).
    version: str = ""


def _default(distro: str, suite: str, series: str, version: str = "") -> BaseRelease:
    packages = ("python3", "python3-dev", "python3-venv", "python-is-python3")
    return BaseRelease(distro, suite, series, packages, version=version)


def _extra(distro: str, suite: str, series: str) -> BaseRelease:
    name = f"python{series}"
    return BaseRelease(distro, suite, series, (name, f"{name}-dev", f"{name}-venv"), name)


DEBIAN = {
    r.series: r
    for r in (
        _default("debian", "bullseye", "3.9", "3.9.2"),
        _default("debian", "bookworm", "3.11", "3.11.2"),
        _default("debian", "trixie", "3.13", "3.13.5"),
        _default("debian", "forky", "3.14"),
        _extra("debian", "forky", "3.15"),
    )
}


def _ubuntu(suite: str, series: str) -> BaseRelease:
    # mmdebstrap's minbase leaves apt out on Ubuntu, and every later apt step needs it
    release = _default("ubuntu", suite, series)
    return release._replace(packages=(*release.packages, "apt"))


UBUNTU = {r.series: r for r in (_ubuntu("jammy", "3.10"), _ubuntu("noble", "3.12"))}
UBUNTU_DEFAULT = "3.12"


def local_series() -> str:
    """The host interpreter's major.minor, Modal's default for debian_slim()."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def series_of(version: str, caller: str) -> str:
    """Validate a python_version string as Modal does and return its major.minor series."""
    if not isinstance(version, str):
        raise InvalidError(
            f"Python version must be specified as a string, not {type(version).__name__}"
        )
    if not _VERSION_RE.match(version):
        raise InvalidError(f"Invalid Python version: {version!r}")
    if version.endswith("t"):
        raise InvalidError(f"Free threaded Python is not supported with {caller}")
    # "3.13rc1" keeps its rc in the series and so matches no release, as in Modal
    return ".".join(version.removesuffix("t").split(".")[:2])


def release_for(distro: str, version: str | None, caller: str) -> BaseRelease:
    """The release that provides `version` (None: the host's series).

    A series no release packages gets the newest release plus a standalone CPython (see
    BaseRelease.standalone_error), and so does an exact version the series' release does not
    ship; a malformed version raises InvalidError.
    """
    table = DEBIAN if distro == "debian" else UBUNTU
    from_host = version is None
    if version is None:
        version = local_series() if distro == "debian" else UBUNTU_DEFAULT
    series = series_of(version, caller)
    if series in table and (version == series or version == table[series].version):
        return table[series]
    if series in table:
        release = table[series]
        ships = f"Python {release.version}" if release.version else "a Python that moves"
        error = (
            f"{caller} gives Python {version!r} exactly, as Modal does, and "
            f"{release.distro.capitalize()} {release.suite} ships {ships}: it needs a "
            f"uv-managed standalone CPython {version} (from python-build-standalone, or "
            "UV_PYTHON_INSTALL_MIRROR)."
        )
        return release._replace(
            series=version,
            interpreter=f"{STANDALONE_ROOT}/bin/python{series}",
            standalone_error=error,
        )
    by_number = sorted(table.items(), key=lambda kv: tuple(int(n) for n in kv[0].split(".")))
    offered = ", ".join(f"{s} ({r.suite})" for s, r in by_number)
    hint = ""
    if distro == "debian" and series in UBUNTU:
        suite = UBUNTU[series].suite
        hint = f" Ubuntu {suite} has Python {series}: use Image.ubuntu(python_version={series!r})."
    elif distro == "ubuntu" and series in DEBIAN:
        suite = DEBIAN[series].suite
        hint = f" Debian {suite} has it: use Image.debian_slim(python_version={series!r})."
    what = (
        f"Your local Python is {series} and {caller} tried to match it"
        if from_host
        else f"Unsupported Python version: {version!r}"
    )
    error = f"{what}. {caller} offers these series: {offered}.{hint}" + (
        " Set python_version explicitly." if from_host else ""
    )
    base = table["3.13" if distro == "debian" else UBUNTU_DEFAULT]  # the current stable release
    return base._replace(
        series=series, interpreter=f"{STANDALONE_ROOT}/bin/python{series}", standalone_error=error
    )

"""Base root filesystems from a distribution's own package archive, made with mmdebstrap.

Bases are "slim" the way Docker's debian:*-slim images are: dpkg path filters leave out docs,
man pages and locales, and because mmdebstrap writes the filters to /etc/dpkg/dpkg.cfg.d, later
apt steps in the image stay slim too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .. import settings
from ..definition.pythons import BaseRelease
from ..exception import ExecutionError
from .sandbox import spawn_host_tool, stream

__all__ = ["bootstrap_rootfs", "mmdebstrap_argv", "ubuntu_keyring"]

_SLIM_FILTERS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
)
_COMMON_PACKAGES = ("ca-certificates", "build-essential", "gcc", "gfortran")
# mmdebstrap copies the host's resolver and hostname into the tree and writes no /etc/hosts.
_FIX_ETC = (
    'printf "127.0.0.1 localhost\\n::1 localhost ip6-localhost ip6-loopback\\n" > "$1/etc/hosts";'
    ' : > "$1/etc/resolv.conf"; echo localhost > "$1/etc/hostname"'
)
_UBUNTU_KEYRING = "/usr/share/keyrings/ubuntu-archive-keyring.gpg"
# Debian 12 does not package Ubuntu's keyring, so without a host copy we fetch Ubuntu's own
# ubuntu-keyring package from the archive and check it against this digest before trusting it.
_UBUNTU_KEYRING_DEB = "pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb"
_UBUNTU_KEYRING_SHA256 = "36de43b15853ccae0028e9a767613770c704833f82586f28eb262f0311adb8a8"
_MERGED_USR_HOOK = "/usr/share/mmdebstrap/hooks/merged-usr"


def _ubuntu_mirror() -> str:
    return settings.ubuntu_mirror()


def ubuntu_keyring(tools_dir: Path) -> str:
    """Ubuntu's archive keyring: the host's, else Ubuntu's package fetched and verified once."""
    if os.path.exists(_UBUNTU_KEYRING):
        return _UBUNTU_KEYRING
    keyring = tools_dir / "ubuntu-archive-keyring.gpg"
    if keyring.exists():
        return str(keyring)
    import hashlib
    import tempfile
    import urllib.request

    url = f"{_ubuntu_mirror()}/{_UBUNTU_KEYRING_DEB}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except OSError as exc:
        message = f"Image.ubuntu(): cannot fetch Ubuntu's keyring from {url}: {exc}"
        raise ExecutionError(message) from exc
    if hashlib.sha256(data).hexdigest() != _UBUNTU_KEYRING_SHA256:
        raise ExecutionError(f"Image.ubuntu(): {url} does not match the expected sha256")
    tools_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tools_dir) as tmp:
        deb = Path(tmp) / "keyring.deb"
        deb.write_bytes(data)
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        os.replace(Path(tmp) / _UBUNTU_KEYRING.lstrip("/"), keyring)
    return str(keyring)


def mmdebstrap_argv(release: BaseRelease, target: Path, tools_dir: Path) -> list[str]:
    """The mmdebstrap command that bootstraps `release` into the empty directory `target`."""
    if not shutil.which("mmdebstrap"):
        raise ExecutionError(
            "mmdebstrap is needed to build base images: apt-get install mmdebstrap"
        )
    # root mode, as root of the sandbox's user namespace; /sys stays unmounted in the tree,
    # as sysfs belongs to the host's network namespace
    argv = ["mmdebstrap", "--mode=root", "--skip=chroot/mount/sys", "--variant=minbase"]
    argv += ['--aptopt=APT::Install-Recommends "false"']
    argv += [f"--dpkgopt={f}" for f in _SLIM_FILTERS]
    argv += [f"--include={','.join((*release.packages, *_COMMON_PACKAGES))}"]
    argv += [f"--customize-hook={_FIX_ETC}"]
    if release.distro == "debian":
        if os.path.isdir(_MERGED_USR_HOOK) and release.suite == "bookworm":
            # without it bookworm pulls in usrmerge and perl (about 50 MB)
            argv += [f"--hook-dir={_MERGED_USR_HOOK}"]
        return [*argv, release.suite, str(target)]
    suites = f"{release.suite} {release.suite}-updates {release.suite}-security"
    argv += [f"--keyring={ubuntu_keyring(tools_dir)}"]
    return [*argv, release.suite, str(target), f"deb {_ubuntu_mirror()} {suites} main universe"]


def bootstrap_rootfs(
    release: BaseRelease, target: Path, tools_dir: Path, on_line: Callable[[str], None]
) -> int:
    """Run mmdebstrap into `target` in a sandbox (it runs the packages' maintainer scripts),
    then drop whatever it put in /dev (bwrap provides /dev)."""
    argv = mmdebstrap_argv(release, target, tools_dir)
    on_line("$ " + " ".join(argv))
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",
        "SOURCE_DATE_EPOCH": "1700000000",
        "LC_ALL": "C.UTF-8",
        **{k: v for k, v in os.environ.items() if k.lower().endswith("_proxy")},
    }
    readable = [str(tools_dir)] if tools_dir.is_dir() else []
    proc = spawn_host_tool(argv, [str(target)], readable, env)
    status = stream(proc, on_line)
    dev = target / "dev"
    if status == 0 and dev.is_dir() and not _is_mounted_below(dev):
        shutil.rmtree(dev)
        dev.mkdir(mode=0o755)
    return status


def _is_mounted_below(path: Path) -> bool:
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].startswith(prefix) for line in f)

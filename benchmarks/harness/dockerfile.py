"""The Dockerfiles the peers build: the stage that gives the imported base imagewright's build
tools, and each workload image, command for command as workloads/images.py builds it.

If `apt_install` or `uv_pip_install` change their commands, change `apt_run` and `uv_run` too.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from harness.common import CA_BUNDLE, PREFIX, BenchError, Paths


def dockerfile_for(image: str, w: ModuleType, base_ref: str, extra: str | None) -> str:
    """The Dockerfile doing what images.py::`image` does, command for command."""
    lines = [f"FROM {base_ref}"]
    if image == "small":
        lines += [apt_run(w.SMALL_APT_PACKAGES), uv_run(w.SMALL_UV_PACKAGES)]
        lines += [f"ENV {k}={v}" for k, v in w.SMALL_ENV.items()]
        lines += [f"RUN {command}" for command in w.SMALL_COMMANDS]
        return "\n".join(lines) + "\n"
    packages = (
        (*w.UV_PACKAGES, extra or w.EXTRA_PACKAGE) if image == "data_extra" else w.UV_PACKAGES
    )
    lines += [apt_run(w.APT_PACKAGES), uv_run(packages)]
    if image == "data_config":
        lines.append("COPY {} {}".format(*w.CONFIG_FILE))
    return "\n".join(lines) + "\n"


def apt_run(packages: Sequence[str]) -> str:
    # imagewright bind-mounts its apt cache on /var/cache/apt/archives: the .debs stay out of
    # the layer and are reused; a cache mount does the same for the peers.
    return (
        "RUN --mount=type=cache,target=/var/cache/apt/archives,sharing=locked "
        f"apt-get update && apt-get install -y {shlex.join(packages)}"
    )


def uv_run(packages: Sequence[str]) -> str:
    # imagewright's uv_pip_install command, with the packages sorted as it sorts them
    quoted = " ".join(shlex.quote(p) for p in sorted(packages))
    return (
        "RUN --mount=type=cache,target=/root/.cache/uv "
        f"/.uv/uv pip install --python $(command -v python) --compile-bytecode {quoted}"
    )


def rootfs_ref(tag: str) -> str:
    """The imported root filesystem of imagewright's base."""
    return f"{PREFIX}/rootfs:{tag}"


def base_ref(tag: str) -> str:
    """What the workload Dockerfiles build FROM: the imported base with the build tools."""
    return f"{PREFIX}/base:{tag}"


def import_changes(config: dict[str, object]) -> list[str]:
    """`import --change` values giving the imported root filesystem the base's ENV and CMD."""
    changes = [f"ENV {item}" for item in config.get("Env", [])]  # type: ignore[attr-defined]
    if config.get("Cmd"):
        changes.append(f"CMD {json.dumps(config['Cmd'])}")
    return changes


def base_stage_context(paths: Paths, executable: str, tag: str) -> Path:
    """Write the build context of the stage over the imported root filesystem; return it.

    imagewright bind-mounts its uv and the host CA bundle into build steps (HTTPS goes through
    a TLS-intercepting proxy here); the peers get copies, and the environment imagewright's
    steps set.
    """
    ctx = paths.docker_base_context
    ctx.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv", path=str(Path(executable).parent))
    if uv is None:
        raise BenchError(f"no uv next to {executable}: install imagewright's dependencies")
    shutil.copy2(uv, ctx / "uv")
    shutil.copy2(CA_BUNDLE, ctx / "ca-certificates.crt")
    (ctx / "Dockerfile").write_text(
        f"FROM {rootfs_ref(tag)}\n"
        "COPY uv /.uv/uv\n"
        f"COPY ca-certificates.crt {CA_BUNDLE}\n"
        f"ENV SSL_CERT_FILE={CA_BUNDLE} UV_LINK_MODE=copy\n"
    )
    return ctx

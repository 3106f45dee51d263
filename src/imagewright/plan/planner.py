"""Image → Plan: ordered steps with resolved file lists, configs and cache keys.

Everything a build can reject is checked here, before any step runs: Python series, local
files, the add_local ordering rule, an environment too large to start a process with. A step's
key is a digest of its parent's key, its canonical ops (with the content digests of the files it
copies), the names of its secrets and the builder version. Excluded on purpose: secret values
(rotating a token must not rebuild), host paths of copied files (moving a checkout must not
rebuild), the call site, and proxy/CA settings.
"""

from __future__ import annotations

import json
import os
import posixpath
import shlex
from typing import NamedTuple

from ..definition.config import ImageConfig
from ..definition.image import Image
from ..definition.layer import Layer, LocalMount
from ..definition.ops import (
    Bootstrap,
    CopyFromImage,
    CopyLocal,
    Download,
    FromRegistry,
    Run,
    RunFunction,
    SetConfig,
)
from ..definition.pythons import BaseRelease, release_for
from ..exception import InvalidError
from ..version import BUILDER_VERSION
from .canonical import digest
from .files import FileEntry, collect_dir, collect_file

__all__ = [
    "BaseSetup",
    "CallFunction",
    "CopyFiles",
    "CopyFromPlan",
    "ExtractArchive",
    "Plan",
    "PlannedStep",
    "RootfsFromArchive",
    "RunCommand",
    "plan_image",
    "resolve_mounts",
]

# Base images carry these settings, as Docker's python:*-slim images and Modal's do.
BASE_CONFIG = ImageConfig(
    env=(
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("LANG", "C.UTF-8"),
    ),
    cmd=("sleep", "172800"),
)


class RootfsFromArchive(NamedTuple):
    """Bootstrap a root filesystem with mmdebstrap."""

    release: BaseRelease


class BaseSetup(NamedTuple):
    """The fixed commands that make a bootstrapped rootfs into a Modal-like base."""

    release: BaseRelease
    commands: tuple[str, ...]


class RunCommand(NamedTuple):
    """A command (a Run op) with the config in force when it runs."""

    run: Run
    config: ImageConfig


class ExtractArchive(NamedTuple):
    """Unpack a local tar archive (ADD) into `dest` in the layer."""

    source: str
    dest: str
    owner: str | None = None  # --chown, which (as in BuildKit) only created directories take


class CopyFiles(NamedTuple):
    """Files to create in the layer, owned by root or by `owner` (--chown user[:group])."""

    entries: tuple[FileEntry, ...]
    owner: str | None = None


class CopyFromPlan(NamedTuple):
    """Copy paths out of another plan's built root filesystem (COPY --from)."""

    source: Plan
    paths: tuple[str, ...]
    dest: str  # absolute; ends in "/" when files go into it under their own names
    chmod: int | None = None
    owner: str | None = None


class CallFunction(NamedTuple):
    """Call a function in a container whose writes become the layer."""

    ref: str  # "module:qualname"
    arguments: bytes  # pickled (args, kwargs)
    timeout: float
    config: ImageConfig
    sources: tuple[FileEntry, ...]  # the function's module, attached below the layer


Action = (
    RootfsFromArchive
    | BaseSetup
    | RunCommand
    | CopyFiles
    | CopyFromPlan
    | CallFunction
    | ExtractArchive
)


class PlannedStep(NamedTuple):
    """One cacheable layer of the plan."""

    key: str
    parent_key: str | None
    description: str
    layer: Layer
    actions: tuple[Action, ...]
    config: ImageConfig  # after this step
    force: bool
    history: tuple[str, ...] = ()  # Dockerfile-like lines, for image history

    @property
    def short(self) -> str:
        return self.key[:16]


class Plan(NamedTuple):
    steps: tuple[PlannedStep, ...]
    mounts: tuple[LocalMount, ...]

    @property
    def key(self) -> str:
        return self.steps[-1].key if self.steps else digest({"type": "imagewright.empty"})

    @property
    def image_id(self) -> str:
        return "im-" + self.key[:24]

    @property
    def config(self) -> ImageConfig:
        return self.steps[-1].config if self.steps else ImageConfig()


def plan_image(image: Image, *, force: bool = False) -> Plan:
    """Resolve `image` into a Plan. Raises InvalidError / FileNotFoundError on bad input."""
    force = force or os.environ.get("IMAGEWRIGHT_FORCE_BUILD") == "1"
    steps: list[PlannedStep] = []
    config = ImageConfig()
    mounts_before: tuple[LocalMount, ...] = ()
    for node in image._chain():
        layer = node._layer
        if layer is None:
            mounts_before = node._mounts
            continue
        if mounts_before:
            _refuse_build_after_mounts(layer, mounts_before)
        parent = steps[-1].key if steps else None
        step_force = force or node._force
        for planned in _plan_layer(layer, parent, config, step_force):
            _check_environment(planned)
            steps.append(planned)
            parent, config = planned.key, planned.config
    return Plan(tuple(steps), image._mounts)


# Room left for what imagewright adds to a step's environment and command line (caches, CA and
# proxy variables, the sandbox's arguments).
_EXEC_RESERVE = 64 << 10


def _check_environment(step: PlannedStep) -> None:
    """Refuse a step whose environment (the image's ENV and its secrets) is too large for
    execve, which fails with E2BIG when arguments and environment pass ARG_MAX together."""
    env = step.config.env_dict()
    env.update({k: v for secret in step.layer.secrets for k, v in secret.env.items()})
    # each variable costs "NAME=value\0" plus its pointer in envp
    size = sum(len(f"{k}={v}".encode(errors="surrogatepass")) + 1 + 8 for k, v in env.items())
    limit = os.sysconf("SC_ARG_MAX") - _EXEC_RESERVE
    if size > limit:
        raise InvalidError(
            f"{step.layer.where}: the environment of this step would be {size} bytes, more than "
            f"the {limit} a process can be started with here (execve: 'Argument list too long', "
            "E2BIG); make the image's ENV or the step's secrets smaller"
        )


def resolve_mounts(mounts: tuple[LocalMount, ...]) -> tuple[FileEntry, ...]:
    """The files that copy=False adds attach to a container, hashed like a copy step."""
    entries: list[FileEntry] = []
    for mount in mounts:
        op = CopyLocal(mount.local, mount.remote, mount.ignore, mount.is_dir)  # type: ignore[arg-type]
        entries.extend(_collect(op, "/", f"add_local at {mount.callsite}"))
    return tuple(entries)


def _plan_layer(
    layer: Layer, parent: str | None, config: ImageConfig, force: bool
) -> list[PlannedStep]:
    if layer.ops and isinstance(layer.ops[0], Bootstrap):
        return _plan_base(layer, layer.ops[0], force)
    if layer.ops and isinstance(layer.ops[0], FromRegistry):
        from .pulled import plan_pulled  # it imports this module

        return plan_pulled(layer, layer.ops[0], force)
    actions: list[Action] = []
    key_ops: list[object] = []
    history: list[str] = []
    for op in layer.ops:
        if isinstance(op, Run):
            actions.append(RunCommand(op, config))
            argv, env = list(op.argv or ()), [list(pair) for pair in op.env]
            run = [op.command, uv_key(op.uv), argv, list(op.cache_targets), op.image_tmp, env]
            key_ops.append(["run", *run])
            history.append(f"RUN {op.command}")
        elif isinstance(op, CopyLocal) and op.extract:
            dest = posixpath.normpath(posixpath.join(config.workdir, op.remote))
            actions.append(ExtractArchive(op.local, dest, op.owner))
            archive_digest = _collect(op, "/", layer.where)[0].digest
            key_ops.append(["extract", archive_digest, dest, op.owner])
            history.append(f"ADD {op.local} {op.remote}")
        elif isinstance(op, CopyLocal):
            entries = _collect(op, config.workdir, layer.where)
            actions.append(CopyFiles(tuple(entries), op.owner))
            key_ops.append(["copy", [e.key() for e in entries], op.owner])
            history.append(f"COPY {op.local} {op.remote}")
        elif isinstance(op, Download):
            from .download import fetch

            path, sha256 = fetch(op.url, layer.where, op.checksum)
            dest = posixpath.normpath(posixpath.join(config.workdir, op.remote))
            mode = 0o600 if op.chmod is None else op.chmod
            entry = FileEntry(dest, "file", mode, sha256, path)
            actions.append(CopyFiles((entry,), op.owner))
            key_ops.append(["copy", [entry.key()], op.owner])
            history.append(f"ADD {op.url} {op.remote}")
        elif isinstance(op, CopyFromImage):
            source = plan_image(op.source, force=force)
            dest = posixpath.join(config.workdir, op.remote)
            dest = posixpath.normpath(dest) + ("/" if op.remote.endswith("/") else "")
            actions.append(CopyFromPlan(source, op.paths, dest, op.chmod, op.owner))
            # the source's final key stands for its whole filesystem
            paths = list(op.paths)
            key_ops.append(["copy-from", source.key, paths, dest, op.chmod, op.owner])
            history.append(f"COPY --from={source.image_id} {' '.join(op.paths)} {op.remote}")
        elif isinstance(op, RunFunction):
            action, identity = _plan_function(op, config)
            actions.append(action)
            key_ops.append(["function", identity, op.include_source])
            history.append(f"RUN python -c 'run_function({op.function.__qualname__})'")
        elif isinstance(op, SetConfig):
            config = _apply_config(config, op)
            if op.field == "workdir":  # created for the current USER, as BuildKit does
                owner = None if config.runs_as_root else config.user
                actions.append(CopyFiles((FileEntry(config.workdir, "dir", 0o755),), owner))
            key_ops.append(["config", op.field, op.value])
            history.append(_config_line(op))
    secret_names = sorted({k for s in layer.secrets for k in s.env})
    key = digest(
        {
            "type": "imagewright.layer.v1",
            "builder": BUILDER_VERSION,
            "parent": parent,
            "ops": key_ops,
            "secrets": secret_names,
        }
    )
    return [
        PlannedStep(key, parent, layer.call, layer, tuple(actions), config, force, tuple(history))
    ]


def _config_line(op: SetConfig) -> str:
    """The Dockerfile line a config change stands for, for the image history."""
    if op.field in ("env", "env_expand", "labels"):
        keyword = "LABEL" if op.field == "labels" else "ENV"
        pairs = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in op.value)  # type: ignore[misc, union-attr]
        return f"{keyword} {pairs}"
    if op.field in ("entrypoint", "cmd", "shell"):
        return f"{op.field.upper()} {json.dumps(list(op.value or ()))}"  # type: ignore[arg-type]
    return f"{op.field.upper()} {op.value}"


def uv_key(uv: str | None) -> str | None:
    """The uv version a step runs with, for its key: bundled uv counts as its own version."""
    if uv == "":
        from ..version import BUNDLED_UV

        return BUNDLED_UV
    return uv


def _plan_function(op: RunFunction, config: ImageConfig) -> tuple[CallFunction, list[object]]:
    from ..runtime.source import function_ref, source_mounts
    from .functionkey import function_identity, pickled_arguments

    arguments = pickled_arguments(op.args, dict(op.kwargs))
    sources = resolve_mounts(source_mounts(op.function)) if op.include_source else ()
    action = CallFunction(function_ref(op.function), arguments, op.timeout, config, sources)
    return action, function_identity(op.function, arguments)


def _plan_base(layer: Layer, op: Bootstrap, force: bool) -> list[PlannedStep]:
    caller = "Image.debian_slim()" if op.distro == "debian" else "Image.ubuntu()"
    try:
        release = release_for(op.distro, op.python_version, caller)
    except InvalidError as exc:
        raise InvalidError(f"{exc} (at {layer.callsite})") from None
    standalone = release.series if release.standalone_error else None
    if standalone:
        release = release._replace(
            standalone_error=f"{release.standalone_error} (at {layer.callsite})"
        )
    rootfs_key = digest(
        {
            "type": "imagewright.rootfs.v1",
            "builder": BUILDER_VERSION,
            "release": [release.distro, release.suite, list(release.packages)],
        }
    )
    commands = _base_setup_commands(release)
    setup_key = digest(
        {
            "type": "imagewright.base-setup.v1",
            "builder": BUILDER_VERSION,
            "parent": rootfs_key,
            "commands": list(commands),
            "standalone": standalone,
        }
    )
    label = f"{layer.call}: {release.distro} {release.suite}"
    setup = "setup (apt lists, pip, wheel, uv)"
    if standalone:
        setup = f"setup (standalone CPython {standalone}, apt lists, pip, wheel, uv)"
    return [
        PlannedStep(
            rootfs_key,
            None,
            f"{label} root filesystem (mmdebstrap)",
            layer,
            (RootfsFromArchive(release),),
            BASE_CONFIG,
            force,
            (f"mmdebstrap {release.suite} +{','.join(release.packages)}",),
        ),
        PlannedStep(
            setup_key,
            rootfs_key,
            f"{label} {setup}",
            layer,
            (BaseSetup(release, commands),),
            BASE_CONFIG,
            force,
            tuple(f"RUN {c}" for c in commands),
        ),
    ]


def _base_setup_commands(release: BaseRelease) -> tuple[str, ...]:
    link: tuple[str, ...] = ()
    if release.interpreter != "python3":
        path = release.interpreter
        path = path if path.startswith("/") else f"/usr/bin/{path}"
        link = (f"ln -sf {path} /usr/local/bin/python3 && ln -sf {path} /usr/local/bin/python",)
    return (
        *link,
        # Modal's images let `pip install` write to the system Python; Debian marks it as
        # externally managed, which would refuse every pip_install step.
        "rm -f /usr/lib/python3*/EXTERNALLY-MANAGED",
        "apt-get update",
        "/.uv/uv pip install --python $(command -v python) --compile-bytecode pip wheel uv",
        "echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections",
    )


def _apply_config(config: ImageConfig, op: SetConfig) -> ImageConfig:
    if op.field == "workdir":
        return config.with_field("workdir", posixpath.join(config.workdir, str(op.value)))
    if op.field == "env_expand":
        current = config.env_dict()
        expanded = tuple((k, _expand(str(v), current)) for k, v in op.value)  # type: ignore[misc]
        return config.with_env(expanded)
    return config.with_field(op.field, op.value)


def _expand(value: str, env: dict[str, str]) -> str:
    for name, current in env.items():
        value = value.replace(f"${{{name}}}", current).replace(f"${name}", current)
    return value


def _collect(op: CopyLocal, workdir: str, where: str) -> list[FileEntry]:
    remote = posixpath.join(workdir, op.remote)
    try:
        if op.is_dir:
            entries = collect_dir(op.local, posixpath.normpath(remote), op.ignore)
        else:
            if op.remote.endswith("/") or op.remote in (".", "./"):
                remote = posixpath.join(remote, os.path.basename(op.local))
            entries = collect_file(op.local, posixpath.normpath(remote))
        if op.chmod is not None:
            entries = [e._replace(mode=op.chmod) if e.kind != "symlink" else e for e in entries]
        return entries
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{where}: local path not found: {op.local}") from exc
    except (NotADirectoryError, IsADirectoryError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _refuse_build_after_mounts(layer: Layer, mounts: tuple[LocalMount, ...]) -> None:
    added = mounts[-1].callsite
    raise InvalidError(
        f"An image tried to run a build step after using `image.add_local_*` to include local "
        f"files. The step {layer.where} comes after the add_local call at {added}.\n\n"
        "Run `image.add_local_*` commands last in your image build to avoid rebuilding images "
        "with every local file change. Modal will then add these files to containers on "
        "startup instead, saving build time.\nIf you need to run other build steps after adding "
        "local files, set `copy=True` to copy the files directly into the image, at the expense "
        "of some added build time.\n\nExample:\n\n"
        'my_image = (\n    Image.debian_slim()\n    .add_local_file("data.json", copy=True)\n'
        '    .run_commands("python -m mypak")  # this now works!\n)'
    )

"""Image → Plan: ordered steps with resolved file lists, configs and cache keys.

Everything a build can reject is checked here, before any step runs: Python series, local
files, the add_local ordering rule, an environment too large to start a process with. Each op
kind has one handler (`_OPS`; base ops, which plan several steps, `_BASES`); keys.py builds every
key. Nothing here reaches the network: registry images and ADD URLs come from the Resolver the
caller passes.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable

from .. import settings
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
from ..definition.packages import shell_quote
from ..definition.pythons import BaseRelease, release_for, series_of
from ..exception import InvalidError, LocalFileNotFoundError, RegistryError
from . import keys
from .files import FileEntry, collect_dir, collect_file
from .pulled import AddPython, PullLayer
from .resolve import OFFLINE

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import Any, NamedTuple, cast

    from ..volume import Volume
    from .resolve import Resolver
else:
    from .._fasttyping import cast
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

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
    volumes: tuple[tuple[str, Volume], ...] = ()  # (mount point, volume), bound read-write


Action = (
    RootfsFromArchive
    | BaseSetup
    | RunCommand
    | CopyFiles
    | CopyFromPlan
    | CallFunction
    | ExtractArchive
    | PullLayer
    | AddPython
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
    # what the key is the digest of (keys.StepKey), recorded for `build --explain`
    components: dict[str, object] = {}  # noqa: RUF012 (never mutated: steps share it)

    @property
    def short(self) -> str:
        return self.key[:16]


class Plan(NamedTuple):
    steps: tuple[PlannedStep, ...]
    mounts: tuple[LocalMount, ...]

    @property
    def key(self) -> str:
        return self.steps[-1].key if self.steps else keys.empty_key()

    @property
    def image_id(self) -> str:
        return "im-" + self.key[:24]

    @property
    def config(self) -> ImageConfig:
        return self.steps[-1].config if self.steps else ImageConfig()


def plan_image(image: Image, *, force: bool = False, resolver: Resolver = OFFLINE) -> Plan:
    """Resolve `image` into a Plan. Raises InvalidError / FileNotFoundError on bad input.

    `resolver` answers what the definition cannot (from_registry images, ADD URLs); the builder
    passes registry/resolve.py's.
    """
    force = force or settings.force_build()
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
        for planned in _plan_layer(layer, parent, config, step_force, resolver):
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
        op = CopyLocal(mount.local, mount.remote, mount.ignore, mount.is_dir)
        entries.extend(_collect(op, "/", f"add_local at {mount.callsite}"))
    return tuple(entries)


def _plan_layer(
    layer: Layer, parent: str | None, config: ImageConfig, force: bool, resolver: Resolver
) -> list[PlannedStep]:
    base = _BASES.get(type(layer.ops[0])) if layer.ops else None
    if base is not None:
        return base(layer, layer.ops[0], force, resolver)
    ops = _LayerOps(layer, config, force, resolver)
    for op in layer.ops:
        _OPS[type(op)](op, ops)
    secret_names = sorted({k for s in layer.secrets for k in s.env})
    key = keys.layer_key(parent, ops.key_ops, secret_names)
    return [
        PlannedStep(
            key.value, parent, layer.call, layer, tuple(ops.actions), ops.config, force,
            tuple(ops.history), key.components,
        )
    ]  # fmt: skip


class _LayerOps:
    """One layer's ops while they are planned: the config in force, and what each op adds to
    the step (its actions, its part of the key, its history line)."""

    def __init__(self, layer: Layer, config: ImageConfig, force: bool, resolver: Resolver):
        self.layer, self.config, self.force, self.resolver = layer, config, force, resolver
        self.actions: list[Action] = []
        self.key_ops: list[object] = []
        self.history: list[str] = []

    def add(self, key_op: list[object], line: str, *actions: Action) -> None:
        self.key_ops.append(key_op)
        self.history.append(line)
        self.actions.extend(actions)


def _run(op: Run, ops: _LayerOps) -> None:
    ops.add(keys.run_op(op), f"RUN {op.command}", RunCommand(op, ops.config))


def _copy_local(op: CopyLocal, ops: _LayerOps) -> None:
    if op.extract:
        dest = posixpath.normpath(posixpath.join(ops.config.workdir, op.remote))
        archive_digest = _collect(op, "/", ops.layer.where)[0].digest
        key = keys.extract_op(archive_digest, dest, op.owner)
        ops.add(key, f"ADD {op.local} {op.remote}", ExtractArchive(op.local, dest, op.owner))
    else:
        entries = _collect(op, ops.config.workdir, ops.layer.where)
        key = keys.copy_op(entries, op.owner)
        ops.add(key, f"COPY {op.local} {op.remote}", CopyFiles(tuple(entries), op.owner))


def _download(op: Download, ops: _LayerOps) -> None:
    path, sha256 = ops.resolver.fetch_url(op.url, ops.layer.where, op.checksum)
    dest = posixpath.normpath(posixpath.join(ops.config.workdir, op.remote))
    mode = 0o600 if op.chmod is None else op.chmod
    entry = FileEntry(dest, "file", mode, sha256, path)
    key = keys.copy_op([entry], op.owner)
    ops.add(key, f"ADD {op.url} {op.remote}", CopyFiles((entry,), op.owner))


def _copy_from(op: CopyFromImage, ops: _LayerOps) -> None:
    source = plan_image(op.source, force=ops.force, resolver=ops.resolver)
    dest = posixpath.join(ops.config.workdir, op.remote)
    dest = posixpath.normpath(dest) + ("/" if op.remote.endswith("/") else "")
    key = keys.copy_from_op(source.key, op.paths, dest, op.chmod, op.owner)
    line = f"COPY --from={source.image_id} {' '.join(op.paths)} {op.remote}"
    ops.add(key, line, CopyFromPlan(source, op.paths, dest, op.chmod, op.owner))


def _run_function(op: RunFunction, ops: _LayerOps) -> None:
    from .functionkey import function_identity, pickled_arguments
    from .functionsource import function_ref, source_mounts

    arguments = pickled_arguments(op.args, dict(op.kwargs))
    sources = resolve_mounts(source_mounts(op.function)) if op.include_source else ()
    action = CallFunction(
        function_ref(op.function), arguments, op.timeout, ops.config, sources, op.volumes
    )
    key = keys.function_op(function_identity(op.function, arguments), op.include_source)
    ops.add(key, f"RUN python -c 'run_function({op.function.__qualname__})'", action)


def _set_config(op: SetConfig, ops: _LayerOps) -> None:
    ops.config = _apply_config(ops.config, op)
    created: tuple[Action, ...] = ()
    if op.field == "workdir":  # created for the current USER, as BuildKit does
        owner = None if ops.config.runs_as_root else ops.config.user
        created = (CopyFiles((FileEntry(ops.config.workdir, "dir", 0o755),), owner),)
    ops.add(keys.config_op(op), _config_line(op), *created)


def _config_line(op: SetConfig) -> str:
    """The Dockerfile line a config change stands for, for the image history."""
    if op.field in ("env", "env_expand", "labels"):
        keyword = "LABEL" if op.field == "labels" else "ENV"
        pairs = " ".join(f"{k}={shell_quote(str(v))}" for k, v in _pairs(op))
        return f"{keyword} {pairs}"
    if op.field in ("entrypoint", "cmd", "shell"):
        return f"{op.field.upper()} {json.dumps(list(op.value or ()))}"
    return f"{op.field.upper()} {op.value}"


def _plan_base(layer: Layer, op: Bootstrap, force: bool, resolver: Resolver) -> list[PlannedStep]:
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
    rootfs_key = keys.rootfs_key(release)
    commands = _base_setup_commands(release)
    setup_key = keys.base_setup_key(rootfs_key.value, commands, standalone)
    label = f"{layer.call}: {release.distro} {release.suite}"
    setup = "setup (apt lists, pip, wheel, uv)"
    if standalone:
        setup = f"setup (standalone CPython {standalone}, apt lists, pip, wheel, uv)"
    return [
        PlannedStep(
            rootfs_key.value,
            None,
            f"{label} root filesystem (mmdebstrap)",
            layer,
            (RootfsFromArchive(release),),
            BASE_CONFIG,
            force,
            (f"mmdebstrap {release.suite} +{','.join(release.packages)}",),
            rootfs_key.components,
        ),
        PlannedStep(
            setup_key.value,
            rootfs_key.value,
            f"{label} {setup}",
            layer,
            (BaseSetup(release, commands),),
            BASE_CONFIG,
            force,
            tuple(f"RUN {c}" for c in commands),
            setup_key.components,
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


def _plan_pulled(
    layer: Layer, op: FromRegistry, force: bool, resolver: Resolver
) -> list[PlannedStep]:
    """A step per layer of the image `resolver` finds, then one holding its config (so a tag
    that moves rebuilds what is on top), then add_python's."""
    credentials = None
    if op.auth:
        env = {k: v for s in layer.secrets for k, v in s.env.items()}
        credentials = resolver.credentials(op.auth, env)
    try:
        pulled = resolver.resolve_image(op.tag, credentials, refresh=force)
    except RegistryError as exc:  # the registry's words, and which line of the user's asked
        raise RegistryError(
            f"pulling {op.tag} (at {layer.callsite}): {exc}", exc.status, exc.code
        ) from None
    steps: list[PlannedStep] = []
    parent: str | None = None
    count = len(pulled.layers)
    for index, ref in enumerate(pulled.layers, 1):
        key = keys.pulled_layer_key(parent, ref.digest)
        description = (
            f"{layer.call}: layer {index}/{count} {ref.digest[7:19]} ({ref.size / 1e6:.1f} MB)"
        )
        action = PullLayer(ref, credentials)
        steps.append(
            PlannedStep(
                key.value, parent, description, layer, (action,), pulled.config, force,
                (f"FROM {op.tag} (layer {ref.digest})",), key.components,
            )
        )  # fmt: skip
        parent = key.value
    key = keys.pulled_image_key(parent, pulled.manifest_digest)
    steps.append(
        PlannedStep(
            key.value, parent, f"{layer.call}: {pulled.manifest_digest[:19]} config", layer, (),
            pulled.config, force, (f"FROM {op.tag}@{pulled.manifest_digest}",), key.components,
        )
    )  # fmt: skip
    if op.add_python is not None:
        steps.append(_add_python(layer, op.add_python, key.value, pulled.config, force))
    return steps


def _add_python(
    layer: Layer, version: str, parent: str, config: ImageConfig, force: bool
) -> PlannedStep:
    caller = "Image.from_registry(add_python=...)"
    series = series_of(version, caller)
    if version != series:
        raise InvalidError(
            "Python version must be specified as 'major.minor' for this interface; "
            f"micro-level specification ({version!r}) is not valid. (at {layer.callsite})"
        )
    error = (
        f"{caller} needs a uv-managed standalone CPython {series}, and its download source "
        f"could not be reached (at {layer.callsite})."
    )
    release = BaseRelease("registry", "", series, (), standalone_error=error)
    key = keys.add_python_key(parent, series)
    return PlannedStep(
        key.value, parent, f"{layer.call}: add standalone CPython {series} to /usr/local", layer,
        (AddPython(release),), config, force, ("COPY /python/. /usr/local",), key.components,
    )  # fmt: skip


def _pairs(op: SetConfig) -> tuple[tuple[str, str], ...]:
    """The value of an env, env_expand or labels op: name/value pairs by construction."""
    return cast("tuple[tuple[str, str], ...]", op.value)


def _apply_config(config: ImageConfig, op: SetConfig) -> ImageConfig:
    if op.field == "workdir":
        return config.with_field("workdir", posixpath.join(config.workdir, str(op.value)))
    if op.field == "env_expand":
        current = config.env_dict()
        expanded = tuple((k, _expand(str(v), current)) for k, v in _pairs(op))
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
        raise LocalFileNotFoundError(f"{where}: local path not found: {op.local}") from exc
    except InvalidError as exc:
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


# Base ops: a layer that starts with one is planned as steps of its own.
_BASES: dict[type, Callable[[Layer, Any, bool, Resolver], list[PlannedStep]]] = {
    Bootstrap: _plan_base,
    FromRegistry: _plan_pulled,
}

# Every other op kind adds to its layer's one step.
_OPS: dict[type, Callable[[Any, _LayerOps], None]] = {
    Run: _run,
    CopyLocal: _copy_local,
    Download: _download,
    CopyFromImage: _copy_from,
    RunFunction: _run_function,
    SetConfig: _set_config,
}

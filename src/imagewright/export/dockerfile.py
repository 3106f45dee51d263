"""Dockerfiles out: an Image definition as a Dockerfile plus the build context it needs.

`docker build` (BuildKit) of the result gives the image `imagewright build` gives, step for
step. The definition is walked directly, not through `plan_image`: planning a `from_registry`
image contacts the registry, and a Dockerfile needs only the tag.

Bases map to public images: `debian_slim(python_version="3.11")` to
`python:3.11-slim-bookworm` plus the setup RUN lines Modal's base adds (build tools, pip, wheel,
uv, debconf), `Image.ubuntu()` to `ubuntu:<suite>` plus our Python setup, `from_scratch` to
`FROM scratch` and `from_registry(tag)` to `FROM tag`. With `bare_base=True` only the FROM line
is written: for when that name refers to imagewright's own base, loaded into the engine with
`imagewright export --format docker --tag python:3.11-slim-bookworm`.

Known differences: uv steps leave /.uv/uv in the image (imagewright binds it in while a step
runs; Modal's Dockerfiles COPY it too), and the public bases carry their own config (CMD
`python3`, GPG_KEY, …) where imagewright's carry `sleep 172800`. Files added with copy=False
are attached when a container starts, so they are not part of the image here either.
A definition that copies out of other images (a multi-stage `from_dockerfile`) becomes a
multi-stage Dockerfile, each source image a `stage-N` before the final one.
Not expressible, and refused with InvalidError: `run_function`, steps with secrets (or env=),
`from_registry(add_python=...)`, and Ubuntu bases that need a standalone CPython.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, cast

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
from ..definition.pythons import release_for
from ..exception import InvalidError, LocalFileNotFoundError
from ..plan.files import FileEntry
from ..plan.planner import BASE_CONFIG, resolve_mounts

__all__ = ["Dockerfile", "render_dockerfile", "write_dockerfile"]

UV_IMAGE = "ghcr.io/astral-sh/uv"
CA_TARGET = "/etc/ssl/certs/ca-certificates.crt"
# What uv, pip (requests) and curl read; set with ARG so the value reaches RUN steps without
# becoming part of the image's Env, as imagewright's sandbox does with the host bundle.
_CA_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_DEBCONF = "echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections"
# Modal's debian_slim Dockerfile, after its FROM python:X.Y-slim-SUITE line.
_DEBIAN_SETUP = (
    "apt-get update",
    "apt-get install -y gcc gfortran build-essential",
    "pip install --upgrade pip wheel uv",
    _DEBCONF,
)


class Dockerfile(NamedTuple):
    """Dockerfile lines and what the context must hold: context path → host path or entry."""

    lines: tuple[str, ...]
    files: tuple[tuple[str, FileEntry], ...]  # entries to recreate under the context path
    binaries: tuple[tuple[str, str], ...]  # (context path, host file) copied as they are

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_dockerfile(
    image: Image,
    *,
    uv_from_context: bool = False,
    ca_bundle: str | None = None,
    bare_base: bool = False,
) -> Dockerfile:
    """The Dockerfile for `image`. Reads (hashes) the local files that copy steps name.

    `uv_from_context` puts uv binaries in the context instead of copying them from ghcr.io;
    `ca_bundle` (a host file) is bind-mounted over the image's CA bundle in every RUN.
    """
    return _Renderer(uv_from_context, ca_bundle, bare_base).render(image)


def write_dockerfile(
    image: Image,
    directory: str | os.PathLike[str],
    *,
    uv_from_context: bool = False,
    ca_bundle: str | None = None,
    bare_base: bool = False,
) -> Path:
    """Write DIRECTORY/Dockerfile and its context; DIRECTORY must be new or empty."""
    out = Path(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidError(f"{out} exists and is not an empty directory")
    rendered = render_dockerfile(
        image, uv_from_context=uv_from_context, ca_bundle=ca_bundle, bare_base=bare_base
    )
    out.mkdir(parents=True, exist_ok=True)
    for rel, host in rendered.binaries:
        shutil.copy2(host, out / rel)
    for rel, entry in rendered.files:
        _materialize(out / rel, entry)
    (out / "Dockerfile").write_text(rendered.text)
    return out / "Dockerfile"


def _materialize(path: Path, entry: FileEntry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if entry.kind == "dir":
        path.mkdir(exist_ok=True)
    elif entry.kind == "symlink":
        os.symlink(entry.target, path)
        return
    else:
        shutil.copyfile(entry.source, path)
    # COPY keeps the context's permission bits, so they must be the ones the step records.
    os.chmod(path, entry.mode)


class _Renderer:
    def __init__(self, uv_from_context: bool, ca_bundle: str | None, bare_base: bool) -> None:
        self.uv_from_context = uv_from_context
        self.ca_bundle = ca_bundle
        self.bare_base = bare_base
        self.lines: list[str] = []
        self.files: list[tuple[str, FileEntry]] = []
        self.binaries: list[tuple[str, str]] = []
        self.stages: dict[int, str] = {}  # id() of an image COPY --from reads -> its stage name
        self._start_stage()

    def _start_stage(self) -> None:
        """Reset what one stage of the Dockerfile tracks."""
        self.uv_present: str | None = None  # the uv version now at /.uv/uv
        self.args: dict[str, str] = {}  # ARG values declared so far
        self.config = ImageConfig()

    def render(self, image: Image) -> Dockerfile:
        if ca_bundle := self.ca_bundle:
            if not os.path.isfile(ca_bundle):
                raise LocalFileNotFoundError(f"CA bundle not found: {ca_bundle}")
            self.binaries.append(("ca-certificates.crt", ca_bundle))
        self._stage(image, None)
        return Dockerfile(tuple(self.lines), tuple(self.files), tuple(self.binaries))

    def _stage(self, image: Image, name: str | None) -> None:
        """Write `image` as a stage (the last one when `name` is None), after the stages its
        COPY --from steps read, so a multi-stage definition stays multi-stage."""
        layers = image._layers()
        for layer in layers:
            for op in layer.ops:
                if isinstance(op, CopyFromImage) and id(op.source) not in self.stages:
                    source_name = f"stage-{len(self.stages)}"
                    self.stages[id(op.source)] = source_name
                    self._stage(op.source, source_name)
        self._start_stage()
        prefix = f"{name}_" if name else ""
        for index, layer in enumerate(layers):
            # A comment ends at a newline, and a call may hold one (a multi-line command).
            self.lines.append("# " + layer.where.replace("\n", " "))
            if index == 0:
                self._base(layer, f" AS {name}" if name else "")
                continue
            if layer.secrets:
                raise InvalidError(
                    f"{layer.where}: steps with secrets (or env=) cannot be written as a "
                    "Dockerfile here; RUN --mount=type=secret is not supported yet"
                )
            for number, op in enumerate(layer.ops):
                _STEP_OPS[type(op)](self, layer, op, f"{prefix}s{index:02d}_{number}")

    def _base(self, layer: Layer, alias: str) -> None:
        """Start the stage with the FROM line for its base layer (`alias`: " AS name" or "")."""
        if not layer.ops:  # from_scratch: its layer has no ops
            self.config = ImageConfig(env=())
            self.lines.append(f"FROM scratch{alias}")
            return
        op = layer.ops[0]
        _BASE_OPS[type(op)](self, layer, op, alias)

    def _bootstrap(self, layer: Layer, op: Bootstrap, alias: str) -> None:
        release = release_for(op.distro, op.python_version, layer.call)
        self.config = BASE_CONFIG
        if op.distro == "debian":
            suite = "" if release.standalone_error else f"-{release.suite}"
            self.lines.append(f"FROM python:{release.series}-slim{suite}{alias}")
            setup: tuple[str, ...] = _DEBIAN_SETUP
        else:
            if release.standalone_error:
                raise InvalidError(
                    f"{layer.where}: Ubuntu {release.suite} does not package Python "
                    f"{release.series}; a Dockerfile cannot reproduce the standalone CPython"
                )
            self.lines.append(f"FROM ubuntu:{release.suite}{alias}")
            packages = " ".join((*release.packages, "ca-certificates", "build-essential"))
            setup = (
                f"apt-get update && apt-get install -y {packages} gcc gfortran",
                "rm -f /usr/lib/python3*/EXTERNALLY-MANAGED",
                "/.uv/uv pip install --python $(command -v python) --compile-bytecode pip wheel uv",
                _DEBCONF,
            )
        self._ca_args()
        if not self.bare_base:
            for command in setup:
                self._run(Run(command, "" if command.startswith("/.uv/uv") else None))

    def _from_registry(self, layer: Layer, op: FromRegistry, alias: str) -> None:
        if op.add_python is not None:
            raise InvalidError(
                f"{layer.where}: add_python cannot be written as a Dockerfile; "
                "use an image that has Python already"
            )
        self.lines.append(f"FROM {op.tag}{alias}")
        self._ca_args()

    def _ca_args(self) -> None:
        if self.ca_bundle:
            self.lines.extend(f"ARG {name}={CA_TARGET}" for name in _CA_VARS)

    def _run_step(self, layer: Layer, op: Run, slot: str) -> None:
        self._run(op)

    def _run_function(self, layer: Layer, op: RunFunction, slot: str) -> None:
        raise InvalidError(
            f"{layer.where}: run_function runs Python at build time in imagewright's "
            "sandbox and cannot be expressed as a Dockerfile"
        )

    def _download(self, layer: Layer, op: Download, slot: str) -> None:
        flags = [f"--chown={op.owner}"] if op.owner else []
        flags += [f"--chmod={op.chmod:o}"] if op.chmod is not None else []
        flags += [f"--checksum={op.checksum}"] if op.checksum else []
        self.lines.append(" ".join(["ADD", *flags, json.dumps([op.url, op.remote])]))

    def _copy_from(self, layer: Layer, op: CopyFromImage, slot: str) -> None:
        flags = [f"--from={self.stages[id(op.source)]}"]
        flags += [f"--chown={op.owner}"] if op.owner else []
        flags += [f"--chmod={op.chmod:o}"] if op.chmod is not None else []
        self.lines.append(" ".join(["COPY", *flags, json.dumps([*op.paths, op.remote])]))

    def _run(self, op: Run) -> None:
        command, argv = op.command, op.argv
        for name, value in op.env:  # a Dockerfile's build args, which reach RUN as ARG does
            if self.args.get(name) != value:
                self.args[name] = value
                self.lines.append(f"ARG {name}={json.dumps(value)}")
        mounts = [f"--mount=type=cache,target={target}" for target in op.cache_targets]
        if op.uv is not None:
            self._provide_uv(op.uv)
            # uv's cache stays out of the image, as imagewright keeps it in the store.
            mounts.append("--mount=type=cache,target=/root/.cache/uv")
        if self.ca_bundle:
            mounts.append(f"--mount=type=bind,source=ca-certificates.crt,target={CA_TARGET}")
        if argv is not None:  # a Dockerfile's exec-form RUN, read by from_dockerfile
            body = json.dumps(list(argv))
        elif "\n" in command or command.endswith("\\"):
            # A shell-form RUN ends at a newline; the exec form with SHELL keeps the command.
            body = json.dumps([*self.config.shell, command])
        else:
            body = command
        self.lines.append(" ".join(["RUN", *mounts, body]))

    def _provide_uv(self, uv: str) -> None:
        from ..version import BUNDLED_UV

        version = uv or BUNDLED_UV
        if self.uv_present == version:
            return
        self.uv_present = version
        if not self.uv_from_context:
            self.lines.append(f"COPY --from={UV_IMAGE}:{version} /uv /.uv/uv")
            return
        from ..execute.environment import uv_binary
        from ..store.store import Store

        name = f"uv-{version}"
        if all(rel != name for rel, _ in self.binaries):
            self.binaries.append((name, uv_binary(Store.default(), uv)))
        self.lines.append(f"COPY {name} /.uv/uv")

    def _copy(self, layer: Layer, op: CopyLocal, slot: str) -> None:
        remote = op.remote
        if remote in (".", "./"):
            remote = "./"  # "into the workdir", which joining with "." would lose
        absolute = posixpath.join(self.config.workdir, remote)
        mount = LocalMount(op.local, absolute, op.ignore, op.is_dir, layer.callsite)
        entries = resolve_mounts((mount,))
        if op.chmod is not None:  # COPY --chmod, applied to the context copies instead
            entries = tuple(
                e if e.kind == "symlink" else e._replace(mode=op.chmod) for e in entries
            )
        chown = f"--chown={op.owner} " if op.owner else ""
        if op.extract:  # ADD unpacks a local tar archive into the directory it names
            (entry,) = entries
            source = f"{slot}/{posixpath.basename(op.local)}"
            self.files.append((source, entry._replace(mode=0o644)))
            dest = posixpath.normpath(absolute) + "/"
            self.lines.append(f"ADD {chown}{json.dumps([source, dest])}")
        elif op.is_dir:
            root = posixpath.normpath(absolute)
            for entry in entries:
                self.files.append((f"{slot}/{posixpath.relpath(entry.dest, root)}", entry))
            self.lines.append(f"COPY {chown}{json.dumps([f'{slot}/', root + '/'])}")
        else:
            (entry,) = entries
            source = f"{slot}/{posixpath.basename(entry.dest)}"
            self.files.append((source, entry))
            self.lines.append(f"COPY {chown}{json.dumps([source, entry.dest])}")

    def _config(self, layer: Layer, op: SetConfig, slot: str) -> None:
        # A SetConfig's value has its field's type by construction (pairs for env and labels,
        # words for cmd, entrypoint, shell, exposed_ports and volumes, else a str): the casts
        # below restate that.
        field, value = op.field, op.value
        if field == "workdir":
            self.config = self.config._replace(
                workdir=posixpath.normpath(posixpath.join(self.config.workdir, str(value)))
            )
            self.lines.append(f"WORKDIR {self.config.workdir}")
        elif field in ("env", "env_expand", "labels"):
            # Docker expands $VAR in ENV and LABEL values: plain values escape it, while
            # env_expand (uv_sync's PATH) relies on it.
            expand = field == "env_expand"
            items = cast("tuple[tuple[str, str], ...]", value)
            pairs = " ".join(f"{k}={_quote(str(v), expand)}" for k, v in items)
            self.lines.append(f"{'LABEL' if field == 'labels' else 'ENV'} {pairs}")
        elif field in ("cmd", "entrypoint", "shell"):
            self.config = self.config.with_field(field, value)
            argv = cast("tuple[str, ...] | None", value)  # None: CMD cleared
            self.lines.append(f"{field.upper()} {json.dumps(list(argv or ()))}")
            if field == "entrypoint" and self.config.cmd is not None:
                # Docker clears CMD when ENTRYPOINT is set; imagewright keeps it.
                self.lines.append(f"CMD {json.dumps(list(self.config.cmd))}")
        elif field in ("user", "stop_signal"):
            self.lines.append(f"{'USER' if field == 'user' else 'STOPSIGNAL'} {value}")
        elif field in ("exposed_ports", "volumes"):
            added = cast("tuple[str, ...]", value)
            words = " ".join(added) if field == "exposed_ports" else json.dumps(list(added))
            self.lines.append(f"{'EXPOSE' if field == 'exposed_ports' else 'VOLUME'} {words}")
        else:
            raise InvalidError(f"config field {field!r} has no Dockerfile instruction")


# One entry per kind of op. A base layer's op starts a stage (with its " AS name" suffix);
# every later op becomes lines of that stage (with the context directory for its files).
_Write = Callable[[_Renderer, Layer, Any, str], None]
_BASE_OPS: dict[type, _Write] = {
    Bootstrap: _Renderer._bootstrap,
    FromRegistry: _Renderer._from_registry,
}
_STEP_OPS: dict[type, _Write] = {
    Run: _Renderer._run_step,
    CopyLocal: _Renderer._copy,
    Download: _Renderer._download,
    CopyFromImage: _Renderer._copy_from,
    SetConfig: _Renderer._config,
    RunFunction: _Renderer._run_function,
}


def _quote(value: str, expand: bool) -> str:
    if "\n" in value:
        raise InvalidError(f"a value with a newline cannot be written in a Dockerfile: {value!r}")
    value = value.replace("\\", "\\\\").replace('"', '\\"')
    if not expand:
        value = value.replace("$", "\\$")
    return f'"{value}"'

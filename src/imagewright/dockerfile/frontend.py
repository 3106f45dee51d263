"""Dockerfile → Image: translate a Dockerfile's stages into imagewright build steps.

`from_dockerfile` and `dockerfile_commands` are what Image's methods of those names run (through
the engine): read and parse, set up the build context, translate. Each instruction becomes its
own cached step whose call site is the Dockerfile's `file:line`, so build errors name the line.
Variables are expanded here, with Docker's ARG/ENV scoping (`substitute.resolve_args`) over the
base's known ENV; RUN/CMD/ENTRYPOINT shell text is left to the shell, as in Docker.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TypedDict, cast

from ..definition.config import ImageConfig
from ..definition.image import Image
from ..definition.layer import Layer
from ..definition.ops import Run, SetConfig
from ..definition.pythons import DEBIAN
from ..definition.validate import check_secrets, flatten
from ..exception import InvalidError
from ..mount import Mount
from ..secret import Secret
from .context import Context, CopyOptions, context_ops, heredoc_file, make_context
from .instructions import Command, CopyArgs
from .parser import Dockerfile, DockerfileError, Instruction, Stage, parse
from .stages import BuiltStage, Stages, copy_from
from .substitute import expand, expand_heredoc, expand_words, resolve_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from ..definition.ops import Op

__all__ = ["dockerfile_commands", "from_dockerfile", "translate"]

_PYTHON_SLIM = re.compile(r"(?:docker\.io/)?(?:library/)?python:(3\.\d+)-slim(?:-(\w+))?")
_DEBIAN_SLIM = re.compile(r"(?:docker\.io/)?(?:library/)?debian:(\w+)-slim")
_DURATIONS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9}
_HEALTH_FLAGS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                 "start-interval": "StartInterval"}  # fmt: skip


def from_dockerfile(
    path: str | Path,
    *,
    context_dir: str | Path | None,
    context_mount: Mount | None,
    build_args: Mapping[str, str],
    ignore: object,
    force_build: bool,
    secrets: Sequence[Secret] | None,
    env: Mapping[str, str | None] | None,
    add_python: str | None,
    registry_secret: Secret | None,
) -> Image:
    """Image.from_dockerfile: the image the Dockerfile at `path` describes (its last stage);
    registry images it names (FROM, COPY --from) are pulled with `registry_secret`'s auth."""
    local = os.path.expanduser(str(path))
    try:
        with open(local, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise InvalidError(f"from_dockerfile: cannot read {path}: {exc}") from None
    if context_mount is not None:
        context_dir = context_mount.local_dir
    root = os.path.abspath(os.path.expanduser(str(context_dir or ".")))
    dockerfile = parse(text, filename=_display(local))
    context = make_context(root, os.path.abspath(local), ignore, {})
    all_secrets = check_secrets(secrets, env)
    return translate(
        dockerfile, None, context, dict(build_args), all_secrets, force_build, add_python,
        "from_dockerfile", registry_secret=registry_secret,
    )  # fmt: skip


def dockerfile_commands(
    image: Image,
    commands: Sequence[str | list[str]],
    *,
    context_files: Mapping[str, str],
    context_dir: str | Path | None,
    ignore: object,
    build_args: Mapping[str, str],
    secrets: Sequence[Secret] | None,
    env: Mapping[str, str | None] | None,
    force_build: bool,
) -> Image:
    """Image.dockerfile_commands: instructions (no FROM) on top of `image`."""
    lines = flatten("dockerfile_commands", "dockerfile_commands", commands)
    if not lines:
        return image
    # the parser needs a FROM; the stand-in line is subtracted from reported line numbers
    dockerfile = parse("FROM scratch\n" + "\n".join(lines), filename="dockerfile_commands")
    root = os.path.abspath(os.path.expanduser(str(context_dir or ".")))
    files = {k.strip("/"): os.path.abspath(v) for k, v in context_files.items()}
    context = make_context(root, None, ignore, files)
    all_secrets = check_secrets(secrets, env)
    return translate(
        dockerfile, image, context, dict(build_args), all_secrets, force_build or image._force,
        None, "dockerfile_commands", line_offset=1,
    )  # fmt: skip


def _display(path: str) -> str:
    """How errors name a Dockerfile: relative to the current directory when under it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def translate(
    dockerfile: Dockerfile,
    base: Image | None,
    context: Context,
    build_args: Mapping[str, str],
    secrets: tuple[Secret, ...],
    force: bool,
    add_python: str | None,
    method: str,
    line_offset: int = 0,
    registry_secret: Secret | None = None,
) -> Image:
    """The image `dockerfile` describes (its last stage); `base` replaces its FROM (for
    dockerfile_commands). Registry images are pulled with `registry_secret`'s auth."""
    if base is not None and len(dockerfile.stages) > 1:
        line = dockerfile.stages[1].line - line_offset
        raise DockerfileError(dockerfile.filename, line, "FROM is not allowed here")
    resolved = resolve_args(dockerfile, build_args)

    def translate_stage(index: int) -> BuiltStage:
        stage, resolution = dockerfile.stages[index], resolved[index]
        earlier = stages.base(resolution.base, index)
        if base is not None:
            start, env = base, dict(_BASE.env)
        elif earlier is not None:
            start, env = earlier.image, dict(earlier.env)
        else:
            start = _from(
                resolution.base, dockerfile.filename, stage.line, force, add_python,
                registry_secret,
            )  # fmt: skip
            env = dict((ImageConfig() if resolution.base == "scratch" else _BASE).env)
        step = _Steps(
            start, dockerfile.filename, line_offset, secrets, force, method, registry_secret
        )
        stage_env = _stage(dockerfile, stage, resolution.scopes, env, step, context, stages)
        return BuiltStage(step.image, {**env, **stage_env})

    stages = Stages([s.name for s in dockerfile.stages], translate_stage)
    return stages.get(len(dockerfile.stages) - 1).image


def _stage(
    dockerfile: Dockerfile,
    stage: Stage,
    scopes: Sequence[Mapping[str, str]],
    env: Mapping[str, str],
    step: _Steps,
    context: Context,
    stages: Stages,
) -> dict[str, str]:
    """Add `stage`'s instructions to `step`; returns the ENV the stage set."""
    line_offset = step.offset
    shell: tuple[str, ...] = ("/bin/sh", "-c")
    stage_env: dict[str, str] = {}
    cmd_set = False
    for instruction, scope in zip(stage.instructions, scopes, strict=True):
        args_only = {k: v for k, v in scope.items() if k not in stage_env}
        values = {**args_only, **env, **stage_env}
        x = partial(expand, env=values, escape=dockerfile.escape)  # ENV/LABEL/... words
        kw = instruction.keyword
        try:
            ops: list[Op] = []
            if kw == "RUN":
                ops = [_run(instruction, shell, args_only)]
            elif kw in ("COPY", "ADD"):
                ops = _copy(instruction, values, context, dockerfile.escape, stages, step)
            elif kw == "ENV":
                pairs = [(x(k), x(v)) for k, v in _pairs(instruction)]
                stage_env.update(pairs)
                ops = [SetConfig("env", tuple(pairs))]
            elif kw == "LABEL":
                pairs = [(x(k), x(v)) for k, v in _pairs(instruction)]
                ops = [SetConfig("labels", tuple(pairs))]
            elif kw in ("WORKDIR", "USER", "STOPSIGNAL"):
                field = {"WORKDIR": "workdir", "USER": "user", "STOPSIGNAL": "stop_signal"}[kw]
                ops = [SetConfig(field, x(cast(str, instruction.args)))]
            elif kw == "SHELL":
                shell = cast(tuple[str, ...], cast(Command, instruction.args).argv)
                ops = [SetConfig("shell", shell)]
            elif kw in ("CMD", "ENTRYPOINT"):
                command = cast(Command, instruction.args)
                argv = command.argv if command.argv is not None else (*shell, command.shell)
                ops = [SetConfig(kw.lower(), cast(tuple[str, ...], argv))]
                cmd_set = cmd_set or kw == "CMD"
                if kw == "ENTRYPOINT" and not cmd_set:  # Docker drops the base's CMD here
                    ops.append(SetConfig("cmd", None))
            elif kw == "EXPOSE":
                # BuildKit splits EXPOSE's words after expansion (only EXPOSE's): `$PORTS`
                # may hold several ports
                args = cast(tuple[str, ...], instruction.args)
                ports = [p for w in args for p in expand_words(w, values, escape=dockerfile.escape)]
                ports = [p if "/" in p else f"{p}/tcp" for p in ports]
                ops = [SetConfig("exposed_ports", tuple(ports))]
            elif kw == "VOLUME":
                volumes = tuple(x(w) for w in cast(tuple[str, ...], instruction.args))
                ops = [SetConfig("volumes", volumes)]
            elif kw == "HEALTHCHECK":
                ops = [SetConfig("healthcheck", _healthcheck(instruction, values))]
            elif kw == "ONBUILD":
                raise ValueError("ONBUILD is not supported")
            # ARG is applied through the scopes; MAINTAINER is deprecated and only sets Author
        except DockerfileError:
            raise
        except (ValueError, InvalidError) as error:
            line = instruction.line - line_offset
            raise DockerfileError(instruction.filename, line, str(error)) from None
        if ops:
            step.add(instruction, ops)
    return stage_env


# The ENV our bases start with, for expanding `$PATH` and the like (a registry base's own ENV
# is known only when the image is planned).
_BASE = ImageConfig(env=(("PATH", ImageConfig().env[0][1]), ("LANG", "C.UTF-8")))


class _Steps:
    """Appends one layer per instruction, each with its Dockerfile line as call site."""

    def __init__(
        self,
        image: Image,
        filename: str,
        offset: int,
        secrets: tuple[Secret, ...],
        force: bool,
        method: str,
        registry_secret: Secret | None,
    ):
        self.image, self.filename, self.offset = image, filename, offset
        self.secrets, self.force, self.method = secrets, force, method
        self.registry_secret = registry_secret

    def add(self, instruction: Instruction, ops: Sequence[Op]) -> None:
        text = " ".join(instruction.original.split())
        call = text if len(text) <= 80 else text[:77] + "..."
        layer = Layer(
            self.method, call, self.where(instruction), tuple(ops), self.secrets, self.force
        )
        self.image = Image._make(self.image, layer, (), self.force)

    def where(self, instruction: Instruction) -> str:
        """The `file:line` of `instruction`, as the user wrote it."""
        return f"{self.filename}:{instruction.line - self.offset}"


def _from(
    name: str,
    filename: str,
    line: int,
    force: bool,
    add_python: str | None,
    registry_secret: Secret | None,
) -> Image:
    try:
        return _image(name, f"{filename}:{line}", force, registry_secret, add_python)
    except (ValueError, InvalidError) as error:
        raise DockerfileError(filename, line, str(error)) from None


def _image(
    name: str,
    where: str,
    force: bool,
    registry_secret: Secret | None,
    add_python: str | None = None,
) -> Image:
    """The image a FROM or COPY --from names: one of our bases when its name maps to one (see
    _PYTHON_SLIM), else a registry image; its first layer's call site is `where`."""
    match = _PYTHON_SLIM.fullmatch(name)
    debian = _DEBIAN_SLIM.fullmatch(name)
    series = None
    if match:
        release = DEBIAN.get(match[1])
        if match[2] is None or (release is not None and release.suite == match[2]):
            series = match[1]
    elif debian:
        series = next((s for s, r in DEBIAN.items() if r.suite == debian[1]), None)
    if name == "scratch" or series is not None:
        if add_python is not None:
            raise ValueError(f"add_python= needs a registry base, not {name}")
        image = Image.from_scratch(force) if name == "scratch" else Image.debian_slim(series, force)
    else:
        image = Image.from_registry(
            name, secret=registry_secret, add_python=add_python, force_build=force
        )
    assert image._layer is not None
    return Image._make(None, image._layer._replace(callsite=where), (), force)


class _RunFields(TypedDict):
    """The Run fields every form of a Dockerfile RUN sets alike."""

    cache_targets: tuple[str, ...]
    image_tmp: bool
    env: tuple[tuple[str, str], ...]


def _run(instruction: Instruction, shell: tuple[str, ...], args: Mapping[str, str]) -> Run:
    command = cast(Command, instruction.args)
    targets: list[str] = []
    for mount in cast(tuple[str, ...], instruction.flags.get("mount", ())):
        options = dict(f.partition("=")[::2] for f in mount.split(","))
        target = options.get("target") or options.get("dst") or options.get("destination")
        if options.get("type") != "cache" or not target:
            raise ValueError(f"RUN --mount={mount}: only type=cache,target=DIR is supported yet")
        targets.append(target)
    for flag in ("network", "security", "device"):
        if instruction.flags.get(flag) not in (None, "default", "sandbox", ()):
            raise ValueError(f"RUN --{flag} is not supported yet")
    # build args reach RUN as environment variables, not kept in the image
    fields: _RunFields = {
        "cache_targets": tuple(targets),
        "image_tmp": True,
        "env": tuple(sorted(args.items())),
    }
    if command.argv is not None:
        return Run(shlex.join(command.argv), argv=command.argv, **fields)
    text = cast(str, command.shell)
    docs = command.heredocs
    if len(docs) == 1 and re.fullmatch(r"\s*<<-?['\"]?\w+['\"]?\s*", text):
        script = docs[0].content
        if script.startswith("#!"):  # Docker runs such a script with its own interpreter
            first, _, body = script.partition("\n")
            return Run(script, argv=(*shlex.split(first[2:]), "-c", body), **fields)
        return Run(script, **fields)
    # other heredocs feed a command's input: the shell reads them as it would in a script
    text += "".join(f"\n{doc.content}{doc.name}" for doc in docs)
    return Run(text, **fields)


def _copy(
    instruction: Instruction,
    values: dict[str, str],
    context: Context,
    escape: str,
    stages: Stages,
    step: _Steps,
) -> list[Op]:
    copy = cast(CopyArgs, instruction.args)
    flags = instruction.flags
    chmod = None
    if flags.get("chmod"):
        try:
            chmod = int(cast(str, flags["chmod"]), 8)
        except ValueError:
            raise ValueError(f"invalid --chmod={flags['chmod']}: expected an octal mode") from None
    sources = [expand(s, values, escape=escape) for s in copy.sources]
    dest = expand(copy.dest, values, escape=escape)
    owner = expand(cast(str, flags["chown"]), values, escape=escape) if flags.get("chown") else None
    if owner is not None and not re.fullmatch(r"[^:\s]+(:[^:\s]+)?", owner):
        raise ValueError(f"invalid --chown={owner}: expected user[:group]")
    exclude = tuple(
        expand(p, values, escape=escape) for p in cast(tuple[str, ...], flags.get("exclude", ()))
    )
    parents = flags.get("parents") == "true"
    if flags.get("from"):
        if copy.heredocs:
            raise ValueError("COPY --from takes no heredoc sources")
        if parents or exclude:
            raise ValueError("COPY --from with --parents or --exclude is not supported yet")
        ref = expand(cast(str, flags["from"]), values, escape=escape)
        # a stage, else an image (as in BuildKit)
        source = stages.source(ref) or _image(
            ref, step.where(instruction), step.force, step.registry_secret
        )
        return [copy_from(instruction.keyword, source, sources, dest, chmod, owner)]
    for doc in copy.heredocs:  # an inline file is a context file named after its marker
        text = expand_heredoc(doc.content, values, escape=escape) if doc.expand else doc.content
        context = context._replace(files={**context.files, doc.name: heredoc_file(doc.name, text)})
        sources.append(doc.name)
    unpack = flags.get("unpack")
    options = CopyOptions(
        chmod, owner, cast("str | None", flags.get("checksum")), parents, exclude,
        None if unpack is None else unpack == "true",
    )  # fmt: skip
    return list(context_ops(instruction.keyword, sources, dest, context, options))


def _pairs(instruction: Instruction) -> tuple[tuple[str, str], ...]:
    return cast(tuple[tuple[str, str], ...], instruction.args)


def _healthcheck(instruction: Instruction, values: Mapping[str, str]) -> str:
    command = cast("Command | None", instruction.args)
    if command is None:
        return json.dumps({"Test": ["NONE"]})
    test = ["CMD", *command.argv] if command.argv is not None else ["CMD-SHELL", command.shell]
    out: dict[str, object] = {"Test": test}
    for flag, key in _HEALTH_FLAGS.items():
        if flag in instruction.flags:
            out[key] = _nanoseconds(cast(str, instruction.flags[flag]))
    if "retries" in instruction.flags:
        out["Retries"] = int(cast(str, instruction.flags["retries"]))
    return json.dumps(out)


def _nanoseconds(duration: str) -> int:
    total = 0.0
    for number, unit in re.findall(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)", duration):
        scale = 3600 * 10**9 if unit == "h" else _DURATIONS.get(unit, 10**3)
        total += float(number) * scale
    return int(total)

"""Run one planned step: its actions in sandboxes over the parent layers, then commit it."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from ..definition.config import ImageConfig
from ..definition.ops import Run
from ..definition.pythons import BaseRelease
from ..exception import ImageBuildError
from ..plan.files import FileEntry
from ..plan.planner import (
    BASE_CONFIG,
    BaseSetup,
    CallFunction,
    CopyFiles,
    CopyFromPlan,
    ExtractArchive,
    Plan,
    PlannedStep,
    RootfsFromArchive,
    RunCommand,
)
from ..plan.pulled import AddPython, PullLayer
from ..store.store import LayerRecord, Scratch, Store
from .copies import copy_from, copy_into
from .environment import cache_binds, cache_scope, step_binds, step_env
from .events import Reporter
from .failed import FailedSlot, keep_failed_step
from .layers import attach_files, lowers_for
from .overlay import Overlay, SandboxCommand

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import Any, NamedTuple, Protocol
else:
    from .._fasttyping import Protocol
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["BUBBLEWRAP", "StepSandbox", "redaction", "run_step"]

_TAIL_LINES = 25


class StepSandbox(Protocol):
    """Where a step's commands and local-file copies run. `BUBBLEWRAP` is the real one; unit
    tests bring a fake that needs neither root nor a kernel's namespaces."""

    def run(self, overlay: Overlay, cmd: SandboxCommand, on_line: Callable[[str], None]) -> int:
        """Run `cmd` over `overlay` to completion; its exit status."""
        ...

    def copy_into(
        self,
        overlay: Overlay,
        entries: tuple[FileEntry, ...],
        on_line: Callable[[str], None],
        owner: str | None = None,
    ) -> int:
        """Create `entries` in the overlay's upper dir; 0 on success."""
        ...


class _Bubblewrap:
    @staticmethod
    def run(overlay: Overlay, cmd: SandboxCommand, on_line: Callable[[str], None]) -> int:
        from .sandbox import run_sandboxed  # (a step that runs nothing never imports it)

        return run_sandboxed(overlay, cmd, on_line)

    copy_into = staticmethod(copy_into)


BUBBLEWRAP: StepSandbox = _Bubblewrap()


def run_step(
    plan: Plan,
    index: int,
    step: PlannedStep,
    store: Store,
    reporter: Reporter,
    sandbox: StepSandbox = BUBBLEWRAP,
    keep: FailedSlot | None = None,
) -> LayerRecord:
    """Run step `index` and commit its layer; on failure raise ImageBuildError, after keeping
    its work area in `keep` for `imagewright shell --failed` (see failed.py)."""
    t0 = time.monotonic()
    secrets = {k: v for s in step.layer.secrets for k, v in s.env.items()}
    log_path = store.log_path(step.key)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    hidden = redaction(secrets.values())
    scope = cache_scope(step.layer.callsite)
    with store.scratch() as area, open(log_path, "w") as log:

        def on_line(line: str) -> None:
            for value in hidden:
                line = line.replace(value, "***")  # secrets never reach a log
            tail.append(line)
            log.write(line + "\n")
            reporter.step_output(index, line)

        overlay = Overlay(
            store.root,
            lowers_for(plan, store, index - 1) if index else (store.empty_dir(),),
            area.upper,
            area.work,
            area.merged,
        )
        context = _Step(overlay, area, store, secrets, on_line, scope, sandbox)
        for action in step.actions:
            status, what = _ACTIONS[type(action)](action, context)
            if status != 0:
                log.flush()
                kept = ""
                if keep is not None:
                    config, build_args = _ran_with(action, step)
                    keys = tuple(s.key for s in plan.steps[:index])
                    kept = keep_failed_step(
                        store, keep, area, keys, overlay.lowers, config, build_args, secrets,
                        step.layer.where,
                    )  # fmt: skip
                raise _build_error(plan, step, what, status, list(tail), log_path, kept)
        seconds = time.monotonic() - t0
        return store.commit(area, step.key, step.parent_key, step.description, seconds)


def _ran_with(action: object, step: PlannedStep) -> tuple[ImageConfig, dict[str, str]]:
    """The image settings and build arguments a failed action ran with."""
    if isinstance(action, RunCommand):
        return action.config, dict(action.run.env)
    if isinstance(action, BaseSetup):
        return BASE_CONFIG, {}
    if isinstance(action, CallFunction):
        return action.config, {}
    return step.config, {}  # a copy or an unpack: the step's own settings


def redaction(values: Iterable[str]) -> list[str]:
    """The strings to hide from build output for these secret values, longest first: each value,
    and each line of a multi-line one (output arrives line by line, so a PEM key echoed by a
    step shows up one line at a time). Lines under 4 characters are left, as they would hide
    ordinary output."""
    hidden = {v for v in values if v}
    for value in list(hidden):
        hidden.update(part for part in (p.strip() for p in value.splitlines()) if len(part) >= 4)
    return sorted(hidden, key=len, reverse=True)


class _Step(NamedTuple):
    """What each action of one step runs with."""

    overlay: Overlay
    area: Scratch
    store: Store
    secrets: dict[str, str]
    on_line: Callable[[str], None]
    scope: str  # names the step's package caches
    sandbox: StepSandbox


# An action's outcome: its exit status, and what ran, so that errors can name the failing part.
_Outcome = tuple[int, str]


def _bootstrap(action: RootfsFromArchive, step: _Step) -> _Outcome:
    from .bootstrap import bootstrap_rootfs

    tools = step.store.root / "tools"
    return bootstrap_rootfs(action.release, step.area.upper, tools, step.on_line), "mmdebstrap"


def _base_setup(action: BaseSetup, step: _Step) -> _Outcome:
    if action.release.standalone_error:
        from ..definition.pythons import STANDALONE_ROOT

        status = _copy_standalone(action.release, STANDALONE_ROOT, step)
        if status != 0:
            return status, "copying the standalone CPython"
    return _run_commands([RunCommand(Run(c, uv=""), BASE_CONFIG) for c in action.commands], step)


def _run_command(action: RunCommand, step: _Step) -> _Outcome:
    return _run_commands([action], step)


def _run_commands(commands: list[RunCommand], step: _Step) -> _Outcome:
    for run, config in commands:
        step.on_line(f"$ {run.command}")
        cmd = SandboxCommand(
            argv=list(run.argv) if run.argv is not None else [*config.shell, run.command],
            # the image's ENV wins over build args of the same name, as in Docker
            env={**dict(run.env), **step_env(config, step.secrets)},
            workdir=config.workdir,
            binds=step_binds(step.store, run.uv, step.scope)
            + cache_binds(step.store, run.cache_targets),
            user=config.user,
            private_tmp=not run.image_tmp,
        )
        status = step.sandbox.run(step.overlay, cmd, step.on_line)
        if status != 0:
            return status, run.command
    return 0, ""


def _copy_files(action: CopyFiles, step: _Step) -> _Outcome:
    status = step.sandbox.copy_into(step.overlay, action.entries, step.on_line, action.owner)
    return status, "copying files"


def _copy_from(action: CopyFromPlan, step: _Step) -> _Outcome:
    what = f"copying {' '.join(action.paths)} from {action.source.image_id}"
    # over an empty dir: overlayfs needs two lower dirs when it has no upper one
    lowers = (*lowers_for(action.source, step.store), step.store.empty_dir())
    return copy_from(action, step.overlay, lowers, step.on_line), what


def _extract_archive(action: ExtractArchive, step: _Step) -> _Outcome:
    from .archive import extract_archive

    status = extract_archive(action, step.overlay, step.area, step.on_line)
    return status, f"extracting {action.source}"


def _pull_layer(action: PullLayer, step: _Step) -> _Outcome:
    from ..registry.auth import Credentials
    from ..registry.pull import pull_layer

    creds = Credentials(*action.credentials) if action.credentials else None
    area = step.area
    count = pull_layer(action.layer, creds, area.root, area.upper)  # type: ignore[arg-type]  # a LayerRef (RegistryResolver's); plan's RemoteLayer names only digest and size
    step.on_line(f"unpacked {count} entries")
    return 0, ""


def _add_python(action: AddPython, step: _Step) -> _Outcome:
    return _copy_standalone(action.release, "/usr/local", step), "add_python"


def _copy_standalone(release: BaseRelease, dest: str, step: _Step) -> int:
    from ..plan.files import collect_dir
    from .standalone import fetch_standalone

    tree = fetch_standalone(step.store, release.series, release.standalone_error)
    step.on_line(f"$ copy {tree.name} to {dest}")
    return step.sandbox.copy_into(
        step.overlay, tuple(collect_dir(str(tree), dest, ())), step.on_line
    )


def _call_function(action: CallFunction, step: _Step) -> _Outcome:
    """Run the function in a container writing into this step's layer (run_function)."""
    import traceback

    from ..runtime.protocol import loads
    from .functions import Container
    from .volumes import volume_binds

    overlay, store, on_line = step.overlay, step.store, step.on_line
    what = f"{action.ref.split(':')[1]}()"
    on_line(f"$ python: {what}")
    parent_key = "|".join(overlay.lowers)
    open_root = not action.config.runs_as_root
    lowers = overlay.lowers
    if action.sources:
        key = attach_files(store, parent_key, lowers, action.sources, open_root)
        lowers = (store.lower_name(key), *lowers)
    binds, volume_env = volume_binds(dict(action.volumes))
    env, area = {**step.secrets, **volume_env}, step.area
    container = Container(
        store, action.config, lowers, action.ref, env=env, binds=binds, area=area,
        on_output=on_line,
    )  # fmt: skip
    try:
        container.start()
        args, kwargs = loads(action.arguments)
        container.call(args, kwargs, action.timeout)
    except Exception as exc:
        for line in "".join(traceback.format_exception_only(type(exc), exc)).splitlines():
            on_line(line)
        if exc.__cause__ is not None:
            for line in str(exc.__cause__).splitlines():
                on_line(line)
        return 1, what
    finally:
        container.stop()
        from .sandbox import remove_placeholders

        remove_placeholders(overlay)  # volumes' mount points: the layer keeps no trace of them
    return 0, ""


# One entry per kind of planned action.
_ACTIONS: dict[type, Callable[[Any, _Step], _Outcome]] = {
    RootfsFromArchive: _bootstrap,
    BaseSetup: _base_setup,
    RunCommand: _run_command,
    CopyFiles: _copy_files,
    CopyFromPlan: _copy_from,
    ExtractArchive: _extract_archive,
    PullLayer: _pull_layer,
    AddPython: _add_python,
    CallFunction: _call_function,
}


def _build_error(
    plan: Plan,
    step: PlannedStep,
    what: str,
    status: int,
    tail: list[str],
    log_path: Path,
    kept: str = "",
) -> ImageBuildError:
    shown = "\n".join(f"  | {line}" for line in tail[-15:])
    message = (
        f"Image build for {plan.image_id} failed at step {step.layer.where}\n"
        f"  {what!r} exited with status {status}.\n"
        f"Last lines of its output:\n{shown}\n"
        f"Full log: {log_path}" + (f"\n{kept}" if kept else "")
    )
    return ImageBuildError(message, image_id=plan.image_id, log_path=str(log_path))

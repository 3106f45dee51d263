"""Run one planned step: its actions in sandboxes over the parent layers, then commit it."""

from __future__ import annotations

import marshal
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

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
from .builder import lowers_for
from .environment import cache_binds, cache_scope, step_binds, step_env
from .events import Reporter
from .sandbox import Bind, Overlay, SandboxCommand, run_sandboxed, spawn_helper, stream

__all__ = ["copy_from", "copy_into", "redaction", "run_step"]

_TAIL_LINES = 25
_HOST = "/.host"  # where the copy helper sees the host files it copies


def run_step(
    plan: Plan, index: int, step: PlannedStep, store: Store, reporter: Reporter
) -> LayerRecord:
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
        for action in step.actions:
            status, what = _run_action(action, overlay, area, store, secrets, on_line, scope)
            if status != 0:
                log.flush()
                raise _build_error(plan, step, what, status, list(tail), log_path)
        seconds = time.monotonic() - t0
        return store.commit(area, step.key, step.parent_key, step.description, seconds)


def redaction(values: Iterable[str]) -> list[str]:
    """The strings to hide from build output for these secret values, longest first: each value,
    and each line of a multi-line one (output arrives line by line, so a PEM key echoed by a
    step shows up one line at a time). Lines under 4 characters are left, as they would hide
    ordinary output."""
    hidden = {v for v in values if v}
    for value in list(hidden):
        hidden.update(part for part in (p.strip() for p in value.splitlines()) if len(part) >= 4)
    return sorted(hidden, key=len, reverse=True)


def _run_action(
    action: object,
    overlay: Overlay,
    area: Scratch,
    store: Store,
    secrets: dict[str, str],
    on_line: Callable[[str], None],
    scope: str,
) -> tuple[int, str]:
    """Run one action (`scope` names its package caches); returns (exit status, what ran) so
    errors can name the failing part."""
    if isinstance(action, RootfsFromArchive):
        from .bootstrap import bootstrap_rootfs

        status = bootstrap_rootfs(action.release, area.upper, store.root / "tools", on_line)
        return status, "mmdebstrap"
    if isinstance(action, CopyFiles):
        return copy_into(overlay, action.entries, on_line, action.owner), "copying files"
    if isinstance(action, CopyFromPlan):
        what = f"copying {' '.join(action.paths)} from {action.source.image_id}"
        return copy_from(action, overlay, store, on_line), what
    if isinstance(action, PullLayer):
        from ..registry.auth import Credentials
        from ..registry.pull import pull_layer

        creds = Credentials(*action.credentials) if action.credentials else None
        count = pull_layer(action.layer, creds, area.root, area.upper)  # type: ignore[arg-type]
        on_line(f"unpacked {count} entries")
        return 0, ""
    if isinstance(action, AddPython):
        return _copy_standalone(action.release, overlay, store, "/usr/local", on_line), "add_python"
    if isinstance(action, CallFunction):
        return _call_function(action, overlay, area, store, secrets, on_line)
    if isinstance(action, ExtractArchive):
        from .archive import extract_archive

        return extract_archive(action, overlay, area, on_line), f"extracting {action.source}"
    commands: list[RunCommand]
    if isinstance(action, BaseSetup):
        if action.release.standalone_error:
            from ..definition.pythons import STANDALONE_ROOT

            status = _copy_standalone(action.release, overlay, store, STANDALONE_ROOT, on_line)
            if status != 0:
                return status, "copying the standalone CPython"
        commands = [RunCommand(Run(c, uv=""), BASE_CONFIG) for c in action.commands]
    else:
        assert isinstance(action, RunCommand)
        commands = [action]
    for run, config in commands:
        on_line(f"$ {run.command}")
        cmd = SandboxCommand(
            argv=list(run.argv) if run.argv is not None else [*config.shell, run.command],
            # the image's ENV wins over build args of the same name, as in Docker
            env={**dict(run.env), **step_env(config, secrets)},
            workdir=config.workdir,
            binds=step_binds(store, run.uv, scope) + cache_binds(store, run.cache_targets),
            user=config.user,
            private_tmp=not run.image_tmp,
        )
        status = run_sandboxed(overlay, cmd, on_line)
        if status != 0:
            return status, run.command
    return 0, ""


def _copy_standalone(
    release: BaseRelease, overlay: Overlay, store: Store, dest: str, on_line: Callable[[str], None]
) -> int:
    from ..plan.files import collect_dir
    from .standalone import fetch_standalone

    tree = fetch_standalone(store, release.series, release.standalone_error)
    on_line(f"$ copy {tree.name} to {dest}")
    return copy_into(overlay, tuple(collect_dir(str(tree), dest, ())), on_line)


def _call_function(
    action: CallFunction,
    overlay: Overlay,
    area: Scratch,
    store: Store,
    secrets: dict[str, str],
    on_line: Callable[[str], None],
) -> tuple[int, str]:
    """Run the function in a container writing into this step's layer (run_function)."""
    import traceback

    from ..runtime.invoke import Container
    from ..runtime.protocol import loads
    from .container import attach_files

    what = f"{action.ref.split(':')[1]}()"
    on_line(f"$ python: {what}")
    parent_key = "|".join(overlay.lowers)
    open_root = not action.config.runs_as_root
    lowers = attach_files(store, parent_key, overlay.lowers, action.sources, open_root)
    container = Container(
        store, action.config, lowers, action.ref, env=secrets, area=area, on_output=on_line
    )
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
    return 0, ""


def copy_into(
    overlay: Overlay,
    entries: tuple[FileEntry, ...],
    on_line: Callable[[str], None],
    owner: str | None = None,
) -> int:
    """Create `entries` in the overlay's upper dir (copyin.py, in a helper sandbox that chroots
    into the merged tree); `owner` is a --chown value for entries that carry no owner of their
    own. The helper sees the host only through read-only binds of the sources' directories."""
    spec = overlay.work.parent / "copy.spec"
    listed = []
    for e in entries:
        entry = {"dest": e.dest, "kind": e.kind, "mode": e.mode, "digest": e.digest}
        # a file named directly may be a symlink: its target is what was hashed, and is copied
        source = _HOST + os.path.realpath(e.source) if e.kind == "file" else e.source
        entry |= {"source": source, "target": e.target}
        if e.owner is not None:
            entry["uid"], entry["gid"] = e.owner
        listed.append(entry)
    # marshal, not JSON: the script runs on this same interpreter, and importing json (and
    # with it re) would cost a fresh interpreter more time than the copy itself
    spec.write_bytes(marshal.dumps({"owner": owner, "entries": listed}))
    files = [str(entry["source"])[len(_HOST) :] for entry in listed if entry["kind"] == "file"]
    binds = [Bind(path, _HOST + path) for path in _source_roots(files)]
    from . import copyin

    binds.append(Bind(str(spec), "/spec"))
    proc = spawn_helper(overlay, copyin.__file__, ["/image", "/spec"], binds)
    return stream(proc, on_line)


def _source_roots(paths: list[str]) -> list[str]:
    """The fewest paths to bind so that each of `paths` is visible: their directories, minus
    those inside another, and the files themselves where a directory would be the host's /."""
    roots: list[str] = []
    for path in sorted({os.path.dirname(p) if os.path.dirname(p) != "/" else p for p in paths}):
        if not roots or not path.startswith(roots[-1].rstrip("/") + "/"):
            roots.append(path)
    return roots


def copy_from(
    action: CopyFromPlan, overlay: Overlay, store: Store, on_line: Callable[[str], None]
) -> int:
    """Copy `action.paths` from its (built) source image into the overlay (copyfrom.py, in a
    helper sandbox with the source image bound read-only at /source)."""
    spec = overlay.work.parent / "copy-from.spec"
    fields = {"paths": list(action.paths), "dest": action.dest}
    spec.write_bytes(marshal.dumps({**fields, "chmod": action.chmod, "owner": action.owner}))
    source = overlay.work.parent / "source"
    source.mkdir()
    # overlayfs needs two lower dirs when it has no upper one
    lowers = (*lowers_for(action.source, store), store.empty_dir())
    from . import copyfrom

    binds = [Bind(str(source), "/source"), Bind(str(spec), "/spec")]
    args = ["/source", "/image", "/spec"]
    proc = spawn_helper(overlay, copyfrom.__file__, args, binds, readonly=(lowers, source))
    return stream(proc, on_line)


def _build_error(
    plan: Plan, step: PlannedStep, what: str, status: int, tail: list[str], log_path: Path
) -> ImageBuildError:
    shown = "\n".join(f"  | {line}" for line in tail[-15:])
    message = (
        f"Image build for {plan.image_id} failed at step {step.layer.where}\n"
        f"  {what!r} exited with status {status}.\n"
        f"Last lines of its output:\n{shown}\n"
        f"Full log: {log_path}"
    )
    return ImageBuildError(message, image_id=plan.image_id, log_path=str(log_path))

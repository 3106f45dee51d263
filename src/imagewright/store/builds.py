"""The latest build of each image definition, for `imagewright build --explain`.

`builds/<sha256 of the definition>.json` names the definition (a file's absolute path and the
Image's name in it, "/src/app.py::web") and lists each step of its latest build: key,
description and key components (plan/keys.py's StepKey). It is written whole after each
`imagewright build` (atomic.write_atomic), so a reader sees the old record or the new one. A
record that cannot be read counts as none: --explain then says there is no earlier build rather
than failing. Prune leaves records alone: they are small, and a step whose layer was pruned is
explained as such.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from .._digest import hexdigest
from .atomic import write_atomic
from .store import Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:  # explain.py loads for --explain only, not for every build that records
    from ..plan.explain import EarlierStep
    from ..plan.planner import Plan

__all__ = ["last_build", "record_build"]


def _path(store: Store, definition: str) -> Path:
    return store.root / "builds" / f"{hexdigest(definition.encode())}.json"


def record_build(store: Store, definition: str, plan: Plan) -> None:
    """Keep `plan`, just built, as the latest build of `definition`."""
    steps = [
        {"key": s.key, "description": s.description, "components": s.components} for s in plan.steps
    ]
    data = json.dumps({"definition": definition, "steps": steps}).encode()
    path = _path(store, definition)
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:  # built as last time: a cached build writes nothing
            return
    path.parent.mkdir(mode=0o700, exist_ok=True)  # private, like the store's other directories
    write_atomic(path, data)


def last_build(store: Store, definition: str) -> list[EarlierStep] | None:
    """The steps of the latest recorded build of `definition`, or None."""
    from ..plan.explain import EarlierStep

    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        document = json.loads(_path(store, definition).read_text())
        if document["definition"] == definition:  # not a hash collision, nor a stray file
            return [
                EarlierStep(str(s["key"]), str(s["description"]), dict(s["components"]))
                for s in document["steps"]
            ]
    return None

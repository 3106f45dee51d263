"""Why a step misses the cache: its key's components against an earlier build's.

`imagewright build --explain` plans the image and, for each step whose key the store lacks,
names what differs from the latest earlier build of the same definition (store/builds.py keeps
it): a copied file (its path in the image, where it came from, both digests), an argument of a
command, the parent step, the builder or uv version, secret names, a config value. Components
are what plan/keys.py hashed, so every difference that changes a key shows up here. Pure and
offline: the caller says which keys the store has and hands over the earlier build's steps.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, cast

from .planner import CopyFiles, ExtractArchive, Plan, PlannedStep

__all__ = ["EarlierStep", "Explanation", "explain"]

NO_EARLIER = "no earlier build of this definition"
_MAX_FILES = 10  # changed files named per step; a large tree's others are counted


class EarlierStep(NamedTuple):
    """One step of an earlier build, as store/builds.py records it."""

    key: str
    description: str
    components: Mapping[str, object]


class Explanation(NamedTuple):
    """Why one step of the plan is built instead of reused."""

    step: int  # 1-based, as the user counts steps
    description: str
    callsite: str
    key: str
    reasons: tuple[str, ...]

    def line(self) -> str:
        return f"step {self.step} {self.description} at {self.callsite}: {'; '.join(self.reasons)}"

    def to_json(self) -> dict[str, object]:
        return {
            "step": self.step,
            "description": self.description,
            "where": self.callsite,
            "key": self.key,
            "reasons": list(self.reasons),
        }


def explain(
    plan: Plan, earlier: Sequence[EarlierStep] | None, cached: Callable[[str], bool]
) -> list[Explanation]:
    """An Explanation for every step of `plan` that `cached` says is missing (or is forced),
    compared with `earlier` (None when this definition was never built)."""
    positions = {step.key: index for index, step in enumerate(plan.steps, 1)}
    earlier_at = {step.key: index for index, step in enumerate(earlier or ())}
    explanations = []
    for index, step in enumerate(plan.steps):
        if not step.force and cached(step.key):
            continue
        if step.force:
            reasons = ["forced (--force, force_build=True or IMAGEWRIGHT_FORCE_BUILD)"]
        elif earlier is None:
            reasons = [NO_EARLIER]
        elif step.key in earlier_at:
            reasons = ["built before with these same inputs, but its layer has left the store"]
        else:
            # the step built on the same parent last time, else the one at the same place
            parent_at = earlier_at.get(step.parent_key or "")
            at = index if parent_at is None else parent_at + 1
            old = earlier[at] if at < len(earlier) else None
            if old is None:
                reasons = [f"a new step (the earlier build had {len(earlier)})"]
            else:
                reasons = _differences(old, step, positions)
        explanations.append(
            Explanation(index + 1, step.description, step.layer.callsite, step.key, tuple(reasons))
        )
    return explanations


def _differences(old: EarlierStep, step: PlannedStep, positions: dict[str, int]) -> list[str]:
    new, before = _plain(step.components), _plain(old.components)
    if new.get("type") != before.get("type"):
        return [f"a different step: it was {old.description}"]
    reasons = []
    for name in sorted(new.keys() | before.keys()):
        a, b = before.get(name), new.get(name)
        if a == b:
            continue
        if name == "parent":
            at = positions.get(str(b))
            reasons.append(f"parent step {at} changed" if at else "parent step changed")
        elif name == "builder":
            reasons.append(f"builder {a} → {b}")
        elif name == "ops":
            reasons += _op_differences(_list(a), _list(b), step)
        elif name == "secrets":
            reasons.append(f"secret names {_short(a)} → {_short(b)}")
        else:
            reasons.append(f"{name} changed: {_short(a)} → {_short(b)}")
    # no difference found: only a record edited by hand, or of an op kind _FIELDS lacks
    return reasons or ["its inputs changed"]


def _op_differences(before: list[object], now: list[object], step: PlannedStep) -> list[str]:
    reasons = []
    for a, b in zip(before, now, strict=False):
        old, new = _list(a), _list(b)
        if old == new:
            continue
        if old[:1] != new[:1]:
            reasons.append(f"instruction changed: {_summary(old)} → {_summary(new)}")
            continue
        fields = _FIELDS.get(str(new[0]), ())
        for name, x, y in zip(fields, old[1:], new[1:], strict=False):
            if x != y:
                reasons += _field_difference(str(new[0]), name, x, y, new, step)
    reasons += [f"instruction added: {_summary(_list(op))}" for op in now[len(before) :]]
    reasons += [f"instruction removed: {_summary(_list(op))}" for op in before[len(now) :]]
    return reasons


# the fields of each op after its kind, in keys.py's order
_FIELDS: dict[str, tuple[str, ...]] = {
    "run": ("command", "uv", "argv", "cache mounts", "image /tmp", "environment"),
    "copy": ("files", "owner"),
    "extract": ("archive", "destination", "owner"),
    "copy-from": ("source image", "paths", "destination", "chmod", "owner"),
    "function": ("function", "include_source"),
    "config": ("field", "value"),
}


def _field_difference(
    kind: str, name: str, a: object, b: object, op: list[object], step: PlannedStep
) -> list[str]:
    if name in ("command", "argv"):
        return [_argument_difference(a, b)]
    if name == "uv":
        return [f"uv {a or 'none'} → {b or 'none'}"]
    if name == "files":
        return _file_differences(_list(a), _list(b), step)
    if name == "archive":
        sources = [x.source for x in step.actions if isinstance(x, ExtractArchive)]
        where = f" {_host(sources[0])}" if len(sources) == 1 else ""
        return [f"archive{where} changed (sha256 {_digest(a)} → {_digest(b)})"]
    if name == "source image":
        return ["the image it copies from changed"]
    if name == "function":
        return ["the function's source, globals or arguments changed"]
    if kind == "config" and name == "value":
        return [f"{op[1]} changed: {_short(a)} → {_short(b)}"]
    return [f"{name} changed: {_short(a)} → {_short(b)}"]


def _argument_difference(a: object, b: object) -> str:
    """The words that differ between two commands (or argvs), without what they share."""
    old = a.split() if isinstance(a, str) else [str(w) for w in _list(a)]
    new = b.split() if isinstance(b, str) else [str(w) for w in _list(b)]
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    old_part, new_part = old[start : len(old) - end], new[start : len(new) - end]
    if not old_part and not new_part:  # only the spacing changed
        return f"argument changed: {a!r} → {b!r}"
    return f"argument changed: {' '.join(old_part)!r} → {' '.join(new_part)!r}"


def _file_differences(before: list[object], now: list[object], step: PlannedStep) -> list[str]:
    """Files by their path in the image: keys.py's entries are [dest, kind, mode, digest]."""
    old = {str(e[0]): e for e in map(_list, before)}
    new = {str(e[0]): e for e in map(_list, now)}
    sources = {
        e.dest: e.source for x in step.actions if isinstance(x, CopyFiles) for e in x.entries
    }
    reasons = []
    for dest in sorted(old.keys() | new.keys()):
        was, got = old.get(dest), new.get(dest)
        name = f"{dest} (from {_host(sources[dest])})" if sources.get(dest) else dest
        if was is None:
            reasons.append(f"file {name} added")
        elif got is None:
            reasons.append(f"file {dest} removed")
        elif was[3] != got[3]:
            reasons.append(f"file {name} changed (sha256 {_digest(was[3])} → {_digest(got[3])})")
        elif was[1] != got[1]:
            reasons.append(f"{name} was a {was[1]}, is a {got[1]}")
        elif was != got:
            reasons.append(f"file {name} mode {_mode(was[2])} → {_mode(got[2])}")
    if len(reasons) > _MAX_FILES:
        reasons[_MAX_FILES:] = [f"and {len(reasons) - _MAX_FILES} more files"]
    return reasons


def _summary(op: list[object]) -> str:
    kind = str(op[0]) if op else "?"
    if kind == "run":
        return f"run {_short(op[1])}"
    if kind == "config":
        return f"{op[1]} {_short(op[2])}"
    return kind


def _host(path: str) -> str:
    """A copied file's host path, relative to where imagewright runs when below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _plain(components: Mapping[str, object]) -> dict[str, object]:
    """Components as JSON has them, as the key hashed them and the store records them: the
    tuples of a config value become lists."""
    return cast("dict[str, object]", json.loads(json.dumps(dict(components))))


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _digest(value: object) -> str:
    return f"{str(value)[:12]}…" if value else "none"


def _mode(value: object) -> str:
    return f"{value:o}" if isinstance(value, int) else str(value)


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 80 else f"{text[:79]}…"

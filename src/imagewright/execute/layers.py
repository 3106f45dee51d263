"""The lower dirs an overlay stacks: an image's built layers, and local files attached on top.

Files added with `copy=False` (and a function's own source) become one more cached lower layer,
keyed by their contents, so attaching them costs nothing after the first start.
"""

from __future__ import annotations

from ..definition.layer import LocalMount
from ..exception import ExecutionError
from ..plan.files import FileEntry
from ..plan.keys import mounts_key
from ..plan.planner import Plan, resolve_mounts
from ..store.store import ATTACHED, Store
from .copies import copy_into
from .overlay import Overlay

ATTACHED_DESCRIPTION = "local files (copy=False)"

__all__ = [
    "ATTACHED_DESCRIPTION",
    "attach_files",
    "attached_layer",
    "container_lowers",
    "lowers_for",
]


def lowers_for(plan: Plan, store: Store, upto: int | None = None) -> tuple[str, ...]:
    """Overlay lowerdirs (top first) for the rootfs after step `upto` (default: the last).

    Every step must be in the store: a rootfs without one of its layers is not the image.
    """
    steps = plan.steps if upto is None else plan.steps[: upto + 1]
    lowers = []
    for step in steps:
        record = store.lookup(step.key)
        if record is None:
            raise ExecutionError(
                f"layer {step.short} of {plan.image_id} ({step.description}) is not in the "
                "store; build the image again"
            )
        if not record.empty:
            lowers.append(store.lower_name(step.key))
    return tuple(reversed(lowers)) or (store.empty_dir(),)


def container_lowers(
    plan: Plan, store: Store, extra: tuple[LocalMount, ...] = ()
) -> tuple[str, ...]:
    """Lower dirs for a container: the image's layers under its attached local files."""
    lowers = lowers_for(plan, store)
    key = attached_layer(plan, store, extra, lowers)
    return lowers if key is None else (store.lower_name(key), *lowers)


def attached_layer(
    plan: Plan,
    store: Store,
    extra: tuple[LocalMount, ...] = (),
    lowers: tuple[str, ...] | None = None,
) -> str | None:
    """The key of the layer of local files (`plan`'s mounts and `extra`) attached on top of
    the image, made in `store` if missing; None when there are none."""
    entries = resolve_mounts((*plan.mounts, *extra))
    if not entries:
        return None
    open_root = not plan.config.runs_as_root
    lowers = lowers_for(plan, store) if lowers is None else lowers
    return attach_files(store, plan.key, lowers, entries, open_root)


def attach_files(
    store: Store,
    base_key: str,
    lowers: tuple[str, ...],
    entries: tuple[FileEntry, ...],
    open_root: bool = False,
) -> str:
    """The key of one more layer on top of `lowers` holding `entries`, cached by their contents.

    With `open_root` (the image's USER is not root), /root becomes 755 in that layer, so the
    user can import the function source attached there (Python lists the directories it imports
    from).
    """
    key = mounts_key(base_key, entries)  # (open_root follows from the image, which it names)
    if store.lookup(key) is None:
        with store.lock(key), store.scratch() as area:
            if store.lookup(key) is None:
                overlay = Overlay(store.root, lowers, area.upper, area.work, area.merged)
                output: list[str] = []
                if copy_into(overlay, entries, output.append) != 0:
                    raise ExecutionError("Could not attach local files:\n" + "\n".join(output))
                if open_root and (area.upper / "root").is_dir():
                    (area.upper / "root").chmod(0o755)
                store.commit(area, key, base_key, ATTACHED_DESCRIPTION, kind=ATTACHED)
    return key

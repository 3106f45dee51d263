"""Garbage collection: remove layers that no recorded image needs and no live process uses."""

from __future__ import annotations

from typing import NamedTuple

from .store import ATTACHED, Store, dir_size

__all__ = ["PruneResult", "prune"]


class PruneResult(NamedTuple):
    freed: int  # bytes
    removed: int  # layers
    in_use: int  # layers kept because a running build or container uses them


def prune(store: Store, *, everything: bool = False) -> PruneResult:
    """Remove unreferenced layers (all of them with `everything`), and broken layer directories,
    except those live processes use (see the store module's use records)."""
    store.clean_stale()
    keep: set[str] = set()
    freed = count = kept = 0
    with store.pruning() as in_use:
        for record in store.images():
            if not isinstance(record, dict):
                continue
            if everything:
                store.remove_image(str(record.get("key")))
            elif isinstance(steps := record.get("steps"), list):
                keep.update(str(step) for step in steps)
        for layer in store.layers():
            attached = layer.kind == ATTACHED and layer.parent in keep
            if layer.key in keep or attached:
                continue
            if layer.key in in_use:
                kept += 1
                continue
            store.remove_layer(layer.key)
            freed += layer.size
            count += 1
        for key in store.broken_layers():  # an unreadable record or a missing diff/
            if key in in_use:
                continue
            freed += dir_size(store.layer_dir(key))
            store.remove_layer(key)
            count += 1
    store.remove_failed()  # failed steps kept for `shell --failed` (their lowers may be gone)
    store.clean_stale()  # empties the trash the removed layers and failed steps went to
    return PruneResult(freed, count, kept)

"""Garbage collection: remove layers that no recorded image needs."""

from __future__ import annotations

from .store import Store

__all__ = ["prune"]


def prune(store: Store, *, everything: bool = False) -> tuple[int, int]:
    """Remove unreferenced layers (all of them with `everything`). Returns (bytes, layers)."""
    store.clean_stale()
    keep: set[str] = set()
    images = store.images()
    if everything:
        for record in images:
            store.remove_image(str(record["key"]))
    else:
        for record in images:
            keep.update(record.get("steps", []))  # type: ignore[arg-type]
    freed = count = 0
    for layer in store.layers():
        if layer.key in keep or (layer.parent in keep and layer.description.startswith("local")):
            continue
        store.remove_layer(layer.key)
        freed += layer.size
        count += 1
    store.clean_stale()  # empties the trash the removed layers went to
    return freed, count

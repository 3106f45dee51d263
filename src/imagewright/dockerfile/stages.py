"""Multi-stage Dockerfiles: the stages translated so far, found by name or index.

A stage is its own Image. `FROM name` starts a stage on an earlier one, and `COPY --from=name`
(or `--from=<index>`) copies out of an earlier stage's root filesystem. Only earlier stages can
be named, so stages never form a cycle; the image a Dockerfile describes is its last stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ..definition.image import Image
from ..definition.ops import CopyFromImage

__all__ = ["BuiltStage", "Stages", "copy_from"]


class BuiltStage(NamedTuple):
    """A translated stage and the ENV known at its end, for stages built on it."""

    image: Image
    env: dict[str, str]


class Stages:
    """The stages of one Dockerfile, in order, as they are translated."""

    def __init__(self, names: Sequence[str | None]):
        self._names = [n.lower() if n else None for n in names]
        self._built: list[BuiltStage] = []

    def add(self, stage: BuiltStage) -> None:
        self._built.append(stage)

    @property
    def last(self) -> Image:
        return self._built[-1].image

    def base(self, name: str) -> BuiltStage | None:
        """The earlier stage `FROM name` starts on, or None when `name` is an image."""
        index = None if name.isdigit() else self._index(name)  # FROM takes names, not indexes
        return self._built[index] if index is not None else None

    def source(self, ref: str) -> Image:
        """The stage `COPY --from=ref` copies out of; ValueError names what is wrong."""
        index = self._index(ref)
        if index is not None:
            return self._built[index].image
        if ref.lower() in self._names or (ref.isdigit() and int(ref) < len(self._names)):
            raise ValueError(f"COPY --from={ref}: a stage can copy only from an earlier stage")
        raise ValueError(
            f"COPY --from={ref}: no stage named {ref!r} (copying from other images is not "
            "supported yet)"
        )

    def _index(self, ref: str) -> int | None:
        done = len(self._built)
        if ref.isdigit():
            return int(ref) if int(ref) < done else None
        lowered = ref.lower()
        return next((i for i in range(done) if self._names[i] == lowered), None)


def copy_from(
    keyword: str, source: Image, paths: list[str], dest: str, chmod: int | None
) -> CopyFromImage:
    """The op for `COPY --from=stage paths... dest`; raises ValueError like Docker would."""
    if keyword != "COPY":
        raise ValueError(f"{keyword} --from is not supported; use COPY --from")
    if chmod is not None:
        raise ValueError("COPY --from with --chmod is not supported yet")
    if any(ch in p for p in paths for ch in "*?["):
        raise ValueError("COPY --from with wildcard sources is not supported yet")
    if len(paths) > 1 and not dest.endswith("/"):
        raise ValueError(
            "When using COPY with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    return CopyFromImage(source, tuple(paths), dest)

"""Multi-stage Dockerfiles: stages translated on demand, found by name or index.

A stage is its own Image. `FROM name` starts a stage on an earlier one, and `COPY --from=name`
(or `--from=<index>`) copies out of any other stage's root filesystem; as in BuildKit, a name
that is no stage names an image. Stages are translated when first needed, starting from the
last one (the image the Dockerfile describes), so stages nothing needs are never built, and a
cycle of `--from` references is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..definition.image import Image
from ..definition.ops import CopyFromImage

__all__ = ["BuiltStage", "Stages", "copy_from"]


class BuiltStage(NamedTuple):
    """A translated stage and the ENV known at its end, for stages built on it."""

    image: Image
    env: dict[str, str]


class Stages:
    """The stages of one Dockerfile, each translated once, when first needed."""

    def __init__(self, names: Sequence[str | None], translate: Callable[[int], BuiltStage]):
        self._names = [n.lower() if n else None for n in names]
        self._translate = translate
        self._built: dict[int, BuiltStage] = {}
        self._in_progress: list[int] = []

    def get(self, index: int) -> BuiltStage:
        """Stage `index`, translated now if it was not yet; ValueError on a cycle."""
        if index not in self._built:
            if index in self._in_progress:
                name = self._names[index] or str(index)
                raise ValueError(f"circular dependency detected on stage: {name}")
            self._in_progress.append(index)
            try:
                self._built[index] = self._translate(index)
            finally:
                self._in_progress.pop()
        return self._built[index]

    def base(self, name: str, stage: int) -> BuiltStage | None:
        """The stage that `FROM name` in stage `stage` builds on, or None when `name` is an
        image: as in BuildKit, FROM sees only earlier stages, and only by name."""
        lowered = name.lower()
        index = next((i for i in range(stage) if self._names[i] == lowered), None)
        return None if index is None else self.get(index)

    def source(self, ref: str) -> Image | None:
        """The stage `COPY --from=ref` copies out of: any stage, by name or index, as in
        BuildKit; None when `ref` names no stage (it is then an image)."""
        if ref.isdigit():
            if int(ref) >= len(self._names):
                raise ValueError(f"COPY --from={ref}: there is no stage {ref}")
            return self.get(int(ref)).image
        index = next((i for i, n in enumerate(self._names) if n == ref.lower()), None)
        return None if index is None else self.get(index).image


def copy_from(
    keyword: str,
    source: Image,
    paths: list[str],
    dest: str,
    chmod: int | None,
    owner: str | None,
) -> CopyFromImage:
    """The op for `COPY --from=stage paths... dest`; raises ValueError like Docker would.
    (Wildcards are matched when the step runs, in the built source stage.)"""
    if keyword != "COPY":
        raise ValueError(f"{keyword} --from is not supported; use COPY --from")
    if len(paths) > 1 and not dest.endswith("/"):
        raise ValueError(
            "When using COPY with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    return CopyFromImage(source, tuple(paths), dest, chmod, owner)

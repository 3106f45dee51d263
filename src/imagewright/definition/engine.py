"""The seam between the recipe and the machinery: what `Image` asks of whoever builds it.

The definition layer imports nothing above it, so the Image methods that build, export, push or
write a Dockerfile, and the constructors that read one, call the Engine registered here.
imagewright/engine.py implements it and `import imagewright` registers it (importing any
imagewright module runs that first), so users never see this module.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:  # (an Engine is only checked by type checkers: no Protocol class is made)
    import os
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import Any, Protocol

    from ..mount import Mount
    from ..secret import Secret
    from .image import Image

    class Engine(Protocol):
        """Build, ship and parse images; arguments are those of the Image methods of the same name.

        Results are typed loosely here (the result types live above the definition layer): export
        returns an imagewright.export.ExportResult, push an imagewright.export.push.PushResult.
        """

        def build(self, image: Image, *, force: bool) -> None: ...

        def export(
            self,
            image: Image,
            path: str | os.PathLike[str],
            *,
            format: str,
            compression: str | None,
            tag: str,
        ) -> Any: ...

        def push(self, image: Image, ref: str, *, insecure: bool, compression: str) -> Any: ...

        def to_dockerfile(
            self, image: Image, directory: str | os.PathLike[str], **options: bool | str
        ) -> Path: ...

        def from_dockerfile(
            self,
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
        ) -> Image: ...

        def dockerfile_commands(
            self,
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
        ) -> Image: ...


__all__ = ["Engine", "engine", "use_engine"]


_engine: Engine | None = None


def use_engine(implementation: Engine) -> None:
    """Make `implementation` the engine every Image uses from now on."""
    global _engine
    _engine = implementation


def engine() -> Engine:
    if _engine is None:
        from ..exception import InvalidError  # (not at import: the console entry loads this)

        raise InvalidError("no imagewright engine is registered: `import imagewright` first")
    return _engine

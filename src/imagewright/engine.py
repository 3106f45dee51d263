"""LocalEngine: what Image's build, export, push and Dockerfile methods run on this machine.

It implements definition/engine.py's Engine, and `import imagewright` registers it, so the
definition layer reaches the builder, the exporters and the Dockerfile frontend without
importing them. Each verb imports its machinery on first use: defining an image loads none of it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    import os
    from pathlib import Path
    from typing import Any

    from .definition.image import Image
    from .export.exporter import ExportResult
    from .export.push import PushResult

__all__ = ["LocalEngine"]


class LocalEngine:
    def build(self, image: Image, *, force: bool) -> None:
        from .execute.builder import build_image

        build_image(image, force=force)

    def export(
        self,
        image: Image,
        path: str | os.PathLike[str],
        *,
        format: str,
        compression: str | None,
        tag: str,
    ) -> ExportResult:
        from .export.exporter import export_image

        return export_image(image, path, format=format, compression=compression, tag=tag)

    def push(self, image: Image, ref: str, *, insecure: bool, compression: str) -> PushResult:
        from .export.push import push_image

        return push_image(image, ref, insecure=insecure, compression=compression)

    def to_dockerfile(
        self, image: Image, directory: str | os.PathLike[str], **options: Any
    ) -> Path:  # options: Image.to_dockerfile's, checked by write_dockerfile's own keywords
        from .export.dockerfile import write_dockerfile

        return write_dockerfile(image, directory, **options)

    # The Dockerfile constructors take exactly the arguments Engine declares (and the frontend
    # spells out again, typed): they are passed through as they come.
    def from_dockerfile(self, *args: Any, **kwargs: Any) -> Image:
        from .dockerfile.frontend import from_dockerfile

        return from_dockerfile(*args, **kwargs)

    def dockerfile_commands(self, *args: Any, **kwargs: Any) -> Image:
        from .dockerfile.frontend import dockerfile_commands

        return dockerfile_commands(*args, **kwargs)

"""LocalEngine: what Image's build, export, push and Dockerfile methods run on this machine.

It implements definition/engine.py's Engine, and `import imagewright` registers it, so the
definition layer reaches the builder, the exporters and the Dockerfile frontend without
importing them. Each verb imports its machinery on first use: defining an image loads none of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .definition.image import Image
    from .export.exporter import ExportResult
    from .export.push import PushResult
    from .mount import Mount
    from .secret import Secret

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
        self, image: Image, directory: str | os.PathLike[str], **options: bool | str
    ) -> Path:
        from .export.dockerfile import write_dockerfile

        return write_dockerfile(image, directory, **options)  # type: ignore[arg-type]  # Engine's **options are Image.to_dockerfile's; write_dockerfile's keywords check them

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
    ) -> Image:
        from .dockerfile.frontend import from_dockerfile

        return from_dockerfile(
            path, context_dir=context_dir, context_mount=context_mount, build_args=build_args,
            ignore=ignore, force_build=force_build, secrets=secrets, env=env,
            add_python=add_python,
        )  # fmt: skip

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
    ) -> Image:
        from .dockerfile.frontend import dockerfile_commands

        return dockerfile_commands(
            image, commands, context_files=context_files, context_dir=context_dir,
            ignore=ignore, build_args=build_args, secrets=secrets, env=env,
            force_build=force_build,
        )  # fmt: skip

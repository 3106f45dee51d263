"""Per-blob transfer progress on stderr: rich bars on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
from typing import IO, Any

from .. import settings

__all__ = ["TransferProgress"]


class TransferProgress:
    """`start` a blob, `advance` it as bytes go, `finish` it with how it ended."""

    def __init__(self, verb: str, stream: IO[str] | None = None):
        self.verb = verb
        self.stream = stream or sys.stderr
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        if self.stream.isatty() and not settings.plain_progress():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(file=self.stream),
            )

    def __enter__(self) -> TransferProgress:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def start(self, label: str, digest: str, size: int) -> None:
        name = f"{label} {digest.removeprefix('sha256:')[:12]}"
        if self._bars is not None:
            self._tasks[digest] = self._bars.add_task(name, total=size)
        else:
            print(f"{self.verb} {name} ({size / 1e6:.1f} MB)", file=self.stream, flush=True)

    def advance(self, digest: str, count: int) -> None:
        if self._bars is not None and digest in self._tasks:
            self._bars.advance(self._tasks[digest], count)

    def finish(self, label: str, digest: str, outcome: str) -> None:
        name = f"{label} {digest.removeprefix('sha256:')[:12]}"
        if self._bars is not None and digest in self._tasks:
            task = self._tasks[digest]
            self._bars.update(task, description=f"{name}: {outcome}")
            self._bars.update(task, completed=self._bars.tasks[task].total)
        else:
            print(f"  {name}: {outcome}", file=self.stream, flush=True)

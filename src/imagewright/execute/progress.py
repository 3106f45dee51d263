"""Progress displays for builds: a rich live view on terminals, plain lines elsewhere.

rich is imported only once a step actually runs, so a fully cached build stays fast.
"""

from __future__ import annotations

import sys
import time
from collections import deque

from .. import settings
from .events import BuildResult, StepResult

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import IO, Any

    from ..plan.planner import Plan, PlannedStep

__all__ = ["LiveReporter", "PlainReporter", "default_reporter"]


def default_reporter(stream: IO[str] | None = None) -> PlainReporter:
    """A live view when `stream` (default stderr) is a terminal, else plain lines."""
    stream = stream or sys.stderr
    if stream.isatty() and not settings.plain_progress():
        return LiveReporter(stream)
    return PlainReporter(stream)


def _summary(result: BuildResult) -> str:
    ran = sum(not s.cached for s in result.steps)
    return (
        f"Built {result.image_id} in {result.seconds:.2f}s: {ran} step(s) run, "
        f"{len(result.steps) - ran} cached"
    )


class PlainReporter:
    """One line per step event; step output is streamed indented."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.total = 0

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def build_started(self, plan: Plan) -> None:
        self.total = len(plan.steps)

    def step_started(self, index: int, step: PlannedStep) -> None:
        self._write(f"[{index + 1}/{self.total}] RUN    {step.description}")

    def step_output(self, index: int, line: str) -> None:
        self._write(f"    {line}")

    def step_finished(self, index: int, step: PlannedStep, result: StepResult) -> None:
        state = "CACHED" if result.cached else "DONE  "
        self._write(
            f"[{index + 1}/{self.total}] {state} {step.description} ({result.seconds:.2f}s)"
        )

    def build_finished(self, result: BuildResult | None) -> None:
        if result is not None:
            self._write(_summary(result))


class LiveReporter(PlainReporter):
    """A rich Live view: every step with its state and time, plus the running step's output."""

    _TAIL = 12

    def __init__(self, stream: IO[str]):
        super().__init__(stream)
        self.rows: list[tuple[str, str, float | None]] = []  # (state, description, seconds)
        self.tail: deque[str] = deque(maxlen=self._TAIL)
        self.started_at = 0.0
        self.live: Any = None

    def build_started(self, plan: Plan) -> None:
        super().build_started(plan)
        self.rows = [("pending", s.description, None) for s in plan.steps]

    def step_started(self, index: int, step: PlannedStep) -> None:
        self.rows[index] = ("running", step.description, None)
        self.tail.clear()
        self.started_at = time.monotonic()
        if self.live is None:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(
                console=Console(file=self.stream),
                refresh_per_second=8,
                get_renderable=self._render,
                transient=False,
            )
            self.live.start()

    def step_output(self, index: int, line: str) -> None:
        self.tail.append(line)

    def step_finished(self, index: int, step: PlannedStep, result: StepResult) -> None:
        self.rows[index] = ("cached" if result.cached else "done", step.description, result.seconds)
        self.tail.clear()

    def build_finished(self, result: BuildResult | None) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if result is not None:
            self._write(_summary(result))

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        marks = {
            "pending": ("·", "dim"),
            "running": ("▶", "bold yellow"),
            "done": ("✓", "green"),
            "cached": ("✓", "dim green"),
        }
        table = Table.grid(padding=(0, 1))
        for state, description, seconds in self.rows:
            mark, style = marks[state]
            if state == "running":
                seconds = time.monotonic() - self.started_at
            shown = "" if seconds is None else f"{seconds:6.1f}s"
            label = "cached" if state == "cached" else ""
            table.add_row(
                Text(mark, style),
                Text(description, style="bold" if state == "running" else ""),
                Text(label, "dim"),
                Text(shown, "cyan"),
            )
        if not self.tail:
            return table
        output = Text("\n".join(f"  {line[:200]}" for line in self.tail), style="dim")
        return Group(table, output)

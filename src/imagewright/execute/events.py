"""Build results and the Reporter protocol that progress displays implement."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple, Protocol

    from ..plan.planner import Plan, PlannedStep
else:
    from .._fasttyping import Protocol
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["BuildResult", "Reporter", "StepResult"]


class StepResult(NamedTuple):
    description: str
    cached: bool
    seconds: float
    key: str


class BuildResult(NamedTuple):
    image_id: str
    key: str
    seconds: float
    steps: tuple[StepResult, ...]
    plan: Plan  # what was built, for running, exporting or pushing it without planning again

    def to_json(self) -> dict[str, object]:
        """The `imagewright build --json` document."""
        return {
            "image_id": self.image_id,
            "seconds": round(self.seconds, 3),
            "steps": [
                {"description": s.description, "cached": s.cached, "seconds": round(s.seconds, 3)}
                for s in self.steps
            ],
        }


class Reporter(Protocol):
    """Receives build progress. Implementations render it; the builder never prints."""

    def build_started(self, plan: Plan) -> None: ...
    def step_started(self, index: int, step: PlannedStep) -> None: ...
    def step_output(self, index: int, line: str) -> None: ...
    def step_finished(self, index: int, step: PlannedStep, result: StepResult) -> None: ...
    def build_finished(self, result: BuildResult | None) -> None:
        """Called once at the end; `result` is None when the build failed."""

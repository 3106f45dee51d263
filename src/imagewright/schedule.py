"""Schedules: Modal's `Cron` and `Period`, for `@app.function(schedule=...)`.

Locally nothing runs on a schedule (there is no deployment to keep it), so a schedule is only
recorded; the function still runs when called. They are values: equal when they say the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["Cron", "Period", "Schedule"]


class Schedule(ABC):
    """A time frame in which to run a function repeatedly."""

    @abstractmethod
    def _fields(self) -> tuple[object, ...]: ...

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Schedule)
            and type(other) is type(self)
            and other._fields() == self._fields()
        )

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))


class Cron(Schedule):
    """A schedule in Unix crontab syntax, e.g. `Cron("5 4 * * *")` (04:05 every day, UTC)."""

    def __init__(self, cron_string: str, timezone: str = "UTC") -> None:
        self.cron_string = cron_string
        self.timezone = timezone

    def _fields(self) -> tuple[object, ...]:
        return (self.cron_string, self.timezone)

    def __repr__(self) -> str:
        zone = "" if self.timezone == "UTC" else f", timezone={self.timezone!r}"
        return f"Cron({self.cron_string!r}{zone})"


class Period(Schedule):
    """A schedule that repeats every given interval, e.g. `Period(hours=4)`; calendar units
    (`days=1`, `months=1`) keep the time of day or the day of the month."""

    def __init__(
        self,
        *,
        years: int = 0,
        months: int = 0,
        weeks: int = 0,
        days: int = 0,
        hours: int = 0,
        minutes: int = 0,
        seconds: float = 0,
    ) -> None:
        self.years = years
        self.months = months
        self.weeks = weeks
        self.days = days
        self.hours = hours
        self.minutes = minutes
        self.seconds = seconds

    _UNITS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, unit) for unit in self._UNITS)

    def __repr__(self) -> str:
        parts = [f"{u}={getattr(self, u)!r}" for u in self._UNITS if getattr(self, u)]
        return f"Period({', '.join(parts)})"

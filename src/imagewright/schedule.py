"""Schedules: Modal's `Cron` and `Period`, for `@app.function(schedule=...)`.

`imagewright serve` and `deploy` run scheduled functions while they are up: `_next_after` says
when. `imagewright run` only records a schedule; the function still runs when called. They are
values: equal when they say the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timedelta

__all__ = ["Cron", "Period", "Schedule"]


class Schedule(ABC):
    """A time frame in which to run a function repeatedly."""

    @abstractmethod
    def _fields(self) -> tuple[object, ...]: ...

    @abstractmethod
    def _next_after(self, moment: datetime) -> datetime:
        """When the function next runs after `moment` (an aware datetime)."""

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

    def _next_after(self, moment: datetime) -> datetime:
        """The next minute after `moment` that the five fields match, in the schedule's zone.

        As in cron, when both day-of-month and day-of-week are restricted, a day matching
        either runs.
        """
        from zoneinfo import ZoneInfo

        fields = self.cron_string.split()
        if len(fields) != 5:
            raise ValueError(f"{self.cron_string!r} is not a five-field cron expression")
        bounds = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
        minutes, hours, mdays, months, wdays = (
            _cron_field(text, low, high)
            for text, (low, high) in zip(fields, bounds)  # noqa: B905 (3.9)
        )
        wdays = {d % 7 for d in wdays}  # (7 is Sunday too, accepted by the field's parser)
        any_mday, any_wday = fields[2] == "*", fields[4] == "*"
        zone = ZoneInfo(self.timezone)
        at = moment.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 24 * 60 * 5):  # every minute of five years, skipping by days
            day_ok = (at.day in mdays) if any_wday else (
                (at.isoweekday() % 7 in wdays) if any_mday
                else (at.day in mdays or at.isoweekday() % 7 in wdays)
            )  # fmt: skip
            if at.month not in months or not day_ok:
                at = (at + timedelta(days=1)).replace(hour=0, minute=0)
            elif at.hour not in hours:
                at = (at + timedelta(hours=1)).replace(minute=0)
            elif at.minute not in minutes:
                at += timedelta(minutes=1)
            else:
                return at
        raise ValueError(f"{self.cron_string!r} never matches")

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

    def _next_after(self, moment: datetime) -> datetime:
        months = self.years * 12 + self.months
        year, month = divmod(moment.month - 1 + months, 12)
        day = min(moment.day, _days_in(moment.year + year, month + 1))
        shifted = moment.replace(year=moment.year + year, month=month + 1, day=day)
        return shifted + timedelta(
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )

    def __repr__(self) -> str:
        parts = [f"{u}={getattr(self, u)!r}" for u in self._UNITS if getattr(self, u)]
        return f"Period({', '.join(parts)})"


def _days_in(year: int, month: int) -> int:
    import calendar

    return calendar.monthrange(year, month)[1]


def _cron_field(text: str, low: int, high: int) -> set[int]:
    """The values a cron field allows: `*`, `5`, `1-5`, `*/15`, `10-50/20`, lists of those."""
    found: set[int] = set()
    top = 7 if high == 6 else high  # day of week: 0-7, both ends Sunday
    for part in text.split(","):
        spread, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if spread == "*":
            start, end = low, high
        elif "-" in spread:
            first, _, last = spread.partition("-")
            start, end = int(first), int(last)
        else:
            start = end = int(spread)
            if step_text:
                end = high
        if not (low <= start <= end <= top) or step < 1:
            raise ValueError(f"cron field {text!r} is out of range {low}-{high}")
        found.update(range(start, end + 1, step))
    return found

"""When `serve` runs scheduled functions: Modal's Cron and Period, computed offline."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from imagewright import Cron, Period

SATURDAY_NOON = datetime(2026, 11, 28, 12, 7, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("* * * * *", datetime(2026, 11, 28, 12, 8, tzinfo=timezone.utc)),
        ("*/15 * * * *", datetime(2026, 11, 28, 12, 15, tzinfo=timezone.utc)),
        ("5 4 * * *", datetime(2026, 11, 29, 4, 5, tzinfo=timezone.utc)),
        ("0 9 * * 1-5", datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)),  # Monday
        ("30 2 * * 7", datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc)),  # 7 is Sunday
        ("0 0 1 * *", datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)),
        ("0 0 13 * 5", datetime(2026, 12, 4, 0, 0, tzinfo=timezone.utc)),  # day 13 or a Friday
        ("0,30 10-11 * 2 *", datetime(2027, 2, 1, 10, 0, tzinfo=timezone.utc)),
    ],
)
def test_cron_next_run(line: str, expected: datetime) -> None:
    assert Cron(line)._next_after(SATURDAY_NOON) == expected


def test_cron_in_a_time_zone() -> None:
    at = Cron("0 9 * * *", timezone="America/New_York")._next_after(SATURDAY_NOON)
    assert at.astimezone(timezone.utc) == datetime(2026, 11, 28, 14, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("line", ["* * * *", "60 * * * *", "* * 0 * *", "*/0 * * * *", "a * * * *"])
def test_malformed_cron_lines_are_refused(line: str) -> None:
    with pytest.raises(ValueError):
        Cron(line)._next_after(SATURDAY_NOON)


def test_period_adds_calendar_units() -> None:
    jan31 = datetime(2026, 1, 31, 8, 0, tzinfo=timezone.utc)
    assert Period(months=1)._next_after(jan31) == datetime(2026, 2, 28, 8, 0, tzinfo=timezone.utc)
    assert Period(years=1, days=1)._next_after(jan31) == datetime(
        2027, 2, 1, 8, 0, tzinfo=timezone.utc
    )
    assert Period(seconds=2.5)._next_after(SATURDAY_NOON) == datetime(
        2026, 11, 28, 12, 7, 32, 500000, tzinfo=timezone.utc
    )

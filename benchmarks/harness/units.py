"""How times, sizes and ratios are written, in the progress lines and in the tables."""

from __future__ import annotations

import statistics


def seconds_cell(times: list[float]) -> str:
    if not times:
        return "–"
    return f"{statistics.median(times):.3f} (min {min(times):.3f})"


def milliseconds(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def milliseconds_cell(seconds: list[float]) -> str:
    if not seconds:
        return "–"
    return f"{milliseconds(statistics.median(seconds))} (min {milliseconds(min(seconds))})"


def ratio_cell(ours: list[float], theirs: list[float]) -> str:
    """imagewright's median over the peer's: below 1, imagewright is faster."""
    if not ours or not theirs:
        return "–"
    ratio = statistics.median(ours) / statistics.median(theirs)
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"  # keep tiny ratios readable


def megabytes(size: int | None) -> str:
    return "–" if size is None else f"{size / 1e6:.0f}"

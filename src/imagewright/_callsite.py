"""Find the user's file:line that called into imagewright, for error messages."""

from __future__ import annotations

import os
import sys
from types import FrameType

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_frame() -> tuple[str, int] | None:
    """(file, line) of the innermost stack frame outside this package, if there is one."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
            return filename, frame.f_lineno
        frame = frame.f_back
    return None


def user_callsite() -> str:
    """Return "file:line" of the innermost stack frame outside this package."""
    found = user_frame()
    return f"{_relative(found[0])}:{found[1]}" if found else "<unknown>"


def warn_user(message: str) -> None:
    """A UserWarning shown at the user's line that led to it (not at ours)."""
    import warnings

    filename, lineno = user_frame() or ("<unknown>", 0)
    warnings.warn_explicit(message, UserWarning, filename, lineno)


def _relative(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel

"""Find the user's file:line that called into imagewright, for error messages."""

from __future__ import annotations

import os
import sys
from types import FrameType

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_callsite() -> str:
    """Return "file:line" of the innermost stack frame outside this package."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
            return f"{_relative(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def _relative(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel

"""Where code runs: Modal's `is_local()` and `interact()`.

A module imported both on the host and in its containers can branch on `is_local()`: true on
the host, false inside a container imagewright starts (settings.in_container). Imported in
containers too, so it runs on Python 3.9.
"""

from __future__ import annotations

from . import settings
from ._aio import Twin
from .exception import InvalidError

__all__ = ["interact", "is_local"]


def is_local() -> bool:
    """True unless this process runs inside a container imagewright started."""
    return not settings.in_container()


def _interact() -> None:
    """Let a function read the terminal's input (Modal's interactivity).

    Inside a container it is accepted but changes nothing: output already streams live, and a
    function's stdin stays closed (`input()` reads end of file). On the host it raises, as in
    Modal.
    """
    if not settings.in_container():
        raise InvalidError("Interactivity only works inside a Modal Function's container.")


interact = Twin(_interact)

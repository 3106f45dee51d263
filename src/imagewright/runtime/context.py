"""Which input a container is running: `current_input_id()` and `current_function_call_id()`.

The container's dispatcher sets both around each input, in a context variable, so that inputs
running at once in threads or on one event loop each see their own. On the host, where no input
runs, both are None.
"""

from __future__ import annotations

import contextvars
from typing import Optional

__all__ = ["current_function_call_id", "current_input_id", "input_ids"]

# (input id, function call id) of the input running in this context
input_ids: contextvars.ContextVar[Optional[tuple[str, str]]] = contextvars.ContextVar(  # noqa: UP045  (evaluated at run time on Python 3.9)
    "imagewright_input", default=None
)


def current_input_id() -> str | None:
    """The id of the input this container is running now; None outside a container."""
    ids = input_ids.get()
    return ids[0] if ids else None


def current_function_call_id() -> str | None:
    """The id of the call (`.remote`, `.spawn`, `.map`) the running input belongs to."""
    ids = input_ids.get()
    return ids[1] if ids else None

"""Retries: Modal's retry policy for `@app.function(retries=...)`, with its checks and messages.

A policy says how many times an input is retried after a failure and how long to wait before
each retry (`delay`); the call path that runs inputs applies it. `retry_policy` turns the
`retries=` argument (an int, a Retries or None) into a policy as Modal does: an int n means n
retries one second apart.
"""

from __future__ import annotations

from datetime import timedelta

from .exception import InvalidError

__all__ = ["Retries", "retry_policy"]

# Modal caps delays at a minute: its containers may be reclaimed after idling that long.
_MAX_DELAY = 60.0


class Retries:
    """A retry policy: up to `max_retries` retries, the first after `initial_delay` seconds,
    each later one `backoff_coefficient` times longer, never more than `max_delay`."""

    def __init__(
        self,
        *,
        max_retries: int,
        backoff_coefficient: float = 2.0,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
    ):
        if max_retries < 0:
            raise InvalidError(
                f"Invalid retries number: {max_retries}. Function retries must be non-negative."
            )
        if max_delay < 1.0:
            raise InvalidError(
                f"Invalid max_delay: {max_delay}. max_delay must be at least 1 second."
            )
        if max_delay > _MAX_DELAY:
            raise InvalidError(
                f"Invalid max_delay argument: {max_delay}. Must be between 1-60 seconds."
            )
        if initial_delay < 0.0:
            raise InvalidError(
                f"Invalid initial_delay argument: {initial_delay}. Delay must be positive."
            )
        if initial_delay > _MAX_DELAY:
            raise InvalidError(
                f"Invalid initial_delay argument: {initial_delay}. Must be between 0-60 seconds."
            )
        if not 1.0 <= backoff_coefficient <= 10.0:
            raise InvalidError(
                f"Invalid backoff_coefficient: {backoff_coefficient}. "
                "Coefficient must be between 1.0 (fixed-interval backoff) and 10.0"
            )
        self.max_retries = max_retries
        self.backoff_coefficient = backoff_coefficient
        self.initial_delay = timedelta(seconds=initial_delay)
        self.max_delay = timedelta(seconds=max_delay)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        if attempt < 1:
            raise ValueError(f"attempt must be at least 1, not {attempt}")
        initial = self.initial_delay.total_seconds()
        return min(
            initial * self.backoff_coefficient ** (attempt - 1), self.max_delay.total_seconds()
        )

    def __repr__(self) -> str:
        return (
            f"Retries(max_retries={self.max_retries}, "
            f"backoff_coefficient={self.backoff_coefficient}, "
            f"initial_delay={self.initial_delay.total_seconds()}, "
            f"max_delay={self.max_delay.total_seconds()})"
        )


def retry_policy(retries: int | Retries | None, source: str = "") -> Retries | None:
    """The policy `retries=` asks for; `source` (e.g. "function f") completes the message."""
    if isinstance(retries, Retries) or retries is None:
        return retries
    if isinstance(retries, int):
        return Retries(max_retries=retries, initial_delay=1.0, backoff_coefficient=1.0)
    where = f" on {source}" if source else ""
    raise InvalidError(
        "Retries parameter must be an integer or instance of modal.Retries. "
        f"Found: {type(retries)}{where}."
    )

"""`modal.queue`, where some Modal programs import `Queue` from (see distributed.py)."""

from .distributed import Queue

__all__ = ["Queue"]

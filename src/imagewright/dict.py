"""`modal.dict`, where some Modal programs import `Dict` from (see distributed.py)."""

from .distributed import Dict

__all__ = ["Dict"]

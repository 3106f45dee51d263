"""The layer store: content-addressed, crash-safe, shared by concurrent builds."""

from .store import LayerRecord, Store

__all__ = ["LayerRecord", "Store"]

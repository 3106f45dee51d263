"""Images leave the store: OCI image layouts and docker-archives, from stored layer blobs."""

from __future__ import annotations

from .exporter import FORMATS, ExportResult, export_image

__all__ = ["FORMATS", "ExportResult", "export_image"]

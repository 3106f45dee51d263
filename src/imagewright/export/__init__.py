"""Images leave the store: OCI image layouts, docker-archives and registry pushes, from stored
layer blobs; and Dockerfiles, from the definition."""

from __future__ import annotations

from .exporter import FORMATS, ExportResult, export_image

__all__ = ["FORMATS", "ExportResult", "export_image"]

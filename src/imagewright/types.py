"""modal.types: the data types Modal's methods return, for those objects imagewright has.

Only the types of listings and `.info()` answers are here: the files of a volume (FileEntry,
FileEntryType, defined in volume.py) and the info of a Dict, Queue, Volume or Secret. Modal's
other types describe its service (billing, stats, workspace members) and have no local
counterpart. Imported in containers (Python 3.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .volume import FileEntry, FileEntryType

__all__ = ["DictInfo", "FileEntry", "FileEntryType", "QueueInfo", "SecretInfo", "VolumeInfo"]


@dataclass
class DictInfo:
    """What `Dict.info()` tells."""

    name: str | None
    created_at: datetime
    created_by: str | None


@dataclass
class QueueInfo:
    """What `Queue.info()` tells."""

    name: str | None
    created_at: datetime
    created_by: str | None


@dataclass
class VolumeInfo:
    """What `Volume.info()` tells."""

    name: str | None
    created_at: datetime
    created_by: str | None


@dataclass
class SecretInfo:
    """What `Secret.info()` tells."""

    name: str | None
    environment_name: str
    created_at: datetime
    created_by: str | None
    last_used: datetime | None

"""modal.types: the data types Modal's methods return, for those objects imagewright has.

Only the types of listings and `.info()` answers are here: the files of a volume (FileEntry,
FileEntryType) and the info of a Dict, Queue, Volume or Secret (those of a volume and a secret
are defined beside the classes that make them, in volume.py and secret.py). Modal's other
types describe its service (billing, stats, workspace members) and have no local counterpart.
Imported in containers (Python 3.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .secret import SecretInfo
from .volume import FileEntry, FileEntryType, VolumeInfo

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

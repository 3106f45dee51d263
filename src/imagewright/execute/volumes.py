"""Volumes in containers: the binds of a `volumes=` mapping (read-write, or read-only for a
volume mounted so), and what tells the Volume methods inside the container where each one is
mounted."""

from __future__ import annotations

import json
from collections.abc import Mapping

from .. import settings
from ..volume import Volume, mount_key, mounted_read_only, volume_dir
from .overlay import Bind

__all__ = ["volume_binds"]


def volume_binds(volumes: Mapping[str, Volume]) -> tuple[list[Bind], dict[str, str]]:
    """Binds for `volumes` (checked by volume.check_volumes) and the environment the container
    needs. A volume that does not exist is a NotFoundError, unless it may be created; the mount
    points bwrap makes are not kept, so a run_function layer gets no trace of a volume."""
    # parents first: a volume mounted inside another one's mount point goes on top of it
    binds = [
        Bind(str(volume_dir(volume)), path, readonly=mounted_read_only(volume))
        for path, volume in sorted(volumes.items())
    ]
    if not binds:
        return [], {}
    where = {mount_key(volume): path for path, volume in volumes.items()}
    return binds, {settings.VOLUMES: json.dumps(where, sort_keys=True)}

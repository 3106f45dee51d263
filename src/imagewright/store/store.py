"""On-disk layer store under IMAGEWRIGHT_HOME: atomic commits, per-key locks, stale cleanup.

Layout (short names keep overlayfs mount options under a page for deep images, as Docker's
overlay2 does with its l/ links):

    layers/<key>/diff/        a committed layer: the overlay upper dir of its step
    layers/<key>/layer.json   its record (what built it, when, how long, how big)
    l/<key[:16]>              symlink to ../layers/<key>/diff, used in lowerdir= options
    tmp/<id>/ + tmp/<id>.lock work in progress; the lock is held while its builder lives
    locks/<key>.lock          serialises concurrent builds of the same step
    logs/<key>.log            the output of the last run of a step
    images/<key>.json         records of built images, for `imagewright images`
    cache/{apt,uv,pip}/       package caches, bind-mounted into build steps, never in layers
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = ["LayerRecord", "Scratch", "Store", "dir_size"]


class LayerRecord(NamedTuple):
    """What the store knows about a committed layer."""

    key: str
    parent: str | None
    description: str
    created: float
    seconds: float
    size: int
    empty: bool  # no filesystem change: left out of overlay lowerdirs


class Scratch(NamedTuple):
    """A private work area for one step: overlay upper, work and mount-point directories."""

    root: Path

    @property
    def upper(self) -> Path:
        return self.root / "layer" / "diff"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def merged(self) -> Path:
        return self.root / "merged"


class Store:
    """The content-addressed layer store. Safe for several processes at once."""

    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def default(cls) -> Store:
        """The store at $IMAGEWRIGHT_HOME, else ~/.cache/imagewright (XDG_CACHE_HOME honoured)."""
        home = os.environ.get("IMAGEWRIGHT_HOME")
        if not home:
            cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
            home = os.path.join(cache, "imagewright")
        return cls(Path(home))

    # ---- paths ------------------------------------------------------------------------------

    def layer_dir(self, key: str) -> Path:
        return self.root / "layers" / key

    def lower_name(self, key: str) -> str:
        """The short relative path of a layer's diff, for overlay options (cwd = store root)."""
        return f"l/{key[:16]}"

    def log_path(self, key: str) -> Path:
        return self.root / "logs" / f"{key}.log"

    def cache_dir(self, name: str) -> Path:
        path = self.root / "cache" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def empty_dir(self) -> str:
        """A relative path to an empty directory, the lowerdir of a step on from_scratch()."""
        (self.root / "empty").mkdir(parents=True, exist_ok=True)
        return "empty"

    # ---- reading ----------------------------------------------------------------------------

    def lookup(self, key: str) -> LayerRecord | None:
        """The committed layer for `key`, or None."""
        try:
            data = json.loads((self.layer_dir(key) / "layer.json").read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        return LayerRecord(**data)

    def layers(self) -> list[LayerRecord]:
        found = []
        for path in sorted((self.root / "layers").glob("*/layer.json")):
            found.append(LayerRecord(**json.loads(path.read_text())))
        return found

    # ---- writing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the build lock of one step, so concurrent builds run it once.

        A plain flock: the kernel releases it when its holder dies, so a killed build never
        leaves a stale lock behind.
        """
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / f"{key}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Scratch]:
        """A work area that disappears on exit unless its layer was committed out of it.

        The area's lock file is held for the life of this process, so `clean_stale` can tell
        an abandoned area (its builder was killed) from one still in use.
        """
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{os.urandom(4).hex()}"
        lock_fd = os.open(tmp / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        area = Scratch(tmp / name)
        try:
            for path in (area.upper, area.work, area.merged):
                path.mkdir(parents=True)
            yield area
        finally:
            shutil.rmtree(area.root, ignore_errors=True)
            os.unlink(tmp / f"{name}.lock")
            os.close(lock_fd)

    def commit(
        self, area: Scratch, key: str, parent: str | None, description: str, seconds: float = 0.0
    ) -> LayerRecord:
        """Publish the area's upper dir as layer `key`, atomically: whole, or not at all."""
        record = LayerRecord(
            key=key,
            parent=parent,
            description=description,
            created=time.time(),
            seconds=seconds,
            size=dir_size(area.upper),
            empty=not any(area.upper.iterdir()),
        )
        layer_src = area.root / "layer"
        (layer_src / "layer.json").write_text(json.dumps(record._asdict()))
        _fsync_tree_root(layer_src)
        dest = self.layer_dir(record.key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():  # a forced rebuild: the old layer may still be mounted elsewhere
            trash = self.root / "trash"
            trash.mkdir(exist_ok=True)
            os.rename(dest, trash / f"{record.key}-{os.urandom(4).hex()}")
        os.rename(layer_src, dest)
        self._link(record.key)
        return record

    def _link(self, key: str) -> None:
        links = self.root / "l"
        links.mkdir(exist_ok=True)
        link = self.root / self.lower_name(key)
        if os.path.islink(link):
            return
        tmp_link = links / f".{key[:16]}.{os.urandom(3).hex()}"
        os.symlink(f"../layers/{key}/diff", tmp_link)
        os.replace(tmp_link, link)

    def ensure_link(self, key: str) -> None:
        """Recreate a layer's short link if it went missing."""
        self._link(key)

    def record_image(self, key: str, data: dict[str, object]) -> None:
        images = self.root / "images"
        images.mkdir(parents=True, exist_ok=True)
        tmp = images / f".{key}.{os.urandom(3).hex()}"
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, images / f"{key}.json")

    def has_image(self, key: str) -> bool:
        return (self.root / "images" / f"{key}.json").exists()

    def images(self) -> list[dict[str, object]]:
        records = []
        for path in sorted((self.root / "images").glob("*.json")):
            with contextlib.suppress(ValueError, OSError):
                records.append(json.loads(path.read_text()))
        return records

    # ---- cleanup ----------------------------------------------------------------------------

    def clean_stale(self) -> int:
        """Remove work areas whose builder died (their lock is free). Returns how many."""
        tmp = self.root / "tmp"
        removed = 0
        if not tmp.is_dir():
            return 0
        for lock_path in tmp.glob("*.lock"):
            fd = os.open(lock_path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its builder is alive
            shutil.rmtree(tmp / lock_path.name.removesuffix(".lock"), ignore_errors=True)
            os.unlink(lock_path)
            os.close(fd)
            removed += 1
        shutil.rmtree(self.root / "trash", ignore_errors=True)
        return removed

    def remove_layer(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / self.lower_name(key))
        trash = self.root / "trash"
        trash.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.layer_dir(key), trash / f"{key}-{os.urandom(4).hex()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.log_path(key))

    def remove_image(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / "images" / f"{key}.json")


def _fsync_tree_root(path: Path) -> None:
    """Flush the layer's record and directory entry before it is renamed into place."""
    fd = os.open(path / "layer.json", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def dir_size(path: Path) -> int:
    """Bytes used by regular files below `path` (hard links counted once)."""
    seen: set[int] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total

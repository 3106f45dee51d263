"""On-disk layer store under IMAGEWRIGHT_HOME: atomic commits, per-key locks, stale cleanup, and
use records that keep prune away from the layers live processes use.

Layout (short names keep overlayfs mount options under a page for deep images, as Docker's
overlay2 does with its l/ links):

    layers/<key>/diff/        a committed layer: the overlay upper dir of its step
    layers/<key>/layer.json   its record (what built it, its kind, when, how long, how big)
    l/<key[:16]>              symlink to ../layers/<key>/diff, used in lowerdir= options
    tmp/<id>/ + tmp/<id>.lock work in progress; the lock is held while its builder lives
    locks/<key>.lock          serialises concurrent builds of the same step
    logs/<key>.log            the output of the last run of a step
    images/<key>.json         records of built images, for `imagewright images`
    builds/<hash>.json        each definition's latest build, for `build --explain` (builds.py)
    cache/{apt,uv,pip}/       package caches, bind-mounted into build steps, never in layers
    use/<pid>-<id>            the layer keys one live process uses, one a line (see below)
    gc.lock                   prune holds it exclusively; adding to a use record, shared
    trash/<key>-<id>          removed or replaced layers, deleted once no live process uses them
    failed/<slot>/            one definition's last failed step, kept for `shell --failed`
                              until its next build or a prune (execute/failed.py)

Use records: every key a process looks up or commits is appended to that process's use record
*before* the layer is read, and stays there until the process exits; the process holds a flock
on its record all along, so a record whose flock is free belongs to a dead process and is
deleted. Appending holds gc.lock shared and prune's scan holds it exclusively, so prune sees
every key a process added before it read the layer. Prune, and the sweep that empties the
trash, skip every key in a live record. So an in-flight build never loses a layer it looked up
or just committed, and a running container (its lower layers were looked up to mount them)
never loses one, whether to `imagewright prune` or to a `build --force` elsewhere that moved
the old layer to the trash. Nothing outside this module needs to call anything for this. The
price: a long-lived process keeps every layer it touched from prune until it exits.

Corruption: a layer whose record cannot be read (garbage, empty, truncated, wrong fields) or
whose diff/ directory is missing counts as missing: `lookup` returns None, the step is built
again and its commit replaces the broken directory; prune removes such directories.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from _thread import allocate_lock  # threading.Lock, without importing threading (~1 ms)
from collections.abc import Iterator
from pathlib import Path

from .. import settings
from ..exception import InvalidError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["ATTACHED", "STEP", "LayerRecord", "Scratch", "Store", "dir_size"]

# A layer's kind: what prune keeps it for.
STEP = "step"  # a planned step's layer, kept while an image record lists its key
ATTACHED = "attached"  # local files attached on top of an image (copy=False), kept with it


class LayerRecord(NamedTuple):
    """What the store knows about a committed layer."""

    key: str
    parent: str | None
    description: str
    created: float
    seconds: float
    size: int
    empty: bool  # no filesystem change: left out of overlay lowerdirs
    kind: str = STEP  # a record written before kinds were recorded reads as STEP


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


class _UseRecord:
    """This process's use record in one store: the open, flocked file and the keys in it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.keys: set[str] = set()
        self.mutex = allocate_lock()


# (store root, pid) -> record; the pid part gives a forked child a record of its own.
_use_records: dict[tuple[str, int], _UseRecord] = {}
_use_records_mutex = allocate_lock()


class Store:
    """The content-addressed layer store. Safe for several processes at once."""

    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def default(cls) -> Store:
        """The store at $IMAGEWRIGHT_HOME, else ~/.cache/imagewright (XDG_CACHE_HOME honoured)."""
        return cls(settings.home())

    # ---- paths ------------------------------------------------------------------------------

    def layer_dir(self, key: str) -> Path:
        return self.root / "layers" / key

    def lower_name(self, key: str) -> str:
        """The short relative path of a layer's diff, for overlay options (cwd = store root)."""
        return f"l/{key[:16]}"

    def log_path(self, key: str) -> Path:
        return self.root / "logs" / f"{key}.log"

    def cache_dir(self, name: str) -> Path:
        return self._subdir(f"cache/{name}")

    def empty_dir(self) -> str:
        """A relative path to an empty directory, the lowerdir of a step on from_scratch()."""
        self._subdir("empty")
        return "empty"

    def _subdir(self, name: str) -> Path:
        """The store's directory `name`, made if missing; a clear error if a file is in the way."""
        path = self.root / name
        try:
            # The store and its top-level directories are root's alone (0700): layers and
            # caches hold what steps wrote, set-user-ID files included, which no other local
            # user may reach.
            if not self.root.is_dir():
                self.root.mkdir(mode=0o700, parents=True)
            (self.root / name.partition("/")[0]).mkdir(mode=0o700, exist_ok=True)
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocker = path  # the deepest component that exists is the file in the way
            while blocker != blocker.parent and not os.path.lexists(blocker):
                blocker = blocker.parent
            needs = "a directory there" if blocker == path else f"the directory {path}"
            raise InvalidError(
                f"{blocker} is not a directory, but the imagewright store needs {needs}: move "
                "it away (or point IMAGEWRIGHT_HOME elsewhere)"
            ) from None
        return path

    # ---- reading ----------------------------------------------------------------------------

    def lookup(self, key: str) -> LayerRecord | None:
        """The committed layer for `key`, or None when it is missing or broken.

        The key goes into this process's use record first, so prune leaves the layer alone
        from now until this process exits.
        """
        self._pin(key)
        return self._read(key)

    def layers(self) -> list[LayerRecord]:
        """Every intact layer (not counted as in use by this process)."""
        return [r for r in (self._read(key) for key in self._layer_keys()) if r is not None]

    def broken_layers(self) -> list[str]:
        """Keys of layer directories whose record is unreadable or whose diff/ is missing."""
        return [key for key in self._layer_keys() if self._read(key) is None]

    def _layer_keys(self) -> list[str]:
        try:
            names = os.listdir(self.root / "layers")
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if not n.startswith("."))

    def _read(self, key: str) -> LayerRecord | None:
        """The record of layer `key` if it is intact: a readable record and a diff/ directory."""
        path = self.layer_dir(key) / "layer.json"
        try:
            data = json.loads(path.read_bytes())
            record = LayerRecord(**data)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except (ValueError, TypeError):  # garbage, empty, truncated, or not a record's fields
            return None
        if not _well_formed(record, key):
            return None
        if not os.path.isdir(self.layer_dir(key) / "diff"):
            return None
        return record

    # ---- writing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the build lock of one step, so concurrent builds run it once.

        A plain flock: the kernel releases it when its holder dies, so a killed build never
        leaves a stale lock behind.
        """
        locks = self._subdir("locks")
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
        tmp = self._subdir("tmp")
        name = f"{os.getpid()}-{os.urandom(4).hex()}"
        lock_fd = os.open(tmp / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        area = Scratch(tmp / name)
        try:
            for path in (area.upper, area.work, area.merged):
                path.mkdir(parents=True)
            yield area
        finally:
            _remove_tree(area.root)
            # (missing_ok: at interpreter exit the whole store may be gone, a test's home say)
            (tmp / f"{name}.lock").unlink(missing_ok=True)
            os.close(lock_fd)

    def commit(
        self,
        area: Scratch,
        key: str,
        parent: str | None,
        description: str,
        seconds: float = 0.0,
        *,
        kind: str = STEP,
    ) -> LayerRecord:
        """Publish the area's upper dir as layer `key`, atomically: whole, or not at all."""
        self._pin(key)  # this process uses what it commits: prune must not take it
        record = LayerRecord(
            key=key,
            parent=parent,
            description=description,
            created=time.time(),
            seconds=seconds,
            size=dir_size(area.upper),
            empty=not any(area.upper.iterdir()),
            kind=kind,
        )
        layer_src = area.root / "layer"
        (layer_src / "layer.json").write_text(json.dumps(record._asdict()))
        _fsync_tree_root(layer_src)
        dest = self.layer_dir(record.key)
        self._subdir("layers")
        if os.path.lexists(dest):  # a forced rebuild, or a broken layer: keep it for its users
            os.rename(dest, self._subdir("trash") / f"{record.key}-{os.urandom(4).hex()}")
        os.rename(layer_src, dest)
        self._link(record.key)
        return record

    def _link(self, key: str) -> None:
        links = self._subdir("l")
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
        images = self._subdir("images")
        tmp = images / f".{key}.{os.urandom(3).hex()}"
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, images / f"{key}.json")

    def has_image(self, key: str) -> bool:
        return (self.root / "images" / f"{key}.json").exists()

    def images(self) -> list[dict[str, object]]:
        """The records `record_image` wrote; one that is unreadable or not an object is left out."""
        records: list[dict[str, object]] = []
        for path in sorted((self.root / "images").glob("*.json")):
            with contextlib.suppress(ValueError, OSError):
                record = json.loads(path.read_text())
                if isinstance(record, dict):
                    records.append(record)
        return records

    # ---- use records ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _gc_lock(self, operation: int) -> Iterator[None]:
        fd = os.open(self.root / "gc.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _pin(self, key: str) -> None:
        """Add `key` to this process's use record, unless it is there already."""
        ident = (os.path.abspath(self.root), os.getpid())
        record = _use_records.get(ident)
        if record is not None and key in record.keys:
            return  # the fast path of a cached build: no system call
        with _use_records_mutex:
            record = _use_records.get(ident)
            if record is None:
                uses = self._subdir("use")
                with self._gc_lock(fcntl.LOCK_SH):  # so no sweep sees it before it is locked
                    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
                    fd = os.open(uses / f"{os.getpid()}-{os.urandom(4).hex()}", flags, 0o600)
                    fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process exits
                record = _use_records[ident] = _UseRecord(fd)
        with record.mutex:
            if key in record.keys:
                return
            with self._gc_lock(fcntl.LOCK_SH):
                os.write(record.fd, f"{key}\n".encode())
            record.keys.add(key)

    @contextlib.contextmanager
    def pruning(self) -> Iterator[frozenset[str]]:
        """Hold off every process from starting to use a layer, for a prune.

        Yields the keys live processes use: those must not be removed. Records of dead
        processes are deleted on the way.
        """
        self._subdir("use")
        with self._gc_lock(fcntl.LOCK_EX):
            yield frozenset(self._live_keys())

    def _live_keys(self) -> set[str]:
        """Keys in the use records of live processes (call with gc.lock held exclusively)."""
        keys: set[str] = set()
        uses = self.root / "use"
        try:
            names = os.listdir(uses)
        except (FileNotFoundError, NotADirectoryError):
            return keys
        for name in names:
            try:
                fd = os.open(uses / name, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # its process is alive
                    with open(fd, "rb", closefd=False) as f:
                        keys.update(line.decode(errors="replace") for line in f.read().split())
                else:
                    os.unlink(uses / name)  # its process is gone; exclusive gc.lock: none new
            finally:
                os.close(fd)
        return keys

    # ---- cleanup ----------------------------------------------------------------------------

    def clean_stale(self) -> int:
        """Remove work areas whose builder died (their lock is free), the use records of dead
        processes, and trashed layers no live process uses. Returns how many work areas."""
        tmp = self.root / "tmp"
        removed = 0
        try:
            names = os.listdir(tmp)  # (not Path.glob, which compiles a pattern every process)
        except OSError:
            names = []
        for lock_path in (tmp / name for name in names if name.endswith(".lock")):
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:  # its area was just dropped by its own process
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its builder is alive
            _remove_tree(tmp / lock_path.name.removesuffix(".lock"))
            os.unlink(lock_path)
            os.close(fd)
            removed += 1
        # Listed before the use records are read: whoever still uses a trashed layer looked it
        # up, so added its key, before it was moved there.
        try:
            trashed = os.listdir(self.root / "trash")
        except (FileNotFoundError, NotADirectoryError):
            trashed = []
        if trashed or os.path.isdir(self.root / "use"):
            with self.pruning() as in_use:
                pass
            for name in trashed:
                if name.rsplit("-", 1)[0] not in in_use:
                    _remove_tree(self.root / "trash" / name)
        return removed

    def remove_layer(self, key: str) -> None:
        """Move layer `key` to the trash (call inside `pruning()`, for a key not in use)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / self.lower_name(key))
        trash = self._subdir("trash")
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.layer_dir(key), trash / f"{key}-{os.urandom(4).hex()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.log_path(key))

    # ---- failed steps -----------------------------------------------------------------------

    def keep_failed(self, staged: Path, slot: str) -> None:
        """Make `staged` (a directory in a work area) the kept failed step of `slot`, whole,
        replacing the one kept before."""
        self.remove_failed(slot)
        os.rename(staged, self._subdir("failed") / slot)

    def failed_area(self, slot: str) -> Path | None:
        """The kept failed step of `slot`, if any; kept from the trash sweep until this
        process exits, as a looked-up layer is (a shell has it mounted)."""
        self._pin(f"failed-{slot}")
        path = self.root / "failed" / slot
        return path if path.is_dir() else None

    def remove_failed(self, slot: str | None = None) -> int:
        """Move the kept failed step of `slot` (of every definition with None) to the trash,
        emptied by `clean_stale`; how many were moved."""
        try:
            names = [slot] if slot is not None else os.listdir(self.root / "failed")
        except (FileNotFoundError, NotADirectoryError):
            return 0
        moved = 0
        for name in names:
            path = self.root / "failed" / name
            if os.path.lexists(path):
                os.rename(path, self._subdir("trash") / f"failed-{name}-{os.urandom(4).hex()}")
                moved += 1
        return moved

    def remove_image(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / "images" / f"{key}.json")


def _well_formed(record: LayerRecord, key: str) -> bool:
    """Whether a parsed record has the types a LayerRecord needs, for the key it is under."""
    number = (int, float)
    return (
        record.key == key
        and (record.parent is None or isinstance(record.parent, str))
        and isinstance(record.description, str)
        and isinstance(record.created, number)
        and isinstance(record.seconds, number)
        and isinstance(record.size, int)
        and isinstance(record.empty, bool)
        and isinstance(record.kind, str)
    )


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


def _remove_tree(path: Path) -> None:
    """Remove a directory tree, ignoring errors. A step's work area is mostly a few empty
    directories by then (its upper dir was committed), which rmdir removes, through the
    directory opened without following a link; shutil, with the compression modules it loads
    (~3 ms), only comes in for anything else (and refuses a link, as here)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError:  # a link, or not a directory: shutil decides
        fd = -1
    if fd >= 0:
        try:
            for name in os.listdir(fd):
                os.rmdir(name, dir_fd=fd)  # only an empty directory, never through a link
            os.rmdir(path)
            return
        except OSError:  # not empty, not a directory
            pass
        finally:
            os.close(fd)
    import shutil

    shutil.rmtree(path, ignore_errors=True)


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

"""Volumes: directories that outlive containers, shared by every container that mounts them.

A named volume is a directory under settings.volumes_dir(); `Volume.ephemeral()` makes one that
lasts as long as its `with` block. Containers get it bind-mounted read-write at the paths their
`volumes=` name (execute/volumes.py), so what they write lands in the volume, never in an image
layer, and two containers writing at once write the same directory.

The methods work on the host (on the volume's directory) and inside a container (on its mount
point, found through IMAGEWRIGHT_VOLUMES). A volume's contents are written by sandboxed code, so
they are walked with one directory fd at a time and never through a symlink: a link a container
planted cannot lead a host-side `read_file` or `batch_upload` out of the volume.

Names are checked when a Volume is made; whether it exists only when it is used (a method, or a
container that mounts it), so `Volume.from_name` costs nothing at import, as in Modal.

`vol.with_mount_options(read_only=True)` is the volume mounted read-only (its methods still
write, as in Modal); `vol.read_only()`, Modal's older form, also makes its methods refuse to.
`Volume.objects` creates, lists and deletes the named volumes, as `imagewright volume` does.

This module is imported inside containers too, so it runs on Python 3.9.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import io
import json
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from . import settings
from ._aio import Twin, iter_twin, twin
from ._unsupported import not_yet
from .cloud import Client, ModalObject
from .exception import (
    AlreadyExistsError,
    InvalidError,
    LocalFileNotFoundError,
    NotFoundError,
)

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from ._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = [
    "FileEntry",
    "FileEntryType",
    "Volume",
    "VolumeInfo",
    "VolumeUploadContextManager",
    "check_name",
    "check_volumes",
    "create_volume",
    "delete_volume",
    "list_volumes",
    "local_time",
    "mount_key",
    "mounted_read_only",
    "newest_first",
    "owner_name",
    "rename_volume",
    "require_host",
    "volume_dir",
]

_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Mount points Modal refuses: the root, the function's source (/root) and the private /tmp.
_RESERVED_MOUNTS = ("/", "/root", "/tmp")
# An ephemeral volume's id: "vo-" then this, then its token (no volume name holds a colon).
_EPHEMERAL_ID = "ephemeral:"
_READ_ONLY = "Read-only Volume can not be written to"
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1  # renameat2(2)


class FileEntryType(enum.IntEnum):
    """The kind of a volume entry, numbered as Modal's."""

    UNSPECIFIED = 0
    FILE = 1
    DIRECTORY = 2
    SYMLINK = 3
    FIFO = 4
    SOCKET = 5


class FileEntry(NamedTuple):
    """A file or directory in a volume; `path` is relative to the volume's root."""

    path: str
    type: FileEntryType
    mtime: int
    size: int


class VolumeInfo(NamedTuple):
    """What `Volume.info()` tells (modal.types.VolumeInfo; named tuples, as SecretInfo)."""

    name: str | None
    created_at: datetime
    created_by: str | None


def check_name(name: object, kind: str) -> str:
    """`name` if it may name a volume or secret (Modal's rule), else InvalidError."""
    if (
        not isinstance(name, str)
        or len(name) > 64
        or not re.fullmatch(r"[a-zA-Z0-9._-]+", name)
        or name in (".", "..")
    ):
        raise InvalidError(
            f"Invalid {kind} name: {name!r}. Names may contain only alphanumeric characters, "
            "dashes, periods and underscores, and must be at most 64 characters long."
        )
    return name


class _VolumeManager:
    """`modal.Volume.objects`: the named volumes of this machine, as `imagewright volume`
    creates, lists and deletes them (on the host, not inside a container)."""

    @twin
    def create(
        self,
        name: str,
        *,
        version: int | None = None,
        allow_existing: bool = False,
        environment_name: str | None = None,
        client: Client | None = None,
        experimental_options: dict[str, Any] | None = None,
    ) -> None:
        """Create the named volume (AlreadyExistsError if it exists, unless `allow_existing`).
        `Volume.from_name` then finds it."""
        require_host("Volume.objects.create")
        create_volume(name, exist_ok=allow_existing)

    @twin
    def list(
        self,
        *,
        max_objects: int | None = None,
        created_before: datetime | str | None = None,
        environment_name: str = "",
        client: Client | None = None,
    ) -> list[Volume]:
        """The named volumes, newest first: at most `max_objects`, only those made before
        `created_before` (a datetime or an ISO date, local time if it has no zone)."""
        require_host("Volume.objects.list")
        names = newest_first(list_volumes(), max_objects, created_before)
        return [Volume(name, None, False) for name in names]

    @twin
    def delete(
        self,
        name: str,
        *,
        allow_missing: bool = False,
        environment_name: str | None = None,
        client: Client | None = None,
    ) -> None:
        """Delete the named volume and everything in it."""
        require_host("Volume.objects.delete")
        delete_volume(name, allow_missing=allow_missing)


def _rename(
    old_name: str,
    new_name: str,
    *,
    client: Client | None = None,
    environment_name: str | None = None,
) -> None:
    """Volume.rename: give a named volume another name; containers mounting it keep it."""
    require_host("Volume.rename")
    rename_volume(old_name, new_name)


class Volume(ModalObject):
    """A writable directory that containers share and that outlives them."""

    __slots__ = ("_create", "_ephemeral", "_mount_read_only", "_name", "_read_only")
    _id_prefix = "vo"

    def __init__(
        self,
        name: str | None,
        ephemeral: str | None,
        create_if_missing: bool,
        read_only: bool = False,
        mount_read_only: bool | None = None,
    ):
        self._name, self._ephemeral, self._create = name, ephemeral, create_if_missing
        self._read_only = read_only  # read_only(): its methods refuse to write
        # with_mount_options(read_only=...): None if not given (read_only() then refuses)
        self._mount_read_only = mount_read_only

    def __repr__(self) -> str:
        if self._name is None:
            return "Volume.ephemeral()"
        return f"Volume.from_name({self._name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # passed to a function, it names the same volume inside the container
        fields = (self._name, self._ephemeral, self._create, self._read_only, self._mount_read_only)
        return (Volume, fields)

    def _id_name(self) -> str:
        return self._name if self._name is not None else f"{_EPHEMERAL_ID}{self._ephemeral}"

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        create_if_missing: bool = False,
        version: int | None = None,
        create_options: object = None,
        client: object = None,
    ) -> Volume:
        """The named volume; it must exist when it is used unless `create_if_missing`.

        `environment_name`, `version`, `create_options` and `client` have no local meaning.
        """
        return Volume(check_name(name, "Volume"), None, bool(create_if_missing))

    @classmethod
    def ephemeral(
        cls,
        client: object = None,
        environment_name: str | None = None,
        version: int | None = None,
        create_options: object = None,
    ) -> _Ephemeral:
        """`with Volume.ephemeral() as vol:` (or `async with`) an anonymous volume, deleted
        when the block ends."""
        return _Ephemeral()

    @staticmethod
    def from_id(volume_id: str, client: Client | None = None) -> Volume:
        """The volume whose `object_id` this is; whether it exists is checked when it is used."""
        name = volume_id[3:] if volume_id.startswith("vo-") else ""
        if name.startswith(_EPHEMERAL_ID):
            return Volume(None, name[len(_EPHEMERAL_ID) :], False)
        if not name or not re.fullmatch(r"[a-zA-Z0-9._-]+", name):
            raise InvalidError(f"Invalid Volume id: {volume_id!r}")
        return Volume(name, None, False)

    @property
    def name(self) -> str | None:
        return self._name

    def _resolve(self) -> None:
        """Hydrating checks that the volume exists (creating it if `create_if_missing`)."""
        self._root()

    def read_only(self) -> Volume:
        """This volume, read-only: mounted read-only in containers, and its methods refuse to
        write (Modal's older form of `with_mount_options(read_only=True)`)."""
        if self._mount_read_only is not None:
            raise InvalidError(
                "Cannot call read_only() on a Volume that has with_mount_options() applied. "
                "Use with_mount_options(read_only=True, ...) instead."
            )
        return Volume(self._name, self._ephemeral, self._create, read_only=True)

    def with_mount_options(
        self, *, read_only: bool | None = None, sub_path: str | PurePosixPath | None = None
    ) -> Volume:
        """This volume, mounted as these options say: read-only in containers if `read_only`
        (its methods still write, as in Modal: the option is the mount's)."""
        if self._read_only:
            raise InvalidError(
                "Cannot call with_mount_options() on a Volume that has .read_only() applied. "
                "Use with_mount_options(read_only=True, ...) instead."
            )
        if sub_path is not None and PurePosixPath(sub_path).as_posix() != "/":
            raise not_yet("modal.Volume.with_mount_options(sub_path=...)")
        mount_read_only = bool(self._mount_read_only) if read_only is None else bool(read_only)
        return Volume(self._name, self._ephemeral, self._create, False, mount_read_only)

    @twin
    def info(self) -> VolumeInfo:
        """The volume's name, when its directory was made (its ctime, as `imagewright volume
        list` shows) and by whom (its owner)."""
        made = os.stat(self._root())
        return VolumeInfo(self._name, local_time(made.st_ctime), owner_name(made.st_uid))

    # ---- methods, on the host or in a container ---------------------------------------------

    @twin
    def commit(self) -> None:
        """Make what was written to the volume durable; containers started afterwards see it
        (running ones see writes at once: they share the directory)."""
        fd = os.open(self._root(), _DIR_FLAGS)
        try:
            _syncfs(fd)
        finally:
            os.close(fd)

    @twin
    def reload(self) -> None:
        """Accepted for Modal's sake: a mounted volume always shows its latest contents."""
        self._root()

    @iter_twin
    def iterdir(self, path: str, *, recursive: bool = True) -> Iterator[FileEntry]:
        """The entries under `path` (a directory), or `path` itself if it is not one."""
        root = self._root()
        if path.endswith("*"):
            raise InvalidError("Volume.listdir() takes no glob patterns; pass recursive=True")
        parts = _parts(path)
        try:
            entries = _list(root, parts, recursive)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"No such file or directory in {self!r}: {path}") from None
        return iter(entries)

    @twin
    def listdir(self, path: str, *, recursive: bool = False) -> list[FileEntry]:
        """The entries directly under `path` (all of them below it with `recursive`)."""
        return list(self.iterdir(path, recursive=recursive))

    @iter_twin
    def read_file(self, path: str) -> Iterator[bytes]:
        """The file's contents, in chunks."""
        return _chunks(_open_file(self._root(), path))

    @twin
    def read_file_into_fileobj(
        self,
        path: str,
        fileobj: IO[bytes],
        progress_cb: Callable[..., Any] | None = None,
    ) -> int:
        """Write the file's contents into `fileobj`; the number of bytes written."""
        total = 0
        for chunk in _chunks(_open_file(self._root(), path)):
            fileobj.write(chunk)
            total += len(chunk)
            if progress_cb is not None:
                progress_cb(advance=len(chunk))
        return total

    @twin
    def remove_file(self, path: str, recursive: bool = False) -> None:
        """Remove a file, or a directory (with what it holds if `recursive`)."""
        self._check_writable()
        root, parts = self._root(), _parts(path)
        if not parts:
            raise InvalidError(f"The root of {self!r} cannot be removed; delete the volume")
        with _open_dir(root, parts[:-1]) as parent:
            info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(parts[-1], dir_fd=parent)
            elif recursive:
                _remove_tree(parent, parts[-1])
            else:
                try:
                    os.rmdir(parts[-1], dir_fd=parent)
                except OSError as exc:
                    if exc.errno != errno.ENOTEMPTY:
                        raise
                    raise InvalidError(
                        f"{path} is a directory that is not empty; pass recursive=True"
                    ) from None

    @twin
    def copy_files(self, src_paths: Sequence[str], dst_path: str, recursive: bool = False) -> None:
        """Copy within the volume, as `cp` does: into `dst_path` if it is a directory (or ends
        with a slash, or there are several sources), else to it."""
        self._check_writable()
        root, dst = self._root(), _parts(dst_path)
        if isinstance(src_paths, str):
            raise InvalidError("Volume.copy_files expects a list of source paths")
        into = len(src_paths) > 1 or dst_path.endswith("/") or _is_dir(root, dst)
        for src_path in src_paths:
            src = _parts(src_path)
            target = [*dst, src[-1]] if into and src else dst
            if not src or not target:
                raise InvalidError(f"Cannot copy {src_path!r} to {dst_path!r}: a volume's root")
            if target[: len(src)] == src:
                raise InvalidError(f"Cannot copy {src_path!r} into itself ({dst_path!r})")
            with _open_dir(root, src[:-1]) as from_dir, _open_dir(root, target[:-1], True) as to:
                mode = os.stat(src[-1], dir_fd=from_dir, follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode) and not recursive:
                    raise InvalidError(f"{src_path} is a directory; pass recursive=True")
                _copy_entry(from_dir, src[-1], to, target[-1])

    @property
    def batch_upload(self) -> _BatchUpload:
        """`with vol.batch_upload(force=False) as batch:` queue `put_file` / `put_directory`
        calls; they are written when the block ends without an error. Existing files are kept
        (an error) unless `force`; directories are never replaced by files."""
        self._check_writable()
        return _BatchUpload(self)

    def _check_writable(self) -> None:
        if self._read_only:
            raise InvalidError(_READ_ONLY)

    # ---- named volumes ----------------------------------------------------------------------

    objects = _VolumeManager()
    rename = Twin(_rename)

    # ---- where it is ------------------------------------------------------------------------

    def _root(self) -> str:
        """The volume's directory here: its mount point inside a container, its directory in
        the store on the host."""
        if settings.in_container():
            mounted = json.loads(os.environ.get(settings.VOLUMES) or "{}")
            where = mounted.get(mount_key(self))
            if where is None:
                raise NotFoundError(
                    f"{self!r} is not mounted in this container: give the function "
                    "volumes={'/some/path': volume}"
                )
            return str(where)
        return str(volume_dir(self))


class _BatchUpload:
    """`vol.batch_upload`: its result serves both `with` and `async with`, so `.aio` is the
    same call (Modal's `async with vol.batch_upload.aio() as batch:`)."""

    def __init__(self, volume: Volume):
        self._volume = volume

    def __call__(self, force: bool = False) -> VolumeUploadContextManager:
        return VolumeUploadContextManager(self._volume, force)

    def aio(self, force: bool = False) -> VolumeUploadContextManager:
        return VolumeUploadContextManager(self._volume, force)


class _Ephemeral:
    """The context manager `Volume.ephemeral()` returns, for `with` and `async with`."""

    def __init__(self) -> None:
        self._dir: Path | None = None

    def __enter__(self) -> Volume:
        if settings.in_container():
            raise InvalidError(
                "Volume.ephemeral() cannot be made inside a container: make it where the app "
                "runs and pass it in"
            )
        token = os.urandom(8).hex()
        self._dir = settings.ephemeral_volumes_dir() / token
        self._dir.mkdir(mode=0o755, parents=True)
        return Volume(None, token, False)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import shutil

        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    async def __aenter__(self) -> Volume:
        import asyncio

        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.__exit__, kind, exc, tb)


class _Upload(NamedTuple):
    """A queued upload."""

    source: Path | BinaryIO  # a local file, or an open binary file
    parts: list[str]  # where it goes in the volume
    mode: int


class VolumeUploadContextManager:
    """What `Volume.batch_upload()` returns: queue files, written together at the end."""

    def __init__(self, volume: Volume, force: bool):
        self._volume, self._force = volume, force
        self._uploads: list[_Upload] = []

    def put_file(
        self,
        local_file: Path | str | BinaryIO | io.BytesIO,
        remote_path: PurePosixPath | str,
        mode: int | None = None,
    ) -> None:
        """Queue a local file (or an open binary file) for `remote_path`; parent directories
        are made as needed."""
        remote = PurePosixPath(remote_path).as_posix()
        if str(remote_path).endswith("/"):
            raise InvalidError(f"remote_path ({remote_path}) must name a file, not end with /")
        if isinstance(local_file, (str, Path)):
            source = Path(local_file)
            if not source.is_file():
                raise LocalFileNotFoundError(f"No such local file: {source}")
            bits = stat.S_IMODE(source.stat().st_mode) if mode is None else mode
            self._uploads.append(_Upload(source, _parts(remote), bits))
        else:
            self._uploads.append(
                _Upload(local_file, _parts(remote), 0o644 if mode is None else mode)
            )

    def put_directory(
        self, local_path: Path | str, remote_path: PurePosixPath | str, recursive: bool = True
    ) -> None:
        """Queue every file of a local directory (and of its subdirectories if `recursive`)."""
        local = Path(local_path)
        if not local.is_dir():
            raise LocalFileNotFoundError(f"No such local directory: {local}")
        remote = PurePosixPath(remote_path)
        for path in sorted(local.rglob("*") if recursive else local.glob("*")):
            if path.is_file():
                self.put_file(path, remote / path.relative_to(local).as_posix())

    def __enter__(self) -> VolumeUploadContextManager:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self._write()

    async def __aenter__(self) -> VolumeUploadContextManager:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        if exc is None:
            await asyncio.to_thread(self._write)

    def _write(self) -> None:
        root = self._volume._root()
        for _, parts, _ in self._uploads:  # every conflict is found before anything is written
            existing = _lstat(root, parts)
            if existing is None:
                continue
            where = "/".join(parts)
            if stat.S_ISDIR(existing.st_mode):
                raise IsADirectoryError(f"{where} is a directory in {self._volume!r}")
            if not self._force:
                raise FileExistsError(
                    f"{where} already exists in {self._volume!r} (pass force=True, or --force)"
                )
        for source, parts, mode in self._uploads:
            if not parts:
                raise InvalidError("An upload needs a file name in the volume, not its root")
            with _open_dir(root, parts[:-1], create=True) as parent:
                if isinstance(source, Path):
                    with open(source, "rb") as reader:
                        _write_file(parent, parts[-1], reader, mode, self._force)
                else:
                    _write_file(parent, parts[-1], source, mode, self._force)


# ---- named volumes on the host ----------------------------------------------------------------


def mount_key(volume: Volume) -> str:
    """How a container's IMAGEWRIGHT_VOLUMES names `volume` ('/' cannot be in a name)."""
    if volume._name is not None:
        return f"name/{volume._name}"
    return f"ephemeral/{volume._ephemeral}"


def mounted_read_only(volume: Volume) -> bool:
    """Whether containers get `volume` read-only."""
    return bool(volume._read_only or volume._mount_read_only)


def volume_dir(volume: Volume) -> Path:
    """The host directory holding `volume`, made now if it may be; NotFoundError if it does
    not exist."""
    if volume._name is None:
        path = settings.ephemeral_volumes_dir() / str(volume._ephemeral)
        if not path.is_dir():
            raise NotFoundError(f"{volume!r} no longer exists: its `with` block has ended")
        return path
    path = settings.volumes_dir() / volume._name
    if not path.is_dir():
        if not volume._create:
            raise NotFoundError(
                f"Volume {volume._name!r} not found: create it with "
                f"`imagewright volume create {volume._name}`, or use "
                f"Volume.from_name({volume._name!r}, create_if_missing=True)"
            )
        create_volume(volume._name, exist_ok=True)
    return path


def create_volume(name: str, *, exist_ok: bool = False) -> Path:
    """Make the named volume's directory; AlreadyExistsError if it exists (unless
    `exist_ok`)."""
    path = settings.volumes_dir() / check_name(name, "Volume")
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o755)
    except FileExistsError:
        if not exist_ok:
            raise AlreadyExistsError(f"Volume {name!r} already exists") from None
    return path


def rename_volume(old_name: str, new_name: str) -> None:
    """Rename the named volume `old_name`; AlreadyExistsError if `new_name` exists. Running
    containers that mount it keep it: they hold the directory, not its name."""
    root = settings.volumes_dir()
    old, new = root / check_name(old_name, "Volume"), root / check_name(new_name, "Volume")
    if not old.is_dir():
        raise NotFoundError(f"Volume {old_name!r} not found (`imagewright volume list` shows them)")
    try:
        _rename_noreplace(old, new)
    except FileExistsError:
        raise AlreadyExistsError(f"Volume {new_name!r} already exists") from None


def delete_volume(name: str, *, allow_missing: bool = False) -> None:
    """Delete the named volume and everything in it."""
    import shutil

    path = settings.volumes_dir() / check_name(name, "Volume")
    if not path.is_dir():
        if allow_missing:
            return
        raise NotFoundError(f"Volume {name!r} not found (`imagewright volume list` shows them)")
    # renamed first, so that a container started meanwhile cannot mount a half-deleted volume
    doomed = path.with_name(f".deleting-{name}-{os.urandom(4).hex()}")
    os.rename(path, doomed)
    shutil.rmtree(doomed)


def list_volumes() -> dict[str, float]:
    """Each named volume, with the time it was created (its directory's ctime)."""
    root = settings.volumes_dir()
    if not root.is_dir():
        return {}
    return {
        entry.name: entry.stat().st_ctime
        for entry in sorted(os.scandir(root), key=lambda e: e.name)
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")
    }


def newest_first(
    created: Mapping[str, float], max_objects: int | None, created_before: datetime | str | None
) -> list[str]:
    """The names of `created` ({name: when it was made}) newest first, as Modal's
    `X.objects.list()` gives them: those made before `created_before` (a datetime or ISO date,
    local time if it has no zone), at most `max_objects` of them."""
    if max_objects is not None and max_objects < 0:
        raise InvalidError("max_objects cannot be negative")
    if isinstance(created_before, str):
        created_before = datetime.fromisoformat(created_before)
    before = None if created_before is None else created_before.timestamp()
    names = [name for name, when in created.items() if before is None or when < before]
    names.sort(key=created.__getitem__, reverse=True)
    return names if max_objects is None else names[:max_objects]


def local_time(timestamp: float) -> datetime:
    """`timestamp` as a datetime in the local zone, as Modal's info types give times."""
    return datetime.fromtimestamp(timestamp).astimezone()


def owner_name(uid: int) -> str | None:
    """The name of the user `uid` (who made a volume or a secret), None if it has none."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def require_host(what: str) -> None:
    """Named volumes and secrets are made, renamed, listed and deleted where the app runs."""
    if settings.in_container():
        raise InvalidError(f"{what} cannot be used inside a container: the stores are the host's")


def check_volumes(volumes: Mapping[str | PurePosixPath, Volume]) -> dict[str, Volume]:
    """A `volumes=` argument, checked as Modal does: {absolute mount point: Volume}, each
    volume at one place, none at '/', '/root' or '/tmp'."""
    if not isinstance(volumes, Mapping):
        raise InvalidError("volumes= expects a dict of {'/mount/path': Volume}")
    checked: dict[str, Volume] = {}
    places: dict[str, str] = {}
    for raw, volume in volumes.items():
        if not isinstance(raw, (str, PurePosixPath)):
            raise InvalidError(f"Volume mount point {raw!r} is not a path")
        path = PurePosixPath(raw).as_posix()
        if not path.startswith("/") or path.startswith("//") or posixpath.normpath(path) != path:
            raise InvalidError(f"Volume {path} must be a canonical, absolute path.")
        if path in _RESERVED_MOUNTS or path.startswith("/tmp/.imagewright"):
            raise InvalidError(f"Volume {path} cannot be mounted at {path!r}.")
        if not isinstance(volume, Volume):
            raise InvalidError(
                f"Object of type {type(volume).__name__} mounted at '{path}' is not usable as "
                "a volume."
            )
        if path in checked:
            raise InvalidError(f"Two volumes are mounted at {path}")
        key = mount_key(volume)
        if key in places:
            raise InvalidError(
                "The same Volume cannot be mounted in multiple locations for the same "
                f"function: {places[key]}, {path}"
            )
        checked[path], places[key] = volume, path
    return checked


# ---- walking a volume without following its symlinks ------------------------------------------


def _parts(path: str | PurePosixPath) -> list[str]:
    """`path`, relative to the volume's root ('/' and '' are the root), as its names."""
    if not isinstance(path, (str, PurePosixPath)):
        raise InvalidError(f"A volume path must be a string, not {type(path).__name__}")
    parts = list(PurePosixPath("/", path).parts[1:])
    if ".." in parts:
        raise InvalidError(f"Volume path {str(path)!r} may not contain '..'")
    return parts


@contextlib.contextmanager
def _open_dir(root: str, parts: Sequence[str], create: bool = False) -> Iterator[int]:
    """An fd of the directory `parts` below `root`, reached without following a symlink;
    missing directories are made if `create`."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
                    message = "a symlink, not a directory"
                    raise NotADirectoryError(errno.ENOTDIR, message, part) from None
                raise
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def _lstat(root: str, parts: Sequence[str]) -> os.stat_result | None:
    """The entry at `parts`, not following a final symlink; None if there is none."""
    if not parts:
        return os.stat(root)
    try:
        with _open_dir(root, parts[:-1]) as parent:
            return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _is_dir(root: str, parts: Sequence[str]) -> bool:
    info = _lstat(root, parts)
    return info is not None and stat.S_ISDIR(info.st_mode)


def _entry(path: str, info: os.stat_result) -> FileEntry:
    kinds = {
        stat.S_IFREG: FileEntryType.FILE,
        stat.S_IFDIR: FileEntryType.DIRECTORY,
        stat.S_IFLNK: FileEntryType.SYMLINK,
        stat.S_IFIFO: FileEntryType.FIFO,
        stat.S_IFSOCK: FileEntryType.SOCKET,
    }
    kind = kinds.get(stat.S_IFMT(info.st_mode), FileEntryType.UNSPECIFIED)
    return FileEntry(path, kind, int(info.st_mtime), info.st_size)


def _list(root: str, parts: list[str], recursive: bool) -> list[FileEntry]:
    if parts:
        info = _lstat(root, parts)
        if info is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/".join(parts))
        if not stat.S_ISDIR(info.st_mode):
            return [_entry("/".join(parts), info)]
    with _open_dir(root, parts) as fd:
        return _walk(fd, "/".join(parts), recursive)


def _walk(fd: int, prefix: str, recursive: bool) -> list[FileEntry]:
    found: list[FileEntry] = []
    for name in sorted(os.listdir(fd)):
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        path = f"{prefix}/{name}" if prefix else name
        found.append(_entry(path, info))
        if recursive and stat.S_ISDIR(info.st_mode):
            inner = os.open(name, _DIR_FLAGS, dir_fd=fd)
            try:
                found.extend(_walk(inner, path, recursive))
            finally:
                os.close(inner)
    return found


def _open_file(root: str, path: str) -> int:
    """An fd of the regular file at `path`; FileNotFoundError if there is none."""
    parts = _parts(path)
    if not parts:
        raise IsADirectoryError(errno.EISDIR, "the volume's root is a directory", path)
    with _open_dir(root, parts[:-1]) as parent:
        # O_NONBLOCK: opening a fifo must not hang; it is refused below
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(parts[-1], flags, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidError(f"{path} is a symlink; read the file it points to") from None
            raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
    return fd


def _chunks(fd: int) -> Iterator[bytes]:
    with os.fdopen(fd, "rb") as reader:
        while True:
            chunk = reader.read(_CHUNK)
            if not chunk:
                return
            yield chunk


def _write_file(parent: int, name: str, source: IO[bytes], mode: int, replace: bool) -> None:
    """Write `source` as `name` in `parent`, whole or not at all: a reader (another container)
    never sees half a file. Without `replace`, an existing `name` is a FileExistsError."""
    import shutil

    temp = f".{name}.{os.urandom(6).hex()}.upload"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=parent)
    try:
        with os.fdopen(fd, "wb") as writer:
            shutil.copyfileobj(source, writer, _CHUNK)
            os.fchmod(writer.fileno(), mode & 0o7777)
        if replace:
            os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        else:
            os.link(temp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=parent)


def _copy_entry(src_dir: int, name: str, dst_dir: int, target: str) -> None:
    """Copy `name` (a file, symlink or directory tree) to `target`; symlinks stay symlinks."""
    mode = os.stat(name, dir_fd=src_dir, follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target, dir_fd=dst_dir)
        os.symlink(os.readlink(name, dir_fd=src_dir), target, dir_fd=dst_dir)
    elif stat.S_ISDIR(mode):
        with contextlib.suppress(FileExistsError):
            os.mkdir(target, stat.S_IMODE(mode), dir_fd=dst_dir)
        inner_src = os.open(name, _DIR_FLAGS, dir_fd=src_dir)
        try:
            inner_dst = os.open(target, _DIR_FLAGS, dir_fd=dst_dir)
            try:
                for child in sorted(os.listdir(inner_src)):
                    _copy_entry(inner_src, child, inner_dst, child)
            finally:
                os.close(inner_dst)
        finally:
            os.close(inner_src)
    elif stat.S_ISREG(mode):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
        with os.fdopen(fd, "rb") as reader:
            _write_file(dst_dir, target, reader, stat.S_IMODE(mode), replace=True)
    # fifos, sockets and devices are not copied, as Modal's volumes hold none


def _remove_tree(parent: int, name: str) -> None:
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        for child in os.listdir(fd):
            if stat.S_ISDIR(os.stat(child, dir_fd=fd, follow_symlinks=False).st_mode):
                _remove_tree(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


def _rename_noreplace(old: Path, new: Path) -> None:
    """Rename `old` to `new`; FileExistsError if `new` exists. renameat2's RENAME_NOREPLACE
    refuses in the same step; a libc without it leaves a check, then a rename."""
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        if os.path.lexists(new):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(new)) from None
        os.rename(old, new)
        return
    if call(_AT_FDCWD, os.fsencode(old), _AT_FDCWD, os.fsencode(new), _RENAME_NOREPLACE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(new))  # EEXIST: a FileExistsError


def _syncfs(fd: int) -> None:
    """syncfs(2) the file system holding `fd`: the volume's writes, whoever made them, reach the
    disk. Python has no syncfs; without libc's, sync(2) does it for every file system."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    if call(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))

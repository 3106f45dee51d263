"""A failed step's work area, kept so that `imagewright shell FILE::NAME --failed` can step in.

When a build started from the CLI fails, the failing step's overlay upper dir (what its commands
wrote before failing) is kept in the store with what a shell needs to stand where the command
stood: the step's lower layers, its image ENV and build args, WORKDIR and USER. One area is kept
per image definition (a FailedSlot: the definition file and the image's name in it) and only
until the next build of that definition starts, or a prune.

Secret values are never written to disk: the record holds the secrets' names only, the shell
runs without them, and an area in which the step wrote a secret value is not kept at all.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from .._digest import hexdigest
from ..definition.config import ImageConfig
from ..exception import NotFoundError
from ..store.store import Scratch, Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["FailedSlot", "find_secret", "keep_failed_step", "run_failed_shell", "slot_for"]

_RECORD = "failed.json"
_CHUNK = 1 << 20


class FailedSlot(NamedTuple):
    """Where one image definition's failed step is kept, and how the user names it."""

    name: str  # the store's name for the definition (a hash of its file and NAME)
    ref: str  # FILE::NAME as the user can type it, for messages


def slot_for(path: str, name: str) -> FailedSlot:
    """The slot of image (or function) `name` defined in `path`: the same whatever the cwd."""
    from ..definition.packages import shell_quote

    ident = f"{os.path.abspath(path)}::{name}"
    return FailedSlot(hexdigest(ident.encode())[:32], shell_quote(f"{path}::{name}"))


def keep_failed_step(
    store: Store,
    slot: FailedSlot,
    area: Scratch,
    keys: tuple[str, ...],
    lowers: tuple[str, ...],
    config: ImageConfig,
    build_args: dict[str, str],
    secrets: dict[str, str],
    where: str,
) -> str:
    """Keep the failed step's area for `slot`; the sentence the build error ends with.

    `keys` are the steps under it, `lowers` their overlay lowerdirs (top first); `config` the
    image settings the failing command ran with, `build_args` its build arguments.
    """
    leaked = find_secret(area.upper, secrets.values())
    if leaked is not None:
        return (
            f"Its work area was not kept for `imagewright shell {slot.ref} --failed`: the step "
            f"wrote a secret value into /{leaked.relative_to(area.upper)}, and secrets are "
            "never kept on disk."
        )
    staged = area.root / "failed"
    staged.mkdir()
    os.rename(area.upper, staged / "diff")
    record = {
        "ref": slot.ref,
        "where": where,
        "keys": list(keys),
        "lowers": list(lowers),
        "env": [[k, v] for k, v in (*config.env, *build_args.items())],
        "workdir": config.workdir,
        "user": config.user,
        "secrets": sorted(secrets),  # names only
    }
    (staged / _RECORD).write_text(json.dumps(record))
    store.keep_failed(staged, slot.name)
    return f"Step into it as it failed: imagewright shell {slot.ref} --failed"


def find_secret(root: Path, values: Iterable[str]) -> Path | None:
    """A file (or symlink) under `root` whose contents hold one of `values`, if any."""
    needles = [v.encode() for v in values if v]
    if not needles:
        return None
    overlap = max(len(n) for n in needles) - 1
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink():
                if any(n in os.fsencode(os.readlink(path)) for n in needles):
                    return path
            elif _holds(path, needles, overlap):
                return path
    return None


def _holds(path: Path, needles: list[bytes], overlap: int) -> bool:
    """Whether a regular file holds a needle, read in chunks (a needle may straddle two).

    The step wrote this tree: it is opened without following a link or blocking on a fifo,
    and only a regular file is read.
    """
    tail = b""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return False
        while chunk := f.read(_CHUNK):
            window = tail + chunk
            if any(n in window for n in needles):
                return True
            tail = window[-overlap:] if overlap else b""
    return False


def run_failed_shell(
    store: Store, slot: FailedSlot, argv: Sequence[str], *, interactive: bool
) -> int:
    """Run `argv` over the kept failed step of `slot`, where its command ran; its exit status.

    The kept area is a lower layer here, so the shell's own changes are thrown away and the
    area stays as the step left it.
    """
    from .container import run_in_container

    area = store.failed_area(slot.name)
    kept = _read_record(area) if area is not None else None
    if area is None or kept is None:
        raise NotFoundError(
            f"No failed build of {slot.ref} is kept (a later build or a prune removes it): "
            f"run `imagewright build {slot.ref}` to reproduce the failure"
        )
    if any(store.lookup(key) is None for key in kept.keys):  # (and pins them from prune)
        raise NotFoundError(
            f"a layer under the failed step of {slot.ref} is gone from the store: run "
            f"`imagewright build {slot.ref}` to reproduce the failure"
        )
    lowers = (str(area.relative_to(store.root) / "diff"), *kept.lowers)
    if kept.secrets:
        names = ", ".join(kept.secrets)
        print(f"Note: the step's secrets ({names}) are not set here.", file=sys.stderr)
    config = ImageConfig(env=kept.env, workdir=kept.workdir, user=kept.user)
    status, _ = run_in_container(lowers, config, store, argv, interactive=interactive)
    return status


class _Kept(NamedTuple):
    """A kept area's record."""

    keys: tuple[str, ...]
    lowers: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str
    user: str
    secrets: tuple[str, ...]


def _read_record(area: Path) -> _Kept | None:
    """The kept area's record, or None when it is missing or unreadable."""
    try:
        data = json.loads((area / _RECORD).read_text())
        kept = _Kept(
            tuple(str(key) for key in data["keys"]),
            tuple(str(lower) for lower in data["lowers"]),
            tuple((str(k), str(v)) for k, v in data["env"]),
            str(data["workdir"]),
            str(data["user"]),
            tuple(str(name) for name in data["secrets"]),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return kept

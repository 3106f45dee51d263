"""Docker's copy rules, shared by the Dockerfile frontend and the copy scripts: source globs,
--chown owners and the directories a copy creates.

It sits on the ground floor, standard library only, because two tiers use it: the Dockerfile
frontend (globs in the build context) and execute's copy scripts, which load it as a plain
module from this directory inside their sandbox and resolve --chown after they chroot into the
image, so user and group names mean what the image's own /etc/passwd and /etc/group say (read as
text: no libc name lookups).
The --chown rules are BuildKit's: a user name alone brings its primary group, a bare uid
doubles as the gid, and numeric ids need no account files at all. Directories a copy creates
belong to the copy's owner, as in Docker.
"""

from __future__ import annotations

import os
import posixpath

__all__ = ["ROOT", "enter_image", "glob_paths", "has_magic", "make_parents", "resolve_owner"]

ROOT = (0, 0)


def enter_image(root: str, owner: str | None) -> tuple[int, int] | None:
    """Chroot into the image tree at `root` (umask 0, so modes come out as given) and resolve
    a --chown value there; LookupError when the image lacks that user or group."""
    os.chroot(root)
    os.chdir("/")
    os.umask(0)
    return resolve_owner(owner) if owner else None


def has_magic(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def glob_paths(root: str, pattern: str) -> list[str]:
    """Paths under `root` (relative to it) matching `pattern` part by part: `*` never crosses
    `/` and matches dot files too, as Go's filepath.Match does for Docker."""
    import fnmatch  # here, not at the top: it imports re, which copyin.py has no need to load

    paths = [""]
    for part in (p for p in pattern.split("/") if p):
        found = []
        for path in paths:
            base = os.path.join(root, path)
            if not has_magic(part):
                if os.path.lexists(os.path.join(base, part)):
                    found.append(posixpath.join(path, part))
            elif os.path.isdir(base):
                names = sorted(n for n in os.listdir(base) if fnmatch.fnmatchcase(n, part))
                found += [posixpath.join(path, n) for n in names]
        paths = found
    return paths


def make_parents(path: str, owner: tuple[int, int]) -> None:
    """Create the missing directories above `path` (mode 755, owned by `owner`). A dangling
    symlink on the way has its target made, as BuildKit does (inside the chroot, so a link
    resolves in the image)."""
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        parent = os.path.realpath(parent)
        make_parents(parent, owner)
        os.mkdir(parent, 0o755)
        os.chown(parent, *owner)


def resolve_owner(spec: str) -> tuple[int, int]:
    """(uid, gid) for a --chown (or USER) value; LookupError names what the image lacks."""
    user, _, group = spec.partition(":")
    if user.isdigit():
        uid = gid = int(user)
    else:
        fields = _entry("/etc/passwd", user)
        if fields is None or len(fields) < 4:
            raise LookupError(f"{spec}: no user {user!r} in the image's /etc/passwd")
        uid, gid = int(fields[2]), int(fields[3])
    if group.isdigit():
        gid = int(group)
    elif group:
        fields = _entry("/etc/group", group)
        if fields is None or len(fields) < 3:
            raise LookupError(f"{spec}: no group {group!r} in the image's /etc/group")
        gid = int(fields[2])
    return uid, gid


def _entry(path: str, name: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == name:
                    return fields
    except FileNotFoundError:
        pass
    return None

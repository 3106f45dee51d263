"""COPY/ADD from the build context: source globs, .dockerignore, destinations, --chmod, --chown,
--parents, --exclude and ADD --unpack.

Sources are matched on the host when the image is defined (each match becomes one CopyLocal
op), so a missing or escaping source is reported with its Dockerfile line before any step runs;
file contents are read and hashed later, by the planner, as for every other copy. Heredoc
sources become context files too, written to a temporary directory; ADD's URLs become Download
ops, fetched by the planner.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from .._copyrules import glob_paths
from ..definition.ops import CopyLocal, Download
from ..definition.patterns import AUTO_DOCKERIGNORE, FilePatternMatcher

__all__ = [
    "ARCHIVE_SUFFIXES",
    "Context",
    "CopyOptions",
    "context_ops",
    "heredoc_file",
    "is_archive",
    "make_context",
]


ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")


def is_archive(path: str) -> bool:
    """Whether ADD unpacks `path` (judged by its name; Docker sniffs the content)."""
    return path.endswith(ARCHIVE_SUFFIXES)


class CopyOptions(NamedTuple):
    """The COPY/ADD flags that shape the copy ops (all as BuildKit means them)."""

    chmod: int | None = None
    owner: str | None = None
    checksum: str | None = None  # ADD --checksum, for URLs
    parents: bool = False  # COPY --parents: keep each source's directories under the destination
    exclude: tuple[str, ...] = ()  # --exclude patterns, .dockerignore syntax
    unpack: bool | None = None  # ADD --unpack; None: local archives unpack, URLs do not


class Context(NamedTuple):
    """The build context: its root, what .dockerignore drops, and explicit extra files."""

    root: str
    ignored: Callable[[str], bool]  # a context-relative POSIX path
    files: Mapping[str, str]  # context path -> local path (dockerfile_commands' context_files)


def heredoc_file(name: str, content: str) -> str:
    """A local file holding a COPY heredoc's `content` (mode 644, as BuildKit makes it), kept
    for the life of the process: it is hashed when planned and copied when built."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"heredoc <<{name} cannot name a file: it must be a plain file name")
    body = content.encode()
    folder = os.path.join(_heredoc_dir(), hashlib.sha256(body).hexdigest()[:32])
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(body)
    os.chmod(path, 0o644)
    return path


@functools.cache
def _heredoc_dir() -> str:
    # imported here: every image definition imports this module, few Dockerfiles have heredocs
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="imagewright-heredocs-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def make_context(
    root: str, dockerfile: str | None, ignore: object, files: Mapping[str, str]
) -> Context:
    """The context at `root`; `ignore` is AUTO_DOCKERIGNORE, a pattern list or a predicate."""
    if ignore is AUTO_DOCKERIGNORE:
        candidates = [os.path.join(root, ".dockerignore")]
        if dockerfile:
            beside = os.path.join(os.path.dirname(dockerfile), ".dockerignore")
            candidates[:0] = [f"{dockerfile}.dockerignore", beside]
        found = next((c for c in candidates if _inside(root, c) and os.path.isfile(c)), None)
        matcher = FilePatternMatcher.from_file(found) if found else FilePatternMatcher()
        return Context(root, lambda rel: bool(rel) and matcher(Path(rel)), files)
    if callable(ignore):
        predicate = ignore
        return Context(root, lambda rel: bool(rel) and bool(predicate(Path(rel))), files)
    if not isinstance(ignore, (list, tuple)) or not all(isinstance(p, str) for p in ignore):
        raise TypeError("ignore must be AUTO_DOCKERIGNORE, a list of patterns or a callable")
    patterns = FilePatternMatcher(*ignore)
    return Context(root, lambda rel: bool(rel) and patterns(Path(rel)), files)


def context_ops(
    keyword: str,
    sources: list[str],
    dest: str,
    context: Context,
    options: CopyOptions,
) -> list[CopyLocal | Download]:
    """The copy ops for one COPY/ADD; raises ValueError with Docker-like messages."""
    chmod, owner, checksum = options.chmod, options.owner, options.checksum
    urls = [s for s in sources if keyword == "ADD" and "://" in s]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"ADD {url}: only http:// and https:// URLs can be fetched")
    if urls and options.unpack:
        raise ValueError("ADD --unpack=true of a URL is not supported yet (only local archives)")
    if checksum is not None and (not urls or len(urls) != len(sources)):
        raise ValueError("ADD --checksum works only with http:// or https:// sources")
    # (context-relative path, local path, the part of the path that --parents keeps)
    matches: list[tuple[str, str, str]] = []
    for source in sources:
        if source in urls:
            continue
        # with --parents, `a/./b/c` keeps only `b/c` (BuildKit's pivot); else the whole path
        pivot, _, _ = source.lstrip("/").rpartition("/./") if options.parents else ("", "", "")
        pivot = posixpath.normpath(pivot) if pivot else ""
        rel = posixpath.normpath(source.lstrip("/"))
        if rel == ".." or rel.startswith("../"):
            raise ValueError(f"{keyword} source {source!r} is outside the build context")
        rel = "" if rel == "." else rel
        if rel in context.files:
            matches.append((rel, context.files[rel], _kept(rel, pivot)))
            continue
        found = glob_paths(context.root, rel)
        kept = [m for m in found if not context.ignored(m)]
        if not kept:
            why = "excluded by .dockerignore" if found else "not found in the build context"
            raise ValueError(f"{keyword} source {source!r}: {why} ({context.root})")
        for match in kept:
            local = os.path.join(context.root, match)
            if not _inside(context.root, os.path.realpath(local)):
                raise ValueError(f"{keyword} source {match!r} links outside the build context")
            matches.append((match, local, _kept(match, pivot)))
    excluded = FilePatternMatcher(*options.exclude) if options.exclude else None
    if excluded is not None:  # a source is tested by its name, what is under it by its path
        matches = [m for m in matches if not excluded(Path(posixpath.basename(m[0])))]
    into_dir = options.parents or dest.endswith("/") or dest in (".", "..")
    if len(matches) + len(urls) > 1 and not into_dir:
        raise ValueError(
            f"When using {keyword} with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    ops: list[CopyLocal | Download] = []
    for url in urls:  # fetched when planned; the file is named after the URL's path
        name = posixpath.basename(urllib.parse.urlsplit(url).path)
        if into_dir and not name:
            raise ValueError(f"ADD {url}: the URL names no file; give the destination's file name")
        ops.append(
            Download(url, posixpath.join(dest, name) if into_dir else dest, checksum, chmod, owner)
        )
    for rel, local, below in matches:
        if os.path.isdir(local):
            ignore = _below(context.ignored, rel, excluded)
            target = posixpath.join(dest, below) if options.parents else dest
            ops.append(CopyLocal(local, target, ignore, True, chmod, owner=owner))
        elif keyword == "ADD" and is_archive(local) and options.unpack is not False:
            ops.append(CopyLocal(local, dest, chmod=chmod, extract=True, owner=owner))
        else:
            parent = posixpath.dirname(below) if options.parents else ""
            target = posixpath.join(dest, parent).rstrip("/") + "/" if into_dir else dest
            ops.append(CopyLocal(local, target, chmod=chmod, owner=owner))
    return ops


def _kept(rel: str, pivot: str) -> str:
    """What COPY --parents recreates of the context path `rel`: the part below `pivot`."""
    return posixpath.relpath(rel, pivot) if pivot else rel


def _below(
    ignored: Callable[[str], bool], rel: str, excluded: FilePatternMatcher | None
) -> Callable[[Path], bool]:
    # collect_dir asks about paths relative to the copied directory; .dockerignore's rules are
    # the context's, --exclude's are relative to the copied directory (as in BuildKit)
    if excluded is None:
        return lambda path: ignored(posixpath.join(rel, path.as_posix()))
    return lambda path: ignored(posixpath.join(rel, path.as_posix())) or excluded(path)


def _inside(root: str, path: str) -> bool:
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(path)]) == root

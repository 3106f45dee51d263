"""`.dockerignore`-style path matching, used to choose which local files an image copies."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath

from ..exception import InvalidValueError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = [
    "AUTO_DOCKERIGNORE",
    "NON_PYTHON_FILES",
    "FilePatternMatcher",
    "Pattern",
    "PatternPredicate",
]

PatternPredicate = Callable[[Path], bool]


class Pattern(NamedTuple):
    """One pattern of a matcher: as cleaned (no `!`, no leading or trailing `/`), compiled, and
    whether it re-includes (`!`)."""

    cleaned_pattern: str
    regex: re.Pattern[str]
    exclusion: bool

    def __str__(self) -> str:
        return self.cleaned_pattern


def _translate_class(pattern: str, i: int) -> tuple[str, int]:
    """Translate the class whose `[` precedes index `i`; return its regex and the index after it.

    Keeps `^` negation, `-` ranges and `\\` escapes; a `]` right after `[` or `[^` is literal.
    """
    out = ""
    if pattern.startswith("^", i):
        out, i = "^", i + 1
    first = i
    while i < len(pattern) and (pattern[i] != "]" or i == first):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += ch if ch == "-" else re.escape(ch)
        i += 1
    if i == len(pattern):
        raise InvalidValueError(f'Bad pattern: unclosed "[" in "{pattern}"')
    return f"[{out}]", i + 1


def _translate(pattern: str) -> str:
    """Translate one cleaned glob into a regular expression for `re.fullmatch`."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*" and pattern.startswith("*", i):
            i += 1
            if pattern.startswith("/", i):
                i += 1
            # A trailing `**` takes everything; elsewhere `**/` may also stand for no directory.
            out.append(".*" if i == n else "(?:.*/)?")
        elif ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            regex, i = _translate_class(pattern, i)
            out.append(regex)
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _compile(lines: Iterable[str]) -> list[Pattern]:
    patterns = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        exclusion = line.startswith("!")
        body = (line[1:] if exclusion else line).strip("/")
        if not body:
            if exclusion:
                raise InvalidValueError('Illegal exclusion pattern: "!"')
            continue
        cleaned = posixpath.normpath(body)
        patterns.append(Pattern(cleaned, re.compile(_translate(cleaned), re.DOTALL), exclusion))
    return patterns


class _Negated:
    """The complement of a matcher, so `~matcher` selects exactly what `matcher` ignores."""

    def __init__(self, matcher: FilePatternMatcher) -> None:
        self._matcher = matcher

    def __call__(self, path: Path | str) -> bool:
        return not self._matcher(path)


class FilePatternMatcher:
    """Matches relative paths against `.dockerignore` patterns.

    Patterns are evaluated in order and the last one that applies wins; a pattern starting with
    `!` re-includes what earlier patterns matched. A path is matched when a pattern matches it or
    any of its parent directories. `*` and `?` never cross `/`, while `**` spans any number of
    directories, including none.

    Args:
        *patterns: Glob patterns, one per argument.

    Raises:
        ValueError: If a pattern is a lone `!` or has an unclosed `[`.
    """

    def __init__(self, *patterns: str) -> None:
        self._patterns = _compile(patterns)
        self._pending_file: Path | None = None

    @classmethod
    def from_file(cls, file_path: Path | str) -> FilePatternMatcher:
        """Builds a matcher from a file holding one pattern per line.

        The file is read on first use, so it need not exist yet when the matcher is built.

        Args:
            file_path: The ignore file, e.g. a `.dockerignore`.

        Returns:
            A matcher for the file's patterns.
        """
        matcher = cls()
        matcher._pending_file = Path(file_path)
        return matcher

    @property
    def patterns(self) -> list[Pattern]:
        """The patterns, in order (read from the file now if the matcher came from one)."""
        return list(self._loaded())

    def _loaded(self) -> list[Pattern]:
        if self._pending_file is not None:
            self._patterns = _compile(self._pending_file.read_text().splitlines())
            self._pending_file = None
        return self._patterns

    def __call__(self, path: Path | str) -> bool:
        """Tells whether a path is matched, i.e. ignored.

        Args:
            path: A path relative to the directory being copied.

        Returns:
            True if the path or one of its parent directories is matched.
        """
        rel = posixpath.normpath(path.as_posix() if isinstance(path, PurePath) else path)
        if rel == ".":
            return False
        parts = rel.split("/")
        candidates = [rel, *("/".join(parts[:i]) for i in range(1, len(parts)))]
        matched = False
        for pattern in self._loaded():
            # An inclusion cannot change an already-matched path, nor an exclusion an unmatched one.
            if pattern.exclusion != matched:
                continue
            if any(pattern.regex.fullmatch(c) for c in candidates):
                matched = not pattern.exclusion
        return matched

    def __invert__(self) -> PatternPredicate:
        """Returns a predicate that is True exactly where this matcher is False."""
        return _Negated(self)

    def can_prune(self, dir_rel_path: Path | str) -> bool:
        """Tells whether a directory walker may skip everything under a directory.

        Args:
            dir_rel_path: A directory path relative to the directory being copied.

        Returns:
            True if the directory is matched and no `!` pattern could re-include its contents.
        """
        return self.can_prune_directories() and self(dir_rel_path)

    def can_prune_directories(self) -> bool:
        """Tells whether a directory walker may skip a matched directory's contents: true unless
        a `!` pattern could re-include something in it."""
        return not any(p.exclusion for p in self._loaded())


NON_PYTHON_FILES = ~FilePatternMatcher("**/*.py")


class _AutoDockerignore:
    def __repr__(self) -> str:
        return "AUTO_DOCKERIGNORE"


AUTO_DOCKERIGNORE = _AutoDockerignore()
"""Use the .dockerignore next to the Dockerfile, else the one in the context dir (Modal's rule)."""

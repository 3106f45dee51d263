"""Word-level lexing of one logical Dockerfile line: flags, words, JSON arrays, heredoc markers.

These follow BuildKit's Dockerfile parser, quirks included: flag words lose their quotes,
ENV/LABEL/ARG words keep theirs (quotes are removed only when a word is expanded), and a text
that does not parse as a JSON array is simply shell form.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import NamedTuple, NoReturn

__all__ = [
    "WHITESPACE",
    "Heredoc",
    "exec_form",
    "find_heredocs",
    "parse_words",
    "split_command",
    "suggest",
]

WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"(\d*)<<(-?)([^<]*)")


class Heredoc(NamedTuple):
    """An inline file: `<<EOF` ... `EOF`; `<<-EOF` has leading tabs stripped from `content`."""

    name: str
    content: str
    expand: bool  # False when the marker was quoted (`<<"EOF"`): no variable expansion
    chomp: bool
    fd: int | None = None  # `3<<EOF` feeds file descriptor 3


def suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """` (did you mean X?)` for a near miss, as Docker appends to unknown names, else ''."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def split_command(line: str, escape: str = "\\") -> tuple[str, list[str], str]:
    """Keyword, leading `--flag` words (quotes and escape characters removed) and the
    remaining argument text; `escape` is the escape directive's character."""
    parts = WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) == 1:
        return parts[0], [], ""
    flags, rest = _extract_flags(parts[1], escape)
    return parts[0], flags, rest.strip()


def _extract_flags(text: str, escape: str) -> tuple[list[str], str]:
    flags: list[str] = []
    i, end = 0, len(text)
    while True:
        while i < end and text[i].isspace():
            i += 1
        if not text.startswith("--", i):
            return flags, text[i:]
        word: list[str] = []
        quote, quoted = "", False
        while i < end and (quote or not text[i].isspace()):
            ch = text[i]
            i += 1
            if ch == quote:
                quote = ""
                continue
            if not quote and ch in "'\"":
                quote, quoted = ch, True
                continue
            if ch == escape:
                if i == end:
                    break  # a trailing escape character is dropped
                ch = text[i]
                i += 1
            word.append(ch)
        flag = "".join(word)
        if flag == "--":  # a bare `--` ends the flags, as in getopt
            return flags, text[i:]
        if flag or quoted:
            flags.append(flag)


def parse_words(text: str, escape: str) -> list[str]:
    """Split on unquoted whitespace; quotes and escapes stay in the words, as in Docker."""
    words: list[str] = []
    word: list[str] = []
    quote, quoted = "", False
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if not quote and ch.isspace():
            if word or quoted:
                words.append("".join(word))
            word, quoted = [], False
            continue
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote, quoted = ch, True
        elif ch == escape and quote != "'":
            if i == len(text):
                break  # an escape at the very end escapes nothing and is dropped
            word.append(ch)
            ch = text[i]
            i += 1
        word.append(ch)
    if word or quoted:
        words.append("".join(word))
    return words


def exec_form(text: str) -> tuple[str, ...] | None:
    """The JSON array of strings in `text`, or None when it is not JSON (so it is shell form)."""
    if not text.lstrip().startswith("["):
        return None
    try:
        # Go's decoder rejects NaN/Infinity, so they make the text "not JSON" here too
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return None
    if not all(isinstance(item, str) for item in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return tuple(value)


def _not_json(name: str) -> NoReturn:
    raise ValueError(name)


def find_heredocs(line: str) -> list[Heredoc]:
    """Heredoc markers among the line's shell words, in order, with empty content."""
    found = []
    for word in _raw_shell_words(line):
        match = _HEREDOC.fullmatch(word)
        if not match or not match[3]:
            continue
        name = _unquote(match[3])
        if not name:
            continue
        # any quoting in the marker (`<<"EOF"`, `<<'EOF'`) turns expansion off, as in the shell
        expand = _quote_count(match[3]) == _quote_count(name)
        fd = int(match[1]) if match[1] else None
        found.append(Heredoc(name, "", expand, match[2] == "-", fd))
    return found


def _quote_count(text: str) -> int:
    return text.count("'") + text.count('"')


def _raw_shell_words(line: str) -> list[str]:
    # Words as the shell sees them, quotes and backslashes kept, so `"<<EOF"` is not a marker
    words: list[str] = []
    word: list[str] = []
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        i += 1
        if not quote and ch.isspace():
            if word:
                words.append("".join(word))
            word = []
            continue
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        elif ch == "\\" and quote != "'" and i < len(line):
            word.append(ch)
            ch = line[i]
            i += 1
        word.append(ch)
    if word:
        words.append("".join(word))
    return words


def _unquote(text: str) -> str:
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        elif ch == "\\" and quote != "'" and i < len(text):
            if quote and text[i] not in '"$\\':
                out.append(ch)  # inside double quotes only ", $ and \ can be escaped
            out.append(text[i])
            i += 1
        else:
            out.append(ch)
    return "".join(out)

"""Per-instruction argument parsing: which flags each keyword takes and the shape of its args.

Works on one logical line that the parser has already joined and split, and knows nothing of
line numbers: problems are raised as ValueError, which the parser turns into a DockerfileError
carrying the location. Messages and rules follow BuildKit's Dockerfile frontend.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from .words import (
    WHITESPACE,
    Heredoc,
    exec_form,
    find_heredocs,
    parse_words,
    split_command,
    suggest,
)

__all__ = [
    "HEREDOC_KEYWORDS",
    "KEYWORDS",
    "Args",
    "Command",
    "CopyArgs",
    "Flags",
    "parse_instruction",
]

KEYWORDS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)  # fmt: skip
HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")

_STR, _BOOL, _MULTI = "string", "bool", "repeatable"
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": _STR},
    "RUN": {"mount": _MULTI, "network": _STR, "security": _STR, "device": _MULTI},
    "COPY": {
        **{name: _STR for name in ("from", "chown", "chmod")},
        **{"link": _BOOL, "parents": _BOOL, "exclude": _MULTI},
    },
    "ADD": {
        **{name: _STR for name in ("chown", "chmod", "checksum")},
        **{"link": _BOOL, "keep-git-dir": _BOOL, "exclude": _MULTI, "unpack": _BOOL},
    },
    "HEALTHCHECK": {
        name: _STR for name in ("interval", "timeout", "start-period", "start-interval", "retries")
    },
}
# Go's time.ParseDuration syntax, which Docker uses for HEALTHCHECK intervals
_DURATION = re.compile(r"(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|0")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*")
_RESERVED_STAGE_NAMES = ("context", "scratch")


class Command(NamedTuple):
    """RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK CMD: `argv` for the JSON form, else `shell`."""

    argv: tuple[str, ...] | None
    shell: str | None
    heredocs: tuple[Heredoc, ...] = ()


class CopyArgs(NamedTuple):
    """COPY/ADD: source paths, inline heredoc sources, and the destination (all unexpanded)."""

    sources: tuple[str, ...]
    dest: str
    heredocs: tuple[Heredoc, ...] = ()


Args = (
    str
    | tuple[str, ...]
    | tuple[tuple[str, str], ...]
    | tuple[tuple[str, str | None], ...]
    | Command
    | CopyArgs
    | None
)
Flags = dict[str, str | tuple[str, ...]]
# (keyword, rest of the line, its heredocs, escape character) -> the instruction's args
_ArgumentParser = Callable[[str, str, tuple[Heredoc, ...], str], Args]


def _parse_flags(keyword: str, words: list[str]) -> Flags:
    allowed = _FLAGS.get(keyword, {})
    flags: Flags = {}
    for word in words:
        name, has_value, value = word[2:].partition("=")
        kind = allowed.get(name)
        if kind is None:
            raise ValueError(f"unknown flag: {name}{suggest(name, list(allowed))}")
        if name in flags and kind != _MULTI:
            raise ValueError(f"duplicate flag specified: {name}")
        if kind == _BOOL:
            if has_value and not value:
                raise ValueError(f"missing a value on flag: {name}")
            if value.lower() not in ("", "true", "false"):
                raise ValueError(f"expecting boolean value for flag {name}, not: {value}")
            flags[name] = value.lower() or "true"
        elif not has_value:
            raise ValueError(f"missing a value on flag: {name}")
        elif kind == _MULTI:
            previous = flags.get(name, ())
            flags[name] = (*previous, value)
        else:
            flags[name] = value
    return flags


def parse_instruction(
    keyword: str, rest: str, flag_words: list[str], heredocs: tuple[Heredoc, ...], escape: str
) -> tuple[Args, Flags]:
    """Check flags and parse the arguments of one instruction (keyword already uppercase)."""
    if keyword == "HEALTHCHECK" and rest.upper() == "NONE" and flag_words:
        # Docker silently ignores options here, which hides a mistyped CMD
        raise ValueError("HEALTHCHECK NONE takes no options")
    flags = _parse_flags(keyword, flag_words)
    if keyword == "HEALTHCHECK":
        _check_healthcheck_flags(flags)
    return _ARGUMENT_PARSERS[keyword](keyword, rest, heredocs, escape), flags


def _check_healthcheck_flags(flags: Flags) -> None:
    for name, value in flags.items():
        if name == "retries":
            if not re.fullmatch(r"[0-9]+", str(value)):
                raise ValueError(f"--retries must be a non-negative integer, not {value!r}")
        elif not _DURATION.fullmatch(str(value)):
            raise ValueError(f"--{name} must be a duration like 30s or 1m30s, not {value!r}")


def _command(keyword: str, rest: str, heredocs: tuple[Heredoc, ...], escape: str) -> Command:
    if not rest:
        raise ValueError(f"{keyword} requires at least one argument")
    argv = exec_form(rest)
    if keyword == "SHELL" and argv is None:
        raise ValueError("SHELL requires the arguments to be in JSON form")
    if keyword == "SHELL" and not argv:
        raise ValueError("SHELL requires at least one argument")
    return Command(argv, None if argv is not None else rest, heredocs)


def _healthcheck(
    keyword: str, rest: str, heredocs: tuple[Heredoc, ...], escape: str
) -> Command | None:
    parts = WHITESPACE.split(rest, maxsplit=1)
    kind, command = parts[0], parts[1] if len(parts) > 1 else ""
    if not kind:
        raise ValueError("HEALTHCHECK requires at least one argument")
    if kind.upper() == "NONE":
        if command:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return None
    if kind.upper() != "CMD":
        raise ValueError(f'Unknown type "{kind.upper()}" in HEALTHCHECK (try CMD)')
    if not command or exec_form(command) == ():
        raise ValueError("Missing command after HEALTHCHECK CMD")
    return _command("HEALTHCHECK CMD", command, (), escape)


def _copy(keyword: str, rest: str, heredocs: tuple[Heredoc, ...], escape: str) -> CopyArgs:
    argv = exec_form(rest)
    words = argv if argv is not None else tuple(WHITESPACE.split(rest)) if rest else ()
    if len(words) < 2:
        raise ValueError(
            f"{keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined."
        )
    if find_heredocs(words[-1]):
        raise ValueError(f"{keyword} cannot accept a heredoc as a destination")
    if argv is not None:  # the JSON form reads no heredoc bodies, so `<<X` is just a path
        return CopyArgs(words[:-1], words[-1])
    by_name = {doc.name: doc for doc in heredocs}
    inline = tuple(by_name[doc.name] for word in words[:-1] for doc in find_heredocs(word))
    paths = tuple(word for word in words[:-1] if not find_heredocs(word))
    return CopyArgs(paths, words[-1], inline)


def _words(keyword: str, rest: str, heredocs: tuple[Heredoc, ...], escape: str) -> tuple[str, ...]:
    argv = exec_form(rest) if keyword == "VOLUME" else None
    words = argv if argv is not None else tuple(WHITESPACE.split(rest)) if rest else ()
    if not words:
        raise ValueError(f"{keyword} requires at least one argument")
    if any(not word.strip() for word in words):
        raise ValueError(f"{keyword} specified can not be an empty string")
    return words


def _key_values(
    keyword: str, rest: str, heredocs: tuple[Heredoc, ...], escape: str
) -> tuple[tuple[str, str], ...]:
    words = parse_words(rest, escape)
    if not words:
        raise ValueError(f"{keyword} requires at least one argument")
    pairs: tuple[tuple[str, str], ...]
    if "=" not in words[0]:
        # legacy `ENV NAME value with spaces`: the whole rest of the line is the value
        legacy = WHITESPACE.split(rest, maxsplit=1)
        if len(legacy) < 2:
            raise ValueError(f"{keyword} must have two arguments")
        pairs = ((legacy[0], legacy[1]),)
    else:
        for word in words:
            if "=" not in word:
                raise ValueError(f"Syntax error - can't find = in {word!r}. Must be name=value")
        pairs = tuple((name, value) for name, _, value in (w.partition("=") for w in words))
    if any(not name for name, _ in pairs):
        raise ValueError(f"{keyword} names can not be blank")
    return pairs


def _arg(
    keyword: str, rest: str, heredocs: tuple[Heredoc, ...], escape: str
) -> tuple[tuple[str, str | None], ...]:
    words = parse_words(rest, escape)
    if not words:
        raise ValueError("ARG requires at least one argument")
    pairs = tuple((w.partition("=")[0], w.partition("=")[2] if "=" in w else None) for w in words)
    if any(not name for name, _ in pairs):
        raise ValueError("ARG names can not be blank")
    return pairs


def _single(keyword: str, rest: str, heredocs: tuple[Heredoc, ...], escape: str) -> str:
    if not rest:
        raise ValueError(f"{keyword} requires exactly one argument")
    return rest


def _from(keyword: str, rest: str, heredocs: tuple[Heredoc, ...], escape: str) -> tuple[str, ...]:
    words = tuple(WHITESPACE.split(rest)) if rest else ()
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not _STAGE_NAME.fullmatch(name):
            raise ValueError(
                f"invalid name for build stage: {words[2]!r}, "
                "name can't start with a number or contain symbols"
            )
        if name in _RESERVED_STAGE_NAMES:
            raise ValueError(f"stage name {name!r} is reserved")
        return (words[0], name)
    if len(words) != 1:
        raise ValueError("FROM requires either one or three arguments: FROM image [AS name]")
    return words


def _onbuild(keyword: str, rest: str, heredocs: tuple[Heredoc, ...], escape: str) -> str:
    trigger = split_command(rest)[0].upper() if rest else ""
    if not trigger:
        raise ValueError("ONBUILD requires at least one argument")
    if trigger == "ONBUILD":
        raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise ValueError(f"{trigger} isn't allowed as an ONBUILD trigger")
    if trigger not in KEYWORDS:
        raise ValueError(f"unknown instruction: {trigger}{suggest(trigger, KEYWORDS)}")
    # kept as text, with heredoc bodies re-attached, so it can be parsed again when triggered
    return rest + "".join(f"\n{doc.content}{doc.name}" for doc in heredocs)


_ARGUMENT_PARSERS: dict[str, _ArgumentParser] = {
    "ADD": _copy,
    "ARG": _arg,
    "CMD": _command,
    "COPY": _copy,
    "ENTRYPOINT": _command,
    "ENV": _key_values,
    "EXPOSE": _words,
    "FROM": _from,
    "HEALTHCHECK": _healthcheck,
    "LABEL": _key_values,
    "MAINTAINER": _single,
    "ONBUILD": _onbuild,
    "RUN": _command,
    "SHELL": _command,
    "STOPSIGNAL": _single,
    "USER": _single,
    "VOLUME": _words,
    "WORKDIR": _single,
}

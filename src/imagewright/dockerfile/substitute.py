"""Docker's variable substitution and ARG/ENV scoping, for the words of a parsed Dockerfile.

`expand` is Docker's shell-word processing, applied to the arguments of ENV, ARG, LABEL, COPY,
ADD, WORKDIR, USER, VOLUME, STOPSIGNAL, FROM and ONBUILD (never to RUN/CMD/ENTRYPOINT
shell text, which the shell expands): `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`,
`${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`, quote removal, and the escape
character; and, as in BuildKit's Dockerfile frontend 1.7 and later, `${VAR#pat}`,
`${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`, `${VAR/pat/repl}` and `${VAR//pat/repl}` with
shell glob patterns. `expand_words` also splits the result where an unquoted variable brought
in whitespace, as BuildKit does for EXPOSE only. `resolve_args` works out which variables each
instruction sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import NamedTuple, cast

from ..exception import InvalidError
from .parser import Dockerfile, DockerfileError, Instruction

__all__ = ["ResolvedStage", "expand", "expand_heredoc", "expand_words", "resolve_args"]

# one-character shell parameters ($?, $#, …): never set in a build, so they expand to ""
_SPECIAL = "*#@!?-$"
_FIELD_SEPARATORS = re.compile(r"[ \t\n]+")


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """`word` with variables substituted from `env` and quotes removed; unset variables are ''.

    Raises InvalidError for a malformed substitution or a `${VAR?msg}` whose VAR is unset.
    """
    return _Word(word, env, escape).until("")


def expand_words(word: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """`expand`, then split where an unquoted variable's value has whitespace (BuildKit's
    ProcessWords): `EXPOSE $PORTS` with PORTS="80 443" is two ports, `"$PORTS"` one word."""
    words: list[str] = []
    current: list[str] = []
    started = False  # a quoted empty string ("") is a word too
    for text, splits in _Word(word, env, escape).pieces(""):
        if not splits:
            current.append(text)
            started = True
            continue
        for index, part in enumerate(_FIELD_SEPARATORS.split(text)):
            if index and started:
                words.append("".join(current))
                current, started = [], False
            if part:
                current.append(part)
                started = True
    if started:
        words.append("".join(current))
    return words


def expand_heredoc(text: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """A heredoc body with variables substituted as a shell does it: quotes stay as they are,
    and the escape character makes only `$` and itself literal."""
    return _Word(text, env, escape, quotes=False).until("")


class _Word:
    """A cursor over one word; each method consumes the construct under the cursor."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str, quotes: bool = True):
        self.text = text
        self.env = env
        self.escape = escape
        self.quotes = quotes  # False for heredoc bodies, where quotes are plain text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self) -> str:
        ch = self.peek()
        self.at += len(ch)
        return ch

    def until(self, stop: str) -> str:
        """Process up to `stop` (consumed), or to the end of the word when `stop` is ''."""
        return "".join(text for text, _ in self.pieces(stop))

    def pieces(self, stop: str, stops: str = "") -> Iterator[tuple[str, bool]]:
        """The processed text up to `stop` (consumed) or any of `stops` (not consumed), piece
        by piece: (text, True) for an unquoted variable's value, whose whitespace splits
        words and whose glob characters match; (text, False) for anything quoted or escaped;
        and (char, True) for a plain unquoted character."""
        while ch := self.peek():
            if stop and ch == stop:
                self.at += 1
                return
            if ch in stops:
                return
            if ch == "'" and self.quotes:
                yield self.single_quoted(), False
            elif ch == '"' and self.quotes:
                yield self.double_quoted(), False
            elif ch == "$":
                yield self.dollar(), True
            elif not self.quotes:
                self.take()
                escaped = ch == self.escape and self.peek() in ("$", self.escape)
                yield (self.take(), False) if escaped else (ch, True)
            elif ch == self.escape:
                # the escape character makes the next one literal; at the end it is dropped
                self.take()
                yield self.take(), False
            else:
                yield self.take(), True
        if stop:
            raise InvalidError(f"syntax error: missing {stop!r} in {self.text!r}")

    def single_quoted(self) -> str:
        self.take()
        end = self.text.find("'", self.at)
        if end < 0:
            raise InvalidError(f"unterminated single quote in {self.text!r}")
        literal, self.at = self.text[self.at : end], end + 1
        return literal

    def double_quoted(self) -> str:
        self.take()
        out: list[str] = []
        while (ch := self.peek()) != '"':
            if not ch:
                raise InvalidError(f"unterminated double quote in {self.text!r}")
            if ch == "$":
                out.append(self.dollar())
                continue
            self.take()
            # inside double quotes only ", $ and the escape character itself can be escaped
            if ch == self.escape and self.peek() in ('"', "$", self.escape):
                ch = self.take()
            out.append(ch)
        self.take()
        return "".join(out)

    def dollar(self) -> str:
        self.take()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.take()
        if self.peek() in ("", "{", "}", ":"):
            raise InvalidError(f"syntax error: bad substitution in {self.text!r}")
        name = self.name()
        operator = self.take()
        if not operator:
            raise InvalidError(f"syntax error: missing '}}' in {self.text!r}")
        if operator == "}":
            return self.env.get(name, "")
        colon = operator == ":"
        if colon:
            operator = self.take()
        if operator in ("#", "%", "/") and not colon:
            return self.trim_or_replace(name, operator)
        if operator not in ("-", "+", "?"):
            raise InvalidError(f"unsupported modifier ({operator}) in substitution {self.text!r}")
        word = self.until("}")
        value = self.env.get(name)
        # with a colon an empty value counts as unset, as in the POSIX shell
        present = value is not None and (value != "" or not colon)
        if operator == "-":
            return value if present and value is not None else word
        if operator == "+":
            return word if present else ""
        if not present:
            default = "is not allowed to be empty" if colon else "is not allowed to be unset"
            raise InvalidError(f"{name}: {word or default}")
        return value or ""

    def trim_or_replace(self, name: str, operator: str) -> str:
        """`${VAR#pat}` and `${VAR##pat}` remove the shortest/longest prefix that `pat`
        matches, `%` and `%%` the suffix; `${VAR/pat/repl}` replaces the first longest match,
        `//` every one. An unset VAR counts as empty, as in the shell."""
        doubled = self.peek() == operator
        if doubled:
            self.take()
        value = self.env.get(name, "")
        pattern = self.pattern("}" if operator != "/" else "/}")
        if operator == "#":
            end = _match_at(pattern, value, 0, longest=doubled)
            return value if end is None else value[end:]
        if operator == "%":
            starts = range(len(value) + 1) if doubled else range(len(value), -1, -1)
            start = next((i for i in starts if pattern.fullmatch(value, i)), None)
            return value if start is None else value[:start]
        replacement = self.until("}") if self.text[self.at - 1] == "/" else ""
        if not pattern.pattern:
            return value  # an empty pattern matches nothing, as in bash
        out: list[str] = []
        at = 0
        while at <= len(value):
            start = next(
                (i for i in range(at, len(value) + 1) if _match_at(pattern, value, i) is not None),
                None,
            )
            if start is None:
                break
            end = cast(int, _match_at(pattern, value, start))
            out.append(value[at:start] + replacement)
            if end == start:  # an empty match: step over one character
                out.append(value[start : start + 1])
                end += 1
            at = end
            if not doubled:
                break
        out.append(value[at:])
        return "".join(out)

    def pattern(self, stops: str) -> re.Pattern[str]:
        """The shell glob up to the first of `stops` (consumed) as a regex; `*`, `?` and
        `[...]` match only where unquoted and unescaped, as in the shell."""
        chars = [(ch, active) for text, active in self.pieces("", stops) for ch in text]
        if not self.take():
            raise InvalidError(f"syntax error: missing '}}' in {self.text!r}")
        return re.compile(_glob_regex(chars), re.DOTALL)

    def name(self) -> str:
        start = self.at
        first = self.peek()
        if first.isdigit():  # positional: $1, $10
            while self.peek().isdigit():
                self.take()
        elif first and first in _SPECIAL:
            self.take()
        else:
            while (ch := self.peek()) and (ch.isalnum() or ch == "_"):
                self.take()
        return self.text[start : self.at]


def _match_at(
    pattern: re.Pattern[str], value: str, start: int, *, longest: bool = True
) -> int | None:
    """The end of the longest (or shortest) match of `pattern` starting at `start`, or None."""
    ends = range(len(value), start - 1, -1) if longest else range(start, len(value) + 1)
    return next((end for end in ends if pattern.fullmatch(value, start, end)), None)


def _glob_regex(chars: list[tuple[str, bool]]) -> str:
    # (character, whether it may be a glob character) -> regex; a `[` with no closing `]`
    # is a literal, as in the shell
    out: list[str] = []
    i = 0
    while i < len(chars):
        ch, active = chars[i]
        i += 1
        if active and ch == "*":
            out.append(".*")
        elif active and ch == "?":
            out.append(".")
        elif active and ch == "[":
            end = i + (1 if i < len(chars) and chars[i][0] in "!^" else 0)
            end += 1 if end < len(chars) and chars[end][0] == "]" else 0  # `[]a]` holds `]`
            while end < len(chars) and chars[end] != ("]", True):
                end += 1
            if end == len(chars):
                out.append(re.escape(ch))
                continue
            body = chars[i:end]
            negate = bool(body) and body[0][0] in "!^" and body[0][1]
            members = "".join(c if (c == "-" and act) else re.escape(c) for c, act in body[negate:])
            out.append(f"[{'^' if negate else ''}{members}]")
            i = end + 1
        else:
            out.append(re.escape(ch))
    return "".join(out)


class ResolvedStage(NamedTuple):
    """A stage after ARG scoping: FROM expanded with global ARGs, and each instruction's scope.

    `scopes[i]` holds the variables that `stage.instructions[i]` sees: ARGs declared so far in
    the stage overlaid by ENVs set so far (ENV wins). The base image's own ENV is not known here.
    """

    name: str | None
    base: str
    platform: str | None
    scopes: tuple[dict[str, str], ...]


def resolve_args(
    dockerfile: Dockerfile, build_args: Mapping[str, str]
) -> tuple[ResolvedStage, ...]:
    """Apply Docker's ARG rules to every stage.

    Build args override declared defaults (and are ignored where no ARG declares them); ARGs
    before the first FROM are visible in FROM lines, and inside a stage only once re-declared
    there (`ARG NAME` inherits their value); ENV wins over an ARG of the same name.
    """
    escape = dockerfile.escape
    global_values: dict[str, str] = {}
    for instruction in dockerfile.global_args:
        _declare(instruction, global_values, global_values, {}, build_args, escape)
    resolved = []
    for stage in dockerfile.stages:
        where = (dockerfile.filename, stage.line)
        base = _expand_at(stage.base, global_values, escape, where)
        platform = stage.platform and _expand_at(stage.platform, global_values, escape, where)
        args: dict[str, str] = {}
        env: dict[str, str] = {}
        scopes = []
        for instruction in stage.instructions:
            scope = {**args, **env}
            scopes.append(scope)
            if instruction.keyword == "ARG":
                _declare(instruction, args, scope, global_values, build_args, escape)
            elif instruction.keyword == "ENV":
                here = (instruction.filename, instruction.line)
                pairs = cast(tuple[tuple[str, str], ...], instruction.args)
                # every pair sees the scope from before the instruction, as in Docker
                env.update(
                    (_expand_at(key, scope, escape, here), _expand_at(value, scope, escape, here))
                    for key, value in pairs
                )
        resolved.append(ResolvedStage(stage.name, base, platform, tuple(scopes)))
    return tuple(resolved)


def _declare(
    instruction: Instruction,
    values: dict[str, str],
    scope: Mapping[str, str],
    inherited: Mapping[str, str],
    build_args: Mapping[str, str],
    escape: str,
) -> None:
    # a build arg, else the declared default, else (inside a stage) the global ARG's value;
    # an ARG with none of these stays unset
    here = (instruction.filename, instruction.line)
    for key, default in cast(tuple[tuple[str, "str | None"], ...], instruction.args):
        name = _expand_at(key, scope, escape, here)
        if name in build_args:
            values[name] = build_args[name]
        elif default is not None:
            values[name] = _expand_at(default, scope, escape, here)
        elif name in inherited:
            values[name] = inherited[name]


def _expand_at(word: str, scope: Mapping[str, str], escape: str, where: tuple[str, int]) -> str:
    try:
        return expand(word, scope, escape=escape)
    except InvalidError as error:
        raise DockerfileError(*where, str(error)) from None

"""Dockerfile parser: text in, immutable stages and instructions out, with Docker's syntax rules.

Pure: it reads only the given text. Physical lines are joined into logical ones the way
BuildKit does (parser directives at the very top, `#` comments anywhere including inside a
continuation, empty continuation lines skipped, a continuation at end of file accepted, a line
ending in an escaped escape character not continued), heredoc
bodies are read after the line that names them, and each instruction is checked and split into
its arguments. Nothing is expanded here; see `substitute` for Docker's variable rules.
"""

from __future__ import annotations

import re
from typing import NamedTuple, cast

from ..exception import InvalidError
from .instructions import HEREDOC_KEYWORDS, KEYWORDS, Args, Flags, parse_instruction
from .words import Heredoc, exec_form, find_heredocs, split_command, suggest

__all__ = ["Dockerfile", "DockerfileError", "Instruction", "Stage", "parse"]

_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_BOM = "\ufeff"


class DockerfileError(InvalidError):
    """A Dockerfile that Docker would reject; the message starts with `filename:line:`."""

    def __init__(self, filename: str, line: int, problem: str):
        super().__init__(f"{filename}:{line}: {problem}")
        self.filename = filename
        self.line = line
        self.problem = problem


class Instruction(NamedTuple):
    """One instruction; `args` is shaped per keyword, flags are keyed without the `--`.

    Shapes: RUN/CMD/ENTRYPOINT/SHELL -> Command; HEALTHCHECK -> Command, or None for NONE;
    COPY/ADD -> CopyArgs; ENV/LABEL -> ((name, value), ...); ARG -> ((name, default|None), ...);
    EXPOSE/VOLUME -> (word, ...); WORKDIR/USER/STOPSIGNAL/MAINTAINER/ONBUILD -> str.
    Values are as written (quotes included); repeatable flags (`mount`, `exclude`, `device`)
    are tuples, and boolean flags are "true"/"false".
    """

    keyword: str
    args: Args
    flags: Flags
    original: str
    line: int
    filename: str


class Stage(NamedTuple):
    """A build stage: its FROM line and the instructions up to the next FROM."""

    name: str | None
    base: str
    platform: str | None
    instructions: tuple[Instruction, ...]
    line: int


class Dockerfile(NamedTuple):
    """A parsed Dockerfile: parser directives, ARGs before the first FROM, and the stages."""

    directives: dict[str, str]
    stages: tuple[Stage, ...]
    global_args: tuple[Instruction, ...]
    filename: str = "Dockerfile"

    @property
    def escape(self) -> str:
        return self.directives.get("escape", "\\")


class _Lines:
    """Physical lines with a cursor, so heredoc bodies can be read after their instruction."""

    def __init__(self, text: str, escape: str):
        self.lines = text.split("\n")
        if self.lines[-1] == "":
            self.lines.pop()  # the final newline ends a line, it does not start one
        self.next = 0
        # an odd number of escape characters at the end: `\\` is an escaped backslash, which
        # ends the line rather than continuing it
        e = re.escape(escape)
        self.continuation = re.compile(rf"(?<!{e})((?:{e}{e})*){e}[ \t]*$")

    def logical(self) -> tuple[int, str] | None:
        """The next instruction's 1-based start line and joined text, or None at the end."""
        while self.next < len(self.lines):
            start = self.next + 1
            first = self.lines[self.next].lstrip()
            self.next += 1
            if first.startswith("#"):
                continue
            text, more = self._join(first)
            if not more and not text:
                continue
            # a continuation at end of file just ends the instruction, as in Docker
            while more and self.next < len(self.lines):
                line = self.lines[self.next]
                self.next += 1
                # comments and blank lines inside a continuation are skipped, as Docker does
                if line.lstrip().startswith("#") or not line.strip():
                    continue
                piece, more = self._join(line)
                text += piece
            if text.strip():
                return start, text
        return None

    def _join(self, line: str) -> tuple[str, bool]:
        # (the line without its continuation character, whether the next line continues it)
        match = self.continuation.search(line)
        if match is None:
            return line, False
        return line[: match.start()] + match[1], True

    def heredoc(self, doc: Heredoc) -> Heredoc | None:
        """`doc` with its body read up to the terminator line, or None if there is none."""
        body: list[str] = []
        while self.next < len(self.lines):
            line = self.lines[self.next]
            self.next += 1
            if (line.lstrip("\t") if doc.chomp else line) == doc.name:
                content = "".join(body)
                if doc.chomp:
                    content = re.sub(r"(?m)^\t+", "", content)
                return doc._replace(content=content)
            body.append(line + "\n")
        return None


def parse(text: str, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile text; raises DockerfileError at the first problem, as Docker does."""
    text = text.removeprefix(_BOM).replace("\r\n", "\n")
    directives = _directives(text, filename)
    escape = directives.get("escape", "\\")
    lines = _Lines(text, escape)
    global_args: list[Instruction] = []
    stages: list[tuple[Stage, list[Instruction]]] = []
    while (logical := lines.logical()) is not None:
        number, line = logical
        instruction = _instruction(lines, number, line, escape, filename)
        if instruction.keyword == "FROM":
            stages.append((_stage(instruction, stages), []))
        elif stages:
            stages[-1][1].append(instruction)
        elif instruction.keyword == "ARG":
            global_args.append(instruction)
        else:
            raise DockerfileError(
                filename,
                number,
                f"{instruction.keyword} before the first FROM: only ARG may come"
                " before FROM (no build stage in current context)",
            )
    if not stages:
        problem = "no FROM: a Dockerfile needs at least one build stage"
        raise DockerfileError(filename, 1, problem if global_args else "file with no instructions")
    return Dockerfile(
        directives,
        tuple(stage._replace(instructions=tuple(body)) for stage, body in stages),
        tuple(global_args),
        filename,
    )


def _directives(text: str, filename: str) -> dict[str, str]:
    # Directives are comment lines at the very top; the first other line (or unknown
    # directive, which is then just a comment) ends them.
    found: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        match = _DIRECTIVE.fullmatch(line.lstrip())
        if match is None:
            break
        key = match[1].lower()
        if key not in _KNOWN_DIRECTIVES:
            break
        if key in found:
            raise DockerfileError(filename, number, f"only one {key} parser directive can be used")
        if key == "escape" and match[2] not in ("\\", "`"):
            problem = f"invalid escape token {match[2]!r} does not match ` or \\"
            raise DockerfileError(filename, number, problem)
        found[key] = match[2]
    return found


def _instruction(lines: _Lines, number: int, line: str, escape: str, filename: str) -> Instruction:
    word, flag_words, rest = split_command(line, escape)
    keyword = word.upper()
    if keyword not in KEYWORDS:
        problem = f"unknown instruction: {word}{suggest(keyword, KEYWORDS)}"
        raise DockerfileError(filename, number, problem)
    heredocs: list[Heredoc] = []
    if _may_have_heredocs(keyword, rest):
        for marker in find_heredocs(line):
            doc = lines.heredoc(marker)
            if doc is None:
                raise DockerfileError(filename, number, f"unterminated heredoc {marker.name}")
            heredocs.append(doc)
    try:
        args, flags = parse_instruction(keyword, rest, flag_words, tuple(heredocs), escape)
    except ValueError as error:
        # most of Docker's messages name the instruction already; name it for the others
        problem = str(error) if str(error).startswith(keyword) else f"{keyword}: {error}"
        raise DockerfileError(filename, number, problem) from None
    return Instruction(keyword, args, flags, line, number, filename)


def _may_have_heredocs(keyword: str, rest: str) -> bool:
    if keyword == "ONBUILD":  # the trigger instruction decides
        keyword, _, rest = split_command(rest)
        keyword = keyword.upper()
    if keyword not in HEREDOC_KEYWORDS or "<<" not in rest:
        return False
    try:
        return exec_form(rest) is None  # the JSON form takes no heredocs
    except ValueError:
        return False  # a non-string JSON array: parse_instruction reports it


def _stage(instruction: Instruction, stages: list[tuple[Stage, list[Instruction]]]) -> Stage:
    base, *alias = cast(tuple[str, ...], instruction.args)
    name = alias[0] if alias else None
    if name is not None and any(stage.name == name for stage, _ in stages):
        problem = f"FROM: duplicate stage name {name!r}"
        raise DockerfileError(instruction.filename, instruction.line, problem)
    platform = cast("str | None", instruction.flags.get("platform"))
    return Stage(name, base, platform, (), instruction.line)

"""Dockerfile fidelity (issue 12): BuildKit's parameter expansion, word splitting, continuation
lines, the escape directive in flags, and the newer COPY/ADD flags, from Docker's reference."""

from __future__ import annotations

import pytest

from imagewright.dockerfile.parser import DockerfileError, parse
from imagewright.dockerfile.substitute import expand, expand_words, resolve_args
from imagewright.exception import InvalidError

ENV = {
    "VERSION": "v1.2.3",
    "PKG": "/usr/local/lib/python3.11/site-packages",
    "FILE": "archive.tar.gz",
    "DOTS": "a.b.c",
    "STAR": "*",
    "EMPTY": "",
    "PORTS": "80 443",
}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        # `#`/`##`: shortest/longest prefix; `%`/`%%`: shortest/longest suffix
        ("${VERSION#v}", "1.2.3"),
        ("${VERSION#x}", "v1.2.3"),
        ("${PKG#*/}", "usr/local/lib/python3.11/site-packages"),
        ("${PKG##*/}", "site-packages"),
        ("${PKG%/*}", "/usr/local/lib/python3.11"),
        ("${PKG%%/*}", ""),
        ("${FILE%.*}", "archive.tar"),
        ("${FILE%%.*}", "archive"),
        ("${FILE#*.}", "tar.gz"),
        ("${FILE##*.}", "gz"),
        # `/` replaces the first (longest) match, `//` every one; no replacement deletes
        ("${DOTS/./-}", "a-b.c"),
        ("${DOTS//./-}", "a-b-c"),
        ("${DOTS//.}", "abc"),
        ("${DOTS/.*/!}", "a!"),
        ("${VERSION//[0-9]/N}", "vN.N.N"),
        ("${VERSION//[!0-9]/_}", "_1_2_3"),
        ("${DOTS//[a-b]/X}", "X.X.c"),
        ("${DOTS/?/Z}", "Z.b.c"),
        ("${DOTS//}", "a.b.c"),
        # glob characters that are escaped or quoted match themselves
        ("${STAR#\\*}", ""),
        ('${DOTS#"*"}', "a.b.c"),
        ("${DOTS#'a.'}", "b.c"),
        # patterns and replacements may use variables; an unquoted `*` from one is a glob
        ("${DOTS#$STAR.}", "b.c"),
        ("${DOTS/b/$VERSION}", "a.v1.2.3.c"),
        # an unset (or empty) variable is empty, whatever the pattern
        ("${UNSET#v}", ""),
        ("${UNSET//a/b}", ""),
        ("${EMPTY%x}", ""),
        ("prefix-${VERSION#v}-suffix", "prefix-1.2.3-suffix"),
    ],
)
def test_pattern_expansion(word: str, expected: str) -> None:
    assert expand(word, ENV) == expected


def test_pattern_expansion_with_backtick_escape() -> None:
    assert expand("${STAR#`*}", ENV, escape="`") == ""
    assert expand("${DOTS/`./-}", ENV, escape="`") == "a-b.c"


@pytest.mark.parametrize("word", ["${VERSION#v", "${DOTS/a/b", "${DOTS/a", "${VERSION:#v}"])
def test_pattern_expansion_errors(word: str) -> None:
    with pytest.raises(InvalidError):
        expand(word, ENV)


def test_arg_default_trims_a_version_prefix() -> None:
    dockerfile = parse("FROM a\nARG VERSION=v2.0.1\nENV V=${VERSION#v}\nLABEL x=1\n")
    (stage,) = resolve_args(dockerfile, {})
    assert stage.scopes[-1]["V"] == "2.0.1"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$PORTS", ["80", "443"]),
        ("${PORTS}/tcp", ["80", "443/tcp"]),
        ('"$PORTS"', ["80 443"]),
        ("8080", ["8080"]),
        ("$UNSET", []),
        ("x${EMPTY}", ["x"]),
    ],
)
def test_expand_words_splits_unquoted_variables(word: str, expected: list[str]) -> None:
    assert expand_words(word, ENV) == expected


# -- continuation lines --------------------------------------------------------------------------


def test_escaped_backslash_at_end_of_line_is_no_continuation() -> None:
    parsed = parse("FROM a\nRUN echo a \\\\\nRUN echo b\n")
    runs = parsed.stages[0].instructions
    assert [i.line for i in runs] == [2, 3]
    assert runs[0].original == "RUN echo a \\\\"


def test_odd_number_of_backslashes_continues() -> None:
    (run,) = parse("FROM a\nRUN echo a \\\\\\\n b\n").stages[0].instructions
    assert run.original == "RUN echo a \\\\ b"


def test_escaped_backtick_at_end_of_line_is_no_continuation() -> None:
    parsed = parse("# escape=`\nFROM a\nRUN echo ``\nRUN echo `\n  b\n")
    assert [i.original for i in parsed.stages[0].instructions] == [
        "RUN echo ``",
        "RUN echo   b",
    ]


# -- the escape directive in flags ---------------------------------------------------------------


def test_escape_directive_applies_in_flags() -> None:
    (copy,) = parse("# escape=`\nFROM a\nCOPY --chown=ap`p:st`aff src dst\n").stages[0].instructions
    assert copy.flags["chown"] == "app:staff"
    # with a backtick escape a backslash is an ordinary character, as in Windows paths
    (copy,) = parse("# escape=`\nFROM a\nCOPY --chown=DOM\\user a b\n").stages[0].instructions
    assert copy.flags["chown"] == "DOM\\user"


# -- newer flags ---------------------------------------------------------------------------------


def test_add_unpack_flag() -> None:
    (add,) = parse("FROM a\nADD --unpack=false a.tar /x/\n").stages[0].instructions
    assert add.flags == {"unpack": "false"}
    (add,) = parse("FROM a\nADD --unpack a.tar /x/\n").stages[0].instructions
    assert add.flags == {"unpack": "true"}
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: COPY: unknown flag: unpack"):
        parse("FROM a\nCOPY --unpack a.tar /x/\n")

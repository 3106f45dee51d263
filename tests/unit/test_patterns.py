"""Tests for `.dockerignore`-style matching in `imagewright.definition.patterns`."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from imagewright.definition.patterns import NON_PYTHON_FILES, FilePatternMatcher


def test_star_and_question_mark_do_not_cross_slash() -> None:
    star = FilePatternMatcher("*.txt")
    assert star("a.txt")
    assert not star("d/a.txt")
    question = FilePatternMatcher("a?c")
    assert question("abc")
    assert not question("ac")
    assert not question("a/c")


def test_double_star_spans_any_number_of_directories() -> None:
    matcher = FilePatternMatcher("**/*.py")
    assert matcher("a.py")
    assert matcher("x/a.py")
    assert matcher("x/y/a.py")
    assert not matcher("a.pyc")


def test_double_star_in_the_middle_may_stand_for_no_directory() -> None:
    matcher = FilePatternMatcher("a/**/b")
    assert matcher("a/b")
    assert matcher("a/x/y/b")
    assert not matcher("ab")


def test_trailing_double_star_matches_contents_but_not_the_directory() -> None:
    matcher = FilePatternMatcher("d/**")
    assert matcher("d/a")
    assert matcher("d/a/b")
    assert not matcher("d")
    assert not matcher("e/a")


def test_character_classes() -> None:
    listed = FilePatternMatcher("[ab].txt")
    assert listed("a.txt")
    assert listed("b.txt")
    assert not listed("c.txt")
    ranged = FilePatternMatcher("file[0-9]")
    assert ranged("file7")
    assert not ranged("filex")
    negated = FilePatternMatcher("[^a].txt")
    assert negated("b.txt")
    assert not negated("a.txt")


def test_bracket_right_after_opening_is_literal() -> None:
    matcher = FilePatternMatcher("[]a]")
    assert matcher("]")
    assert matcher("a")
    assert not matcher("b")


def test_unclosed_class_is_rejected() -> None:
    with pytest.raises(ValueError, match="Bad pattern"):
        FilePatternMatcher("[ab")


def test_backslash_escapes_special_characters() -> None:
    star = FilePatternMatcher(r"a\*b")
    assert star("a*b")
    assert not star("axb")
    question = FilePatternMatcher(r"what\?")
    assert question("what?")
    assert not question("whatx")
    bracket = FilePatternMatcher(r"\[x]")
    assert bracket("[x]")
    assert not bracket("x")


def test_regex_metacharacters_are_literal() -> None:
    matcher = FilePatternMatcher("a.b+(c)")
    assert matcher("a.b+(c)")
    assert not matcher("axbb(c)")


def test_pattern_matching_a_parent_directory_matches_the_path() -> None:
    data = FilePatternMatcher("data")
    assert data("data")
    assert data("data/x/y")
    assert not data("other/data")
    assert not data("database")
    children = FilePatternMatcher("d/*")
    assert children("d/a/b")
    assert not children("d")


def test_leading_and_trailing_slashes_are_ignored() -> None:
    for pattern in ("/data", "data/", "/data/"):
        matcher = FilePatternMatcher(pattern)
        assert matcher("data/x")
        assert not matcher("x/data")


def test_patterns_are_normalised() -> None:
    matcher = FilePatternMatcher("  ./a//b/../c  ")
    assert matcher("a/c")


def test_current_directory_never_matches() -> None:
    matcher = FilePatternMatcher("*", "**")
    assert not matcher(".")
    assert not matcher(Path("."))
    assert not matcher("")
    assert matcher("anything")


def test_paths_are_normalised() -> None:
    matcher = FilePatternMatcher("src/*.py")
    assert matcher("./src/a.py")
    assert matcher(Path("src/a.py"))
    assert matcher(PurePosixPath("./src/a.py"))
    assert matcher("src//a.py")


def test_last_applicable_pattern_wins_exclusion_after() -> None:
    matcher = FilePatternMatcher("*.txt", "!keep.txt")
    assert matcher("a.txt")
    assert not matcher("keep.txt")


def test_last_applicable_pattern_wins_exclusion_before() -> None:
    matcher = FilePatternMatcher("!keep.txt", "*.txt")
    assert matcher("keep.txt")
    assert matcher("a.txt")


def test_exclusion_reincludes_inside_an_excluded_directory() -> None:
    matcher = FilePatternMatcher("build", "!build/keep")
    assert matcher("build/x")
    assert not matcher("build/keep")
    assert not matcher("build/keep/deep")


def test_empty_lines_are_skipped_and_comments_are_literal() -> None:
    matcher = FilePatternMatcher("", "   ", "# notes")
    assert matcher("# notes")
    assert not matcher("notes")
    assert not FilePatternMatcher("", "/")("a")


@pytest.mark.parametrize("pattern", ["!", "  !  ", "!/"])
def test_lone_exclamation_mark_is_rejected(pattern: str) -> None:
    with pytest.raises(ValueError, match='Illegal exclusion pattern: "!"'):
        FilePatternMatcher(pattern)


def test_inversion() -> None:
    matcher = FilePatternMatcher("*.txt")
    inverse = ~matcher
    assert not inverse(Path("a.txt"))
    assert inverse(Path("a.py"))


def test_non_python_files() -> None:
    assert not NON_PYTHON_FILES(Path("a.py"))
    assert not NON_PYTHON_FILES(Path("pkg/b.py"))
    assert NON_PYTHON_FILES(Path("c.txt"))


def test_from_file_reads_lazily(tmp_path: Path) -> None:
    ignore_file = tmp_path / ".dockerignore"
    matcher = FilePatternMatcher.from_file(ignore_file)  # the file does not exist yet
    ignore_file.write_text("*.log\n\n# comment\n!keep.log\n")
    assert matcher("x.log")
    assert not matcher("keep.log")
    assert matcher("# comment")
    assert not matcher("x.py")


def test_from_file_accepts_a_string_path(tmp_path: Path) -> None:
    ignore_file = tmp_path / "ignore"
    ignore_file.write_text("data\n")
    assert FilePatternMatcher.from_file(str(ignore_file))("data/x")


def test_can_prune() -> None:
    matcher = FilePatternMatcher("build", "*.tmp")
    assert matcher.can_prune("build")
    assert matcher.can_prune(Path("build/sub"))
    assert not matcher.can_prune("src")


def test_cannot_prune_when_any_exclusion_exists() -> None:
    matcher = FilePatternMatcher("build", "!other/keep")
    assert matcher("build")
    assert not matcher.can_prune("build")


def test_realistic_python_project() -> None:
    matcher = FilePatternMatcher("*.pyc", "__pycache__", "*.log")
    assert not matcher("src/a.py")
    assert matcher("a.pyc")
    assert matcher("__pycache__/a.cpython-311.pyc")
    assert matcher("x.log")
    # Docker anchors these patterns at the top level: `*` does not cross `/`.
    assert not matcher("src/a.pyc")
    assert not matcher("src/__pycache__/a.cpython-311.pyc")
    assert not matcher("logs/x.log")


def test_realistic_python_project_with_double_star() -> None:
    matcher = FilePatternMatcher("**/*.pyc", "**/__pycache__", "**/*.log")
    assert not matcher("src/a.py")
    assert matcher("src/a.pyc")
    assert matcher("src/__pycache__/a.cpython-311.pyc")
    assert matcher("x.log")
    assert matcher("logs/x.log")


def test_patterns_and_pruning_are_modals(tmp_path: Path) -> None:
    matcher = FilePatternMatcher("/build/", "**/*.pyc")
    assert [str(p) for p in matcher.patterns] == ["build", "**/*.pyc"]
    assert not any(p.exclusion for p in matcher.patterns)
    assert matcher.can_prune_directories() and matcher.can_prune("build")
    reincluding = FilePatternMatcher("build", "!build/keep")
    assert [p.exclusion for p in reincluding.patterns] == [False, True]
    assert not reincluding.can_prune_directories() and not reincluding.can_prune("build")
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("*.log\n!keep.log\n")
    assert [str(p) for p in FilePatternMatcher.from_file(ignore).patterns] == ["*.log", "keep.log"]

"""The CLI's parser: a chosen command gets its own parser only, which parses as the full one."""

from __future__ import annotations

import argparse

import pytest

from imagewright.cli import main


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_every_command_is_listed_where_the_parser_skips_them():
    # main._COMMANDS and main._ADDED decide which commands a chosen one spares making
    assert sorted(_commands(main._parser(None))) == sorted((*main._COMMANDS, *main._ADDED))


@pytest.mark.parametrize("chosen", ["build", "run", "prune", "volume", "app"])
def test_a_chosen_command_gets_its_parser_alone(chosen):
    commands = _commands(main._parser(chosen))
    assert chosen in commands
    if chosen in main._COMMANDS:
        assert commands in ([chosen], ["images", "prune"])


def test_the_chosen_parser_parses_as_the_full_one():
    argv = ["build", "app.py::img", "--json", "--force", "--cache-registry", "r/x"]
    assert main._parser("build").parse_args(argv) == main._parser(None).parse_args(argv)


@pytest.mark.parametrize("columns", ["50", "", "junk"])
def test_help_is_as_wide_as_argparse_would_make_it(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    width = main._parser("build")._get_formatter()._width
    assert width == argparse.HelpFormatter("imagewright")._width  # (which imports shutil)

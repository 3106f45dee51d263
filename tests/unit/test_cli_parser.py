"""The CLI's parser: a chosen command gets its own parser only, which parses as the full one."""

from __future__ import annotations

import argparse

import pytest

from imagewright.cli import main
from imagewright.cli import parser as cli_parser


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_every_command_is_listed_where_the_parser_skips_them():
    # cli_parser.COMMANDS and cli_parser.ADDED decide which commands a chosen one spares making
    assert sorted(_commands(main._parser(None))) == sorted(
        (*cli_parser.COMMANDS, *cli_parser.ADDED)
    )


@pytest.mark.parametrize("chosen", ["build", "run", "prune", "volume", "app"])
def test_a_chosen_command_gets_its_parser_alone(chosen):
    commands = _commands(main._parser(chosen))
    assert chosen in commands
    if chosen in cli_parser.COMMANDS:
        assert commands in ([chosen], ["images", "prune"])


def test_the_chosen_parser_parses_as_the_full_one():
    argv = ["build", "app.py::img", "--json", "--force", "--cache-registry", "r/x"]
    assert main._parser("build").parse_args(argv) == main._parser(None).parse_args(argv)


@pytest.mark.parametrize("columns", ["50", "", "junk"])
def test_help_is_as_wide_as_argparse_would_make_it(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    width = main._parser("build")._get_formatter()._width
    assert width == argparse.HelpFormatter("imagewright")._width  # (which imports shutil)


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "app.py"],
        ["build", "app.py::img", "--json"],
        ["build", "--json", "--force", "app.py", "--explain", "--json"],
        ["build", "app.py", "--cache-registry", "r/x", "--cache-registry=127.0.0.1:5000/y"],
        ["build", "build", "--cache-registry=a=b"],
        ["push", "app.py::img", "127.0.0.1:5000/app:v1"],
        ["push", "--insecure", "app.py", "r.example/app", "--compression", "zstd"],
        ["push", "app.py", "--compression=gzip", "r/app", "--cache-registry", "r/cache"],
        ["push", "push", "push", "--insecure", "--insecure"],
    ],
)
def test_a_plain_build_or_push_command_line_is_read_as_argparse_reads_it(argv):
    assert vars(main._plain_args(argv)) == vars(main._parser(argv[0]).parse_args(argv))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["shell", "app.py"],
        ["--version", "build", "app.py"],
        ["build"],
        ["build", "--json"],
        ["build", "a.py", "b.py"],
        ["build", "a.py", "-h"],
        ["build", "a.py", "--js"],
        ["build", "a.py", "--force=1"],
        ["build", "--", "a.py"],
        ["build", ""],
        ["build", "-1"],
        ["build", "a.py", "--cache-registry"],
        ["build", "a.py", "--cache-registry", "--json"],
        ["build", "a.py", "--cache-registry="],
        ["build", "a.py", "--insecure"],
        ["push", "a.py"],
        ["push", "a.py", "r/app", "r/other"],
        ["push", "a.py", "r/app", "--compression", "xz"],
        ["push", "a.py", "r/app", "--compression"],
        ["push", "a.py", "r/app", "--compression", "--insecure"],
        ["push", "a.py", "r/app", "--comp=gzip"],
        ["push", "a.py", "r/app", "--insecure=yes"],
        ["push", "a.py", "r/app", "--json"],
    ],
)
def test_any_other_command_line_is_left_to_argparse(argv):
    assert main._plain_args(argv) is None

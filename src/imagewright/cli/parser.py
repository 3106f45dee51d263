"""The CLI's argparse parser: made only when a command line needs it.

A plain `imagewright build FILE[::NAME]` with the build flags is read by cli/main.py without
argparse, which with gettext and locale costs a cached build about 5 ms; everything else (help,
other commands, anything unusual) is parsed here.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import cast

__all__ = ["ADDED", "COMMANDS", "make_parser"]

# The commands this module's parser defines, and those the other cli modules add to it.
COMMANDS = ("build", "shell", "run", "export", "dockerfile", "push", "images", "prune")
ADDED = ("volume", "secret", "serve", "deploy", "app", "dict", "queue")


def make_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. When `chosen` names a command, that command's parser is the only one
    made: the others cost a cached `imagewright build` about 5 ms, and only `imagewright --help`
    and a mistyped command (whose error lists the choices) need them."""
    from ..version import __version__

    parser = _Parser(
        prog="imagewright",
        description="Build Modal-style container images locally: layered, cached, sandboxed.",
    )
    parser.add_argument("--version", action="version", version=f"imagewright {__version__}")
    sub = cast(  # (of _Parsers, which the command modules need only as ArgumentParsers)
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND", required=True),
    )
    only = chosen if chosen in (*COMMANDS, *ADDED) else None
    with_registry: list[argparse.ArgumentParser] = []  # the commands that build images
    if only in (None, "build"):
        with_registry.append(_add_build(sub))
    if only in (None, "shell"):
        with_registry.append(_add_shell(sub))
    if only in (None, "run"):
        with_registry.append(_add_run(sub))
    if only in (None, "export"):
        with_registry.append(_add_export(sub))
    if only in (None, "dockerfile"):
        _add_dockerfile(sub)
    if only in (None, "push"):
        with_registry.append(_add_push(sub))
    if only in (None, "images", "prune"):
        _add_store_commands(sub)
    for command in with_registry:
        command.add_argument(
            "--cache-registry",
            metavar="REGISTRY/REPO",
            help="share built layers through this registry repository: pull missing steps "
            "from it, push new ones to it (default: $IMAGEWRIGHT_CACHE_REGISTRY)",
        )
    if only is None or only in ADDED:
        from .secrets import add_secret_parser
        from .serve import add_serve_parsers
        from .state import add_state_parsers
        from .volumes import add_volume_parser

        add_volume_parser(sub, with_verbs=chosen == "volume")
        add_secret_parser(sub, with_verbs=chosen == "secret")
        add_serve_parsers(sub, with_verbs=chosen == "app")
        add_state_parsers(sub, chosen=chosen)  # `dict` and `queue`
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse's parser (its subparsers are of this class too), with help formatters told the
    terminal's width: argparse would import shutil to learn it, on every start, for help that a
    build never shows (shutil loads the compression modules too: about 2 ms)."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        # (argparse's own, with the width it would compute; argparse's formatters all take it)
        return self.formatter_class(prog=self.prog, width=_columns() - 2)  # type: ignore[call-arg]


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() finds it: $COLUMNS, else stdout's
    terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _add_build(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    build = sub.add_parser(
        "build",
        help="build an Image defined in a Python file",
        description="Build the Image NAME in FILE (the only one if NAME is "
        "left out), reusing cached steps.",
        epilog="A warm build server runs each build in a child that takes over this command's "
        "arguments, environment, directory and terminal; the first build starts it. "
        "IMAGEWRIGHT_BUILD_SERVER=0 turns it off, IMAGEWRIGHT_BUILD_SERVER_IDLE=SECONDS sets "
        "how long it waits for work (600).",
    )
    build.add_argument("ref", metavar="FILE[::NAME]")
    build.add_argument("--force", action="store_true", help="rebuild every step")
    build.add_argument(
        "--explain",
        action="store_true",
        help="first say, for each step that misses the cache, what changed since the last "
        "`imagewright build` of this definition (a copied file, an argument, the parent step, "
        "the builder or uv version), then build as usual (with --json: the object's "
        '"explain" list)',
    )
    build.add_argument(
        "--json",
        action="store_true",
        dest="as_json",
        help="print one JSON object describing the build on stdout",
    )
    return build


def _add_shell(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    shell = sub.add_parser(
        "shell",
        help="open a shell in a fresh container of an image",
        description="Build the image if needed, then open an interactive "
        "shell in a fresh container of it, or run --cmd and exit with its "
        "status.",
    )
    shell.add_argument("ref", metavar="FILE[::NAME]")
    shell.add_argument(
        "--cmd",
        "-c",
        dest="command_string",
        metavar="CMD",
        help="run CMD through /bin/sh -c instead of an interactive shell",
    )
    shell.add_argument(
        "--failed",
        action="store_true",
        help="instead, step into the step that failed the last build of the image, as its "
        "command left it: its filesystem, env (secrets left out), WORKDIR and USER",
    )
    return shell


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    run = sub.add_parser(
        "run",
        help="run a function or local entrypoint",
        description="Run the local entrypoint or function NAME in FILE (the only one if NAME "
        "is left out). Its parameters become --flags.",
    )
    run.add_argument(
        "--cluster",
        metavar="ray://HOST:PORT",
        help="run every call on this Ray cluster (also after FILE; default: "
        "$IMAGEWRIGHT_CLUSTER). Needs `pip install imagewright[ray]`",
    )
    run.add_argument("ref", metavar="FILE[::NAME]")
    run.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="--ARG VALUE", help="arguments for the function"
    )
    return run


def _add_export(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    export = sub.add_parser(
        "export",
        help="write an image as an OCI layout or a docker-archive",
        description="Build the image if needed, then write it to PATH: an OCI image layout "
        "(a directory, or a tar of one when PATH ends in .tar), or with --format docker a tar "
        "that `docker load` and `podman load` accept. Layers are compressed once and kept in "
        "the store. Set SOURCE_DATE_EPOCH to clamp file times.",
    )
    export.add_argument("ref", metavar="FILE[::NAME]")
    export.add_argument("-o", "--output", required=True, metavar="PATH", help="where to write")
    export.add_argument("--format", choices=("oci", "docker"), default="oci")
    export.add_argument(
        "--compression",
        choices=("zstd", "gzip", "none"),
        help="layer compression (default: gzip, which every consumer reads; zstd is opt-in)",
    )
    export.add_argument(
        "--tag", default="imagewright:latest", metavar="NAME[:TAG]", help="the name recorded"
    )
    return export


def _add_dockerfile(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    dockerfile = sub.add_parser(
        "dockerfile",
        help="write an image definition as a Dockerfile and its build context",
        description="Write DIR/Dockerfile and the files it copies, so that `docker build "
        "DIR` (BuildKit) makes the same image. Nothing is built. Bases become public images "
        "(debian_slim 3.11: python:3.11-slim-bookworm plus Modal's setup lines); run_function "
        "and steps with secrets cannot be written and are refused.",
    )
    dockerfile.add_argument("ref", metavar="FILE[::NAME]")
    dockerfile.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="a new or empty directory"
    )
    dockerfile.add_argument(
        "--uv-from-context",
        action="store_true",
        help="put uv in the context instead of copying it from ghcr.io/astral-sh/uv",
    )
    dockerfile.add_argument(
        "--ca-bundle",
        metavar="PATH",
        help="bind this CA bundle into every RUN (for TLS-intercepting proxies); it is not "
        "kept in the image",
    )
    dockerfile.add_argument(
        "--bare-base",
        action="store_true",
        help="write only the FROM line for the base: when that name is imagewright's own base "
        "(loaded with `imagewright export --format docker --tag NAME`)",
    )
    return dockerfile


def _add_push(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    push = sub.add_parser(
        "push",
        help="push an image to a registry",
        description="Build the image if needed, then push it to REGISTRY/REPO:TAG. Blobs the "
        "registry already has are not sent again. Credentials come from "
        "$DOCKER_CONFIG/config.json (default ~/.docker/config.json).",
    )
    push.add_argument("ref", metavar="FILE[::NAME]")
    push.add_argument("target", metavar="REGISTRY/REPO[:TAG]")
    push.add_argument("--insecure", action="store_true", help="allow plain HTTP and unverified TLS")
    push.add_argument("--compression", choices=("gzip", "zstd"), default="gzip")
    return push


def _add_store_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`images` and `prune`."""
    images = sub.add_parser(
        "images",
        help="list the images in the local store",
        description="List the images in the local store.",
    )
    images.add_argument("--json", action="store_true", dest="as_json", help="print JSON")

    prune = sub.add_parser(
        "prune",
        help="free space in the local store",
        description="Remove layers that no recorded image uses.",
    )
    prune.add_argument(
        "--all", action="store_true", dest="everything", help="remove every layer and image record"
    )
    prune.add_argument(
        "--caches", action="store_true", help="also empty the apt, uv and pip package caches"
    )

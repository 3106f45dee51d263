"""Root of the `imagewright` CLI: commands, named exit codes and error rendering.

Commands are thin: they parse arguments, call one library function and render its result.
Errors that imagewright raises on purpose are shown as one clear message, never a traceback.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["ExitCode", "main"]

F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(enum.IntEnum):
    SUCCESS = 0
    FAILED = 1  # a build step or the command in the container failed
    INVALID = 2  # bad arguments, definitions or files: nothing was run
    INTERRUPTED = 130


def _fail(message: str, code: ExitCode) -> None:
    click.secho(f"Error: {message}", fg="red", err=True)
    sys.exit(code)


def handles_errors(func: F) -> F:
    """Turn our exceptions (and bad local files) into a message and a named exit code."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..exception import Error, ImageBuildError, RemoteError

        try:
            return func(*args, **kwargs)
        except ImageBuildError as exc:
            _fail(str(exc), ExitCode.FAILED)
        except RemoteError as exc:
            _fail(str(exc), ExitCode.FAILED)
        except (
            Error,
            FileNotFoundError,
            NotADirectoryError,
            IsADirectoryError,
            ValueError,
            TypeError,
        ) as exc:
            _fail(f"{type(exc).__name__}: {exc}", ExitCode.INVALID)
        except KeyboardInterrupt:
            _fail("interrupted", ExitCode.INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def _load_image(ref: str) -> Any:
    from ..definition.image import Image
    from .loader import load_module, pick, split_ref

    path, name = split_ref(ref)
    return pick(load_module(path), name, Image, "Image")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="imagewright")
def cli() -> None:
    """Build Modal-style container images locally: layered, cached, sandboxed, no daemon."""


@cli.command()
@click.argument("ref", metavar="FILE[::NAME]")
@click.option("--force", is_flag=True, help="Rebuild every step, ignoring the cache.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object describing the build on stdout."
)
@handles_errors
def build(ref: str, force: bool, as_json: bool) -> None:
    """Build the Image named NAME in FILE (the only Image when NAME is left out)."""
    from ..execute.builder import build_image

    result = build_image(_load_image(ref), force=force)
    if as_json:
        click.echo(json.dumps(result.to_json()))


@cli.command()
@click.argument("ref", metavar="FILE[::NAME]")
@click.option(
    "--cmd",
    "-c",
    "command",
    default=None,
    help="Run this through /bin/sh -c instead of an interactive shell.",
)
@handles_errors
def shell(ref: str, command: str | None) -> None:
    """Open a shell (or run --cmd) in a fresh container of the image, building it if needed."""
    from ..execute.builder import build_image
    from ..execute.container import run_container
    from ..plan.planner import plan_image
    from ..store.store import Store

    image = _load_image(ref)
    store = Store.default()
    build_image(image, store=store)
    plan = plan_image(image)
    if command is None:
        argv = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"]
        status, _ = run_container(plan, store, argv, interactive=True)
    else:
        status, _ = run_container(plan, store, ["/bin/sh", "-c", command])
    sys.exit(status)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@handles_errors
def images(as_json: bool) -> None:
    """List the images in the local store."""
    from ..store.store import Store

    records = Store.default().images()
    if as_json:
        click.echo(json.dumps(records))
        return
    if not records:
        click.echo("No images built yet.")
        return
    click.echo(f"{'IMAGE ID':28} {'SIZE':>9}  {'STEPS':>5}  SOURCE")
    for rec in sorted(records, key=lambda r: r.get("built", 0), reverse=True):
        size = f"{int(rec.get('size', 0)) / 1e6:.0f} MB"
        steps = len(rec.get("steps", []))  # type: ignore[arg-type]
        click.echo(f"{rec['image_id']!s:28} {size:>9}  {steps:>5}  {rec.get('source', '')}")


@cli.command()
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Remove every layer and image record, keeping only package caches.",
)
@click.option("--caches", is_flag=True, help="Also empty the apt, uv and pip caches.")
@handles_errors
def prune(everything: bool, caches: bool) -> None:
    """Free space: remove layers no recorded image uses (with --all, every layer)."""
    from ..store.gc import prune as prune_store
    from ..store.store import Store

    store = Store.default()
    freed, count = prune_store(store, everything=everything)
    if caches:
        for name in ("apt", "uv", "pip"):
            shutil.rmtree(store.root / "cache" / name, ignore_errors=True)
    click.echo(f"Removed {count} layer(s), {freed / 1e6:.1f} MB freed.")


def main() -> None:
    """Console entry point."""
    if os.geteuid() != 0 and len(sys.argv) > 1 and sys.argv[1] in ("build", "shell"):
        click.secho(
            "Warning: imagewright needs root to mount overlays and sandboxes.",
            fg="yellow",
            err=True,
        )
    cli(prog_name="imagewright")

"""`imagewright run`: call a function or local entrypoint with arguments from the command line.

Flags come from the target's signature, as with `modal run`: `--name value` per parameter,
converted by its annotation (str, int, float, bool as --flag/--no-flag). Parameters without an
annotation take a Python literal when the value parses as one (`--x 3` gives 3), else a string.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import inspect
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..app import App, LocalEntrypoint
from ..exception import InvalidError, NotFoundError
from ..function import Function
from .loader import load_module, pick, split_ref

if TYPE_CHECKING:
    from ..execute.builder import LayerCache

__all__ = ["run_target"]


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_args(target: Callable[..., Any], name: str, argv: Sequence[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog=f"imagewright run ...::{name}")
    params = inspect.signature(target).parameters.values()
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        flag = "--" + param.name.replace("_", "-")
        required = param.default is inspect.Parameter.empty
        default = None if required else param.default
        annotation = param.annotation
        if annotation in (bool, "bool"):
            parser.add_argument(
                flag,
                dest=param.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                required=required,
            )
            continue
        convert = {int: int, float: float, str: str, "int": int, "float": float, "str": str}.get(
            annotation, _literal
        )
        parser.add_argument(flag, dest=param.name, type=convert, default=default, required=required)
    return vars(parser.parse_args(list(argv)))


def _find_target(app: App, name: str | None, path: str) -> tuple[str, Function | LocalEntrypoint]:
    functions: dict[str, Function | LocalEntrypoint] = dict(app.registered_functions)
    entrypoints = app.registered_entrypoints
    if name is not None:
        target = entrypoints.get(name) or functions.get(name)
        if target is None:
            known = ", ".join(sorted({*entrypoints, *functions})) or "none"
            raise NotFoundError(
                f"No function or local entrypoint named {name!r} in {path}. Found: {known}"
            )
        return name, target
    for kind, table in (("local entrypoint", entrypoints), ("function", functions)):
        if len(table) == 1:
            return next(iter(table.items()))
        if len(table) > 1:
            raise InvalidError(
                f"{path} has several {kind}s: {', '.join(sorted(table))}. Pick one with FILE::NAME."
            )
    raise NotFoundError(f"{path} has no functions or local entrypoints")


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def run_target(
    ref: str, argv: Sequence[str], cache: LayerCache | None = None, cluster: str | None = None
) -> int:
    """Run FILE[::NAME] with CLI arguments, building through `cache`, its calls on `cluster`
    if given; returns the exit code."""
    path, name = split_ref(ref)
    app = pick(load_module(path), None, App, "App")
    name, target = _find_target(app, name, path)
    kwargs = _parse_args(target.raw_f, name, argv)
    with app.run(cache=cache, cluster=cluster):
        if isinstance(target, LocalEntrypoint):
            try:
                outcome = target(**kwargs)
                if inspect.isawaitable(outcome):  # an `async def` entrypoint, as Modal allows
                    asyncio.run(_awaited(outcome))
            except Exception:
                traceback.print_exc()
                return 1
            return 0
        try:
            result = target.remote(**kwargs)
        except Exception as exc:
            _show_remote_failure(exc)
            return 1
    if result is not None:
        print(result)
    return 0


def _show_remote_failure(exc: BaseException) -> None:
    cause = exc.__cause__
    if cause is not None and type(cause).__name__ == "RemoteTraceback":
        print(str(cause).strip(), file=sys.stderr)
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)

"""Root of the `imagewright` CLI: the parser, named exit codes and error rendering.

The parser is the standard library's argparse (cli/parser.py): click costs about 70 ms to import
here, half of the 150 ms a fully cached `imagewright build` may take. A plain `build` or `push`
command line is read without it (see _plain_args). Commands live in `commands.py` and are
imported only once a command has been chosen. Errors imagewright raises on purpose (its own
exception types) are shown as one clear message, never as a traceback; so are the machine's
failures (a full disk, a read-only store), with the path they concern. Anything else is a bug
and keeps its traceback. The user's own traceback, when their module fails to import, shows
their frames only.
"""

from __future__ import annotations

import enum
import errno
import os
import sys
import types
from collections.abc import Callable, Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    import argparse
    from typing import cast
else:
    from .._fasttyping import cast

__all__ = ["ExitCode", "main"]


class ExitCode(enum.IntEnum):
    SUCCESS = 0
    FAILED = 1  # a build step, the command run in a container, or a registry failed
    INVALID = 2  # bad arguments, definitions or files: nothing was run
    INTERRUPTED = 130
    TERMINATED = 143  # SIGTERM, cleaned up after as Ctrl-C is


def _parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """argparse's parser for the command line (cli/parser.py): only the chosen command's."""
    from .parser import make_parser

    return make_parser(chosen)


# The command lines scripts run most, read without argparse (see _plain_args): per command,
# its positionals, its options that take no value, and those that take one (with the values
# allowed, None for any), each under the name argparse gives it (cli/parser.py).
_PLAIN: dict[
    str, tuple[tuple[str, ...], dict[str, str], dict[str, tuple[str, tuple[str, ...] | None]]]
] = {
    "build": (
        ("ref",),
        {"--force": "force", "--explain": "explain", "--json": "as_json"},
        {"--cache-registry": ("cache_registry", None)},
    ),
    "push": (
        ("ref", "target"),
        {"--insecure": "insecure"},
        {
            "--cache-registry": ("cache_registry", None),
            "--compression": ("compression", ("gzip", "zstd")),
        },
    ),
}
_DEFAULTS = {"cache_registry": None, "compression": "gzip"}


def _plain_args(argv: Sequence[str]) -> argparse.Namespace | None:
    """`build FILE[::NAME]` or `push FILE[::NAME] TARGET` with any of that command's options,
    each spelled in full, read as argparse reads it; None for any other command line (help,
    another command, an abbreviated or unknown option, a missing or extra positional, `--`, an
    empty word, a value that starts with "-" or is not one of the choices), which argparse then
    parses or reports. A cached build spends about 5 ms importing argparse, gettext and locale
    and making the parser; a unit test checks both agree."""
    if not argv or argv[0] not in _PLAIN:
        return None
    positionals, flags, options = _PLAIN[argv[0]]
    found: dict[str, object] = {"command": argv[0], **dict.fromkeys(flags.values(), False)}
    found.update((dest, _DEFAULTS[dest]) for dest, _ in options.values())
    given: list[str] = []
    words = iter(argv[1:])
    for word in words:
        option, sep, value = word.partition("=")
        if word in flags:
            found[flags[word]] = True
        elif option in options:
            value = value if sep else next(words, "")
            dest, choices = options[option]
            if not value or (not sep and value.startswith("-")):
                return None
            if choices is not None and value not in choices:
                return None
            found[dest] = value
        elif word and not word.startswith("-") and len(given) < len(positionals):
            given.append(word)
        else:
            return None
    if len(given) < len(positionals):
        return None
    found.update(zip(positionals, given, strict=True))
    return cast("argparse.Namespace", types.SimpleNamespace(**found))


def _fail(
    message: str, code: ExitCode, as_json: bool = False, exc: BaseException | None = None
) -> int:
    label = "\x1b[31mError:\x1b[0m" if sys.stderr.isatty() else "Error:"
    print(f"{label} {message}", file=sys.stderr)
    if as_json:  # a script that asked for JSON gets one object on failure too, on stdout
        import json

        print(json.dumps({"error": _error_json(message, exc)}))
    return code


# the user's "file.py:12", as error messages name it (see _callsite.py); patterns, compiled
# only when an error is shown
_WHERE = r"(?:^|[\s(])([^\s:()'\"]+\.py:\d+)"
# what steps.py's ImageBuildError message names: "failed at step CALL at FILE:LINE\n  'CMD'
# exited with status N" (the step as Layer.where shows it)
_BUILD_STEP = r"failed at step (.*) at (\S+)\n\s+(.*) exited with status (\d+)"


def _error_json(message: str, exc: BaseException | None) -> dict[str, object]:
    """The error as --json reports it: its type and message, the user's file:line where known,
    and for a failed build step that step (its call, file:line, command and exit status)."""
    import ast
    import re

    from ..exception import ImageBuildError
    from .loader import UserCodeError

    if isinstance(exc, UserCodeError):  # the user's exception, not our wrapper of it
        return {"type": exc.error_type, "message": exc.error_message, "where": exc.where}
    text = str(exc) if isinstance(exc, Exception) and str(exc) else message
    found = re.search(_WHERE, text)
    doc: dict[str, object] = {
        "type": type(exc).__name__ if exc is not None else "Error",
        "message": text,
        "where": found.group(1) if found else None,
    }
    if isinstance(exc, ImageBuildError):
        doc["image_id"], doc["log_path"] = exc.image_id, exc.log_path
        step = re.search(_BUILD_STEP, text)
        if step:
            call, where, command, status = step.groups()
            doc["step"] = {
                "call": call,
                "where": where,
                "command": ast.literal_eval(command),  # steps.py shows it with !r
                "status": int(status),
            }
    return doc


def run(argv: Sequence[str]) -> int:
    """Parse `argv`, run the command, and return the exit code."""
    chosen = next((word for word in argv if not word.startswith("-")), None)
    args = _plain_args(argv) or _parser(chosen).parse_args(argv)
    if getattr(args, "cache_registry", None):
        from .. import settings

        settings.use_cache_registry(args.cache_registry)  # for builds the user's code starts
    from ..exception import Error, RegistryError, RemoteError
    from . import commands
    from .loader import UserCodeError, resume_collector

    as_json = getattr(args, "as_json", False)
    try:
        # a command may name its own handler (`dict`, `queue`: cli/state.py)
        command: Callable[[argparse.Namespace], int] = getattr(args, "handler", None) or getattr(
            commands, args.command
        )
        if command is not commands.build:  # (which resumes it as it loads the user's module)
            resume_collector()
        return command(args)
    except UserCodeError as exc:
        sys.stderr.write(exc.traceback)
        return _fail(str(exc), ExitCode.INVALID, as_json, exc)
    except RemoteError as exc:
        return _fail(str(exc), ExitCode.FAILED, as_json, exc)
    except RegistryError as exc:  # the registry was reached and failed us: not bad input
        return _fail(f"{type(exc).__name__}: {exc}", ExitCode.FAILED, as_json, exc)
    except Error as exc:
        return _fail(f"{type(exc).__name__}: {exc}", ExitCode.INVALID, as_json, exc)
    except OSError as exc:
        if exc.errno not in _MACHINE_ERRORS:
            raise  # a bug of ours: its traceback says where
        return _fail(_os_error(exc), ExitCode.FAILED, as_json, exc)
    except KeyboardInterrupt as exc:
        if isinstance(exc, _Terminated):
            return _fail("terminated", ExitCode.TERMINATED, as_json, exc)
        return _fail("interrupted", ExitCode.INTERRUPTED, as_json, exc)


# The machine failed us, not the input and not our code: a full disk, a read-only store.
_MACHINE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _os_error(exc: OSError) -> str:
    """An OS error as a sentence naming the path it concerns."""
    from ..store.store import Store

    name = exc.filename if exc.filename is not None else exc.filename2
    path = os.fsdecode(name) if isinstance(name, (str, bytes)) else None
    store = Store.default().root
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        quota = " (disk quota exceeded)" if exc.errno == errno.EDQUOT else ""
        where = path if path is not None else f"to the store {store}"
        return f"no space left on device{quota} while writing {where}"
    if exc.errno == errno.EROFS:
        inside = path is None or os.path.abspath(path).startswith(os.path.abspath(store) + os.sep)
        if inside:
            return f"the store {store} is read-only (set IMAGEWRIGHT_HOME to a writable directory)"
        return f"{path} is on a read-only file system"
    detail = exc.strerror or str(exc)
    return f"{detail}: {path}" if path is not None else detail


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that the same cleanup runs: containers
    stopped, scratch areas removed."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def main() -> None:
    """Console entry point."""
    from .loader import pause_collector

    pause_collector()  # until the command's own work starts (see there)
    # What signal.signal calls, without the signal module, which makes enums on import: ~0.5 ms
    # of every start, and nothing else a cached build runs needs it.
    from _signal import SIGTERM  # type: ignore[import-not-found]
    from _signal import signal as handle_signal

    handle_signal(SIGTERM, _terminate)
    sys.exit(run(sys.argv[1:]))

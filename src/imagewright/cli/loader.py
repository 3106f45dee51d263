"""Load FILE[::NAME] references: import the user's module and pick the object named.

An exception the user's own code raises while its module is imported (a SyntaxError, a
ValueError at top level, a missing import) becomes UserCodeError, which carries the user's
traceback with the user's frames only: the loader's and importlib's frames say nothing to them.
Errors imagewright raises while the module runs (a bad argument to an Image method) pass through
unchanged, for the CLI to show as one line naming the user's file:line.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
from types import ModuleType

from ..exception import Error, InvalidError, NotFoundError
from ..runtime.modal_alias import install as install_modal_alias

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import TypeVar
else:
    from .._fasttyping import TypeVar

__all__ = [
    "UserCodeError",
    "load_module",
    "pause_collector",
    "pick",
    "resume_collector",
    "split_ref",
]

T = TypeVar("T")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UserCodeError(Exception):
    """The user's module raised while being imported; `traceback` is the user's part of it,
    `where` the file:line of its innermost frame of the user's (for `--json`)."""

    def __init__(self, path: str, exc: Exception):
        super().__init__(f"{path} raised {type(exc).__name__} while being imported (see above)")
        self.traceback = _user_traceback(exc)
        self.error_type, self.error_message = type(exc).__name__, str(exc)
        self.where = _user_line(exc)


def load_module(path: str) -> ModuleType:
    """Import a Python file as a module named after it, with its directory on sys.path.

    A Modal program's `import modal` gets imagewright (runtime/modal_alias.py).
    """
    if not os.path.isfile(path):
        raise NotFoundError(f"No such file: {path}")
    if not path.endswith(".py"):
        raise InvalidError(f"{path} is not a Python file: the file's name must end in .py")
    shown = path
    path = os.path.abspath(path)
    directory, filename = os.path.split(path)
    name = os.path.splitext(filename)[0]
    if directory not in sys.path:
        sys.path.insert(0, directory)
    install_modal_alias()
    resume_collector()  # before the user's code, whatever it allocates
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has both
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        if _raised_by_imagewright(exc):
            raise
        raise UserCodeError(shown, exc) from None
    return module


# Whether pause_collector paused the garbage collector, for resume_collector to restart it.
_collector_paused = False


def pause_collector() -> None:
    """Pause the garbage collector until resume_collector. The CLI's start (imagewright's and
    the standard library's modules, the parser, `build`'s machinery) makes tens of thousands of
    objects that live until exit: collecting among them cost a cached build ~3 ms and found
    nothing. cli/main.py pauses it first thing and restarts it before the command runs, or, for
    `build`, before the user's module runs."""
    global _collector_paused
    if gc.isenabled():
        gc.disable()
        _collector_paused = True


def resume_collector() -> None:
    """Restart what pause_collector paused, keeping what the process made until now out of
    the collector's sight for good; a no-op when it paused nothing (in-process callers)."""
    global _collector_paused
    if _collector_paused:
        _collector_paused = False
        gc.freeze()  # (into the permanent generation: never traversed again)
        gc.enable()


def _ours(filename: str) -> bool:
    """Whether a frame belongs to imagewright or to importlib's machinery."""
    if filename.startswith("<frozen importlib"):
        return True
    return os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)


def _raised_by_imagewright(exc: Exception) -> bool:
    if isinstance(exc, Error):
        return True
    if isinstance(exc, SyntaxError):  # raised by the compiler, about the user's file
        return False
    import traceback  # (here: only a failing import needs it, and it costs a start ~3 ms)

    frames = traceback.extract_tb(exc.__traceback__)
    innermost = frames[-1].filename if frames else ""
    return not innermost.startswith("<frozen") and _ours(innermost)


def _user_line(exc: Exception) -> str | None:
    """The "file:line" of the innermost of the user's frames in `exc`'s traceback (for a
    SyntaxError, the line the compiler points at)."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{exc.filename}:{exc.lineno}"
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _ours(f.filename)]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


def _user_traceback(exc: Exception) -> str:
    """The traceback of `exc` (and of the exceptions chained to it) without our frames."""
    import traceback

    report = traceback.TracebackException.from_exception(exc)
    todo, seen = [report], set()
    while todo:
        part = todo.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        part.stack = traceback.StackSummary.from_list(
            [frame for frame in part.stack if not _ours(frame.filename)]
        )
        todo += [p for p in (part.__cause__, part.__context__) if p is not None]
    return "".join(report.format())


def split_ref(ref: str) -> tuple[str, str | None]:
    """ "app.py::name" → ("app.py", "name"); "app.py" → ("app.py", None)."""
    path, sep, name = ref.partition("::")
    return path, (name or None) if sep else None


def pick(module: ModuleType, name: str | None, kind: type[T], what: str) -> T:
    """The module-level `kind` object called `name`, or the only one when name is None."""
    found = {k: v for k, v in vars(module).items() if isinstance(v, kind) and not k.startswith("_")}
    if name is not None:
        if name not in found:
            raise NotFoundError(
                f"No {what} named {name!r} in {module.__file__}. "
                f"Found: {', '.join(sorted(found)) or 'none'}"
            )
        return found[name]
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise NotFoundError(f"No module-level {what} found in {module.__file__}")
    raise InvalidError(
        f"{module.__file__} defines several {what}s: {', '.join(sorted(found))}. "
        f"Pick one with FILE::NAME."
    )

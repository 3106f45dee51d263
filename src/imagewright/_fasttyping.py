"""typing's run-time pieces, without importing typing, for the modules a cached build imports.

Importing typing costs about 12 M instructions here (3.5 ms, 8% of a fully cached build),
which those modules paid for a few base classes and decorators. Type checkers never see these:
each module imports typing's names under TYPE_CHECKING, and these otherwise:

    TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
    if TYPE_CHECKING:
        from typing import Generic, TypeVar
    else:
        from ._fasttyping import Generic, TypeVar

At run time a type variable is its name, `Generic[...]` and `Protocol` are plain bases that
subscription leaves as they are, and `overload` and `cast` do nothing (the implementation that
follows the overloads replaces them, as with typing's). Runs on Python 3.9, as the modules that
containers import must.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Generic", "Protocol", "TypeVar", "cast", "overload"]


def TypeVar(name: str, *constraints: object, **options: object) -> str:  # typing's name
    return name


class Generic:
    """A base whose subscription (`Generic[T]`, `Twin[P, R]`) is the class itself."""

    __slots__ = ()

    def __class_getitem__(cls, params: object) -> type:
        return cls


class Protocol(Generic):
    __slots__ = ()


def overload(f: Callable[..., Any]) -> Callable[..., Any]:
    return f


def cast(typ: object, value: Any) -> Any:
    return value

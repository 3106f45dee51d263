"""Async twins: Modal's blocking methods also answer as `.aio` (`f.remote.aio(...)`).

Modal writes each method once, async, and derives a blocking form. Ours are blocking (threads,
sockets, files), so the twin goes the other way: `.aio` runs the blocking method in a worker
thread and awaits it, and an iterator's `.aio` is an async iterator pulling each item in one.
An event loop that awaits them is never blocked.

    class Volume:
        @twin
        def commit(self) -> None: ...

    vol.commit()             # blocking
    await vol.commit.aio()   # async

This module is imported inside containers too, so it runs on Python 3.9.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

    P = ParamSpec("P")
else:
    from ._fasttyping import Generic, TypeVar, overload

    P = TypeVar("P")

R = TypeVar("R")
Y = TypeVar("Y")
S = TypeVar("S")

__all__ = ["IterTwin", "Twin", "iter_twin", "twin"]

_END = object()


class Twin(Generic[P, R]):
    """A blocking callable with an awaitable `.aio`."""

    def __init__(self, f: Callable[P, R]):
        self._f = f
        self.__name__ = getattr(f, "__name__", "twin")
        self.__doc__ = f.__doc__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._f(*args, **kwargs)

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The same call, run in a worker thread and awaited."""
        import asyncio

        return await asyncio.to_thread(self._f, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.__name__} (with .aio)>"


class IterTwin(Generic[P, Y]):
    """A callable returning an iterator, whose `.aio` returns an async iterator."""

    def __init__(self, f: Callable[P, Iterator[Y]]):
        self._f = f
        self.__name__ = getattr(f, "__name__", "twin")
        self.__doc__ = f.__doc__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Iterator[Y]:
        return self._f(*args, **kwargs)

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[Y]:
        """The same items as an async iterator; each is fetched in a worker thread."""
        import asyncio

        iterator = await asyncio.to_thread(self._f, *args, **kwargs)
        try:
            while True:
                item = await asyncio.to_thread(next, iterator, _END)
                if item is _END:
                    return
                yield item  # type: ignore[misc]  # _END is filtered out above
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def __repr__(self) -> str:
        return f"<{self.__name__} (with .aio)>"


class twin(Generic[S, P, R]):
    """A method decorator: `obj.method(...)` blocks, `await obj.method.aio(...)` does not."""

    def __init__(self, method: Callable[Concatenate[S, P], R]):
        self._method = method
        self.__doc__ = method.__doc__
        self.__name__ = method.__name__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> twin[S, P, R]: ...
    @overload
    def __get__(self, obj: S, owner: type[Any]) -> Twin[P, R]: ...
    def __get__(self, obj: S | None, owner: type[Any]) -> twin[S, P, R] | Twin[P, R]:
        if obj is None:
            return self
        bound: Callable[P, R] = self._method.__get__(obj, owner)
        return Twin(bound)


class iter_twin(Generic[S, P, Y]):
    """`twin` for methods that return an iterator: `.aio` gives an async iterator."""

    def __init__(self, method: Callable[Concatenate[S, P], Iterator[Y]]):
        self._method = method
        self.__doc__ = method.__doc__
        self.__name__ = method.__name__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> iter_twin[S, P, Y]: ...
    @overload
    def __get__(self, obj: S, owner: type[Any]) -> IterTwin[P, Y]: ...
    def __get__(self, obj: S | None, owner: type[Any]) -> iter_twin[S, P, Y] | IterTwin[P, Y]:
        if obj is None:
            return self
        bound: Callable[P, Iterator[Y]] = self._method.__get__(obj, owner)
        return IterTwin(bound)

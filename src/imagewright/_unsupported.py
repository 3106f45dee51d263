"""The error for Modal features that imagewright accepts but does not run locally.

Code that merely names such a feature (at module level, say `modal.Dict.from_name("x")`)
loads; the first use raises UnimplementedError saying which feature and why. Two wordings:
features a later release will run locally, and features that only mean something on Modal's
service. Imported in containers (Python 3.9).
"""

from __future__ import annotations

from types import TracebackType

from .exception import UnimplementedError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import Generic, NoReturn, TypeVar, overload
else:
    from ._fasttyping import Generic, TypeVar, overload

__all__ = ["NoLocalMeaning", "NotYetContext", "no_local_meaning", "not_yet"]

T = TypeVar("T")


def not_yet(feature: str) -> UnimplementedError:
    """The error for using `feature`, which imagewright does not run locally yet."""
    return UnimplementedError(
        f"{feature} does not run locally yet: imagewright accepts it so that Modal programs "
        "load, but cannot use it."
    )


def no_local_meaning(feature: str) -> UnimplementedError:
    """The error for using `feature`, which only means something on Modal's service."""
    return UnimplementedError(
        f"{feature} only means something on Modal's service: imagewright accepts it so that "
        "Modal programs load, but cannot use it."
    )


class NotYetContext(Generic[T]):
    """What `X.ephemeral()` returns for an X not run locally yet: creating it is fine (as at
    module level), entering it with `with` or `async with` raises."""

    def __init__(self, feature: str):
        self._feature = feature

    def __enter__(self) -> T:
        raise not_yet(self._feature)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> T:
        raise not_yet(self._feature)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class NoLocalMeaning:
    """A member (property or method) of a Modal class that only means something on Modal's
    service: present on the class, it raises when an instance's is looked up (naming the
    instance's class, which may inherit it)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type) -> NoLocalMeaning: ...
    @overload
    def __get__(self, obj: object, owner: type) -> NoReturn: ...
    def __get__(self, obj: object | None, owner: type) -> NoLocalMeaning:
        if obj is None:
            return self
        raise no_local_meaning(f"modal.{type(obj).__name__}.{self._name}")

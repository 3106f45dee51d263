"""_namedtuple: its classes behave as typing.NamedTuple's, and shell_quote as shlex.quote.

Both stand in for the standard library's on the cached build's path (they are cheaper to load),
and what they make enters cache keys and plans, so any difference would be a bug.
"""

from __future__ import annotations

import copy
import pickle
import shlex
import types
import typing

import pytest

from imagewright._namedtuple import NamedTuple as FastNamedTuple
from imagewright.definition.packages import shell_join, shell_quote


class Typed(typing.NamedTuple):
    """A record."""

    x: int
    y: str
    z: tuple[int, ...] = ()
    w: int | None = None

    def total(self) -> int:
        return self.x + len(self.z)

    @property
    def double(self) -> int:
        return self.x * 2


class Fast(FastNamedTuple):
    """A record."""

    x: int
    y: str
    z: tuple[int, ...] = ()
    w: int | None = None

    def total(self) -> int:
        return self.x + len(self.z)

    @property
    def double(self) -> int:
        return self.x * 2


def _same(call: typing.Callable[[type], object]) -> None:
    """`call` gives the same with both classes (or raises the same error)."""
    results = []
    for cls in (Typed, Fast):
        try:
            result: object = call(cls)
        except Exception as exc:  # the same type and message, the class name aside
            result = (type(exc), str(exc).replace(cls.__name__, "C"))
        results.append(result)
    assert results[0] == results[1]


def test_a_class_has_what_a_namedtuple_has():
    for attribute in ("_fields", "_field_defaults", "__match_args__", "__doc__", "__slots__"):
        assert getattr(Fast, attribute) == getattr(Typed, attribute)
    assert Fast.__mro__ == (Fast, tuple, object) and Fast.__module__ == __name__


@pytest.mark.parametrize(
    "call",
    [
        lambda c: tuple(c(1, "a")),
        lambda c: tuple(c(1, "a", (2,))),
        lambda c: tuple(c(1, "a", (2,), 3)),
        lambda c: tuple(c(x=1, y="a", w=4)),
        lambda c: tuple(c(1, y="a", z=(5,))),
        lambda c: repr(c(1, "a", w=3)).replace(c.__name__, "C"),
        lambda c: tuple(c(1, "a")._replace(y="b", w=2)),
        lambda c: c(1, "a")._asdict(),
        lambda c: tuple(c._make([1, "a", (), None])),
        lambda c: (c(1, "a", (1, 2)).total(), c(3, "a").double, c(1, "a").x, c(1, "a")[1]),
        lambda c: (c(1, "a") == (1, "a", (), None), hash(c(1, "a")) == hash((1, "a", (), None))),
        lambda c: c(1, "a") == copy.deepcopy(c(1, "a")) == pickle.loads(pickle.dumps(c(1, "a"))),
        lambda c: c(),
        lambda c: c(1),
        lambda c: c(1, 2, 3, 4, 5),
        lambda c: c(1, 2, q=3),
        lambda c: c(1, 2, x=3),
        lambda c: c(1, "a")._replace(q=1),
        lambda c: c._make([1]),
        lambda c: setattr(c(1, "a"), "x", 2),
        lambda c: setattr(c(1, "a"), "other", 2),
    ],
)
def test_instances_behave_alike(call):
    _same(call)


def test_a_default_before_a_field_without_one_is_refused_alike():
    for base in (typing.NamedTuple, FastNamedTuple):
        with pytest.raises(TypeError, match="Non-default namedtuple field y cannot follow"):
            types.new_class(
                "Bad",
                (base,),
                exec_body=lambda ns: ns.update(__annotations__={"x": 1, "y": 2}, x=1),
            )


@pytest.mark.parametrize(
    "word",
    ["", "a", "abc-1.2_3", "a b", "it's", "é", "x$y", "a=b", "numpy>=1.0", "@%+=:,./-", "\n"],
)
def test_shell_quote_is_shlex_quote(word):
    assert shell_quote(word) == shlex.quote(word)


def test_shell_quote_agrees_on_every_character_up_to_u0800():
    for code in range(0x800):
        word = chr(code)
        assert shell_quote(word) == shlex.quote(word), code
    assert shell_join(["a b", "c", ""]) == shlex.join(["a b", "c", ""])

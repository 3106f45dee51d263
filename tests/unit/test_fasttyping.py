"""_fasttyping's stand-ins behave at run time as typing's do where our modules use them."""

from __future__ import annotations

import pickle
import subprocess
import sys

from imagewright import _fasttyping as ft


class _Box(ft.Generic[ft.TypeVar("T")]):  # type: ignore[misc]  # the run-time stand-in, on purpose
    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


def test_a_generic_class_subscripts_to_itself_and_keeps_its_slots() -> None:
    assert _Box[int] is _Box
    box = _Box(3)
    assert not hasattr(box, "__dict__")  # Generic adds no __dict__, as typing's does not
    assert pickle.loads(pickle.dumps(box)).value == 3


def test_the_rest_do_nothing() -> None:
    assert ft.TypeVar("T", bound=int) == "T"
    assert ft.cast("list[int]", (1,)) == (1,)

    def f() -> int:
        return 1

    assert ft.overload(f) is f
    assert issubclass(ft.Protocol, ft.Generic)


def test_the_cached_path_loads_no_typing() -> None:
    """Importing the package, the Image API and the builder does not import typing."""
    code = (
        "import sys, imagewright, imagewright.definition.image, imagewright.execute.builder;"
        "import imagewright.cli.main, imagewright.cli.commands;"
        "print('typing' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

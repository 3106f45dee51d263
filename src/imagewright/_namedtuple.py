"""NamedTuple as typing's, made in a tenth of the time: for the modules a cached build imports.

typing.NamedTuple turns every annotation into a ForwardRef (compiling it) and then calls
collections.namedtuple (which compiles `__new__` from source): about 150 µs a class here, 5 ms of
the ~35 classes `imagewright build` defines before it can find every step cached. This makes the
same class in about 20 µs: a tuple subclass with `__slots__ = ()`, a C accessor per field and
namedtuple's `_fields`, `_field_defaults`, `_make`, `_replace` (and `__replace__`), `_asdict`,
`__getnewargs__`, `__match_args__`, repr, equality, hashing and pickling. Its methods are shared
by every class rather than compiled for each, so `__new__` takes `*args, **kwargs` (its errors
are worded as namedtuple's). Type checkers see typing's NamedTuple:

    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from .._namedtuple import NamedTuple

Runs on Python 3.9, as the modules that containers import must.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import Any


__all__ = ["NamedTuple"]

try:  # the C descriptor collections.namedtuple gives each field
    from _collections import _tuplegetter  # type: ignore[import-not-found]
except ImportError:  # (another interpreter: what namedtuple then uses)
    from operator import itemgetter

    def _tuplegetter(index: int, doc: str) -> Any:
        return property(itemgetter(index), doc=doc)


_new_tuple = tuple.__new__


def _new(cls: Any, *args: Any, **kwargs: Any) -> Any:
    fields = cls._fields
    if not kwargs:
        missing = len(fields) - len(args)
        if not missing:
            return _new_tuple(cls, args)
        defaults = tuple(cls._field_defaults.values())
        if 0 < missing <= len(defaults):  # (the positional fields given, defaults for the rest)
            return _new_tuple(cls, args + defaults[len(defaults) - missing :])
    return _new_tuple(cls, _bound(cls, fields, args, kwargs))


def _bound(
    cls: Any, fields: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[Any]:
    """The field values of `cls(*args, **kwargs)`, defaults filled in; TypeError worded as
    Python words it for namedtuple's `__new__`."""
    name = f"{cls.__name__}.__new__()"
    defaults = cls._field_defaults
    if len(args) > len(fields):
        most, least = len(fields) + 1, len(fields) - len(defaults) + 1  # (with `cls`)
        takes = f"{most}" if least == most else f"from {least} to {most}"
        given = len(args) + 1
        raise TypeError(f"{name} takes {takes} positional arguments but {given} were given")
    for field in fields[: len(args)]:
        if field in kwargs:
            raise TypeError(f"{name} got multiple values for argument {field!r}")
    values, kwargs = list(args), dict(kwargs)
    missing = []
    for field in fields[len(args) :]:
        if field in kwargs:
            values.append(kwargs.pop(field))
        elif field in defaults:
            values.append(defaults[field])
        else:
            missing.append(repr(field))
    if kwargs:
        raise TypeError(f"{name} got an unexpected keyword argument {next(iter(kwargs))!r}")
    if missing:
        names = " and ".join(missing) if len(missing) < 3 else ", ".join(missing[:-1])
        if len(missing) > 2:
            names += f", and {missing[-1]}"
        plural = "s" if len(missing) > 1 else ""
        raise TypeError(
            f"{name} missing {len(missing)} required positional argument{plural}: {names}"
        )
    return values


def _make(cls: Any, iterable: Any) -> Any:
    result = _new_tuple(cls, iterable)
    if len(result) != len(cls._fields):
        raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(result)}")
    return result


def _replace(self: Any, /, **kwargs: Any) -> Any:
    result = self._make(map(kwargs.pop, self._fields, self))
    if kwargs:
        raise ValueError(f"Got unexpected field names: {list(kwargs)!r}")
    return result


def _repr(self: Any) -> str:
    inner = ", ".join(f"{field}={value!r}" for field, value in zip(self._fields, self))  # noqa: B905 (3.9)
    return f"{self.__class__.__name__}({inner})"


def _asdict(self: Any) -> dict[str, Any]:
    return dict(zip(self._fields, self))  # noqa: B905 (runs on 3.9: no strict=)


def _getnewargs(self: Any) -> tuple[Any, ...]:
    return tuple(self)


_new.__name__ = _new.__qualname__ = "__new__"
_repr.__name__ = _repr.__qualname__ = "__repr__"
_getnewargs.__name__ = _getnewargs.__qualname__ = "__getnewargs__"
_make_method = classmethod(_make)
# What a class body may not define, and what it defines that is not copied: typing's lists.
_PROHIBITED = frozenset(
    {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults", "_make",
     "_replace", "_asdict", "_source"}
)  # fmt: skip
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


class _NamedTupleMeta(type):
    def __new__(cls, typename: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if bases != (_NamedTuple,):
            raise TypeError("can only inherit from a NamedTuple type")
        annotations = ns.get("__annotations__", {})
        fields = tuple(annotations)
        defaults: dict[str, Any] = {}
        for field in fields:
            if field in ns:
                defaults[field] = ns[field]
            elif defaults:
                raise TypeError(
                    f"Non-default namedtuple field {field} cannot follow default field"
                    f"{'s' if len(defaults) > 1 else ''} {', '.join(defaults)}"
                )
        namespace: dict[str, Any] = {
            "__doc__": f"{typename}({', '.join(fields)})",
            "__slots__": (),
            "_fields": fields,
            "_field_defaults": defaults,
            "__new__": _new,
            "_make": _make_method,
            "_replace": _replace,
            "__replace__": _replace,  # (copy.replace, as namedtuple's from Python 3.13)
            "__repr__": _repr,
            "_asdict": _asdict,
            "__getnewargs__": _getnewargs,
            "__match_args__": fields,
            "__module__": ns["__module__"],
            "__annotations__": annotations,
        }
        for index, field in enumerate(fields):
            namespace[field] = _tuplegetter(index, f"Alias for field number {index}")
        for key, value in ns.items():
            if key in _PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key not in _SPECIAL and key not in fields:
                namespace[key] = value
        return type.__new__(type, typename, (tuple,), namespace)


_NamedTuple = type.__new__(_NamedTupleMeta, "NamedTuple", (), {})


def NamedTuple(*args: Any, **kwargs: Any) -> Any:
    """Only as a base class, `class Point(NamedTuple): x: int`, as this package uses it."""
    raise TypeError("imagewright's NamedTuple is used as a base class only")


def _mro_entries(bases: tuple[Any, ...]) -> tuple[type, ...]:
    return (_NamedTuple,)


NamedTuple.__mro_entries__ = _mro_entries  # type: ignore[attr-defined]

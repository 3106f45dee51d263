"""The apps loaded in this process, by name: what `Function.from_name` and `Cls.from_name` find.

Modal looks deployed apps up on its service. Here a name resolves to an app the running program
defined, else to an app `imagewright deploy` runs on this machine (serving/remote.py), else to
a NotFoundError saying so.
"""

from __future__ import annotations

import weakref
from typing import Any

from .exception import NotFoundError

__all__ = ["lookup", "lookup_app", "register"]

_apps: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def register(name: str, app: Any) -> None:
    _apps[name] = app


def lookup_app(app_name: str) -> Any:
    """The loaded App called `app_name`, or None."""
    return _apps.get(app_name)


def lookup(app_name: str, name: str) -> Any:
    """The function or class `name` of the loaded app `app_name`."""
    app = _apps.get(app_name)
    if app is None:
        from .serving.remote import find_deployed

        deployed = find_deployed(app_name, name)
        if deployed is not None:
            return deployed
        raise NotFoundError(
            f"No app named {app_name!r} is loaded or deployed: imagewright looks up the apps "
            "of the program it runs and those `imagewright deploy` runs on this machine."
        )
    found = app.registered_functions.get(name) or app.registered_classes.get(name)
    if found is None:
        raise NotFoundError(f"App {app_name!r} has no function or class named {name!r}")
    return found

"""imagewright: build Modal-style container images on your own Linux machine.

Code written for Modal runs unchanged with `import imagewright as modal`: every name of Modal
1.x's top-level namespace is here. What each does locally is in the README ("Modal names and
what they do locally"); names with no local meaning load, and raise UnimplementedError when
used.
"""

from __future__ import annotations

import sys

from .definition.engine import use_engine
from .engine import LocalEngine
from .version import __version__

# Image's build, export, push and Dockerfile methods run through it (definition/engine.py).
use_engine(LocalEngine())

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:  # the names below, for type checkers: at run time each loads on first use
    from typing import Any

    from . import billing, exception, experimental, types
    from .app import App, enable_output
    from .cloud import (
        Client,
        CloudBucketMount,
        Cluster,
        Environment,
        NetworkFileSystem,
        Proxy,
        SchedulerPlacement,
        Workspace,
    )
    from .cls import Cls, Server
    from .definition.image import Image
    from .definition.patterns import FilePatternMatcher
    from .distributed import Dict, Queue
    from .exception import Error
    from .function import Function, FunctionCall
    from .locality import interact, is_local
    from .mount import Mount
    from .partial import (
        asgi_app,
        batched,
        clustered,
        concurrent,
        enter,
        exit,
        fastapi_endpoint,
        method,
        parameter,
        sessioned,
        web_endpoint,
        web_server,
        wsgi_app,
    )
    from .retries import Retries
    from .runtime.context import current_function_call_id, current_input_id
    from .sandbox import Probe, Sandbox, SandboxSnapshot
    from .schedule import Cron, Period
    from .secret import Secret
    from .tunnel import Tunnel, forward
    from .volume import Volume

# Where each public name lives. `import imagewright` loads none of them: a program (and each of
# its containers, which import it again) pays only for the names it uses.
_HOMES: dict[str, str] = {
    "App": "app",
    "Client": "cloud",
    "CloudBucketMount": "cloud",
    "Cls": "cls",
    "Cluster": "cloud",
    "Cron": "schedule",
    "Dict": "distributed",
    "Environment": "cloud",
    "Error": "exception",
    "FilePatternMatcher": "definition.patterns",
    "Function": "function",
    "FunctionCall": "function",
    "Image": "definition.image",
    "Mount": "mount",
    "NetworkFileSystem": "cloud",
    "Period": "schedule",
    "Probe": "sandbox",
    "Proxy": "cloud",
    "Queue": "distributed",
    "Retries": "retries",
    "Sandbox": "sandbox",
    "SandboxSnapshot": "sandbox",
    "SchedulerPlacement": "cloud",
    "Secret": "secret",
    "Server": "cls",
    "Tunnel": "tunnel",
    "Volume": "volume",
    "Workspace": "cloud",
    "asgi_app": "partial",
    "batched": "partial",
    "billing": "billing",
    "clustered": "partial",
    "concurrent": "partial",
    "current_function_call_id": "runtime.context",
    "current_input_id": "runtime.context",
    "enable_output": "app",
    "enter": "partial",
    "exception": "exception",
    "exit": "partial",
    "experimental": "experimental",
    "fastapi_endpoint": "partial",
    "forward": "tunnel",
    "interact": "locality",
    "is_local": "locality",
    "method": "partial",
    "parameter": "partial",
    "sessioned": "partial",
    "types": "types",
    "web_endpoint": "partial",
    "web_server": "partial",
    "wsgi_app": "partial",
}

__all__ = [
    "App",
    "Client",
    "CloudBucketMount",
    "Cls",
    "Cluster",
    "Cron",
    "Dict",
    "Environment",
    "Error",
    "FilePatternMatcher",
    "Function",
    "FunctionCall",
    "Image",
    "Mount",
    "NetworkFileSystem",
    "Period",
    "Probe",
    "Proxy",
    "Queue",
    "Retries",
    "Sandbox",
    "SandboxSnapshot",
    "SchedulerPlacement",
    "Secret",
    "Server",
    "Tunnel",
    "Volume",
    "Workspace",
    "__version__",
    "asgi_app",
    "batched",
    "billing",
    "clustered",
    "concurrent",
    "current_function_call_id",
    "current_input_id",
    "enable_output",
    "enter",
    "exception",
    "exit",
    "experimental",
    "fastapi_endpoint",
    "forward",
    "interact",
    "is_local",
    "method",
    "parameter",
    "sessioned",
    "types",
    "web_endpoint",
    "web_server",
    "wsgi_app",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'imagewright' has no attribute {name!r}")
    __import__(f"{__name__}.{home}")  # (importlib.import_module, without importing importlib)
    module = sys.modules[f"{__name__}.{home}"]
    value = module if home == name else getattr(module, name)
    if isinstance(value, type):
        value.__module__ = "imagewright"  # classes show as `imagewright.X`, as Modal's as `modal.X`
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

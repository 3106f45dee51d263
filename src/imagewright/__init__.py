"""imagewright: build Modal-style container images on your own Linux machine.

Code written for Modal runs unchanged with `import imagewright as modal`: every name of Modal
1.x's top-level namespace is here. What each does locally is in the README ("Modal names and
what they do locally"); names with no local meaning load, and raise UnimplementedError when
used.
"""

from __future__ import annotations

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
from .definition.engine import use_engine
from .definition.image import Image
from .definition.patterns import FilePatternMatcher
from .distributed import Dict, Queue
from .engine import LocalEngine
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
from .version import __version__
from .volume import Volume

# Image's build, export, push and Dockerfile methods run through it (definition/engine.py).
use_engine(LocalEngine())

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

# Classes show as `imagewright.X`, as Modal's show as `modal.X`.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "imagewright"

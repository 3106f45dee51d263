"""imagewright: build Modal-style container images on your own Linux machine.

Code written for Modal runs unchanged with `import imagewright as modal`.
"""

from __future__ import annotations

from . import exception
from .app import App, enable_output
from .definition.engine import use_engine
from .definition.image import Image
from .definition.patterns import FilePatternMatcher
from .engine import LocalEngine
from .exception import Error
from .function import Function, FunctionCall
from .mount import Mount
from .secret import Secret
from .version import __version__

# Image's build, export, push and Dockerfile methods run through it (definition/engine.py).
use_engine(LocalEngine())

__all__ = [
    "App",
    "Error",
    "FilePatternMatcher",
    "Function",
    "FunctionCall",
    "Image",
    "Mount",
    "Secret",
    "__version__",
    "enable_output",
    "exception",
]

for _name in (
    "App",
    "Image",
    "Secret",
    "FilePatternMatcher",
    "Error",
    "Function",
    "FunctionCall",
    "Mount",
):
    globals()[_name].__module__ = "imagewright"

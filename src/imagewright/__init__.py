"""imagewright: build Modal-style container images on your own Linux machine.

Code written for Modal runs unchanged with `import imagewright as modal`.
"""

from __future__ import annotations

from . import exception
from .definition.image import Image
from .definition.patterns import FilePatternMatcher
from .exception import Error
from .secret import Secret
from .version import __version__

__all__ = ["Error", "FilePatternMatcher", "Image", "Secret", "__version__", "exception"]

for _name in ("Image", "Secret", "FilePatternMatcher", "Error"):
    globals()[_name].__module__ = "imagewright"

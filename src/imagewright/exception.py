"""Modal's exception names, under one root.

Error
├── InvalidError          bad arguments or definitions, raised before any step runs
├── NotFoundError         a named thing (file, module, image) does not exist
├── VersionError          an unsupported image builder version
├── ExecutionError        the local side failed while running (a file changed mid-build, …)
├── RegistryError         a registry refused or dropped a push or pull, or sent a bad layer
├── RemoteError           something failed inside a container
│   └── ImageBuildError   a build step exited non-zero or the build was stopped
└── FunctionTimeoutError  a function ran past its timeout
"""

from __future__ import annotations

__all__ = [
    "Error",
    "ExecutionError",
    "FunctionTimeoutError",
    "ImageBuildError",
    "InvalidError",
    "InvalidTypeError",
    "InvalidValueError",
    "LocalFileNotFoundError",
    "NotFoundError",
    "RegistryError",
    "RemoteError",
    "VersionError",
]


class Error(Exception):
    """Root of every error imagewright raises on purpose."""


class InvalidError(Error):
    """Raised when an argument or a definition is not valid."""


class NotFoundError(Error):
    """Raised when a file, module or stored image that was named does not exist."""


# Where Modal (or Python) answers bad input with a built-in exception, ours is also that
# built-in: `except TypeError` in a user's code still catches it, and the CLI, which catches
# only imagewright's own errors, shows it as one line.


class InvalidTypeError(InvalidError, TypeError):
    """An argument of the wrong type (Modal raises TypeError)."""


class InvalidValueError(InvalidError, ValueError):
    """An argument with a value that cannot work (a bad pattern, an unknown compression)."""


class LocalFileNotFoundError(NotFoundError, FileNotFoundError):
    """A local file or directory that a definition names does not exist."""


class VersionError(Error):
    """Raised for an image builder version this release does not know."""


class ExecutionError(Error):
    """Raised when the local side fails during a build or call (not the user's code)."""


class RegistryError(Error):
    """Raised when talking to an image registry fails; the message names the registry, what
    was being sent or fetched, the HTTP status and the registry's own error code."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class RemoteError(Error):
    """Raised when something fails inside a container."""


class ImageBuildError(RemoteError):
    """Raised when a build step fails; `image_id` names the image being built."""

    def __init__(self, message: str, image_id: str | None = None, log_path: str | None = None):
        super().__init__(message)
        self.image_id = image_id
        self.log_path = log_path


class FunctionTimeoutError(Error):
    """Raised when a function call runs past its timeout."""

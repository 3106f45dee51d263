"""Modal's exception names (every class and function of `modal.exception` 1.x), under one root.

The hierarchy is Modal's, so `except` clauses written for Modal catch the same things here.
Classes marked "Modal" are raised only where the same situation arises locally; the rest exist
so that code naming them imports and runs. Modal's gRPC-era classes (NotFoundError,
InvalidError, …) also subclass grpclib.GRPCError there; that transitional base has no local
meaning and is left out.

Error
├── InvalidError          bad arguments or definitions, raised before any step runs
│   ├── ConflictError                         (Modal)
│   ├── InvalidTypeError  also a TypeError    (imagewright)
│   └── InvalidValueError also a ValueError   (imagewright)
├── NotFoundError         a named thing (file, module, image) does not exist
│   └── LocalFileNotFoundError  also a FileNotFoundError (imagewright)
├── UnimplementedError    a Modal feature that imagewright does not run locally (yet)
├── VersionError          an unsupported image builder version
├── ExecutionError        the local side failed while running (a file changed mid-build, …)
├── RegistryError         a registry refused or dropped a push or pull, or sent a bad layer
├── RemoteError           something failed inside a container
│   └── ImageBuildError   a build step exited non-zero or the build was stopped
├── TimeoutError          (Modal's, not the builtin)
│   ├── FunctionTimeoutError  a function ran past its timeout
│   └── SandboxTimeoutError, ExecTimeoutError, MountUploadTimeoutError,
│       VolumeUploadTimeoutError, InteractiveTimeoutError, OutputExpiredError
├── SandboxFilesystemError and its six subclasses
└── AlreadyExistsError, AuthError, ClientClosed, ConnectionError (not the builtin),
    DataLossError, DeserializationError, InternalError, InternalFailure, LogsFetchError,
    PermissionDeniedError, RequestSizeError, ResourceExhaustedError, SandboxTerminatedError,
    SerializationError, ServiceError, SnapshotCreationError, WorkspaceManagementError

Outside Error, as in Modal: the warnings DeprecationError, ServerWarning, AsyncUsageWarning and
InternalAPIWarning (UserWarning); InputCancellation (a BaseException, so that a bare
`except Exception` in user code does not swallow it); ModuleNotMountable and UserCodeException.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "AlreadyExistsError",
    "AsyncUsageWarning",
    "AuthError",
    "ClientClosed",
    "ConflictError",
    "ConnectionError",
    "DataLossError",
    "DeprecationError",
    "DeserializationError",
    "Error",
    "ExecTimeoutError",
    "ExecutionError",
    "FunctionTimeoutError",
    "ImageBuildError",
    "InputCancellation",
    "InteractiveTimeoutError",
    "InternalAPIWarning",
    "InternalError",
    "InternalFailure",
    "InvalidError",
    "InvalidTypeError",
    "InvalidValueError",
    "LocalFileNotFoundError",
    "LogsFetchError",
    "ModuleNotMountable",
    "MountUploadTimeoutError",
    "NotFoundError",
    "OutputExpiredError",
    "PermissionDeniedError",
    "RegistryError",
    "RemoteError",
    "RequestSizeError",
    "ResourceExhaustedError",
    "SandboxFilesystemDirectoryNotEmptyError",
    "SandboxFilesystemError",
    "SandboxFilesystemFileTooLargeError",
    "SandboxFilesystemIsADirectoryError",
    "SandboxFilesystemNotADirectoryError",
    "SandboxFilesystemNotFoundError",
    "SandboxFilesystemPathAlreadyExistsError",
    "SandboxFilesystemPermissionError",
    "SandboxTerminatedError",
    "SandboxTimeoutError",
    "SerializationError",
    "ServerWarning",
    "ServiceError",
    "SnapshotCreationError",
    "TimeoutError",
    "UnimplementedError",
    "UserCodeException",
    "VersionError",
    "VolumeUploadTimeoutError",
    "WorkspaceManagementError",
    "simulate_preemption",
]


class Error(Exception):
    """Root of every error imagewright raises on purpose."""


class InvalidError(Error):
    """Raised when an argument or a definition is not valid."""


class ConflictError(InvalidError):
    """Raised when a request conflicts with the current state of a resource."""


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


class UnimplementedError(Error):
    """Raised when code uses a Modal feature that imagewright does not run locally (yet)."""


class AlreadyExistsError(Error):
    """Raised when creating something that already exists."""


class AuthError(Error):
    """Raised when credentials are missing or invalid."""


class InternalError(Error):
    """Raised when imagewright itself is in a state it should never reach."""


class DataLossError(Error):
    """Raised when data is lost or corrupted."""


class PermissionDeniedError(Error):
    """Raised when an operation is not permitted."""


class ResourceExhaustedError(Error):
    """Raised when a quota or limit is exhausted."""


class ServiceError(Error):
    """Raised when talking to a service fails."""


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


class WorkspaceManagementError(Error):
    """Raised when managing a workspace fails."""


class TimeoutError(Error):  # Modal's name, shadowing the builtin here on purpose
    """Base class of Modal's timeouts (not a subclass of the builtin TimeoutError)."""


class FunctionTimeoutError(TimeoutError):
    """Raised when a function call runs past its timeout."""


class SandboxTimeoutError(TimeoutError):
    """Raised when a sandbox runs past its timeout."""


class ExecTimeoutError(TimeoutError):
    """Raised when a process started in a container runs past its timeout."""


class MountUploadTimeoutError(TimeoutError):
    """Raised when uploading a mount times out."""


class VolumeUploadTimeoutError(TimeoutError):
    """Raised when uploading to a volume times out."""


class InteractiveTimeoutError(TimeoutError):
    """Raised when an interactive session cannot reach its container in time."""


class OutputExpiredError(TimeoutError):
    """Raised when a call's output expired before it was fetched."""


class SnapshotCreationError(Error):
    """Raised when taking a snapshot failed for good."""


class SandboxTerminatedError(Error):
    """Raised when a sandbox was terminated for an internal reason."""


class LogsFetchError(Error):
    """Raised when asking for too many logs."""


class ConnectionError(Error):  # Modal's name, shadowing the builtin here on purpose
    """Raised when connecting to a server fails (not a subclass of the builtin)."""


class DeserializationError(Error):
    """Raised when a value received cannot be deserialized."""


class SerializationError(Error):
    """Raised when a value to send cannot be serialized."""


class RequestSizeError(Error):
    """Raised when a request is too large."""


class InternalFailure(Error):
    """A failure inside the system that a retry may cure."""


class ClientClosed(Error):
    """Raised when a closed client is used."""


class SandboxFilesystemError(Error):
    """Base class of errors of file operations in a sandbox."""


class SandboxFilesystemNotFoundError(SandboxFilesystemError):
    """A file or directory in the sandbox does not exist."""


class SandboxFilesystemDirectoryNotEmptyError(SandboxFilesystemError):
    """A directory in the sandbox is not empty."""


class SandboxFilesystemIsADirectoryError(SandboxFilesystemError):
    """A file operation in the sandbox met a directory."""


class SandboxFilesystemNotADirectoryError(SandboxFilesystemError):
    """A path component in the sandbox is not a directory."""


class SandboxFilesystemPermissionError(SandboxFilesystemError):
    """A file operation in the sandbox was not permitted."""


class SandboxFilesystemFileTooLargeError(SandboxFilesystemError):
    """A file in the sandbox is too large to read at once."""


class SandboxFilesystemPathAlreadyExistsError(SandboxFilesystemError):
    """A path in the sandbox exists where it must not."""


class DeprecationError(UserWarning):
    """The warning category for deprecated Modal features (a UserWarning, so it shows)."""


class ServerWarning(UserWarning):
    """A warning from a server, re-issued in the client."""


class AsyncUsageWarning(UserWarning):
    """A warning that a blocking interface was used inside an event loop."""


class InternalAPIWarning(UserWarning):
    """A warning that user code reached into an internal API."""


class InputCancellation(BaseException):
    """Raised in a function when its input is cancelled; a BaseException so that a bare
    `except Exception` does not swallow it."""


class ModuleNotMountable(Exception):
    """A module that cannot be attached to a container."""


class UserCodeException(Exception):
    """Deprecated in Modal, which wrapped user exceptions in it; kept so code naming it runs.
    imagewright re-raises user exceptions as themselves and never raises this."""

    def __init__(self, exc: BaseException):
        super().__init__(exc)
        self.exc = exc


# After the first interrupt, the second alarm is left to SIGALRM's default action, which ends
# the process like the SIGKILL that follows a real preemption.
_SECOND_INTERRUPT_AFTER = 30


def _preempt(signum: int, frame: FrameType | None) -> None:
    import signal  # (here: signal makes its enums on import, ~1 ms of every start)

    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(_SECOND_INTERRUPT_AFTER)
    raise KeyboardInterrupt("Simulated preemption interrupt from imagewright")


def simulate_preemption(wait_seconds: int, jitter_seconds: int = 0) -> None:
    """Interrupt this process as a preemption would: KeyboardInterrupt after `wait_seconds`
    (plus up to `jitter_seconds`), then, 30 s later, an uncatchable end. Main thread only."""
    if wait_seconds <= 0:
        raise ValueError("Time to wait must be greater than 0")
    import random
    import signal

    jitter = random.randrange(0, jitter_seconds) if jitter_seconds else 0
    signal.signal(signal.SIGALRM, _preempt)
    signal.alarm(wait_seconds + jitter)

"""Entry point inside a function's container: import the function by name, then serve inputs.

The host binds this package into the container and starts the image's own Python on `main()`,
with -S and the channel's fd (protocol.py). The launch line reads the token from that fd before
anything of the image's site runs: .pth files, sitecustomize and usercustomize run only when
`main()` turns site on, so they can never read it (a token in the environment or argv, or still
waiting in the socket, they could). Should the host's end of the channel close while the
container still runs (the host died), it ends the whole container at once.
It must run on Python 3.9 to 3.14 with nothing installed, so it uses the standard library only.
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import socket
import threading
from typing import Any

from .calls import open_channel as open_calls
from .errors import exception_message
from .modal_alias import install as install_modal_alias
from .protocol import (
    CALLS_FD_ENV,
    CHANNEL_FD_ENV,
    FUNCTION_ENV,
    TOKEN_SIZE,
    loads,
    recv_message,
    send_message,
)
from .serve import Service, serve

__all__ = ["main"]


def _resolve(module_name: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _service(target: Any, params: Any) -> Service:
    """What the container serves: imagewright's Function and Cls say so themselves (with the
    class's parameters); a plain function is served as it is."""
    describe = getattr(target, "_imagewright_service", None)
    if describe is not None:
        service: Service = describe(params)
        return service
    return Service.of_function(target)


def _end_container() -> None:
    """The host is gone: end every process of this container, then this one.

    Exiting alone is not enough: bwrap's init lives on while any process the function started
    does, and with it the container.
    """
    try:
        if os.getpid() != 1:  # (as PID 1, exiting ends the PID namespace by itself)
            with open("/proc/1/comm") as comm:
                init = comm.read().strip()
            if init == "bwrap":  # our own PID namespace, where -1 means just this container
                os.kill(-1, signal.SIGKILL)
    finally:
        os._exit(0)


def _exit_with_host(sock: socket.socket) -> None:
    """End the container the moment the host's end of the channel closes, whatever the
    function is doing.

    The host only closes it after killing the container, or by dying. bwrap's --die-with-parent
    normally takes the container down with the host, but not if bwrap's own parent died while
    bwrap was still setting up.
    """

    def watch() -> None:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLRDHUP)
        while True:
            for _, events in poller.poll():
                if events & select.POLLNVAL:
                    return
                if events & (select.POLLHUP | select.POLLRDHUP | select.POLLERR):
                    _end_container()

    threading.Thread(target=watch, name="imagewright-host-watch", daemon=True).start()


def _enable_site() -> None:
    """Do now what -S left out at startup: site-packages, .pth files, sitecustomize."""
    import subprocess

    # A child interpreter the function starts (multiprocessing's spawn, say) copies our flags,
    # and -S was ours, not the user's.
    flags = getattr(subprocess, "_args_from_interpreter_flags", None)
    if flags is not None:
        subprocess._args_from_interpreter_flags = lambda: [f for f in flags() if f != "-S"]  # type: ignore[attr-defined]  # CPython-private, not in typeshed
    import site

    site.main()


def main(fd: int, token: bytes) -> None:
    """Import the function, set up what it serves (the host's "init" message carries a class's
    parameters), then answer inputs on the channel `fd` until the host is done.

    `token` is what the host sent first on the channel: every message we send carries it.
    """
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)  # processes the function starts do not get the channel
    os.environ.pop(CHANNEL_FD_ENV, None)
    calls_fd = os.environ.pop(CALLS_FD_ENV, None)
    if calls_fd is not None:  # (only function containers get one: not run_function's)
        open_calls(int(calls_fd), token)
    if len(token) != TOKEN_SIZE:
        return  # the host died before it could send it
    _exit_with_host(sock)
    module_name, qualname = os.environ[FUNCTION_ENV].split(":")
    try:
        # The host sent it right after the token, so it is here already: read it before the
        # image's site code runs, which could otherwise take it off the channel.
        init = recv_message(sock)
        if init is None or init[0]["kind"] != "init":
            return
        _enable_site()
        install_modal_alias()  # the function's module may say `import modal`
        try:
            service = _service(_resolve(module_name, qualname), loads(init[1]))
        except BaseException as exc:
            send_message(sock, *exception_message(exc), token=token)
            return
        serve(sock, token, service, init[0].get("web"))
    except ConnectionError:
        pass
    # The host closed its end without killing us first: it is gone.
    _end_container()

"""One `imagewright serve`: build the app, serve its endpoints, run its schedules, reload on edits.

The app's file is imported here, as `imagewright run` does, and its images are built with the
per-step cache. Each endpoint gets a Front (proxy.py) on its port. While serving, the app's
file and every local file its images add are watched (their size and mtime, twice a second).
After an edit the file is imported again and the images rebuilt, which reruns only the steps
the edit touched; each endpoint's containers are then swapped for new ones, the old finishing
what they serve. An edit that fails to import or build is reported and the running version
stays.

Output from every container comes prefixed with its endpoint's label; the session's own lines
with "serve". URLs are printed as Modal prints them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import settings
from ..exception import Error
from .endpoints import Endpoint, assign_ports, endpoints_of
from .proxy import Front

if TYPE_CHECKING:
    from ..app import App
    from ..function import Function

__all__ = ["Session"]

T = TypeVar("T")
_WATCH_EVERY = 0.5
_MAX_WATCHED = 20_000


class Session:
    """Serve the app that `load` imports from `path` until stopped (Ctrl-C, SIGTERM, `stop()`)."""

    def __init__(
        self,
        path: str,
        load: Callable[[str], App],
        *,
        ports: Mapping[str, int] = {},
        watch: bool = True,
        app_key: str | None = None,
        write: Callable[[str], None] | None = None,
    ):
        self.path, self._import = os.path.abspath(path), load
        self._ports, self._watch = dict(ports), watch
        self._app_key = app_key or self.path
        self._write_raw = write or _print
        self._write_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._fronts: dict[str, Front] = {}
        self._stack = contextlib.ExitStack()  # the running app's app.run()
        self._app: App | None = None
        self._stopping = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._schedule_stop = threading.Event()
        self.token = proxy_token()
        self.urls: dict[str, str] = {}
        self.on_reload: Callable[[App], None] | None = None  # told of each new version

    @property
    def app(self) -> App:
        """The version of the app being served."""
        assert self._app is not None, "start() first"
        return self._app

    # ---- output -----------------------------------------------------------------------------

    def _write(self, prefix: str, line: str) -> None:
        with self._write_lock:
            self._write_raw(f"{prefix:>12} | {line}")

    def log(self, line: str) -> None:
        self._write("serve", line)

    def _sink(self, label: str) -> Callable[[str], None]:
        return lambda line: self._write(label, line)

    # ---- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Build and serve the app; returns once every endpoint answers."""
        from ..execute.functions import start_thread

        start_thread(self._loop.run_forever, name="imagewright-serve-loop")
        app = self._load()
        endpoints = self._endpoints(app)
        self._stack.enter_context(app.run())
        self._app = app
        for endpoint in endpoints:
            front = Front(endpoint, self._sink(endpoint.label), self.token)
            self._on_loop(front.open())
            self._fronts[endpoint.label] = front
        self._show(endpoints)
        self._start_schedules(app)

    def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """`start()`, then watch for edits until `stop()` (or Ctrl-C in the main thread)."""
        try:
            self.start()
            if on_ready is not None:
                on_ready()
            seen = self._snapshot()
            while not self._stopping.wait(_WATCH_EVERY):
                if not self._watch:
                    continue
                now = self._snapshot()
                if now != seen:
                    changed = sorted(set(now.items()) ^ set(seen.items()))
                    self.log(f"{os.path.relpath(changed[0][0])} changed: reloading")
                    seen = now
                    self.reload()
                    seen = self._snapshot()  # (the reload itself may have taken a while)
        finally:
            self.close()

    def stop(self) -> None:
        self._stopping.set()

    def reload(self) -> None:
        """Import the app again, rebuild its images, and swap every endpoint's containers."""
        try:
            app = self._load()
            endpoints = self._endpoints(app)
            stack = contextlib.ExitStack()
            stack.enter_context(app.run())
        except Exception as exc:
            self.log(f"the edit was not applied: {_one_line(exc)}")
            return
        self._stop_schedules()
        old_stack, self._stack, self._app = self._stack, stack, app
        labels = {e.label for e in endpoints}
        swaps = []
        for endpoint in endpoints:
            front = self._fronts.get(endpoint.label)
            if front is None:
                front = Front(endpoint, self._sink(endpoint.label), self.token)
                swaps.append(front.open())
                self._fronts[endpoint.label] = front
            else:
                swaps.append(front.replace(endpoint))
        self._on_loop(_together(swaps))  # every endpoint's new containers start at once
        for label in [label for label in self._fronts if label not in labels]:
            self._on_loop(self._fronts.pop(label).close())
        old_stack.close()
        self._show(endpoints, again=True)
        self._start_schedules(app)
        if self.on_reload is not None:
            self.on_reload(app)

    def close(self) -> None:
        """Stop every container and free every port."""
        self._stop_schedules()
        with contextlib.suppress(Exception):
            fronts, self._fronts = list(self._fronts.values()), {}
            for front in fronts:
                self._on_loop(front.close())
        self._stack.close()
        self._loop.call_soon_threadsafe(self._loop.stop)

    # ---- helpers ----------------------------------------------------------------------------

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _load(self) -> App:
        return self._import(self.path)

    def _endpoints(self, app: App) -> list[Endpoint]:
        endpoints = endpoints_of(app)
        assign_ports(self._app_key, endpoints, self._ports)
        self.urls = {e.name: f"http://127.0.0.1:{e.port}" for e in endpoints}
        os.environ[settings.WEB_URLS] = json.dumps(self.urls)  # (containers get it too)
        return endpoints

    def _show(self, endpoints: list[Endpoint], again: bool = False) -> None:
        lines = ["✓ Reloaded." if again else "✓ Created objects."]
        for index, endpoint in enumerate(endpoints):
            branch = "└──" if index == len(endpoints) - 1 else "├──"
            key = " 🔑" if endpoint.auth else ""
            lines.append(
                f"{branch} 🔨 Created {endpoint.what} => http://127.0.0.1:{endpoint.port}{key}"
            )
        if any(e.auth for e in endpoints) and not again:
            lines.append(
                f"🔑 Requests to these need the headers Modal-Key: {self.token[0]} and "
                f"Modal-Secret: {self.token[1]}"
            )
        if not again:
            lines.append("⚡️ Serving... hit Ctrl-C to stop!")
        with self._write_lock:
            for line in lines:
                self._write_raw(line)

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        """Size and mtime of the app's file and of every local file its images add."""
        app = self._app
        roots = [self.path]
        if app is not None:
            roots += _local_sources(app)
        found: dict[str, tuple[int, int]] = {}
        for root in roots:
            for path in _walk(root):
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                found[path] = (info.st_mtime_ns, info.st_size)
                if len(found) >= _MAX_WATCHED:
                    return found
        return found

    # ---- schedules --------------------------------------------------------------------------

    def _start_schedules(self, app: App) -> None:
        from ..execute.functions import start_thread

        scheduled = {
            key: f for key, f in app.registered_functions.items() if f._options.schedule is not None
        }
        if not scheduled:
            return
        self._schedule_stop = threading.Event()
        self._scheduler = start_thread(
            self._run_schedules, scheduled, self._schedule_stop, name="imagewright-schedules"
        )

    def _stop_schedules(self) -> None:
        self._schedule_stop.set()

    def _run_schedules(self, scheduled: dict[str, Function], stop: threading.Event) -> None:
        from ..execute.functions import start_thread

        now = datetime.now(timezone.utc)
        due: dict[str, datetime] = {}
        for key, function in scheduled.items():
            schedule = function._options.schedule
            assert schedule is not None
            try:
                due[key] = schedule._next_after(now)
            except (ValueError, LookupError) as exc:  # a malformed cron line, an unknown zone
                self.log(f"{key} will not run on {schedule!r}: {exc}")
                continue
            self.log(f"{key} runs on {schedule!r}; next at {due[key]:%Y-%m-%d %H:%M:%S %Z}")
        while due and not stop.is_set():
            key = min(due, key=due.__getitem__)
            wait = (due[key] - datetime.now(timezone.utc)).total_seconds()
            if wait > 0:
                stop.wait(min(wait, 1.0))
                continue
            function = scheduled[key]
            schedule = function._options.schedule
            assert schedule is not None
            due[key] = schedule._next_after(max(due[key], datetime.now(timezone.utc)))
            start_thread(self._run_scheduled, key, function, name="imagewright-scheduled")

    def _run_scheduled(self, key: str, function: Function) -> None:
        self.log(f"running scheduled function {key}")
        try:
            result = function.remote()
        except Exception as exc:
            self.log(f"scheduled function {key} failed: {_one_line(exc)}")
            return
        shown = "" if result is None else f": returned {result!r}"[:200]
        self.log(f"scheduled function {key} finished{shown}")


async def _together(work: list[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*work)


def _print(line: str) -> None:
    print(line, flush=True)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, Error) or not str(exc):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"


def _local_sources(app: App) -> list[str]:
    """The local paths the app's images add (add_local_*, copied or attached)."""
    from ..definition.ops import CopyLocal

    images = [f._options.image for f in app.registered_functions.values()]
    images += [c._options.image for c in app.registered_classes.values()]
    paths: list[str] = []
    for image in images:
        for node in image._chain():
            paths += [mount.local for mount in node._mounts]
            if node._layer is not None:
                paths += [op.local for op in node._layer.ops if isinstance(op, CopyLocal)]
    return sorted(set(paths))


def _walk(root: str) -> list[str]:
    if not os.path.isdir(root):
        return [root]
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        found += [os.path.join(directory, name) for name in files]
        if len(found) >= _MAX_WATCHED:
            break
    return found


def proxy_token() -> tuple[str, str]:
    """The Modal-Key and Modal-Secret that endpoints asking for proxy auth accept: made once,
    kept in the store's home (mode 0600), so that URLs and tokens survive a restart."""
    import secrets

    path = settings.home() / "proxy-token.json"
    try:
        saved = json.loads(path.read_text())
        return str(saved["key"]), str(saved["secret"])
    except (FileNotFoundError, ValueError, KeyError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = {"key": "wk-" + secrets.token_hex(8), "secret": "ws-" + secrets.token_hex(16)}
    tmp = Path(f"{path}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(token, out)
    os.replace(tmp, path)
    saved = json.loads(path.read_text())  # another serve may have written it first
    return str(saved["key"]), str(saved["secret"])

"""`imagewright serve`, `deploy` and `app list|logs|stop`: web endpoints from the command line.

`serve` runs in the foreground with live reload, as `modal serve` does; `deploy` runs the same
in the background under a name, as `modal deploy` does, and `app` manages those.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import App

__all__ = ["add_serve_parsers", "app_command", "deploy_command", "serve_command"]


def add_serve_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], *, with_verbs: bool
) -> None:
    port_help = (
        "serve the endpoint LABEL on this port of 127.0.0.1 (default: the port it had before, "
        "else the first free one from 8000); repeatable"
    )
    serve = sub.add_parser(
        "serve",
        help="serve an app's web endpoints, reloading on edits",
        description="Build FILE's app and serve its web endpoints (fastapi_endpoint, asgi_app, "
        "wsgi_app, web_server, @app.server) on 127.0.0.1 until Ctrl-C. Editing the file, or a "
        "local file its images add, rebuilds what changed and swaps the containers. Scheduled "
        "functions run on their schedule meanwhile.",
    )
    serve.add_argument("path", metavar="FILE")
    serve.add_argument("--port", action="append", default=[], metavar="LABEL=PORT", help=port_help)
    serve.add_argument("--no-reload", action="store_true", help="do not watch for edits")
    serve.add_argument("--deployment", help=argparse.SUPPRESS)  # set by `deploy`

    deploy = sub.add_parser(
        "deploy",
        help="serve an app in the background under a name",
        description="Serve FILE's app in the background as deployment NAME (default: the "
        "App's name, else the file's), surviving the terminal. Deploying the same name again "
        "replaces it without downtime. `imagewright app list|logs|stop` manage deployments.",
    )
    deploy.add_argument("path", metavar="FILE")
    deploy.add_argument("--name", help="the deployment's name")
    deploy.add_argument("--port", action="append", default=[], metavar="LABEL=PORT", help=port_help)

    app = sub.add_parser(
        "app",
        help="list, follow and stop deployments",
        description="Manage the apps `imagewright deploy` runs in the background.",
    )
    if not with_verbs:
        return
    verbs = app.add_subparsers(dest="app_command", metavar="COMMAND", required=True)
    listing = verbs.add_parser("list", help="list running deployments",
                               description="List the running deployments.")  # fmt: skip
    listing.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    logs = verbs.add_parser("logs", help="show a deployment's output",
                            description="Print the output of deployment NAME.")  # fmt: skip
    logs.add_argument("name")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    stop = verbs.add_parser("stop", help="stop a deployment",
                            description="Stop deployment NAME and its containers.")  # fmt: skip
    stop.add_argument("name")


def _ports(given: list[str]) -> dict[str, int]:
    from ..exception import InvalidError

    ports = {}
    for item in given:
        label, sep, number = item.partition("=")
        if not sep or not number.isdigit() or not 0 < int(number) < 65536:
            raise InvalidError(f"--port {item!r}: expected LABEL=PORT, such as square=8080")
        ports[label] = int(number)
    return ports


def _load_app(path: str) -> App:
    from ..app import App
    from .loader import load_module, pick

    return pick(load_module(path), None, App, "App")


def serve_command(args: argparse.Namespace) -> int:
    from ..serving.deployments import CallServer, write_state
    from ..serving.session import Session

    ports = _ports(args.port)
    name = args.deployment
    session = Session(args.path, _load_app, ports=ports, watch=not args.no_reload,
                      app_key=f"deployment:{name}" if name else None)  # fmt: skip
    calls: list[CallServer] = []

    def ready() -> None:
        if name is None:
            return
        app = session.app
        calls.append(CallServer(name, app._relay))
        write_state(
            name,
            {
                "name": name,
                "pid": os.getpid(),
                "path": session.path,
                "started": time.time(),
                "urls": session.urls,
                "functions": _callables(app),
            },
        )

    session.on_reload = lambda app: calls[0].set_relay(app._relay) if calls else None
    try:
        session.serve_forever(ready)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from `app stop`: how serving ends
        print("Stopped serving.", flush=True)
    finally:
        for server in calls:
            server.close()
    return 0


def _callables(app: App) -> dict[str, dict[str, object]]:
    """What Function.from_name and Cls.from_name find in a deployment, by name."""
    from ..plan.functionsource import function_ref

    found: dict[str, dict[str, object]] = {}
    for key, function in app.registered_functions.items():
        found[key] = {"ref": function_ref(function.raw_f), "generator": function._is_generator}
    for key, cls in app.registered_classes.items():
        found[key] = {"ref": function_ref(cls._user_cls), "methods": sorted(cls._methods)}
    return found


def deploy_command(args: argparse.Namespace) -> int:
    from ..serving.deployments import deploy

    app = _load_app(args.path)  # (its errors show here, before anything starts)
    name = args.name or app.name or os.path.splitext(os.path.basename(args.path))[0]
    _ports(args.port)
    state = deploy(args.path, name, args.port)
    print(f"✓ Deployed {name!r} (pid {state['pid']}). Its URLs:")
    for url in state["urls"].values():
        print(f"  {url}")
    print(f"Logs: imagewright app logs {name}   Stop: imagewright app stop {name}")
    return 0


def app_command(args: argparse.Namespace) -> int:
    from ..serving.deployments import deployment_dir, list_deployments, read_state, stop_deployment

    if args.app_command == "list":
        found = list_deployments()
        if args.as_json:
            print(json.dumps(found, indent=1))
            return 0
        if not found:
            print("No deployments are running.")
        for state in found:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state["started"]))
            urls = " ".join(state["urls"].values()) or "(no web endpoints)"
            print(f"{state['name']:<20} pid {state['pid']:<8} since {since}  {urls}")
        return 0
    if args.app_command == "stop":
        stop_deployment(args.name)
        print(f"Stopped {args.name!r}.")
        return 0
    log = deployment_dir(args.name) / "log"
    if not log.exists():
        from ..exception import NotFoundError

        raise NotFoundError(f"No deployment named {args.name!r} (see `imagewright app list`)")
    with open(log, "rb") as source:
        while True:
            chunk = source.read(1 << 16)
            if chunk:
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
                continue
            if not args.follow or read_state(args.name) is None:
                return 0
            time.sleep(0.3)

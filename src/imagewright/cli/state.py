"""`imagewright dict ...` and `imagewright queue ...`: the named Dicts and Queues from the
command line, as `modal dict` and `modal queue` list, clear and delete them.

They work on the backend functions use (the SQLite file in the store's home, or the Redis
server of IMAGEWRIGHT_REDIS_URL). Exit status 0 on success, 1 on any failure (a missing name
included), which is shown as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_state_parsers", "state_command"]

_KINDS = {"dict": "Dict", "queue": "Queue"}


def add_state_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], *, chosen: str | None
) -> None:
    """The `dict` and `queue` commands; their verbs only for the one `chosen`."""
    for command, kind in _KINDS.items():
        parser = sub.add_parser(
            command,
            help=f"manage named {kind}s",
            description=f"List, clear and delete the named {kind}s that functions use with "
            f"{kind}.from_name(NAME).",
        )
        if command != chosen:  # (another command was chosen: `imagewright --help` needs this)
            continue
        parser.set_defaults(handler=state_command, kind=command)
        verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

        listing = verbs.add_parser(
            "list", help=f"list the named {kind}s", description=f"List the named {kind}s."
        )
        listing.add_argument("--json", action="store_true", dest="as_json", help="print JSON")

        clear = verbs.add_parser(
            "clear",
            help=f"empty a named {kind}",
            description=f"Remove everything in the {kind} NAME; it stays, empty.",
        )
        clear.add_argument("name")
        clear.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
        if command == "queue":
            where = clear.add_mutually_exclusive_group()
            where.add_argument("--partition", help="clear only this partition")
            where.add_argument(
                "--all", action="store_true", dest="every", help="clear every partition"
            )

        delete = verbs.add_parser(
            "delete",
            help=f"delete a named {kind} and all it holds",
            description=f"Delete the {kind} NAME and all it holds.",
        )
        delete.add_argument("name")
        delete.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
        delete.add_argument(
            "--allow-missing", action="store_true", help=f"succeed if the {kind} does not exist"
        )


def state_command(args: argparse.Namespace) -> int:
    from ..exception import Error

    verbs = {"list": _list, "clear": _clear, "delete": _delete}
    try:
        return verbs[args.verb](args)
    except Error as exc:
        label = "\x1b[31mError:\x1b[0m" if sys.stderr.isatty() else "Error:"
        print(f"{label} {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _list(args: argparse.Namespace) -> int:
    from ..distributed import Dict, Queue

    cls = Dict if args.kind == "dict" else Queue
    found = [(obj.name, obj.info().created_at) for obj in cls.objects.list()]
    if args.as_json:
        print(json.dumps([{"name": n, "created_at": t.timestamp()} for n, t in found]))
    elif not found:
        print(f"No {_KINDS[args.kind]}s.")
    else:
        for name, created in found:
            print(f"{name:40} {created.strftime('%Y-%m-%d %H:%M')}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from ..distributed import Dict, Queue

    kind = _KINDS[args.kind]
    if not _confirmed(args, f"Remove everything in {kind} {args.name!r}?"):
        return 0
    if args.kind == "dict":
        Dict.from_name(args.name).clear()
    else:
        Queue.from_name(args.name).clear(partition=args.partition, all=args.every)
    print(f"Cleared {kind} {args.name!r}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from ..distributed import Dict, Queue

    kind = _KINDS[args.kind]
    if not _confirmed(args, f"Delete {kind} {args.name!r} and all it holds?"):
        return 0
    cls = Dict if args.kind == "dict" else Queue
    cls.objects.delete(args.name, allow_missing=args.allow_missing)
    print(f"Deleted {kind} {args.name!r}")
    return 0


def _confirmed(args: argparse.Namespace, question: str) -> bool:
    from ..exception import InvalidError

    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise InvalidError(f"{question.rstrip('?')}: this needs confirming, pass --yes")
    if input(f"{question} [y/N] ").strip().lower() in ("y", "yes"):
        return True
    print("Nothing done.")
    return False

"""`imagewright secret ...`: the local secret store from the command line, as `modal secret`.

Values given as KEY=VALUE are this command's own argv, as with Modal's CLI; they are written to
the store (mode 0600) and never printed: output names keys only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["add_secret_parser", "secret_command"]


def add_secret_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], *, with_verbs: bool
) -> None:
    secret = sub.add_parser(
        "secret",
        help="manage named secrets",
        description="Create, list and delete the secrets that Secret.from_name(NAME) reads. "
        "They are kept in the store's home, readable by you only (mode 0600).",
    )
    if not with_verbs:  # (another command was chosen: `imagewright --help` needs only this)
        return
    verbs = secret.add_subparsers(dest="secret_command", metavar="COMMAND", required=True)

    create = verbs.add_parser(
        "create",
        help="create a named secret",
        description="Create the secret NAME from KEY=VALUE pairs and/or a .env or JSON file.",
    )
    create.add_argument("name")
    create.add_argument("keyvalues", nargs="*", metavar="KEY=VALUE")
    create.add_argument("--from-dotenv", metavar="FILE", help="read KEY=VALUE lines from FILE")
    create.add_argument("--from-json", metavar="FILE", help="read a JSON object from FILE")
    create.add_argument("--force", action="store_true", help="replace an existing secret")

    listing = verbs.add_parser("list", help="list the named secrets",
                               description="List the named secrets (names only).")  # fmt: skip
    listing.add_argument("--json", action="store_true", dest="as_json", help="print JSON")

    delete = verbs.add_parser(
        "delete", help="delete a named secret", description="Delete a named secret."
    )
    delete.add_argument("name")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
    delete.add_argument(
        "--allow-missing", action="store_true", help="succeed if the secret does not exist"
    )


def secret_command(args: argparse.Namespace) -> int:
    verbs = {"create": _create, "list": _list, "delete": _delete}
    return verbs[args.secret_command](args)


def _create(args: argparse.Namespace) -> int:
    from ..exception import InvalidError, LocalFileNotFoundError
    from ..secret import Secret, create_secret

    env: dict[str, str] = {}
    for item in args.keyvalues:
        key, sep, value = item.partition("=")
        if not sep or not key:
            # the item may be a value typed without its key: never echo it
            raise InvalidError('Each item must be KEY=VALUE (e.g. TOKEN="$TOKEN")')
        env[key] = value
    if args.from_dotenv:
        env.update(Secret.from_dotenv(args.from_dotenv).env)
    if args.from_json:
        path = Path(args.from_json)
        if not path.is_file():
            raise LocalFileNotFoundError(f"No such JSON file: {path}")
        loaded = json.loads(path.read_text())
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise InvalidError(f"{path} must hold a JSON object of strings")
        env.update(loaded)
    create_secret(args.name, env, force=args.force)
    keys = ", ".join(sorted(env))
    print(f"Created secret {args.name!r} with key(s) {keys}. Use it with "
          f"Secret.from_name({args.name!r}).")  # fmt: skip
    return 0


def _list(args: argparse.Namespace) -> int:
    from ..secret import list_secrets

    stored = list_secrets()
    if args.as_json:
        print(json.dumps([{"name": n, "created_at": t} for n, t in stored.items()]))
    elif not stored:
        print("No secrets.")
    else:
        for name, created in stored.items():
            print(f"{name:40} {time.strftime('%Y-%m-%d %H:%M', time.localtime(created))}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from ..exception import InvalidError
    from ..secret import delete_secret

    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidError(f"Deleting secret {args.name!r} needs confirming: pass --yes")
        answer = input(f"Delete secret {args.name!r}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Not deleted.")
            return 0
    delete_secret(args.name, allow_missing=args.allow_missing)
    print(f"Deleted secret {args.name!r}")
    return 0

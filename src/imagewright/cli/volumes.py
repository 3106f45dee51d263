"""`imagewright volume ...`: named volumes from the command line, as `modal volume` does.

The parser is built with the others (argparse only); the work imports the volume module once a
subcommand runs. A volume's file errors (a missing path, a file in the way) are shown as one
line, as bad input: they are not the machine failing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..volume import FileEntry, Volume

__all__ = ["add_volume_parser", "volume_command"]


def add_volume_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], *, with_verbs: bool
) -> None:
    volume = sub.add_parser(
        "volume",
        help="manage named volumes",
        description="Create, list, fill, read and delete the named volumes that functions "
        "mount with volumes={'/path': Volume.from_name(NAME)}.",
    )
    if not with_verbs:  # (another command was chosen: `imagewright --help` needs only this)
        return
    verbs = volume.add_subparsers(dest="volume_command", metavar="COMMAND", required=True)

    create = verbs.add_parser("create", help="create a named volume", description="Create "
                              "an empty named volume.")  # fmt: skip
    create.add_argument("name")

    listing = verbs.add_parser("list", help="list the named volumes",
                               description="List the named volumes.")  # fmt: skip
    listing.add_argument("--json", action="store_true", dest="as_json", help="print JSON")

    ls = verbs.add_parser(
        "ls", help="list files in a volume", description="List the entries under PATH."
    )
    ls.add_argument("name")
    ls.add_argument("path", nargs="?", default="/")
    ls.add_argument("--json", action="store_true", dest="as_json", help="print JSON")

    put = verbs.add_parser(
        "put",
        help="upload a file or directory",
        description="Upload LOCAL_PATH (a file or a directory) to REMOTE_PATH in the volume, "
        "making parent directories. A REMOTE_PATH ending in / is a directory to put it in.",
    )
    put.add_argument("name")
    put.add_argument("local_path")
    put.add_argument("remote_path", nargs="?", default="/")
    put.add_argument("-f", "--force", action="store_true", help="overwrite existing files")

    get = verbs.add_parser(
        "get",
        help="download a file or directory",
        description="Download REMOTE_PATH (a file, or a directory with all it holds) to "
        "LOCAL_DESTINATION (default: the current directory); '-' writes a file to stdout.",
    )
    get.add_argument("name")
    get.add_argument("remote_path")
    get.add_argument("local_destination", nargs="?", default=".")
    get.add_argument("--force", action="store_true", help="overwrite existing local files")

    rm = verbs.add_parser("rm", help="delete a file or directory from a volume",
                          description="Delete REMOTE_PATH from the volume.")  # fmt: skip
    rm.add_argument("name")
    rm.add_argument("remote_path")
    rm.add_argument("-r", "--recursive", action="store_true", help="delete a directory's tree")

    cp = verbs.add_parser(
        "cp",
        help="copy within a volume",
        description="Copy SOURCE... to DESTINATION inside the volume, as cp does.",
    )
    cp.add_argument("name")
    cp.add_argument("paths", nargs="+", metavar="PATH", help="sources, then the destination")
    cp.add_argument("-r", "--recursive", action="store_true", help="copy directories")

    delete = verbs.add_parser("delete", help="delete a named volume and all of its data",
                              description="Delete a named volume and all of its data.")  # fmt: skip
    delete.add_argument("name")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
    delete.add_argument(
        "--allow-missing", action="store_true", help="succeed if the volume does not exist"
    )


def volume_command(args: argparse.Namespace) -> int:
    from ..exception import InvalidError, NotFoundError

    try:
        return _VERBS[args.volume_command](args)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFoundError(_describe(exc)) from None
    except (FileExistsError, IsADirectoryError) as exc:
        raise InvalidError(_describe(exc)) from None


def _describe(exc: OSError) -> str:
    if exc.filename is None:
        return str(exc)
    return f"{exc.strerror}: {os.fsdecode(exc.filename)}"


def _volume(name: str) -> Volume:
    from ..volume import Volume

    return Volume.from_name(name).hydrate()


def _create(args: argparse.Namespace) -> int:
    from ..volume import create_volume

    create_volume(args.name)
    print(f"Created volume {args.name!r}. Use it with Volume.from_name({args.name!r}).")
    return 0


def _list(args: argparse.Namespace) -> int:
    from ..volume import list_volumes

    volumes = list_volumes()
    if args.as_json:
        print(json.dumps([{"name": n, "created_at": t} for n, t in volumes.items()]))
    elif not volumes:
        print("No volumes.")
    else:
        for name, created in volumes.items():
            print(f"{name:40} {time.strftime('%Y-%m-%d %H:%M', time.localtime(created))}")
    return 0


def _ls(args: argparse.Namespace) -> int:
    entries = _volume(args.name).listdir(args.path)
    if args.as_json:
        rows = [
            {"path": e.path, "type": e.type.name.lower(), "mtime": e.mtime, "size": e.size}
            for e in entries
        ]
        print(json.dumps(rows))
        return 0
    for entry in entries:
        print(entry.path + ("/" if entry.type.name == "DIRECTORY" else ""))
    return 0


def _put(args: argparse.Namespace) -> int:
    from ..exception import LocalFileNotFoundError

    local = Path(args.local_path)
    remote = args.remote_path
    if remote.endswith("/"):
        remote += local.name
    with _volume(args.name).batch_upload(force=args.force) as batch:
        if local.is_dir():
            batch.put_directory(local, remote)
        elif local.is_file():
            batch.put_file(local, remote)
        else:
            raise LocalFileNotFoundError(f"No such local file or directory: {local}")
    print(f"Uploaded {local} to {remote} in volume {args.name!r}")
    return 0


def _get(args: argparse.Namespace) -> int:
    from ..exception import InvalidError

    volume = _volume(args.name)
    entries = volume.listdir(args.remote_path, recursive=True)
    files = [e for e in entries if e.type.name == "FILE"]
    single = len(entries) == 1 and entries[0].path == args.remote_path.strip("/")
    if args.local_destination == "-":
        if not (single and files):
            raise InvalidError("'-' writes one file to stdout; REMOTE_PATH is not a file")
        for chunk in volume.read_file(files[0].path):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    destination = Path(args.local_destination)
    targets = _download_targets(files, args.remote_path, destination, single)
    for _, target in targets:  # every conflict is found before anything is written
        if target.exists() and not args.force:
            raise InvalidError(f"{target} exists locally: pass --force to overwrite it")
    for entry, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as writer:
            volume.read_file_into_fileobj(entry.path, writer)
    print(f"Downloaded {len(targets)} file(s) to {destination}")
    return 0


def _download_targets(
    files: list[FileEntry], remote: str, destination: Path, single: bool
) -> list[tuple[FileEntry, Path]]:
    """Where each file goes: a lone file into `destination` (a directory there, or its new
    name); a directory's files below `destination`, keeping their paths inside it."""
    if single:
        entry = files[0]
        name = entry.path.rpartition("/")[2]
        return [(entry, destination / name if destination.is_dir() else destination)]
    base = remote.strip("/")
    return [
        (e, destination / (e.path[len(base) + 1 :] if base else e.path))
        for e in files  # listdir gives paths below `base`, so they start with "base/"
    ]


def _rm(args: argparse.Namespace) -> int:
    _volume(args.name).remove_file(args.remote_path, recursive=args.recursive)
    print(f"Deleted {args.remote_path} from volume {args.name!r}")
    return 0


def _cp(args: argparse.Namespace) -> int:
    from ..exception import InvalidError

    if len(args.paths) < 2:
        raise InvalidError("volume cp needs at least one source and a destination")
    *sources, destination = args.paths
    _volume(args.name).copy_files(sources, destination, recursive=args.recursive)
    return 0


def _delete(args: argparse.Namespace) -> int:
    from ..exception import InvalidError
    from ..volume import delete_volume

    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidError(f"Deleting volume {args.name!r} needs confirming: pass --yes")
        answer = input(f"Delete volume {args.name!r} and all of its data? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Not deleted.")
            return 0
    delete_volume(args.name, allow_missing=args.allow_missing)
    print(f"Deleted volume {args.name!r}")
    return 0


_VERBS = {
    "create": _create,
    "list": _list,
    "ls": _ls,
    "put": _put,
    "get": _get,
    "rm": _rm,
    "cp": _cp,
    "delete": _delete,
}

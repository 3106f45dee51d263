"""Modal's `memory=` and `cpu=` for function containers, as cgroups.

Modal takes `cpu=1.5` or `cpu=(request, limit)` in cores and `memory=1024` or
`memory=(request, limit)` in MiB. There a request is a reservation, a minimum the scheduler
guarantees and the container may exceed when its worker has room; only a limit is a ceiling,
throttling past a CPU limit and killing past a memory one. Locally nothing is scheduled, and a
function that runs on Modal must not be killed here for using more than it requested, so:

- a limit (a tuple's second value) is a hard ceiling: memory.max (v2) or memory.limit_in_bytes
  (v1), with swap capped too so that it cannot dodge the limit, and a CFS quota of that many
  cores per 100 ms (cpu.max, or cpu.cfs_quota_us; at least the kernel's 1 ms);
- a CPU request weighs the container against the others, as Kubernetes maps requests: cpu.weight
  (v2) or cpu.shares (v1) in proportion to its cores;
- a memory request reserves nothing: there is no scheduler to reserve it from, and memory.low
  would protect nothing under a parent that has none.

The cgroups live under one parent named `imagewright` at the top of each hierarchy holding a
controller we need: /sys/fs/cgroup/memory/imagewright/<pid>-<n> and .../cpu/imagewright/<pid>-<n>
on cgroup v1, /sys/fs/cgroup/imagewright/<pid>-<n> on v2, where the root and our parent hand the
controllers down through cgroup.subtree_control. v2 lets a non-root cgroup do that only while it
holds no process itself: our parent never does, and a root that does (the root of a cgroup
namespace with processes in it) is reported as unsupported. A container joins its cgroup in the
forked child before exec, so everything it starts is inside from the first instruction. A cgroup
named for a process that is gone is left over from a killed run: the first container of a
process in a hierarchy removes those.

Where cgroups cannot be written (not root, a read-only /sys/fs/cgroup, a controller missing,
processes in the way), limits are not applied and a warning says so, once per process.
Unapplied requests are not worth one: locally they mean little anyway.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import re
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..exception import InvalidError, InvalidTypeError

if TYPE_CHECKING:  # (typing has it from Python 3.10; this module is imported on 3.9 too)
    from typing import TypeGuard

__all__ = ["Cgroup", "Limits"]

_PARENT = "imagewright"
_PERIOD_US = 100_000
_MIN_QUOTA_US = 1_000  # the kernel refuses a smaller quota
_REMOVE_TIMEOUT = 2.0  # a killed container's processes take a moment to leave
_LEFTOVER = re.compile(r"(\d+)-\d+")

_lock = threading.Lock()
_names = itertools.count(1)
_swept: set[Path] = set()
_warned = False


@dataclass(frozen=True)
class Limits:
    """What a container may use: hard ceilings, and a CPU weight."""

    memory_limit_mib: int | None = None
    cpu_limit: float | None = None
    cpu_request: float | None = None
    memory_request_mib: int | None = None  # not enforced here; what a cluster reserves

    @staticmethod
    def from_modal(memory: object, cpu: object) -> Limits:
        """The limits of `@app.function(memory=..., cpu=...)`, validated as Modal does.

        Zero or None means unset, as on Modal. Raises InvalidError for a bad value and
        InvalidTypeError for a bad form.
        """
        cpu_request, cpu_limit = _request_and_limit(cpu, "cpu")
        memory_request, memory_limit = _request_and_limit(memory, "memory")
        return Limits(
            memory_limit_mib=None if memory_limit is None else int(memory_limit),
            cpu_limit=cpu_limit,
            cpu_request=cpu_request,
            memory_request_mib=None if memory_request is None else int(memory_request),
        )


def _request_and_limit(value: object, argument: str) -> tuple[float | None, float | None]:
    """Modal's `cpu=` or `memory=`: a bare request, or (request, limit)."""
    cpu = argument == "cpu"
    noun, title = ("CPU", "CPU") if cpu else ("memory", "Memory")
    if value is None or (_is_number(value, cpu) and not value):
        return None, None
    if _is_number(value, cpu):
        if value < 0:
            raise InvalidError(f"{title} request must be a positive number")
        return float(value), None
    if not (
        isinstance(value, tuple) and len(value) == 2 and all(_is_number(v, cpu) for v in value)
    ):
        unit = "a number of cores" if cpu else "an integer number of MiB"
        raise InvalidTypeError(
            f"{argument}= takes {unit} or a (request, limit) tuple of them, not {value!r}"
        )
    request, limit = (float(v) for v in value)
    for what, item in (("request", request), ("limit", limit)):
        if item <= 0:
            raise InvalidError(f"{title} {what} must be a positive number")
    # Modal compares CPU in millicores, and says so
    scale = 1000 if cpu else 1
    if int(scale * limit) < int(scale * request):
        raise InvalidError(
            f"Cannot specify a {noun} limit lower than request: "
            f"{int(scale * limit)} < {int(scale * request)}"
        )
    return request, limit


def _is_number(value: object, fractional: bool) -> TypeGuard[float]:
    """A finite int (or, if `fractional`, a float too), but not a bool."""
    kinds = (int, float) if fractional else (int,)
    return isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)


class _Unsupported(Exception):
    """This machine cannot apply the limits; the message says why."""


@dataclass(frozen=True)
class _Hierarchy:
    mount: Path
    v2: bool


class Cgroup:
    """The cgroups of one container: one directory per hierarchy it needs."""

    def __init__(self, paths: dict[str, Path]):
        self.paths = paths  # controller -> its cgroup directory
        # built now: join runs between fork and exec, where it should allocate next to nothing
        self._procs = tuple(os.fsencode(d / "cgroup.procs") for d in dict.fromkeys(paths.values()))

    @classmethod
    def create(cls, limits: Limits) -> Cgroup | None:
        """The cgroups for a container with `limits`, made before it starts.

        None when there is nothing to apply, or when this machine cannot apply it: then, if a
        hard limit went unapplied, a warning says why (once per process).
        """
        wanted = _settings(limits)
        if not wanted:
            return None
        global _warned
        with _lock:
            name = f"{os.getpid()}-{next(_names)}"
            made: list[Path] = []
            try:
                paths = _make(wanted, name, made)
            except (OSError, _Unsupported) as exc:
                for path in reversed(made):
                    _rmdir(path)
                hard = limits.memory_limit_mib is not None or limits.cpu_limit is not None
                if hard and not _warned:
                    _warned = True
                    hint = " (cgroups need root)" if isinstance(exc, PermissionError) else ""
                    warnings.warn(
                        f"memory= and cpu= limits are not applied on this machine: {exc}{hint}",
                        stacklevel=2,
                    )
                return None
        return cls(paths)

    def join(self) -> None:
        """Move the calling process into the cgroups: a preexec_fn, run in the forked child.

        Raises OSError if a cgroup is gone: a container must not run silently unlimited.
        """
        for procs in self._procs:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the container for passing its memory limit.

        Ask before remove(): the count goes with the cgroup.
        """
        path = self.paths.get("memory")
        if path is None:
            return False
        name = "memory.events" if (path / "memory.events").exists() else "memory.oom_control"
        try:
            lines = (path / name).read_text().splitlines()
        except OSError:
            return False
        counts = dict(line.split(maxsplit=1) for line in lines if " " in line)
        return counts.get("oom_kill", "0").strip() != "0"

    def remove(self) -> None:
        """Remove the cgroups, once the container's processes are gone (or going).

        One that still holds processes after a moment stays: the first container of a later
        process removes it.
        """
        for path in dict.fromkeys(self.paths.values()):
            deadline = time.monotonic() + _REMOVE_TIMEOUT
            while not _rmdir(path) and time.monotonic() < deadline:
                time.sleep(0.01)


def _settings(limits: Limits) -> dict[str, list[tuple[str, str, str]]]:
    """Per controller, the (v1 file, v2 file, value) writes that apply `limits`, in order.

    An empty v1 or v2 file name means no such write there.
    """
    wanted: dict[str, list[tuple[str, str, str]]] = {}
    if limits.memory_limit_mib is not None:
        size = str(limits.memory_limit_mib << 20)
        # memsw (memory plus swap) may never fall below the memory limit: raise it out of the
        # way first, in case a leftover cgroup of the same name had a smaller one
        wanted["memory"] = [
            ("memory.memsw.limit_in_bytes", "", "-1"),
            ("memory.limit_in_bytes", "memory.max", size),
            ("memory.memsw.limit_in_bytes", "", size),
            ("", "memory.swap.max", "0"),
        ]
    writes = wanted.setdefault("cpu", [])
    if limits.cpu_limit is not None:
        quota = str(max(_MIN_QUOTA_US, round(limits.cpu_limit * _PERIOD_US)))
        writes += [
            ("cpu.cfs_period_us", "", str(_PERIOD_US)),
            ("cpu.cfs_quota_us", "", quota),
            ("", "cpu.max", f"{quota} {_PERIOD_US}"),
        ]
    if limits.cpu_request is not None:
        shares = min(262_144, max(2, round(limits.cpu_request * 1024)))
        writes.append(("cpu.shares", "", str(shares)))
        # Kubernetes' (and runc's) conversion of shares to a v2 weight
        writes.append(("", "cpu.weight", str(1 + (shares - 2) * 9999 // 262_142)))
    return {controller: writes for controller, writes in wanted.items() if writes}


def _make(
    wanted: dict[str, list[tuple[str, str, str]]], name: str, made: list[Path]
) -> dict[str, Path]:
    """Make cgroup `name` in each hierarchy `wanted` needs and write its settings; `made`
    gains each directory as it is made, for the caller to remove on failure."""
    hierarchies = _hierarchies()
    by_hierarchy: dict[_Hierarchy, list[str]] = {}
    for controller in wanted:
        if controller not in hierarchies:
            raise _Unsupported(f"no cgroup {controller} controller is mounted")
        by_hierarchy.setdefault(hierarchies[controller], []).append(controller)
    paths: dict[str, Path] = {}
    for hierarchy, controllers in by_hierarchy.items():
        parent = _parent(hierarchy, controllers)
        leaf = parent / name
        leaf.mkdir(exist_ok=True)
        made.append(leaf)
        for controller in controllers:
            for v1_file, v2_file, value in wanted[controller]:
                file = v2_file if hierarchy.v2 else v1_file
                # swap's files exist only where the kernel accounts swap
                optional = file.startswith(("memory.memsw.", "memory.swap."))
                if file and (not optional or (leaf / file).exists()):
                    _write(leaf / file, value)
            paths[controller] = leaf
    return paths


def _hierarchies() -> dict[str, _Hierarchy]:
    """Where the memory and cpu controllers are mounted, from our mountinfo."""
    found: dict[str, _Hierarchy] = {}
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            tail = fields[fields.index("-") + 1 :]  # filesystem type, source, options
            mount = Path(fields[4].replace("\\040", " "))
            if tail[0] == "cgroup":
                controllers: Iterable[str] = tail[2].split(",")
            elif tail[0] == "cgroup2":
                try:
                    controllers = (mount / "cgroup.controllers").read_text().split()
                except OSError:
                    continue
            else:
                continue
            for controller in ("memory", "cpu"):
                if controller in controllers:
                    found.setdefault(controller, _Hierarchy(mount, tail[0] == "cgroup2"))
    return found


def _parent(hierarchy: _Hierarchy, controllers: list[str]) -> Path:
    """Our parent cgroup in `hierarchy`, ready for leaves using `controllers`."""
    parent = hierarchy.mount / _PARENT
    if hierarchy.v2:
        _hand_down(hierarchy.mount, controllers)
    parent.mkdir(exist_ok=True)
    if hierarchy.v2:
        _hand_down(parent, controllers)
    if parent not in _swept:
        _swept.add(parent)
        for child in parent.iterdir():
            match = _LEFTOVER.fullmatch(child.name)
            if match and child.is_dir() and not _alive(int(match.group(1))):
                _rmdir(child)
    return parent


def _hand_down(cgroup: Path, controllers: list[str]) -> None:
    """Enable `controllers` in `cgroup`'s children (cgroup v2)."""
    control = cgroup / "cgroup.subtree_control"
    missing = [c for c in controllers if c not in control.read_text().split()]
    if not missing:
        return
    try:
        _write(control, " ".join(f"+{c}" for c in missing))
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise _Unsupported(
                f"{cgroup} holds processes, so cgroup v2 lets it hand no controller down"
            ) from None
        raise


def _alive(pid: int) -> bool:
    """Whether the process that named a cgroup still runs (none of ours is left over before
    this process's first container in a hierarchy, so our own pid counts as gone)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _write(path: Path, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror} (writing {value!r})", str(path)) from None


def _rmdir(path: Path) -> bool:
    """Remove an empty cgroup; False while it still holds processes."""
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return False
    return True

"""Every cache-key payload, built in this one module so that all keys can be read together.

A key is the hex sha256 of a small JSON document in canonical form (sorted keys, no whitespace,
ASCII only) whose "type" names its kind. What enters a key decides what is rebuilt, so each
payload holds exactly what changes a layer's bytes: the parent key, the canonical ops (with the
content digests of copied files), secret *names*, and BUILDER_VERSION (in every step key;
mounts_key, for files attached when a container starts, has never held it). Kept out on purpose:
secret values (rotating a token must not rebuild), host paths of copied files (moving a checkout
must not rebuild), call sites and proxy/CA settings.

Step keys come as a StepKey: the hex key and its components, the very payload hashed, which a
build records so that `imagewright build --explain` (plan/explain.py) can name what changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from .._digest import hexdigest
from ..definition.ops import Run, SetConfig
from ..definition.pythons import BaseRelease
from ..version import BUILDER_VERSION, BUNDLED_UV
from .files import FileEntry

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = [
    "StepKey",
    "add_python_key",
    "base_setup_key",
    "config_op",
    "copy_from_op",
    "copy_op",
    "empty_key",
    "extract_op",
    "function_op",
    "layer_key",
    "mounts_key",
    "pulled_image_key",
    "pulled_layer_key",
    "rootfs_key",
    "run_op",
]


# ---- the parts of a layer key: one per op -----------------------------------------------------


def run_op(op: Run) -> list[object]:
    argv, env = list(op.argv or ()), [list(pair) for pair in op.env]
    return ["run", op.command, _uv(op.uv), argv, list(op.cache_targets), op.image_tmp, env]


def copy_op(entries: Iterable[FileEntry], owner: str | None) -> list[object]:
    return ["copy", [_entry(e) for e in entries], owner]


def extract_op(archive_digest: str, dest: str, owner: str | None) -> list[object]:
    return ["extract", archive_digest, dest, owner]


def copy_from_op(
    source_key: str, paths: Sequence[str], dest: str, chmod: int | None, owner: str | None
) -> list[object]:
    # the source's final key stands for its whole filesystem
    return ["copy-from", source_key, list(paths), dest, chmod, owner]


def function_op(identity: list[object], include_source: bool) -> list[object]:
    """`identity` is functionkey.function_identity: source, globals and arguments."""
    return ["function", identity, include_source]


def config_op(op: SetConfig) -> list[object]:
    return ["config", op.field, op.value]


def _uv(uv: str | None) -> str | None:
    """The uv version a step runs with: bundled uv counts as its own version."""
    return BUNDLED_UV if uv == "" else uv


def _entry(entry: FileEntry) -> list[object]:
    """What of a file enters a key (not the host path: moving a tree is no change)."""
    return [entry.dest, entry.kind, entry.mode, entry.digest]


def _digest(payload: object) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hexdigest(canonical.encode())


# ---- step keys ------------------------------------------------------------------------------


class StepKey(NamedTuple):
    """A step's cache key and the components it is the digest of."""

    value: str
    components: dict[str, object]


def _step_key(components: dict[str, object]) -> StepKey:
    return StepKey(_digest(components), components)


def layer_key(parent: str | None, ops: list[object], secret_names: list[str]) -> StepKey:
    """A layer built from the user's ops (every step but bases and pulled layers)."""
    return _step_key(
        {
            "type": "imagewright.layer.v1",
            "builder": BUILDER_VERSION,
            "parent": parent,
            "ops": ops,
            "secrets": secret_names,
        }
    )


def rootfs_key(release: BaseRelease) -> StepKey:
    """A bootstrapped root filesystem (debian_slim, ubuntu)."""
    return _step_key(
        {
            "type": "imagewright.rootfs.v1",
            "builder": BUILDER_VERSION,
            "release": [release.distro, release.suite, list(release.packages)],
        }
    )


def base_setup_key(parent: str, commands: Sequence[str], standalone: str | None) -> StepKey:
    """The setup step over a bootstrapped rootfs; `standalone` is the series of a uv-managed
    CPython it adds, if the release packages none."""
    return _step_key(
        {
            "type": "imagewright.base-setup.v1",
            "builder": BUILDER_VERSION,
            "parent": parent,
            "commands": list(commands),
            "standalone": standalone,
        }
    )


def pulled_layer_key(parent: str | None, blob: str) -> StepKey:
    """One layer of a from_registry image: its blob digest, under the layers below it."""
    return _step_key(
        {
            "type": "imagewright.pulled-layer.v1",
            "builder": BUILDER_VERSION,
            "parent": parent,
            "blob": blob,
        }
    )


def pulled_image_key(parent: str | None, manifest: str) -> StepKey:
    """The config step of a from_registry image: a tag that moves to a new manifest rebuilds
    what is on top."""
    return _step_key(
        {
            "type": "imagewright.pulled-image.v1",
            "builder": BUILDER_VERSION,
            "parent": parent,
            "manifest": manifest,
        }
    )


def add_python_key(parent: str, series: str) -> StepKey:
    """from_registry(add_python=...): a standalone CPython copied into /usr/local."""
    return _step_key(
        {
            "type": "imagewright.add-python.v1",
            "builder": BUILDER_VERSION,
            "parent": parent,
            "series": series,
        }
    )


def empty_key() -> str:
    """A plan with no steps."""
    return _digest({"type": "imagewright.empty"})


def mounts_key(image_key: str, entries: Iterable[FileEntry]) -> str:
    """The layer of copy=False files attached over an image when a container starts."""
    return _digest(
        {"type": "imagewright.mounts.v1", "image": image_key, "files": [_entry(e) for e in entries]}
    )

"""The CLI's commands: each parses nothing, calls one library function and renders its result."""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    import argparse
    from types import ModuleType
    from typing import Any

    from ..execute.builder import LayerCache
    from ..execute.failed import FailedSlot
    from ..plan.explain import Explanation
    from ..plan.planner import Plan
    from ..store.store import Store

__all__ = [
    "app", "build", "deploy", "dockerfile", "export", "images", "prune", "push", "run", "secret",
    "serve", "shell", "volume",
]  # fmt: skip


def _load_image(ref: str) -> Any:
    from ..definition.image import Image
    from .loader import load_module, pick, split_ref

    path, name = split_ref(ref)
    return pick(load_module(path), name, Image, "Image")


def _layer_cache(args: argparse.Namespace) -> LayerCache | None:
    """The --cache-registry cache for every build the command starts (functions' images too);
    None leaves the builder's default, $IMAGEWRIGHT_CACHE_REGISTRY."""
    if not args.cache_registry:
        return None
    from ..registry.layercache import RegistryLayerCache

    return RegistryLayerCache(args.cache_registry)


def _slot(path: str, name: str | None, module: ModuleType, target: object) -> FailedSlot:
    """Where a failed build of `target` (FILE[::NAME]'s object) is kept for `shell --failed`:
    named by NAME, or by the variable holding the only image when NAME was left out."""
    from ..execute.failed import slot_for

    found = name or next(k for k, v in vars(module).items() if v is target)
    return slot_for(path, found)


def build(args: argparse.Namespace) -> int:
    from ..definition.image import Image
    from ..execute.builder import build_image
    from ..store.builds import record_build
    from ..store.store import Store
    from .loader import load_module, pick, split_ref

    path, name = split_ref(args.ref)
    module = load_module(path)
    image = pick(module, name, Image, "Image")
    slot = _slot(path, name, module, image)
    # what --explain compares builds of: the file, and the image's name in it
    found = name or next(k for k, v in vars(module).items() if v is image)
    definition, store = f"{os.path.abspath(path)}::{found}", Store.default()
    plan, explained = None, None
    if args.explain:
        plan, explained = _explain(image, args.force, store, definition, args.as_json)
    result = build_image(
        image, force=args.force, store=store, cache=_layer_cache(args), keep_failed=slot, plan=plan
    )
    record_build(store, definition, result.plan)
    if args.as_json:
        document = result.to_json()
        if explained is not None:
            document["explain"] = [e.to_json() for e in explained]
        print(json.dumps(document))
    return 0


def _explain(
    image: Any, force: bool, store: Store, definition: str, as_json: bool
) -> tuple[Plan, list[Explanation]]:
    """Plan `image` and say why each step that misses the cache does, against the last build
    of `definition` (printed, unless the build's JSON carries it)."""
    from ..plan.explain import explain
    from ..plan.planner import plan_image
    from ..registry.resolve import RegistryResolver
    from ..store.builds import last_build

    plan = plan_image(image, force=force, resolver=RegistryResolver())
    earlier = last_build(store, definition)
    explained = explain(plan, earlier, lambda key: store.lookup(key) is not None)
    if not as_json:
        total = len(plan.steps)
        head = f"All {total} steps are cached."
        if explained:
            head = f"{len(explained)} of {total} steps rebuild:"
        lines = [head, *(f"  {explanation.line()}" for explanation in explained)]
        print("\n".join(lines), flush=True)  # before the build's progress on stderr
    return plan, explained


def _shell_target(ref: str) -> tuple[Any, tuple[Any, ...], dict[str, str], FailedSlot]:
    """The image, extra mounts, env and failed-step slot for `shell FILE[::NAME]`; NAME may
    name a function."""
    from ..definition.image import Image
    from ..function import Function
    from ..plan.functionsource import source_mounts
    from .loader import load_module, pick, split_ref

    path, name = split_ref(ref)
    module = load_module(path)
    function = getattr(module, name, None) if name else None
    if isinstance(function, Function):
        mounts = source_mounts(function.raw_f) if function.include_source else ()
        env = {k: v for s in function.secrets for k, v in s.env.items()}
        return function.image, mounts, env, _slot(path, name, module, function)
    image = pick(module, name, Image, "Image")
    return image, (), {}, _slot(path, name, module, image)


def shell(args: argparse.Namespace) -> int:
    from ..execute.builder import build_image
    from ..execute.container import run_container
    from ..store.store import Store

    image, mounts, env, slot = _shell_target(args.ref)
    store = Store.default()
    if args.failed:
        from ..execute.failed import run_failed_shell

        shell = "command -v bash >/dev/null && exec bash || exec sh"
        script = shell if args.command_string is None else args.command_string
        argv = ["/bin/sh", "-c", script]
        return run_failed_shell(store, slot, argv, interactive=args.command_string is None)
    plan = build_image(image, store=store, cache=_layer_cache(args), keep_failed=slot).plan
    # Start where a function's container starts (execute/functions.py): in the image's WORKDIR,
    # or /root when it sets none, as Modal's containers do. There `python` imports what
    # add_local_python_source and a function's source put in /root.
    start = "cd /root 2>/dev/null; " if plan.config.workdir == "/" else ""
    if args.command_string is None:
        script = start + "command -v bash >/dev/null && exec bash || exec sh"
        argv = ["/bin/sh", "-c", script]
        status, _ = run_container(plan, store, argv, interactive=True, env=env, extra_mounts=mounts)
    else:
        argv = ["/bin/sh", "-c", start + args.command_string]
        status, _ = run_container(plan, store, argv, env=env, extra_mounts=mounts)
    return status


def run(args: argparse.Namespace) -> int:
    from .run import run_target

    cluster, rest = _cluster_flag(args.cluster, args.args)
    return run_target(args.ref, rest, _layer_cache(args), cluster)


def _cluster_flag(cluster: str | None, rest: list[str]) -> tuple[str | None, list[str]]:
    """--cluster given after FILE, where the function's own flags go: take it out of them."""
    rest = list(rest)
    for i, word in enumerate(rest):
        if word == "--cluster" and i + 1 < len(rest):
            return rest[i + 1], rest[:i] + rest[i + 2 :]
        if word.startswith("--cluster="):
            return word.partition("=")[2], rest[:i] + rest[i + 1 :]
    return cluster, rest


def export(args: argparse.Namespace) -> int:
    import sys

    from ..export import export_image

    result = export_image(
        _load_image(args.ref),
        args.output,
        format=args.format,
        compression=args.compression,
        tag=args.tag,
        cache=_layer_cache(args),
        progress=lambda line: print(line, file=sys.stderr),
    )
    print(
        f"Exported {result.reference} to {result.path} ({result.format}, {result.compression}, "
        f"{result.layers} layers): manifest {result.manifest_digest}"
    )
    return 0


def dockerfile(args: argparse.Namespace) -> int:
    from ..export.dockerfile import write_dockerfile

    path = write_dockerfile(
        _load_image(args.ref),
        args.output,
        uv_from_context=args.uv_from_context,
        ca_bundle=args.ca_bundle,
        bare_base=args.bare_base,
    )
    print(f"Wrote {path}; build it with: DOCKER_BUILDKIT=1 docker build {path.parent}")
    return 0


def push(args: argparse.Namespace) -> int:
    import sys

    from ..export.push import push_image

    result = push_image(
        _load_image(args.ref),
        args.target,
        insecure=args.insecure,
        compression=args.compression,
        cache=_layer_cache(args),
        progress=lambda line: print(line, file=sys.stderr),
    )
    print(
        f"Pushed {result.reference}: manifest {result.manifest_digest} ({len(result.uploaded)} "
        f"blob(s) sent, {len(result.mounted)} mounted, {len(result.present)} already there)"
    )
    return 0


def images(args: argparse.Namespace) -> int:
    from ..store.store import Store

    records = Store.default().images()
    if args.as_json:
        print(json.dumps(records))
        return 0
    if not records:
        print("No images built yet.")
        return 0
    print(f"{'IMAGE ID':28} {'SIZE':>9}  {'STEPS':>5}  SOURCE")
    for rec in sorted(records, key=lambda r: _number(r.get("built")), reverse=True):
        size = f"{_number(rec.get('size')) / 1e6:.0f} MB"
        steps = rec.get("steps")
        count = len(steps) if isinstance(steps, list) else 0
        print(f"{rec['image_id']!s:28} {size:>9}  {count:>5}  {rec.get('source', '')}")
    return 0


def _number(value: object) -> float:
    """A number field of an image record; 0 where the record lacks it."""
    return value if isinstance(value, (int, float)) else 0


def prune(args: argparse.Namespace) -> int:
    import shutil

    from ..store.blobs import LayerBlobs
    from ..store.gc import prune as prune_store
    from ..store.store import Store

    store = Store.default()
    result = prune_store(store, everything=args.everything)
    freed = result.freed + LayerBlobs(store).prune()  # exported blobs of the removed layers
    if args.caches:
        for name in ("apt", "uv", "pip"):
            shutil.rmtree(store.root / "cache" / name, ignore_errors=True)
    kept = ""
    if result.in_use:
        kept = f" Kept {result.in_use} layer(s) that running builds or containers use."
    print(f"Removed {result.removed} layer(s), {freed / 1e6:.1f} MB freed.{kept}")
    return 0


def volume(args: argparse.Namespace) -> int:
    from .volumes import volume_command

    return volume_command(args)


def secret(args: argparse.Namespace) -> int:
    from .secrets import secret_command

    return secret_command(args)


def serve(args: argparse.Namespace) -> int:
    from .serve import serve_command

    return serve_command(args)


def deploy(args: argparse.Namespace) -> int:
    from .serve import deploy_command

    return deploy_command(args)


def app(args: argparse.Namespace) -> int:
    from .serve import app_command

    return app_command(args)

"""The CLI's commands: each parses nothing, calls one library function and renders its result."""

from __future__ import annotations

import argparse
import json
import shutil
from typing import Any

__all__ = ["build", "images", "prune", "shell"]


def _load_image(ref: str) -> Any:
    from ..definition.image import Image
    from .loader import load_module, pick, split_ref

    path, name = split_ref(ref)
    return pick(load_module(path), name, Image, "Image")


def build(args: argparse.Namespace) -> int:
    from ..execute.builder import build_image

    result = build_image(_load_image(args.ref), force=args.force)
    if args.as_json:
        print(json.dumps(result.to_json()))
    return 0


def shell(args: argparse.Namespace) -> int:
    from ..execute.builder import build_image
    from ..execute.container import run_container
    from ..plan.planner import plan_image
    from ..store.store import Store

    image = _load_image(args.ref)
    store = Store.default()
    build_image(image, store=store)
    plan = plan_image(image)
    if args.command_string is None:
        argv = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"]
        status, _ = run_container(plan, store, argv, interactive=True)
    else:
        status, _ = run_container(plan, store, ["/bin/sh", "-c", args.command_string])
    return status


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
    for rec in sorted(records, key=lambda r: float(r.get("built", 0)), reverse=True):  # type: ignore[arg-type]
        size = f"{int(rec.get('size', 0)) / 1e6:.0f} MB"  # type: ignore[call-overload]
        steps = len(rec.get("steps", []))  # type: ignore[arg-type]
        print(f"{rec['image_id']!s:28} {size:>9}  {steps:>5}  {rec.get('source', '')}")
    return 0


def prune(args: argparse.Namespace) -> int:
    from ..store.gc import prune as prune_store
    from ..store.store import Store

    store = Store.default()
    freed, count = prune_store(store, everything=args.everything)
    if args.caches:
        for name in ("apt", "uv", "pip"):
            shutil.rmtree(store.root / "cache" / name, ignore_errors=True)
    print(f"Removed {count} layer(s), {freed / 1e6:.1f} MB freed.")
    return 0

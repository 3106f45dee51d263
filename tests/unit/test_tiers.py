"""The shape of the house: imagewright's packages form tiers, and imports only go down.

    cli                      the command line
    imagewright, app, apps, cls, function, partial, relay, engine, experimental, serving, sandbox,
    cluster
                             the public surface; `engine` is the one seam through which the
                             recipe's verbs (build, export, push, Dockerfiles) reach the machinery
    export                   OCI layout, docker-archive, Dockerfile out, push
    execute                  builder, steps, sandbox, containers
    registry                 registry client, pulls, the shared layer cache
    store                    content-addressed layers on disk
    plan                     steps and cache keys, offline (resolution is injected)
    dockerfile               Dockerfile parser and frontend (Dockerfile -> recipe)
    oci                      image formats: manifests, tars, compression, unpacking
    definition, secret, mount, volume, cloud, distributed (+ queue, dict), tunnel,
    billing, types, state
                             the immutable recipe a user writes, and the Modal objects it names
                             (state: where Dicts and Queues keep their contents)
    runtime                  the wire protocol and the in-container bootstrap (stdlib only)
    exception, version, settings, _callsite, _http, _copyrules (Docker's copy rules),
    _digest (cheap SHA-256), _aio (async twins), _unsupported, schedule, retries, locality,
    _namedtuple (a cheaper typing.NamedTuple), _fasttyping (typing's run-time pieces)
                             the ground floor

A module may import modules of its own tier and of the tiers below it, never above: function-
level imports count as much as those at the top of a file. And there is no import cycle between
modules at all (imports under `if TYPE_CHECKING:` excepted, as they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import imagewright

SRC = Path(imagewright.__file__).parent

TIERS: list[set[str]] = [
    {"exception", "version", "settings", "_callsite", "_http", "_copyrules", "_digest", "_aio"}
    | {"_unsupported", "schedule", "retries", "locality", "_namedtuple", "_fasttyping"},
    {"runtime"},
    {"definition", "secret", "mount", "volume"}
    | {"cloud", "distributed", "queue", "dict", "tunnel", "billing", "types"}
    | {"state"},
    {"oci"},
    {"dockerfile"},
    {"plan"},
    {"store"},
    {"registry"},
    {"execute"},
    {"export"},
    # "" is the package itself (imagewright/__init__.py)
    {"", "app", "apps", "cls", "function", "partial", "relay", "engine", "experimental", "serving"}
    | {"sandbox", "cluster"},
    {"cli", "__main__"},
]


def _tier(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for index, tier in enumerate(TIERS):
        if part in tier:
            return index
    raise AssertionError(f"{module} belongs to no tier: add it to TIERS and the docstring")


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = ["imagewright", *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports under `if TYPE_CHECKING:`."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        lines.add(sub.lineno)
    return lines


def _imports(module: str, path: Path, known: set[str]) -> list[tuple[str, bool, int]]:
    """(imported imagewright module, whether it runs, line) for every import in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = _type_checking_only(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from . import x` names a module x when there is one, else a name in `base`
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        for target in targets:
            if target == "imagewright" or target.startswith("imagewright."):
                while target not in known and "." in target:
                    target = target.rpartition(".")[0]
                found.append((target, node.lineno not in typing_only, node.lineno))
    return found


def test_imports_only_go_down_the_tiers() -> None:
    modules = _modules()
    upward = []
    for module, path in sorted(modules.items()):
        for target, _runs, line in _imports(module, path, set(modules)):
            if _tier(target) > _tier(module):
                upward.append(f"{path.relative_to(SRC.parent)}:{line}: {module} -> {target}")
    assert upward == [], "imports that go up a tier:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {
        module: {t for t, runs, _ in _imports(module, path, set(modules)) if runs and t != module}
        for module, path in modules.items()
    }
    # a module imports its package's __init__ implicitly; that is not a cycle of ours
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    cycles = _cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found

"""Walk a Plan: reuse cached layers, run the missing steps, commit each atomically.

The fully cached path imports nothing that runs processes; `steps` is loaded on the first miss.
An optional LayerCache (a shared cache in a registry, IMAGEWRIGHT_CACHE_REGISTRY) is asked for
a step before it runs and told about every layer afterwards; the builder never imports it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from .. import settings
from ..definition.image import Image
from ..plan.planner import CopyFromPlan, Plan, plan_image
from ..store.store import LayerRecord, Store
from .events import BuildResult, Reporter, StepResult

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:  # steps (and the sandbox) load on the first miss, not on the cached path
    from typing import Protocol

    from ..plan.resolve import Resolver
    from .failed import FailedSlot
    from .steps import StepSandbox
else:
    from .._fasttyping import Protocol

__all__ = ["LayerCache", "build_image", "execute_plan"]


class LayerCache(Protocol):
    """A second-level cache of layers, consulted when the local store misses."""

    def lookup(self, plan: Plan, index: int, store: Store) -> LayerRecord | None:
        """Fetch step `index` into `store` (committed under its key) if the cache has it."""
        ...

    def publish(self, plan: Plan, index: int, store: Store, record: LayerRecord) -> None:
        """Make the committed layer of step `index` available to others (never raises)."""
        ...


def build_image(
    image: Image,
    *,
    force: bool = False,
    store: Store | None = None,
    reporter: Reporter | None = None,
    cache: LayerCache | None = None,
    resolver: Resolver | None = None,
    sandbox: StepSandbox | None = None,
    keep_failed: FailedSlot | None = None,
    plan: Plan | None = None,
) -> BuildResult:
    """Plan and build `image`, showing progress on stderr unless a reporter is given. The
    result carries the plan, for what runs, exports or pushes the image next: planning again
    would hash every local file again, and might see them changed.

    `cache` defaults to the registry named by $IMAGEWRIGHT_CACHE_REGISTRY, if set; `resolver`
    (registry images, ADD URLs) to the network's; `sandbox` (commands and copies) to bubblewrap.
    With `keep_failed` (the CLI's), the build removes that definition's kept failed step and
    keeps the step that fails, if one does, for `imagewright shell --failed` (failed.py).
    `plan`, `image` planned already (by `build --explain`), is built without hashing its files
    again.
    """
    if resolver is None:
        from ..registry.resolve import RegistryResolver

        resolver = RegistryResolver()
    if plan is None:
        plan = plan_image(image, force=force, resolver=resolver)
    if reporter is None:
        from .progress import default_reporter

        reporter = default_reporter()
    if cache is None and (registry := settings.cache_registry()):
        from ..registry.layercache import RegistryLayerCache

        cache = RegistryLayerCache(registry)
    return execute_plan(plan, store or Store.default(), reporter, cache, sandbox, keep_failed)


def execute_plan(
    plan: Plan,
    store: Store,
    reporter: Reporter,
    cache: LayerCache | None = None,
    sandbox: StepSandbox | None = None,
    keep_failed: FailedSlot | None = None,
) -> BuildResult:
    """Build every step of `plan` that is not cached. Raises ImageBuildError on failure."""
    started = time.monotonic()
    if keep_failed is not None:
        store.remove_failed(keep_failed.name)  # a new build of it: the last failure is stale
    store.clean_stale()
    _fetch_tools(plan, store)
    _build_sources(plan, store, reporter, cache, sandbox)
    reporter.build_started(plan)
    try:
        with _prefetched_layers(plan, store):
            results = _execute_steps(plan, store, reporter, cache, sandbox, keep_failed)
    except BaseException:
        reporter.build_finished(None)
        raise
    seconds = time.monotonic() - started
    build = BuildResult(plan.image_id, plan.key, seconds, tuple(results), plan)
    if not all(r.cached for r in results) or not store.has_image(plan.key):
        _record_image(store, plan)
    reporter.build_finished(build)
    return build


@contextlib.contextmanager
def _prefetched_layers(plan: Plan, store: Store) -> Iterator[None]:
    """Download the registry layers the build will pull, in parallel, while it runs."""
    from ..plan.pulled import PullLayer

    wanted = [
        step.actions[0]
        for step in plan.steps
        if step.actions and isinstance(step.actions[0], PullLayer) and not step.force
        and store.lookup(step.key) is None
    ]  # fmt: skip
    if len(wanted) < 2:  # (one layer: the step downloads it itself, as soon)
        yield
        return
    from ..registry.auth import Credentials
    from ..registry.pull import Prefetch, prefetching

    with store.scratch() as area:
        layers = [(a.layer, Credentials(*a.credentials) if a.credentials else None) for a in wanted]
        prefetch = Prefetch(area.root, layers)  # type: ignore[arg-type]  # LayerRefs (RegistryResolver's)
        prefetching(prefetch)
        try:
            yield
        finally:
            prefetching(None)
            prefetch.close()


def _execute_steps(
    plan: Plan,
    store: Store,
    reporter: Reporter,
    cache: LayerCache | None,
    sandbox: StepSandbox | None,
    keep_failed: FailedSlot | None,
) -> list[StepResult]:
    results: list[StepResult] = []
    for index, step in enumerate(plan.steps):
        t0 = time.monotonic()
        record = None if step.force else store.lookup(step.key)
        cached = record is not None
        if record is None:
            reporter.step_started(index, step)
            with store.lock(step.key):
                record = None if step.force else store.lookup(step.key)
                cached = record is not None  # another process built it while we waited
                if record is None and cache is not None and not step.force:
                    record = cache.lookup(plan, index, store)
                    cached = record is not None
                    if cached:
                        reporter.step_output(index, "pulled from cache")
                if record is None:
                    from .steps import BUBBLEWRAP, run_step

                    bwrap = sandbox or BUBBLEWRAP
                    record = run_step(plan, index, step, store, reporter, bwrap, keep_failed)
        elif not os.path.islink(store.root / store.lower_name(step.key)):
            store.ensure_link(step.key)
        if cache is not None:
            cache.publish(plan, index, store, record)
        result = StepResult(step.description, cached, time.monotonic() - t0, step.key)
        results.append(result)
        reporter.step_finished(index, step, result)
    return results


def _build_sources(
    plan: Plan,
    store: Store,
    reporter: Reporter,
    cache: LayerCache | None,
    sandbox: StepSandbox | None,
) -> None:
    """Build the images that missing COPY --from steps copy out of, each as its own build."""
    for step in plan.steps:
        if step.force or store.lookup(step.key) is None:
            for action in step.actions:
                if isinstance(action, CopyFromPlan):
                    execute_plan(action.source, store, reporter, cache, sandbox)


def _fetch_tools(plan: Plan, store: Store) -> None:
    """Fetch what missing steps need from outside before any step runs, so a source that
    cannot be reached fails the build at once (today: standalone CPython downloads)."""
    for step in plan.steps:
        for action in step.actions:
            release = getattr(action, "release", None)
            if (
                release is not None
                and release.standalone_error
                and (step.force or store.lookup(step.key) is None)
            ):
                from .standalone import fetch_standalone

                fetch_standalone(store, release.series, release.standalone_error)


def _record_image(store: Store, plan: Plan) -> None:
    if not plan.steps:
        return
    store.record_image(
        plan.key,
        {
            "image_id": plan.image_id,
            "key": plan.key,
            "description": plan.steps[-1].layer.call if plan.steps else "",
            "source": plan.steps[-1].layer.callsite,
            "built": time.time(),
            "steps": [s.key for s in plan.steps],
            "size": sum((store.lookup(s.key) or _NO_RECORD).size for s in plan.steps),
            "config": plan.config.to_json(),
        },
    )


_NO_RECORD = LayerRecord("", None, "", 0.0, 0.0, 0, True)

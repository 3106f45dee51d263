"""One container on one node of a Ray cluster: the actor that driver.py starts there.

The actor is a plain process on the node, like imagewright's own host side; what the user's
code runs in is the container it holds, behind the same walls as on any machine. It never
unpickles what the container sends: replies go back to the caller as bytes.

Starting takes two messages. The actor is created empty, because Ray keeps the arguments of
an actor's creation in its control store for restarts; the spec, which carries the function's
secrets, comes next as an ordinary call. Then the actor builds the image into the node's own
store (IMAGEWRIGHT_HOME of the node's `ray start`): each layer is pulled from the cache
registry when one is set, else built here. The layer of attached local files (the function's
source) comes through Ray's object store, once per node, keyed by its contents.

Every method returns its outcome and the error it met, pickled, rather than raising: the
caller rebuilds imagewright's own exceptions (timeouts, a dead container) from it, and keeps
Ray's errors for what they mean, that the node or its worker went away.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import pickle
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from .. import settings
from ..exception import ExecutionError, InvalidError
from ..execute.events import StepResult
from ..execute.functions import Container
from ..execute.layers import ATTACHED_DESCRIPTION, lowers_for
from ..execute.limits import Limits
from ..execute.overlay import Bind
from ..execute.progress import PlainReporter
from ..execute.state import cluster_state_binds
from ..oci.unpack import unpack_layer
from ..plan.planner import Plan, PlannedStep
from ..store.store import ATTACHED, Store

__all__ = ["NodeContainer", "NodeSpec", "Outcome", "Replies"]

T = TypeVar("T")
# (value, None), or (None, the exception pickled)
Outcome = tuple[Any, bytes | None]
Replies = list[tuple[dict[str, Any], bytes]]  # the container's messages, payloads still pickled


class NodeSpec(NamedTuple):
    """What a node needs to start one container of a function or class."""

    plan: Plan
    ref: str  # "module:qualname"
    init: object  # a class's parameters
    env: dict[str, str]  # secrets and settings, for the container's environment
    volumes: tuple[Bind, ...]  # volume directories on storage every node mounts
    limits: Limits | None
    attached: str | None  # the key of the layer of attached local files
    cache_registry: str | None
    redis_url: str | None  # where Dicts and Queues live
    cluster: str  # the cluster's address, which the container is told
    gpu: tuple[str, ...] | None  # the GPU Ray placed it for, which this node must have


class NodeContainer:
    """A Ray actor holding one warm imagewright container on its node."""

    def __init__(self, ref: str) -> None:
        import ray

        self.node: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self._name = ref.partition(":")[2]
        self._container: Container | None = None
        self._streams: dict[int, queue.SimpleQueue[tuple[str, Any]]] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:  # Ray puts it before each line of the actor's output
        return f"{self._name} on {self.node}"

    # ---- starting ---------------------------------------------------------------------------

    def start(self, spec: bytes, attached: list[Any]) -> Outcome:
        """Make the image ready on this node and start the container. `attached` holds the
        reference to the attached files' layer, inside a list so that Ray fetches it only if
        this node's store lacks it. The outcome is what the build did: {"node", "pulled",
        "ran", "seconds"}."""
        return _guarded(lambda: self._start(pickle.loads(spec), attached))

    def _start(self, spec: NodeSpec, attached: list[Any]) -> dict[str, Any]:
        started = time.monotonic()
        if spec.gpu:  # Ray counted a GPU here: the node must have one, as a machine must
            from ..function import require_gpu

            require_gpu(spec.gpu)
        store = Store.default()
        pulled, ran = self._build(spec, store)
        lowers = lowers_for(spec.plan, store)
        if spec.attached is not None:
            self._attach(spec, store, attached)
            lowers = (store.lower_name(spec.attached), *lowers)
        for bind in spec.volumes:
            if not os.path.isdir(bind.source):
                raise InvalidError(
                    f"Volume directory {bind.source} (mounted at {bind.target}) is not on node "
                    f"{self.node}: on a cluster, {settings.VOLUMES_DIR} must name storage that "
                    "every node mounts at the same path (NFS or the like)"
                )
        state, state_env = cluster_state_binds(spec.redis_url)
        env = {**spec.env, **state_env, settings.CLUSTER: spec.cluster}
        container = Container(
            store,
            spec.plan.config,
            lowers,
            spec.ref,
            env=env,
            binds=(*spec.volumes, *state),
            limits=spec.limits,
            on_output=self._print,
        )
        self._container = container.start(spec.init)
        seconds = time.monotonic() - started
        return {"node": self.node, "pulled": pulled, "ran": ran, "seconds": seconds}

    def _build(self, spec: NodeSpec, store: Store) -> tuple[int, int]:
        """Build the image's missing layers here, pulling what the cache registry has; how many
        layers were pulled and how many steps ran."""
        from ..execute.builder import execute_plan

        cache = None
        if spec.cache_registry:
            from ..registry.layercache import RegistryLayerCache

            cache = RegistryLayerCache(spec.cache_registry)
        present = {s.key for s in spec.plan.steps if store.lookup(s.key) is not None}
        reporter = _NodeReporter(self._print)
        build = execute_plan(spec.plan, store, reporter, cache)
        pulled = sum(1 for s in build.steps if s.cached and s.key not in present)
        return pulled, sum(1 for s in build.steps if not s.cached)

    def _attach(self, spec: NodeSpec, store: Store, attached: list[Any]) -> None:
        import ray

        key = spec.attached
        assert key is not None
        if store.lookup(key) is not None:
            return
        with store.lock(key), store.scratch() as area:
            if store.lookup(key) is None:
                data = ray.get(attached[0])
                unpack_layer(io.BytesIO(data), area.upper, "the attached local files")
                store.commit(area, key, spec.plan.key, ATTACHED_DESCRIPTION, kind=ATTACHED)

    def _print(self, line: str) -> None:
        """Print a line of the container's (or the build's) output, which Ray relays to the
        caller after "(FUNCTION on NODE pid=...)"."""
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    # ---- calls ------------------------------------------------------------------------------

    def call_many(
        self, payloads: list[bytes], timeout: float | None, method: str, ids: list[tuple[str, str]]
    ) -> tuple[Replies, bytes | None]:
        """Run the inputs one after another; the replies of those that finished, and the
        error (pickled) that stopped the rest, if one did."""
        replies: Replies = []
        try:
            for header, payload in self._running().call_many(
                payloads, timeout, method=method, ids=ids
            ):
                replies.append((header, bytes(payload)))
        except Exception as exc:
            return replies, _pickled(exc)
        return replies, None

    def gen_start(
        self, payload: bytes, timeout: float | None, method: str, ids: tuple[str, str]
    ) -> int:
        """Start one input of a generator; its items are then taken with gen_next."""
        container = self._running()
        stream: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        number = next(self._ids)
        self._streams[number] = stream

        def pump() -> None:
            try:
                for header, item in container.call_gen_raw(
                    payload, timeout, method=method, ids=ids
                ):
                    stream.put(("reply", (header, bytes(item))))
            except Exception as exc:
                stream.put(("error", _pickled(exc)))
            stream.put(("done", None))

        threading.Thread(target=pump, daemon=True).start()
        return number

    def gen_next(self, number: int, wait: float) -> tuple[Replies, bytes | None, bool]:
        """The generator's messages that came since the last ask (waiting up to `wait`
        seconds for the first), the error that ended it if one did, and whether it ended."""
        stream = self._streams[number]
        replies: Replies = []
        error, done = None, False
        with contextlib.suppress(queue.Empty):
            kind, value = stream.get(timeout=wait)
            while True:
                if kind == "reply":
                    replies.append(value)
                elif kind == "error":
                    error = value
                else:
                    done = True
                    del self._streams[number]
                    break
                kind, value = stream.get_nowait()
        return replies, error, done

    def stop(self, grace: float) -> None:
        """Stop the container, giving a class's @exit hooks `grace` seconds."""
        if self._container is not None:
            self._container.stop(grace)

    def _running(self) -> Container:
        if self._container is None:
            raise ExecutionError(f"node {self.node} has no container running")
        return self._container


class _NodeReporter(PlainReporter):
    """A node's build progress, line by line through `write_line`: the steps it pulls or runs,
    not the ones it had."""

    def __init__(self, write_line: Callable[[str], None]):
        super().__init__(sys.stdout)
        self._write_line = write_line

    def _write(self, text: str) -> None:
        self._write_line(text)

    def step_started(self, index: int, step: PlannedStep) -> None:
        self._write(f"[{index + 1}/{self.total}] {step.description}")

    def step_finished(self, index: int, step: PlannedStep, result: StepResult) -> None:
        """(step_started and the step's output said enough)"""

    def build_finished(self, result: object) -> None:
        """(the caller reports what the node did)"""


def _guarded(run: Callable[[], T]) -> Outcome:
    try:
        return run(), None
    except Exception as exc:
        return None, _pickled(exc)


def _pickled(exc: Exception) -> bytes:
    """`exc` pickled for the caller; as an ExecutionError saying the same if it won't pickle
    (or would not unpickle there: only imagewright's and the standard library's types do)."""
    module = type(exc).__module__
    if module == "builtins" or module.startswith("imagewright."):
        with contextlib.suppress(Exception):
            return pickle.dumps(exc)
    return pickle.dumps(ExecutionError(f"{type(exc).__name__}: {exc}"))

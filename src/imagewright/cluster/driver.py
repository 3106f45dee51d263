"""The caller's side of a cluster: connect to Ray, place containers, stand in for them.

`Cluster` connects once per `app.run()` and starts each container as a NodeContainer actor
(node.py) with the function's resources as Ray's: `cpu=` as CPUs (one by default, so a cluster
runs as many containers as it has cores, as a machine does), `memory=` as memory, `gpu=` as
GPUs of that accelerator type. Actors are spread over the nodes. A request no node can meet is
an error at once, where Ray would wait for such a node forever.

`RemoteContainer` is what function.py's pools hold in place of a local Container: the same
calls, answered with the container's own messages. When Ray says the actor is gone (its node or
worker died), the call raises ContainerLost and the input runs again on another container.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .. import settings
from ..exception import ExecutionError, InvalidError
from ..execute.functions import ContainerLost, Reply
from ..execute.layers import attached_layer
from ..execute.overlay import Bind
from ..oci.lowers import LowerLayers
from ..oci.tarball import write_layer
from ..plan.functionsource import source_mounts
from ..runtime.errors import rebuild_exception
from ..runtime.protocol import dumps, loads
from .node import NodeContainer, NodeSpec

if TYPE_CHECKING:
    from ..function import Options
    from ..plan.planner import Plan
    from ..store.store import Store

__all__ = ["Cluster", "RemoteContainer", "check_address"]

_SCHEME = "ray://"
_CONNECT_ATTEMPTS = 3
_FREE_WAIT = 2.0  # seconds a .map waits for resources other containers are giving back
_START_ATTEMPTS = 3  # a container whose node goes away while it starts is started again
_GEN_WAIT = 1.0  # seconds a generator's poll waits on the node for its next item
_STOP_WAIT = 5.0  # seconds a node has to stop its container before its actor is killed


def _ray() -> Any:
    # Never start a Ray of our own: by default Ray's API, called while not connected (a call
    # finishing after the run disconnected, say), starts a local cluster on the machine.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        import ray
    except ImportError:
        raise InvalidError(
            "Running on a Ray cluster needs Ray: pip install 'imagewright[ray]'"
        ) from None
    return ray


def check_address(address: str) -> None:
    """Refuse an address that is not Ray Client's, or a machine without Ray, before anything
    is built."""
    if not address.startswith(_SCHEME) or len(address) == len(_SCHEME):
        raise InvalidError(
            f"cluster address {address!r}: give a Ray cluster's client address, "
            "ray://HOST:PORT (the head node's --ray-client-server-port, 10001 by default)"
        )
    _ray()


class Cluster:
    """A connection to one Ray cluster, and the containers started on it."""

    def __init__(self, address: str):
        check_address(address)
        ray = _ray()
        self.address = address
        for attempt in range(1, _CONNECT_ATTEMPTS + 1):
            try:
                ray.init(address=address, log_to_driver=True, logging_level=logging.WARNING)
                break
            except ConnectionError as exc:
                # The head starts a server process per client, and that start now and then
                # fails at once ("Starting Ray client server failed"); the next one starts.
                if attempt == _CONNECT_ATTEMPTS or "client server failed" not in str(exc):
                    raise ExecutionError(
                        f"Could not connect to the Ray cluster at {address}: {exc}"
                    ) from None
                time.sleep(1)
        self._actor = ray.remote(NodeContainer)
        self._attached: dict[str, Any] = {}  # attached layer key -> its tar in Ray's store
        self._live: set[RemoteContainer] = set()
        self._lock = threading.Lock()
        self._closed = False

    def ray(self) -> Any:
        """Ray, while the connection is open."""
        if self._closed:
            raise ExecutionError("the app stopped running")
        return _ray()

    # ---- placing containers ------------------------------------------------------------------

    def room_for(self, options: Options) -> int:
        """How many containers of `options` fit on the cluster now, beside what runs there
        (at least one). A `.map` starts no more: one that waited for room its own containers
        hold would wait forever."""
        need = _resources(options, options.gpu[0] if options.gpu else None)
        room = sum(_times(node, need) for node in self._nodes())
        # Over all nodes (Ray Client has no per-node figure). Containers just stopped give
        # their resources back a moment later: a map right after another waits for them.
        deadline = time.monotonic() + _FREE_WAIT
        while True:
            free = _times(self.ray().available_resources(), need)
            if free >= room or time.monotonic() > deadline:
                return max(min(room, free), 1)
            time.sleep(0.1)

    def start(
        self,
        plan: Plan,
        store: Store,
        options: Options,
        raw: Callable[..., Any],
        ref: str,
        init: object,
        capacity: int,
    ) -> RemoteContainer:
        """Start a container of `plan`'s image serving `ref` (`capacity` inputs at once) on
        some node; ready when it returns."""
        gpu = self._gpu_choice(options, ref)
        need = _resources(options, gpu)
        mounts = source_mounts(raw) if options.include_source else ()
        key = attached_layer(plan, store, mounts)
        refs = [self._attached_ref(key, store)] if key is not None else []
        volumes, volume_env = _volume_binds(options)
        spec = NodeSpec(
            plan=plan,
            ref=ref,
            init=init,
            env={**{k: v for s in options.secrets for k, v in s.env.items()}, **volume_env},
            volumes=volumes,
            limits=options.limits,
            attached=key,
            cache_registry=settings.cache_registry(),
            redis_url=settings.redis_url(),
            cluster=self.address,
            gpu=(gpu,) if gpu else None,
        )
        placed = self._actor.options(
            num_cpus=need["CPU"],
            num_gpus=need.get("GPU", 0),
            memory=need.get("memory"),
            accelerator_type=_accelerator(gpu),
            scheduling_strategy="SPREAD",
            max_concurrency=capacity + 2,  # its inputs, a generator's poll, a stop
            max_restarts=0,
        )
        attempt = 0
        while True:
            attempt += 1
            container = RemoteContainer(self, placed.remote(ref), ref)
            with self._lock:
                self._live.add(container)
            try:
                container.start(pickle.dumps(spec), refs)
                return container
            except ContainerLost:  # its node went away: Ray places the next one elsewhere
                container.stop()
                if attempt == _START_ATTEMPTS:
                    raise
            except BaseException:
                container.stop()
                raise

    def close(self) -> None:
        """Stop every container still running, and disconnect."""
        if self._closed:
            return
        with self._lock:
            live, self._live = list(self._live), set()
        ray = _ray()
        stopping = [c._actor.stop.remote(0) for c in live if c.alive()]
        with contextlib.suppress(Exception):  # each is killed next either way
            ray.wait(stopping, num_returns=len(stopping), timeout=_STOP_WAIT)
        for container in live:
            container.kill()
        self._closed = True
        ray.shutdown()

    def _forget(self, container: RemoteContainer) -> None:
        with self._lock:
            self._live.discard(container)

    def _nodes(self) -> list[dict[str, float]]:
        """The resources of each live node."""
        return [n["Resources"] for n in self.ray().nodes() if n.get("Alive")]

    def _gpu_choice(self, options: Options, ref: str) -> str | None:
        """The first of the function's GPU choices some node has; an error if none has one."""
        if not options.gpu:
            need = _resources(options, None)
            if not any(_fits(node, need) for node in self._nodes()):
                raise ExecutionError(self._unmet(ref, need, "cpu=/memory="))
            return None
        for gpu in options.gpu:
            if any(_fits(node, _resources(options, gpu)) for node in self._nodes()):
                return gpu
        raise ExecutionError(
            self._unmet(ref, _resources(options, options.gpu[0]), f"gpu={' or '.join(options.gpu)}")
        )

    def _unmet(self, ref: str, need: dict[str, float], asked: str) -> str:
        nodes = "; ".join(
            ", ".join(f"{k} {v:g}" for k, v in sorted(n.items()) if not k.startswith("node:"))
            for n in self._nodes()
        )
        wanted = ", ".join(f"{k} {v:g}" for k, v in sorted(need.items()))
        return (
            f"No node of the Ray cluster at {self.address} can run {ref} ({asked} asks for "
            f"{wanted}), so its calls would wait forever. The nodes have: {nodes or 'none'}"
        )

    def _attached_ref(self, key: str, store: Store) -> Any:
        """The attached layer's tar, put into Ray's object store once per run."""
        with self._lock:
            found = self._attached.get(key)
            if found is None:
                out = io.BytesIO()
                write_layer(store.layer_dir(key) / "diff", LowerLayers(()), out)
                found = self._attached[key] = self.ray().put(out.getvalue())
            return found


class RemoteContainer:
    """A container held by a NodeContainer actor, called like a local Container."""

    def __init__(self, cluster: Cluster, actor: Any, function_ref: str):
        self.function_ref = function_ref
        self.node = "?"
        self._cluster, self._actor = cluster, actor
        self._alive = True

    def start(self, spec: bytes, attached: list[Any]) -> None:
        info = self._outcome(self._actor.start.remote(spec, attached), "starting")
        self.node = info["node"]
        if info["pulled"] or info["ran"]:
            print(
                f"[{self.node}] image ready in {info['seconds']:.1f} s: {info['pulled']} "
                f"layer(s) pulled from the cache registry, {info['ran']} step(s) run",
                flush=True,
            )

    # ---- calls ------------------------------------------------------------------------------

    def call(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> Any:
        reply = self.call_raw(dumps((args, kwargs)), timeout, method=method, ids=ids)
        if reply[0]["kind"] == "exception":
            raise self.remote_exception(reply, "call")
        return loads(reply[1])

    def call_raw(
        self,
        payload: bytes,
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> Reply:
        (reply,) = self.call_many([payload], timeout, method=method, ids=[ids])
        return reply

    def call_many(
        self,
        payloads: list[bytes],
        timeout: float | None,
        *,
        method: str = "",
        ids: list[tuple[str, str]],
    ) -> Iterator[Reply]:
        pending = self._actor.call_many.remote(payloads, timeout, method, ids)
        replies, error = self._get(pending, "running")
        yield from replies
        if error is not None:
            self._raise(error)

    def call_gen(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        method: str = "",
        ids: tuple[str, str] = ("", ""),
    ) -> Iterator[Any]:
        payload = dumps((args, kwargs))
        number = self._get(self._actor.gen_start.remote(payload, timeout, method, ids), "running")
        done = False
        while not done:
            replies, error, done = self._get(
                self._actor.gen_next.remote(number, _GEN_WAIT), "running"
            )
            for reply in replies:
                if reply[0]["kind"] == "exception":
                    raise self.remote_exception(reply, "call")
                yield loads(reply[1])
            if error is not None:
                self._raise(error)

    def remote_exception(self, reply: Reply, phase: str) -> BaseException:
        return rebuild_exception(reply[0], reply[1], f"running {self.function_ref}")

    # ---- lifecycle --------------------------------------------------------------------------

    def stop(self, grace: float = 0) -> None:
        """Have the node stop the container (and drop its scratch area), then end the actor."""
        if self._alive:
            with contextlib.suppress(Exception):  # it is killed next either way
                ray = self._cluster.ray()
                ray.get(self._actor.stop.remote(grace), timeout=grace + _STOP_WAIT)
        self.kill()

    def kill(self) -> None:
        self._alive = False
        self._cluster._forget(self)
        # (it may be gone already, or the connection: Ray then ends it with the driver)
        with contextlib.suppress(Exception):
            self._cluster.ray().kill(self._actor, no_restart=True)

    def alive(self) -> bool:
        return self._alive

    # ---- Ray's answers ----------------------------------------------------------------------

    def _outcome(self, pending: Any, doing: str) -> Any:
        value, error = self._get(pending, doing)
        if error is not None:
            self._raise(error)
        return value

    def _get(self, pending: Any, doing: str) -> Any:
        ray = self._cluster.ray()
        try:
            return ray.get(pending)
        except ray.exceptions.RayActorError as exc:
            self._alive = False
            raise ContainerLost(
                f"The node running {self.function_ref} ({self.node}) went away while {doing} "
                f"it: {_first_line(exc)}"
            ) from None

    def _raise(self, error: bytes) -> None:
        exc = pickle.loads(error)  # (node.py pickles only imagewright's and builtin types)
        from ..exception import FunctionTimeoutError, RemoteError

        if isinstance(exc, (FunctionTimeoutError, RemoteError)):
            self._alive = False  # the container on the node was killed, or died
        raise exc


def _resources(options: Options, gpu: str | None) -> dict[str, float]:
    """Ray's resource request for one container of `options`, with GPU choice `gpu`."""
    limits = options.limits
    need: dict[str, float] = {"CPU": float(limits.cpu_request or 1.0) if limits else 1.0}
    memory = limits and (limits.memory_request_mib or limits.memory_limit_mib)
    if memory:
        need["memory"] = float(memory * 2**20)
    if gpu is not None:
        need["GPU"] = float(gpu.partition(":")[2] or 1)
        if _accelerator(gpu):
            need[f"accelerator_type:{_accelerator(gpu)}"] = 0.001
    return need


def _accelerator(gpu: str | None) -> str | None:
    """Ray's accelerator type for Modal's GPU choice ("A100:2", "H100!"), None for "any"."""
    kind = (gpu or "").partition(":")[0].rstrip("!")
    return None if kind in ("", "ANY") else kind


def _times(have: dict[str, float], need: dict[str, float]) -> int:
    """How many times `need` fits in `have`."""
    return int(min(have.get(k, 0.0) / v for k, v in need.items() if v > 0))


def _fits(node: dict[str, float], need: dict[str, float]) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in need.items())


def _volume_binds(options: Options) -> tuple[tuple[Bind, ...], dict[str, str]]:
    """The function's volumes, which on a cluster must live on storage every node mounts, and
    the environment that tells the container where they are."""
    if not options.volumes:
        return (), {}
    if not settings.volumes_dir_shared():
        names = ", ".join(f"{v!r} at {p}" for p, v in sorted(options.volumes.items()))
        raise InvalidError(
            f"Volumes ({names}) live on this machine only, and the cluster's nodes cannot see "
            f"them: set {settings.VOLUMES_DIR} to a directory every node mounts at the same "
            "path (NFS or the like), where the app runs and on every node"
        )
    from ..execute.volumes import volume_binds

    binds, env = volume_binds(options.volumes)
    return tuple(binds), env


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__

"""App: groups functions and local entrypoints, and runs them with `app.run()`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .definition.image import Image
from .exception import ExecutionError, InvalidError
from .function import Function, check_gpu_arg
from .secret import Secret

if TYPE_CHECKING:
    from .execute.builder import LayerCache
    from .plan.planner import Plan
    from .store.store import Store

__all__ = ["App", "LocalEntrypoint", "enable_output"]


class LocalEntrypoint:
    """A function registered with `@app.local_entrypoint()`: runs here, inside `app.run()`."""

    def __init__(self, raw_f: Callable[..., Any], app: App):
        self.raw_f, self.app = raw_f, app
        self.__name__ = raw_f.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)


def _no_parentheses(decorator: str, value: object) -> None:
    if value is not None:
        raise InvalidError(f"Did you forget parentheses? Suggestion: `@app.{decorator}()`.")


class App:
    """A set of functions that share defaults (image, secrets) and run together."""

    def __init__(
        self,
        name: str | None = None,
        *,
        image: Image | None = None,
        secrets: Sequence[Secret] = (),
        include_source: bool = True,
        **_ignored: Any,
    ):
        if image is not None and not isinstance(image, Image):
            raise InvalidError("`image=` has to be an `imagewright.Image` object")
        self.name = name
        self.image = image
        self.secrets = tuple(secrets)
        self.include_source = include_source
        self.registered_functions: dict[str, Function] = {}
        self.registered_entrypoints: dict[str, LocalEntrypoint] = {}
        self._running = False
        self._plans: dict[int, Plan] = {}
        self._store_obj: Store | None = None

    def __repr__(self) -> str:
        return f"App({self.name!r})"

    # ---- registration -----------------------------------------------------------------------

    def function(
        self,
        _warn_parentheses_missing: object = None,
        *,
        image: Image | None = None,
        secrets: Sequence[Secret] = (),
        env: dict[str, str | None] | None = None,
        timeout: float = 300,
        retries: int | None = None,
        max_containers: int | None = None,
        include_source: bool | None = None,
        gpu: str | None = None,
        serialized: bool = False,
        **_ignored: Any,
    ) -> Callable[[Callable[..., Any]], Function]:
        """Register a function to run in containers of `image` (default: the app's)."""
        _no_parentheses("function", _warn_parentheses_missing)
        chosen = image or self.image or Image.debian_slim()
        if not isinstance(chosen, Image):
            raise InvalidError("`image=` has to be an `imagewright.Image` object")
        all_secrets = (*self.secrets, *secrets)
        if env:
            all_secrets = (*all_secrets, Secret.from_dict(env))
        if not all(isinstance(s, Secret) for s in all_secrets):
            raise InvalidError("secrets must be imagewright.Secret instances")
        gpu_config = check_gpu_arg(gpu)
        retry_count = getattr(retries, "max_retries", retries) or 0

        def decorate(raw_f: Callable[..., Any]) -> Function:
            if isinstance(raw_f, Function) or not callable(raw_f):
                raise InvalidError("@app.function() must decorate a plain function")
            function = Function(
                raw_f,
                self,
                image=chosen,
                secrets=all_secrets,
                timeout=timeout,
                retries=int(retry_count),
                max_containers=max_containers,
                include_source=self.include_source if include_source is None else include_source,
                gpu=gpu_config,
            )
            self.registered_functions[raw_f.__name__] = function
            return function

        return decorate

    def local_entrypoint(
        self, _warn_parentheses_missing: object = None, *, name: str | None = None
    ) -> Callable[[Callable[..., Any]], LocalEntrypoint]:
        """Register a function that `imagewright run` calls on this machine."""
        _no_parentheses("local_entrypoint", _warn_parentheses_missing)

        def decorate(raw_f: Callable[..., Any]) -> LocalEntrypoint:
            entrypoint = LocalEntrypoint(raw_f, self)
            self.registered_entrypoints[name or raw_f.__name__] = entrypoint
            return entrypoint

        return decorate

    # ---- running ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def run(self, *, cache: LayerCache | None = None, **_ignored: Any) -> Iterator[App]:
        """Build every function's image, then let its functions be called remotely.

        `cache` is a shared layer cache for those builds (default: build_image's).
        """
        from .execute.builder import build_image
        from .execute.functions import stop_all

        for function in self.registered_functions.values():
            build = build_image(function.image, store=self._store, cache=cache)
            self._plans[id(function)] = build.plan
        self._running = True
        try:
            yield self
        except KeyboardInterrupt:
            stop_all()
            raise
        finally:
            self._running = False
            for function in self.registered_functions.values():
                function._stop_spare()

    @property
    def _store(self) -> Store:
        if self._store_obj is None:
            from .store.store import Store

            self._store_obj = Store.default()
        return self._store_obj

    def _plan_for(self, function: Function) -> Plan:
        plan = self._plans.get(id(function))
        if plan is None:
            raise ExecutionError(f"{function.__qualname__}'s image was not built by app.run()")
        return plan

    def _require_running(self, function: Function) -> None:
        if not self._running:
            raise ExecutionError(
                f"{function.__qualname__}.remote() needs a running app: call it inside "
                "`with app.run():` or run the file with `imagewright run`."
            )


@contextlib.contextmanager
def enable_output(show_progress: bool = True) -> Iterator[None]:
    """Modal's switch for build and container output; imagewright always shows it."""
    yield

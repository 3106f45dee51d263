"""Bad input to the function and class decorators fails where it is written, with Modal's
types and a message that says what is wrong; names with no local meaning warn once."""

from __future__ import annotations

import warnings

import pytest

import imagewright as modal
from imagewright.exception import ExecutionError, InvalidError, UnimplementedError
from imagewright.function import check_gpu_arg, start_container


def _app() -> modal.App:
    return modal.App("decorators-test")


def ident(x: int) -> int:
    return x


def test_gpu_takes_every_modal_form() -> None:
    assert check_gpu_arg(None) is None and check_gpu_arg(False) is None
    assert check_gpu_arg("t4") == ("T4",)
    assert check_gpu_arg("h100:2") == ("H100:2",)
    assert check_gpu_arg(["H100", "a100-80gb"]) == ("H100", "A100-80GB")
    with pytest.raises(InvalidError, match="Invalid GPU count: x"):
        check_gpu_arg("A100:x")
    with pytest.raises(InvalidError, match="empty list"):
        check_gpu_arg([])
    with pytest.raises(InvalidError, match="Invalid GPU config: 3"):
        check_gpu_arg(["T4", 3])


def test_a_gpu_call_without_a_gpu_fails_or_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import imagewright.function as function

    monkeypatch.setattr(function.os.path, "exists", lambda path: False)
    with pytest.raises(ExecutionError, match="IMAGEWRIGHT_ALLOW_NO_GPU=1"):
        function.require_gpu(("T4",))
    monkeypatch.setenv("IMAGEWRIGHT_ALLOW_NO_GPU", "1")
    monkeypatch.setattr(function, "_gpu_warned", False)
    with pytest.warns(UserWarning, match="running on the CPU"):
        function.require_gpu(("T4",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        function.require_gpu(("T4",))  # once per run


def test_unknown_keywords_and_bad_options_are_refused() -> None:
    app = _app()
    with pytest.raises(TypeError, match="unexpected keyword argument 'timout'"):
        app.function(timout=10)  # type: ignore[call-arg]  # the typo is the point
    with pytest.raises(InvalidError, match="Retries parameter must be an integer"):
        app.function(retries="3")(ident)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes 1 positional argument"):
        app.function(ident)  # type: ignore[arg-type]  # without parentheses
    with pytest.raises(InvalidError, match=r"schedule= takes a modal\.Period or a modal\.Cron"):
        app.function(schedule="every hour")(ident)


def test_what_has_no_local_effect_warns_once_at_the_users_line() -> None:
    app = _app()
    with pytest.warns(UserWarning, match="single_use_containers=True") as caught:
        app.function(single_use_containers=True)(ident)
    assert caught[0].filename == __file__


def test_decorators_check_their_arguments() -> None:
    with pytest.raises(TypeError, match="missing required argument: `max_inputs`"):
        modal.concurrent()
    with pytest.raises(InvalidError, match="cannot be greater than `max_inputs`"):
        modal.concurrent(max_inputs=2, target_inputs=3)
    with pytest.raises(InvalidError, match="max_batch_size cannot be greater than 1000"):
        modal.batched(max_batch_size=1001, wait_ms=0)
    with pytest.raises(InvalidError, match="wait_ms must be a non-negative integer"):
        modal.batched(max_batch_size=4, wait_ms=-1)
    with pytest.raises(InvalidError, match="must be a local port"):
        modal.web_server(0)
    with pytest.raises(InvalidError, match="Did you forget parentheses"):
        modal.enter(ident)

    def gen(xs: list[int]):  # type: ignore[no-untyped-def]
        yield from xs

    with pytest.raises(InvalidError, match="cannot return generators"):
        modal.batched(max_batch_size=4, wait_ms=10)(gen)
    with pytest.raises(InvalidError, match="cannot be combined with lifecycle decorators"):
        modal.method()(modal.enter()(ident))


def test_decorators_in_the_wrong_place() -> None:
    app = _app()
    function = app.function()(ident)
    with pytest.raises(InvalidError, match="swap the order"):
        modal.concurrent(max_inputs=2)(function)
    with pytest.raises(InvalidError, match="belong on methods"):
        app.function()(modal.enter()(ident))
    with pytest.raises(InvalidError, match="must decorate a class"):
        app.cls()(ident)  # type: ignore[arg-type]


def test_class_parameters_are_checked_as_modal_does() -> None:
    app = _app()

    with pytest.raises(TypeError, match=r"float is not a supported modal\.parameter"):

        @app.cls()
        class Floats:
            ratio: float = modal.parameter()

    @app.cls()
    class Model:
        name: str = modal.parameter()
        size: int = modal.parameter(default=1)

    with pytest.raises(InvalidError, match="Missing required parameter: name"):
        Model()
    with pytest.raises(TypeError, match="Expected int, got str"):
        Model(name="a", size="big")
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Model(name="a", colour="red")

    with pytest.raises(InvalidError, match="has an __init__ with arguments"):

        @app.cls()
        class Old:
            def __init__(self, name: str):
                self.name = name


def test_calls_outside_a_running_app_say_how_to_run_it() -> None:
    function = _app().function()(ident)
    with pytest.raises(ExecutionError, match="needs a running app"):
        function.remote(1)


def test_a_cloud_bucket_mount_fails_when_the_function_starts() -> None:
    app = _app()
    bucket = modal.CloudBucketMount("my-bucket")
    function = app.function(volumes={"/bucket": bucket})(ident)
    with pytest.raises(UnimplementedError, match=r"CloudBucketMount \(at /bucket\)"):
        start_container(app, function._options, ident, "x:ident")


def test_generators_refuse_remote_and_map() -> None:
    app = _app()

    def squares(n: int):  # type: ignore[no-untyped-def]
        yield from range(n)

    function = app.function()(squares)
    with pytest.raises(InvalidError, match=r"Use `\.remote_gen"):
        function.remote(3)
    with pytest.raises(InvalidError, match=r"cannot be called with `\.map"):
        function.map([1])

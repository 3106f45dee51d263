"""The cluster switch's checks that need no cluster: the address, the Ray extra, what a
function's options ask of Ray, Dicts without Redis, and --cluster after FILE."""

from __future__ import annotations

import sys

import pytest

import imagewright as modal
from imagewright import settings
from imagewright.cli.commands import _cluster_flag
from imagewright.cluster.driver import Cluster, _accelerator, _resources
from imagewright.exception import InvalidError
from imagewright.execute.limits import Limits
from imagewright.state import backend


def test_an_address_that_is_not_ray_client_is_refused() -> None:
    with pytest.raises(InvalidError, match=r"ray://HOST:PORT"):
        Cluster("127.0.0.1:6379")


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(InvalidError, match=r"pip install 'imagewright\[ray\]'"):
        Cluster("ray://127.0.0.1:10001")


def _options(**changes: object) -> modal.function.Options:
    app = modal.App()

    @app.function(image=modal.Image.debian_slim(), **changes)  # type: ignore[arg-type]
    def f() -> None: ...

    return f._options


def test_resources_follow_cpu_memory_and_gpu() -> None:
    assert _resources(_options(), None) == {"CPU": 1.0}
    assert _resources(_options(cpu=2.5, memory=512), None) == {"CPU": 2.5, "memory": 512 * 2**20}
    assert _resources(_options(memory=(256, 1024)), None)["memory"] == 256 * 2**20
    need = _resources(_options(gpu="A100:2"), "A100:2")
    assert need["GPU"] == 2 and need["accelerator_type:A100"] > 0
    assert _accelerator("H100!") == "H100" and _accelerator("ANY") is None
    assert _resources(_options(gpu="any"), "ANY") == {"CPU": 1.0, "GPU": 1.0}
    assert Limits.from_modal(300, None).memory_request_mib == 300


def test_dicts_on_a_cluster_need_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.REDIS_URL, raising=False)
    monkeypatch.setenv(settings.CLUSTER, "ray://127.0.0.1:10001")
    with pytest.raises(InvalidError, match=settings.REDIS_URL):
        backend()


def test_cluster_flag_after_the_file_is_taken_from_the_function_flags() -> None:
    assert _cluster_flag(None, ["--x", "3", "--cluster", "ray://h:1"]) == (
        "ray://h:1",
        ["--x", "3"],
    )
    assert _cluster_flag(None, ["--cluster=ray://h:1"]) == ("ray://h:1", [])
    assert _cluster_flag("ray://a:1", ["--x", "3"]) == ("ray://a:1", ["--x", "3"])

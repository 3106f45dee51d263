"""What `imagewright serve` finds to serve in an app, and the ports it gives them (no containers)."""

from __future__ import annotations

from pathlib import Path

import pytest

import imagewright as modal
from imagewright.exception import InvalidError
from imagewright.serving.endpoints import assign_ports, endpoints_of

app = modal.App("endpoints-unit")


@app.function(min_containers=2, max_containers=5, scaledown_window=7)
@modal.concurrent(max_inputs=4)
@modal.fastapi_endpoint(method="POST", requires_proxy_auth=True)
def make_item(item: dict) -> dict:  # type: ignore[type-arg]
    return item


@app.function()
@modal.web_server(8080, label="files")
def serve_files() -> None:
    pass


@app.cls()
class Model:
    @modal.fastapi_endpoint()
    def predict(self, text: str) -> str:
        return text


@app.server(port=9000)
class Site:
    pass


dup = modal.App("dup")


@dup.function()
@modal.asgi_app(label="same")
def one() -> None:
    pass


@dup.function()
@modal.wsgi_app(label="same")
def two() -> None:
    pass


def test_every_kind_of_endpoint_is_found_with_its_settings() -> None:
    found = {e.label: e for e in endpoints_of(app)}
    assert sorted(found) == ["files", "make-item", "model-predict", "site"]
    item = found["make-item"]
    assert (item.kind, item.auth, item.capacity) == ("fastapi_endpoint", True, 4)
    assert (item.min_containers, item.max_containers, item.scaledown_window) == (2, 5, 7.0)
    assert (found["files"].kind, found["files"].inner_port) == ("web_server", 8080)
    assert found["model-predict"].what == "Model.predict"
    assert (found["site"].kind, found["site"].inner_port, found["site"].auth) == (
        "server",
        9000,
        True,
    )


def test_ports_are_stable_and_can_be_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEWRIGHT_HOME", str(tmp_path))
    first = endpoints_of(app)
    assign_ports("app.py", first, {})
    ports = {e.label: e.port for e in first}
    assert len(set(ports.values())) == 4 and min(ports.values()) >= 8000
    again = endpoints_of(app)
    assign_ports("app.py", again, {"files": 18080})
    assert {e.label: e.port for e in again} == {**ports, "files": 18080}
    with pytest.raises(InvalidError, match="--port names no endpoint of the app: nope"):
        assign_ports("app.py", endpoints_of(app), {"nope": 1})


def test_two_endpoints_with_one_label_are_refused() -> None:
    with pytest.raises(InvalidError, match="label 'same'"):
        endpoints_of(dup)


@pytest.mark.parametrize("given", ["square", "square=", "square=http", "square=0", "square=70000"])
def test_a_malformed_port_option_is_refused(given: str) -> None:
    from imagewright.cli.serve import _ports

    with pytest.raises(InvalidError, match=f"--port {given!r}: expected LABEL=PORT"):
        _ports([given])


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_a_deployment_name_that_is_no_file_name_is_refused(name: str) -> None:
    from imagewright.serving.deployments import deployment_dir

    with pytest.raises(InvalidError, match="is not a deployment name"):
        deployment_dir(name)

"""Pulls by digest (`name@sha256:…`, `name:tag@sha256:…`), digests the registry's answer must
match, errors that name the reference and the user's line, and a registry reached by name over
plain HTTP because IMAGEWRIGHT_INSECURE_REGISTRIES lists it.

A real docker-registry on 127.0.0.1 holds the images. The "named non-loopback" registry is that
same registry reached through it as an HTTP proxy (HTTP_PROXY, which httpx honours): the request
names `iw-insecure.test:<port>`, a host no resolver knows, so HTTPS to it fails and only the
plain-HTTP fallback the setting allows can succeed.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile

import pytest

from imagewright import Image
from imagewright.exception import RegistryError
from imagewright.plan.planner import plan_image
from imagewright.registry.pull import LayerRef, pull_layer, resolve
from imagewright.registry.resolve import RegistryResolver

from .registry_helpers import Answer, FakeServer, free_port, push_raw, registry

THIS_FILE = "test_registry_refs.py:"
CONFIG = {
    "architecture": "amd64", "os": "linux", "config": {"Env": ["IW_REF=1"]},
    "rootfs": {"type": "layers", "diff_ids": []},
}  # fmt: skip


def _layer() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/pinned")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"pinned"))
    return out.getvalue()


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> str:
    assert shutil.which("docker-registry"), "docker-registry is not installed; `make setup`"
    with registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="module")
def pinned(reg) -> str:
    """The manifest digest of {reg}/pinned:1 (also tagged :2, moved on to another image)."""
    digest = push_raw(reg, "pinned", "1", [_layer()], CONFIG)
    push_raw(reg, "pinned", "2", [], CONFIG)
    return digest


def test_pull_by_digest_and_by_tag_at_digest(reg, pinned, builder):
    assert resolve(f"{reg}/pinned@{pinned}", None).manifest_digest == pinned
    # the digest wins, as in Docker: :2 names another image, and no tag :nope exists at all
    for tag in ("2", "nope"):
        pulled = resolve(f"{reg}/pinned:{tag}@{pinned}", None)
        assert pulled.manifest_digest == pinned and len(pulled.layers) == 1
    image = Image.from_registry(f"{reg}/pinned:2@{pinned}", force_build=True)
    result, _ = builder.build(image)
    assert not any(step.cached for step in result.steps)
    assert len(result.steps) == 2  # its one layer, then its config
    assert dict(result.plan.config.env)["IW_REF"] == "1"


def test_a_digest_the_registry_does_not_hold_is_refused_naming_the_line(reg, pinned):
    missing = "sha256:" + "0" * 64
    image = Image.from_registry(f"{reg}/pinned@{missing}")
    with pytest.raises(RegistryError, match="MANIFEST_UNKNOWN") as info:
        plan_image(image, resolver=RegistryResolver())
    assert f"pulling {reg}/pinned@{missing}" in str(info.value)
    assert THIS_FILE in str(info.value)


def test_a_manifest_that_does_not_match_its_digest_is_refused():
    """A registry (or something on the way) serving other bytes for a digest."""
    served = json.dumps({"schemaVersion": 2, "layers": []}).encode()
    asked = "sha256:" + hashlib.sha256(b"what the user pinned").hexdigest()

    def answer(method: str, path: str, auth: str | None) -> Answer:
        if path.startswith("/v2/iw/app/manifests/"):
            return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, served
        return (200 if path == "/v2/" else 404), {}, b""

    with FakeServer(answer) as fake, pytest.raises(RegistryError) as info:
        resolve(f"{fake.address}/iw/app:v1@{asked}", None)
    message = str(info.value)
    assert f"not the {asked} the reference names; refusing it" in message


def test_a_layer_that_cannot_be_fetched_names_the_image(tmp_path):
    def answer(method: str, path: str, auth: str | None) -> Answer:
        return (200 if path == "/v2/" else 404), {}, b""

    digest = "sha256:" + "1" * 64
    with FakeServer(answer) as fake:
        ref = LayerRef(fake.address, "iw/app", digest, 1, "", f"{fake.address}/iw/app:v1")
        with pytest.raises(RegistryError) as info:
            pull_layer(ref, None, tmp_path, tmp_path / "upper")
    assert f"layer {digest} of {fake.address}/iw/app:v1: " in str(info.value)
    assert "404" in str(info.value)


def test_a_named_registry_over_plain_http_needs_the_setting(reg, pinned, monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://{reg}")
    monkeypatch.delenv("http_proxy", raising=False)
    named = f"iw-insecure.test:{free_port()}"
    monkeypatch.delenv("IMAGEWRIGHT_INSECURE_REGISTRIES", raising=False)
    with pytest.raises(RegistryError, match="could not connect") as info:
        resolve(f"{named}/pinned:1", None)
    assert f"IMAGEWRIGHT_INSECURE_REGISTRIES={named}" in str(info.value)
    assert "--insecure" not in str(info.value)
    monkeypatch.setenv("IMAGEWRIGHT_INSECURE_REGISTRIES", f"other.test:1,{named}")
    assert resolve(f"{named}/pinned:1", None).manifest_digest == pinned

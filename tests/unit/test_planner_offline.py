"""The planner reaches nothing outside: registry images and ADD URLs come from the Resolver it is
given. Here a fake one answers, with the network switched off; any user can run these."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

from imagewright import Image, Secret
from imagewright.definition.config import ImageConfig
from imagewright.exception import InvalidError
from imagewright.plan import keys
from imagewright.plan.planner import CopyFiles, RunCommand, plan_image
from imagewright.plan.pulled import AddPython, PullLayer

TAG = "registry.example/team/app:1"
BLOBS = ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
CONFIG = ImageConfig(env=(("PATH", "/usr/bin:/bin"), ("APP", "1")), workdir="/srv")


class FakeLayer(NamedTuple):
    digest: str
    size: int


class FakeImage(NamedTuple):
    manifest_digest: str
    config: ImageConfig
    layers: tuple[FakeLayer, ...]


class FakeResolver:
    """Answers from memory and records every question."""

    def __init__(self, downloads: Path, manifest: str = "sha256:" + "1" * 64):
        self.downloads = downloads
        self.image = FakeImage(manifest, CONFIG, tuple(FakeLayer(b, 2_000_000) for b in BLOBS))
        self.served: dict[str, bytes] = {}
        self.asked: list[tuple[object, ...]] = []

    def credentials(self, auth: str, env: Mapping[str, str]) -> tuple[str, str]:
        self.asked.append(("credentials", auth, dict(env)))
        return env["REGISTRY_USERNAME"], env["REGISTRY_PASSWORD"]

    def resolve_image(
        self, tag: str, credentials: tuple[str, str] | None, *, refresh: bool
    ) -> FakeImage:
        self.asked.append(("image", tag, credentials, refresh))
        return self.image

    def fetch_url(self, url: str, where: str, checksum: str | None) -> tuple[str, str]:
        self.asked.append(("url", url, where))
        body = self.served[url]
        path = self.downloads / hashlib.sha256(url.encode()).hexdigest()
        path.write_bytes(body)
        return str(path), hashlib.sha256(body).hexdigest()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the planner tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def resolver(tmp_path: Path) -> FakeResolver:
    return FakeResolver(tmp_path)


def test_from_registry_is_planned_from_what_the_resolver_reports(resolver: FakeResolver) -> None:
    plan = plan_image(Image.from_registry(TAG).run_commands("echo hi"), resolver=resolver)
    pulls = [step.actions[0] for step in plan.steps[:2]]
    assert pulls == [PullLayer(FakeLayer(b, 2_000_000), None) for b in BLOBS]
    assert plan.steps[0].description.endswith(f"layer 1/2 {BLOBS[0][7:19]} (2.0 MB)")
    config_step, run_step = plan.steps[2:]
    assert config_step.actions == () and config_step.parent_key == plan.steps[1].key
    assert run_step.parent_key == config_step.key
    (action,) = run_step.actions
    assert isinstance(action, RunCommand) and action.run.command == "echo hi"
    assert plan.config.workdir == "/srv" and plan.config.env_dict()["APP"] == "1"
    assert resolver.asked == [("image", TAG, None, False)]


def test_pulled_keys_follow_blobs_manifest_and_builder_version(
    tmp_path: Path, resolver: FakeResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = Image.from_registry(TAG).run_commands("echo hi")
    before = [s.key for s in plan_image(image, resolver=resolver).steps]
    moved = FakeResolver(tmp_path, manifest="sha256:" + "2" * 64)  # the tag now names another
    after = [s.key for s in plan_image(image, resolver=moved).steps]
    assert after[:2] == before[:2]  # same blobs, same layers
    assert after[2] != before[2] and after[3] != before[3]  # what is on top rebuilds
    monkeypatch.setattr(keys, "BUILDER_VERSION", "imagewright-next")
    rebuilt = [s.key for s in plan_image(image, resolver=resolver).steps]
    assert all(new != old for new, old in zip(rebuilt, before, strict=True))


def test_registry_secret_becomes_credentials_through_the_resolver(resolver: FakeResolver) -> None:
    secret = Secret.from_dict({"REGISTRY_USERNAME": "me", "REGISTRY_PASSWORD": "pw"})
    image = Image.from_registry(TAG, secret=secret, force_build=True)
    plan = plan_image(image, resolver=resolver)
    assert resolver.asked == [
        ("credentials", "basic", {"REGISTRY_USERNAME": "me", "REGISTRY_PASSWORD": "pw"}),
        ("image", TAG, ("me", "pw"), True),  # a forced build asks the registry again
    ]
    assert all(step.actions[0].credentials == ("me", "pw") for step in plan.steps[:2])


def test_add_python_plans_a_standalone_cpython_step(resolver: FakeResolver) -> None:
    plan = plan_image(Image.from_registry(TAG, add_python="3.12"), resolver=resolver)
    last = plan.steps[-1]
    (action,) = last.actions
    assert isinstance(action, AddPython) and action.release.series == "3.12"
    assert last.key == keys.add_python_key(plan.steps[-2].key, "3.12").value


def test_add_url_is_keyed_by_content_not_address(tmp_path: Path, resolver: FakeResolver) -> None:
    resolver.served = {"https://a.example/tool.sh": b"v1\n", "https://b.example/tool.sh": b"v1\n"}

    def plan_for(url: str) -> list[CopyFiles]:
        dockerfile = tmp_path / "Dockerfile"
        dockerfile.write_text(f"FROM scratch\nADD {url} /opt/\nADD --chmod=755 {url} /bin/t\n")
        image = Image.from_dockerfile(dockerfile, context_dir=tmp_path)
        steps = plan_image(image, resolver=resolver).steps[1:]  # after FROM scratch
        return [step.actions[0] for step in steps]

    first, second = plan_for("https://a.example/tool.sh")
    (entry,) = first.entries
    assert (entry.dest, entry.mode, entry.digest) == (
        "/opt/tool.sh", 0o600, hashlib.sha256(b"v1\n").hexdigest()
    )  # fmt: skip
    assert Path(entry.source).read_bytes() == b"v1\n"
    assert second.entries[0].mode == 0o755
    assert resolver.asked[0][2].endswith("Dockerfile:2")  # where errors would point

    keys_a = [s.key for s in plan_image(_image(tmp_path, "a"), resolver=resolver).steps]
    keys_b = [s.key for s in plan_image(_image(tmp_path, "b"), resolver=resolver).steps]
    assert keys_a == keys_b
    resolver.served["https://b.example/tool.sh"] = b"v2\n"
    changed = [s.key for s in plan_image(_image(tmp_path, "b"), resolver=resolver).steps]
    assert changed[1] != keys_a[1]


def _image(tmp_path: Path, host: str) -> Image:
    dockerfile = tmp_path / f"Dockerfile.{host}"
    dockerfile.write_text(f"FROM scratch\nADD https://{host}.example/tool.sh /opt/\n")
    return Image.from_dockerfile(dockerfile, context_dir=tmp_path)


def test_without_a_resolver_planning_refuses_to_reach_out(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="needs a Resolver"):
        plan_image(Image.from_registry(TAG))
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\nADD https://a.example/tool.sh /opt/\n")
    with pytest.raises(InvalidError, match=r"Dockerfile:2.*needs a Resolver"):
        plan_image(Image.from_dockerfile(dockerfile, context_dir=tmp_path))

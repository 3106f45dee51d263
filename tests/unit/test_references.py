"""Image references with digests (`name@sha256:…`, `name:tag@sha256:…`) and the registries a
setting lets imagewright reach over plain HTTP (IMAGEWRIGHT_INSECURE_REGISTRIES)."""

from __future__ import annotations

import pytest

import imagewright as modal
from imagewright import settings
from imagewright.definition.reference import (
    PullReference,
    parse_pull_reference,
    split_reference,
)
from imagewright.exception import InvalidError
from imagewright.registry.client import RegistryClient, _schemes

THIS_FILE = "test_references.py"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("python", PullReference("python", "latest", None)),
        ("python:3.11-slim", PullReference("python", "3.11-slim", None)),
        (f"python@{DIGEST}", PullReference("python", None, DIGEST)),
        (f"python:3.11@{DIGEST}", PullReference("python", "3.11", DIGEST)),
        (
            f"localhost:5000/me/app:v1@{DIGEST}",
            PullReference("localhost:5000/me/app", "v1", DIGEST),
        ),
        (f"ghcr.io:443/me/app@{DIGEST}", PullReference("ghcr.io:443/me/app", None, DIGEST)),
    ],
)
def test_pull_references_split_name_tag_and_digest(ref: str, expected: PullReference) -> None:
    assert parse_pull_reference(ref) == expected


def test_the_digest_wins_for_the_pull() -> None:
    assert parse_pull_reference(f"python:3.11@{DIGEST}").manifest == DIGEST
    assert parse_pull_reference("python:3.11").manifest == "3.11"
    assert parse_pull_reference("python").manifest == "latest"


@pytest.mark.parametrize(
    "ref",
    [
        "python@sha256:abc",
        f"python@sha512:{'ab' * 64}",
        f"python@{DIGEST.upper()}",
        f"python@{DIGEST}@{DIGEST}",
        f"Python@{DIGEST}",
        f"python:@{DIGEST}",
        "python@",
    ],
)
def test_malformed_digests_are_refused(ref: str) -> None:
    with pytest.raises(InvalidError, match="Invalid image reference"):
        parse_pull_reference(ref)


def test_a_digest_is_no_place_to_write_to() -> None:
    assert split_reference("me/app") == ("me/app", "latest")
    with pytest.raises(InvalidError, match="a digest names an image to pull"):
        split_reference(f"me/app:v1@{DIGEST}")


def test_from_registry_accepts_digests_and_names_the_line_of_a_bad_one() -> None:
    modal.Image.from_registry(f"python@{DIGEST}")
    modal.Image.from_registry(f"python:3.11-slim@{DIGEST}")
    with pytest.raises(InvalidError, match=r"sha256:<64 lowercase hex digits>") as info:
        modal.Image.from_registry("python@sha256:abc")
    assert THIS_FILE in str(info.value)


# ---- IMAGEWRIGHT_INSECURE_REGISTRIES -----------------------------------------------------------


def test_insecure_registries_are_read_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.INSECURE_REGISTRIES, raising=False)
    assert settings.insecure_registries() == frozenset()
    monkeypatch.setenv(settings.INSECURE_REGISTRIES, " Registry.Internal:5000, ,mirror.lan")
    assert settings.insecure_registries() == {"registry.internal:5000", "mirror.lan"}
    monkeypatch.setenv(settings.INSECURE_REGISTRIES, "http://registry.internal:5000")
    with pytest.raises(InvalidError, match="host\\[:port\\] entries"):
        settings.insecure_registries()


def test_a_listed_registry_may_use_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.INSECURE_REGISTRIES, "registry.internal:5000")
    with RegistryClient("registry.internal:5000", "me/app", push=False) as listed:
        assert listed.insecure
        assert _schemes(listed.registry, listed.insecure) == ["https", "http"]
    with RegistryClient("registry.internal:5001", "me/app", push=False) as other:
        assert not other.insecure
        assert _schemes(other.registry, other.insecure) == ["https"]
    assert _schemes("127.0.0.1:5000", False) == ["http"]  # loopback: plain HTTP, as Docker


def test_connection_hints_name_the_setting_not_a_build_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(settings.INSECURE_REGISTRIES, raising=False)
    with RegistryClient("registry.internal:5000", "me/app", push=False) as client:
        hint = client._hint()
    assert "IMAGEWRIGHT_INSECURE_REGISTRIES=registry.internal:5000" in hint
    assert "--insecure" not in hint

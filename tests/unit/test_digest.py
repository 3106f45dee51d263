"""_digest: the built-in SHA-256 and OpenSSL's give the same digests, and a process switches to
OpenSSL's for good once it has hashed enough."""

from __future__ import annotations

import hashlib
import importlib

import pytest

from imagewright import _digest


@pytest.fixture
def digest():
    """A fresh copy of the module: its byte count starts at zero."""
    return importlib.reload(_digest)


def test_small_inputs_use_the_builtin_and_agree_with_hashlib(digest):
    data = b"imagewright" * 100
    h = digest.sha256(len(data))
    assert type(h) is not type(hashlib.sha256())  # the interpreter's own module
    h.update(data)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    assert digest.hexdigest(b"") == hashlib.sha256(b"").hexdigest()


def test_once_past_the_bulk_threshold_hashlib_serves_every_later_input(digest):
    digest.sha256(digest._BULK)  # still within it
    assert type(digest.sha256(1)) is type(hashlib.sha256())
    assert type(digest.sha256(0)) is type(hashlib.sha256())  # for good
    data = bytes(range(256)) * 4096
    assert digest.hexdigest(data) == hashlib.sha256(data).hexdigest()


def test_constructor_picks_by_the_total_it_is_told(digest):
    assert digest.constructor(digest._BULK + 1) is hashlib.sha256
    assert digest.constructor(10) is not hashlib.sha256
    assert digest.constructor(10)().hexdigest() == hashlib.sha256().hexdigest()

"""Canonical JSON bytes and sha256 digests: the only way cache keys are computed."""

from __future__ import annotations

import hashlib
import json

__all__ = ["canonical", "digest"]


def canonical(value: object) -> bytes:
    """Stable bytes for a JSON-able value: sorted keys, no whitespace, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(value: object) -> str:
    """Hex sha256 of the canonical form of `value`."""
    return hashlib.sha256(canonical(value)).hexdigest()

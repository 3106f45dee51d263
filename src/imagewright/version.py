"""Release and builder versions. BUILDER_VERSION enters every cache key."""

__all__ = ["BUILDER_VERSION", "BUNDLED_UV", "__version__"]

__version__ = "0.1.0"
# Bump when what a step produces changes for the same definition (sandbox, base recipe, copy
# semantics), so stale layers are never reused.
BUILDER_VERSION = "imagewright-2026.11.2"
# The uv that ships with imagewright (pinned in pyproject.toml) and runs uv steps by default.
BUNDLED_UV = "0.13.9"

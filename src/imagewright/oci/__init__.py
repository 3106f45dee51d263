"""Image formats, pure: layer tars from upper dirs, compressed blobs with their digests, and the
config, manifest and index JSON that tie them together. Nothing here knows about the store."""

"""Image formats, pure: layer tars from upper dirs and untrusted ones safely back (unpack.py),
compressed blobs with their digests, and the config, manifest and index JSON that tie them
together. Nothing here knows about the store."""

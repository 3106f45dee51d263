"""Compress a layer stream into a blob while digesting both sides in the same pass.

A layer needs two digests: its DiffID (sha256 of the uncompressed tar, in the image config) and
its blob digest (sha256 of the bytes stored, in the manifest). `BlobWriter` takes the tar as it
is produced, hashes it, compresses it, and hashes and counts what reaches the file, so a layer
is read from disk once.

gzip is Intel's ISA-L deflate (python-isal's igzip_threaded), on every core: on a 756 MB layer
tar here it wrote 400 MB/s at level 3 against zlib's 19 MB/s at level 6, for blobs 11% larger
(0.369 of the tar against 0.331); zlib-ng, the other candidate, did 101 MB/s at level 6 on two
threads (measurements in the README). Its output does not depend on the number of threads
(blocks are cut at fixed sizes), and its header has no file name and mtime 0.
Both compressors give the same bytes for the same input on every run, and on every machine
with the same versions (the lock file's): `encoding()` names compressor, version and level,
and the store keys its compressed blobs by it, so a store never mixes blobs of two encoders.
zstd runs at a fixed level, where multi-threaded output does not depend on the number of
threads (only single-threaded mode, which is never used here, differs).
"""

from __future__ import annotations

from ..exception import InvalidValueError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import BinaryIO, NamedTuple, Protocol

    class _Compressor(Protocol):
        def write(self, data: bytes, /) -> int: ...

        def close(self) -> None: ...
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["COMPRESSIONS", "BlobDigests", "BlobWriter", "encoding", "gunzip"]

COMPRESSIONS = ("zstd", "gzip", "none")
# zstd 3 compresses a 224 MB upper dir in 1.7 s here, against 10 s for zlib's gzip 6, at the
# same size (machine notes section 3). ISA-L's levels go from 0 to 3; 3 is its best ratio.
ZSTD_LEVEL = 3
GZIP_LEVEL = 3


class BlobDigests(NamedTuple):
    digest: str  # "sha256:<hex>" of the blob as stored
    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    size: int  # bytes of the blob as stored


class _CountingSink:
    """The end of the pipe: hashes, counts and writes the compressed bytes."""

    def __init__(self, out: BinaryIO):
        import hashlib  # (layers are big: OpenSSL's, loaded only when one is written)

        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


class _Passthrough:
    def __init__(self, sink: _CountingSink):
        self.sink = sink

    def write(self, data: bytes) -> int:
        return self.sink.write(data)

    def close(self) -> None:
        pass


class BlobWriter:
    """A write-only stream: uncompressed tar in, compressed blob out to `out`, digests kept."""

    def __init__(self, out: BinaryIO, compression: str):
        if compression not in COMPRESSIONS:
            raise InvalidValueError(
                f"unknown compression {compression!r}; use one of {COMPRESSIONS}"
            )
        import hashlib

        self._diff = hashlib.sha256()
        self._sink = _CountingSink(out)
        self._compressor = _open(compression, self._sink)

    def write(self, data: bytes) -> int:
        self._diff.update(data)
        self._compressor.write(data)
        return len(data)

    def finish(self) -> BlobDigests:
        """Flush the compressor's last frame and return the digests. Does not close `out`."""
        self._compressor.close()
        self._sink.flush()
        return BlobDigests(
            f"sha256:{self._sink.sha.hexdigest()}",
            f"sha256:{self._diff.hexdigest()}",
            self._sink.size,
        )


def encoding(compression: str) -> str:
    """What makes the bytes of a `compression` blob: the compressor, its version and level."""
    if compression == "gzip":
        import isal

        return f"gzip-isal{isal.__version__}-{GZIP_LEVEL}"
    if compression == "zstd":
        import zstandard

        return f"zstd{zstandard.__version__}-{ZSTD_LEVEL}"
    return compression


def _open(compression: str, sink: _CountingSink) -> _Compressor:
    if compression == "gzip":
        from isal import igzip_threaded  # (only exports, pushes and pulls load it)

        compressor: _Compressor = igzip_threaded.open(  # type: ignore[no-untyped-call]  # isal's open has no annotations
            sink, "wb", compresslevel=GZIP_LEVEL, threads=-1
        )
        return compressor
    if compression == "zstd":
        import zstandard  # only exports load it, so other commands start fast

        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
        return cctx.stream_writer(sink, closefd=False)  # type: ignore[arg-type]  # the stub asks for IO[bytes]; zstandard calls only write (and flush)
    return _Passthrough(sink)


def gunzip(raw: BinaryIO) -> BinaryIO:
    """The inflated stream of gzip data in `raw`: ISA-L, about twice zlib's speed, inflating in
    a thread of its own while the caller reads."""
    from isal import igzip_threaded

    stream: BinaryIO = igzip_threaded.open(raw, "rb")  # type: ignore[no-untyped-call]  # isal's open has no annotations
    return stream

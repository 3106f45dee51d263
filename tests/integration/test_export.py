"""Export, judged by independent tools: skopeo reads our layouts, umoci unpacks them to the
rootfs a container sees, podman loads and runs the docker-archive. Plus the layer tar rules on a
hand-made upper dir, determinism, and blob reuse.

skopeo, umoci, podman and runc are required (`make setup` installs them): a missing tool fails
these tests rather than skipping them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from imagewright import Image
from imagewright.export import export_image
from imagewright.oci.compression import BlobWriter
from imagewright.oci.lowers import LowerLayers
from imagewright.oci.tarball import write_layer
from imagewright.plan.planner import plan_image
from imagewright.store.blobs import LayerBlobs

from .conftest import cli
from .docker_helpers import docker

CAPABILITY = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)  # v2, effective, net_bind_service
CHANGES = " && ".join(
    [
        "rm /etc/issue",  # a whiteout
        "rm -rf /etc/cron.daily",  # a whiteout for a whole directory
        # deleted and made again: an opaque directory that holds only the new file
        "rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo new > /etc/apt/apt.conf.d/99new",
        "echo modified >> /etc/debian_version",
        "mkdir /opt/iw && echo data > /opt/iw/file && ln /opt/iw/file /opt/iw/link",
        "python3 -c \"import os; os.setxattr('/opt/iw/file', 'security.capability', "
        + repr(CAPABILITY)
        + "); os.setxattr('/opt/iw/file', 'user.iw', b'kept')\"",
    ]
)
TAG = "imagewright-test/export:v1"
# what a container sees, and what the unpacked rootfs must hold: paths, types, modes, owners,
# link targets and file contents (resolv.conf is the host's, bound in by the sandbox)
LISTING = (
    "cd / && find etc opt srv usr/local -xdev ! -path etc/resolv.conf "
    "-printf '%p %M %U:%G %l\\n' | LC_ALL=C sort && "
    "find etc opt usr/local -xdev -type f ! -path etc/resolv.conf -exec sha256sum {} + "
    "| LC_ALL=C sort -k2"
)


def _require(*tools: str) -> None:
    for tool in tools:
        assert shutil.which(tool), f"{tool} is not installed; `make setup` installs it"


def _run(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def image(py311: Image, builder) -> Image:
    img = py311.run_commands(CHANGES).env({"IW_EXPORT": "1"}).workdir("/srv").cmd(["python3"])
    builder.build(img)
    return img


def _layer_count(image: Image, store) -> int:
    return sum(not store.lookup(s.key).empty for s in plan_image(image).steps)


# ---- the layer tar, on a hand-made upper dir ----------------------------------------------


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_layer_tar_rules(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("lower/etc/kept", "lower/etc/opq", "lower/gone-dir", "upper/etc/opq", "upper/new"):
        (tmp_path / d).mkdir(parents=True)
    (lower / "etc/issue").write_text("x")
    (lower / "etc/opq/old").write_text("x")
    _whiteout(upper / "etc/issue")  # in lower: becomes .wh.issue
    os.link(upper / "etc/issue", upper / "gone-dir")  # one shared whiteout inode, as overlayfs does
    _whiteout(upper / "etc/never-there")  # not in lower: dropped
    os.setxattr(upper / "etc/opq", "trusted.overlay.opaque", b"y")  # in lower: marker
    (upper / "etc/opq/fresh").write_text("fresh")
    os.setxattr(upper / "new", "trusted.overlay.opaque", b"y")  # not in lower: plain dir
    (upper / "new/a").write_text("hello")
    os.link(upper / "new/a", upper / "new/b")
    os.setxattr(upper / "new/a", "user.kept", b"\xff\x00binary")
    os.setxattr(upper / "new", "trusted.overlay.origin", b"junk")
    os.utime(upper / "new/a", (4_000_000_000, 4_000_000_000))

    def layer(clamp: int | None) -> bytes:
        out = io.BytesIO()
        write_layer(upper, LowerLayers([lower]), out, clamp_mtime=clamp)
        return out.getvalue()

    data = layer(None)
    assert data == layer(None)  # deterministic
    members = _members(data)
    assert list(members) == [
        ".wh.gone-dir",
        "etc",
        "etc/.wh.issue",
        "etc/opq",
        "etc/opq/.wh..wh..opq",
        "etc/opq/fresh",
        "new",
        "new/a",
        "new/b",
    ]
    assert members[".wh.gone-dir"].isreg() and members["etc/.wh.issue"].isreg()  # never links
    assert members["new/b"].islnk() and members["new/b"].linkname == "new/a"
    assert members["new/a"].pax_headers["SCHILY.xattr.user.kept"].encode(
        "utf-8", "surrogateescape"
    ) == (b"\xff\x00binary")
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)
    assert all(m.uname == "" and m.gname == "" for m in members.values())
    assert members["new/a"].mtime == 4_000_000_000
    assert _members(layer(1_700_000_000))["new/a"].mtime == 1_700_000_000  # clamped


def test_blob_writer_digests_both_sides_in_one_pass():
    import zstandard

    payload = os.urandom(100_000) * 3
    for compression, decompress in [
        ("gzip", gzip.decompress),
        ("zstd", lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)),
        ("none", lambda b: b),
    ]:
        out = io.BytesIO()
        writer = BlobWriter(out, compression)
        for i in range(0, len(payload), 65536):
            writer.write(payload[i : i + 65536])
        digests = writer.finish()
        blob = out.getvalue()
        assert digests.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
        assert digests.diff_id == "sha256:" + hashlib.sha256(payload).hexdigest()
        assert digests.size == len(blob) and decompress(blob) == payload


def test_gzip_blobs_do_not_depend_on_the_number_of_threads(monkeypatch):
    payload = os.urandom(3_000_000) + bytes(5_000_000)  # several of its 1 MiB blocks
    made = []
    for threads in (1, 2, 8):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=threads: set(range(n)))
        out = io.BytesIO()
        writer = BlobWriter(out, "gzip")
        writer.write(payload)
        writer.finish()
        made.append(out.getvalue())
    assert made[0] == made[1] == made[2] and gzip.decompress(made[0]) == payload
    assert made[0][4:8] == bytes(4)  # mtime 0 in the header


# ---- independent tools ----------------------------------------------------------------------


def test_skopeo_inspects_our_config_and_layers(image, store, tmp_path):
    _require("skopeo")
    result = export_image(image, tmp_path / "oci", tag=TAG, store=store)
    info = json.loads(_run("skopeo", "inspect", f"oci:{tmp_path}/oci"))
    assert info["Digest"] == result.manifest_digest
    assert "IW_EXPORT=1" in info["Env"] and info["Architecture"] == "amd64"
    assert len(info["Layers"]) == _layer_count(image, store) == result.layers
    config = json.loads(_run("skopeo", "inspect", "--config", f"oci:{tmp_path}/oci:v1"))
    assert config["config"]["WorkingDir"] == "/srv" and config["config"]["Cmd"] == ["python3"]
    assert config["os"] == "linux" and config["created"] == "1970-01-01T00:00:00Z"
    history = config["history"]
    assert len(history) == len(plan_image(image).steps)
    assert sum(not h.get("empty_layer") for h in history) == len(config["rootfs"]["diff_ids"])
    env_step = next(h for h in history if "IW_EXPORT" in h["comment"])
    assert env_step["empty_layer"] is True


def test_umoci_rootfs_matches_the_container(image, builder, store, tmp_path):
    _require("umoci")
    result = export_image(image, tmp_path / "oci", tag=TAG, store=store)  # the default: gzip
    assert result.compression == "gzip"  # (umoci 0.4.7, Debian 12's, reads no zstd)
    _run("umoci", "unpack", "--image", f"{tmp_path}/oci:v1", tmp_path / "bundle")
    rootfs = tmp_path / "bundle" / "rootfs"
    unpacked = _run("chroot", rootfs, "/bin/sh", "-c", LISTING)
    assert unpacked == builder.run(image, LISTING)
    assert not (rootfs / "etc/issue").exists() and not (rootfs / "etc/cron.daily").exists()
    assert os.listdir(rootfs / "etc/apt/apt.conf.d") == ["99new"]
    assert (rootfs / "etc/debian_version").read_text().endswith("modified\n")
    assert (rootfs / "usr/bin/python3").exists()  # the base layers are all there
    a, b = os.stat(rootfs / "opt/iw/file"), os.stat(rootfs / "opt/iw/link")
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    assert os.getxattr(rootfs / "opt/iw/file", "security.capability") == CAPABILITY
    assert os.getxattr(rootfs / "opt/iw/file", "user.iw") == b"kept"


def test_podman_loads_and_runs_the_docker_archive(image, store, tmp_path, podman_env):
    _require("skopeo")
    archive = tmp_path / "image.tar"
    result = export_image(image, archive, format="docker", tag=TAG, store=store)
    assert result.compression == "gzip"
    with tarfile.open(archive) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))
    assert entry["RepoTags"] == [TAG] and len(entry["Layers"]) == result.layers
    # the Docker side of the archive (manifest.json) on its own, as `docker load` reads it
    info = json.loads(_run("skopeo", "inspect", f"docker-archive:{archive}"))
    assert "IW_EXPORT=1" in info["Env"] and len(info["Layers"]) == result.layers

    loaded = _run("podman", "load", "-i", archive, env=podman_env)
    assert f"docker.io/{TAG}" in loaded
    out = _run(
        "podman", "run", "--rm", "--network=host", f"docker.io/{TAG}",
        "sh", "-c", "cat /etc/debian_version; pwd; echo $IW_EXPORT; ls /etc/issue || true",
        env=podman_env,
    )  # fmt: skip
    lines = out.splitlines()
    assert lines[0].startswith("12.") and lines[1] == "modified"
    assert lines[2:4] == ["/srv", "1"] and len(lines) == 4  # no /etc/issue


def test_the_default_oci_export_loads_in_podman_and_docker(
    image, store, tmp_path, podman_env, docker_env
):
    _require("skopeo")
    archive = tmp_path / "image-oci.tar"
    export_image(image, archive, tag=TAG, store=store)  # an OCI layout in a tar, gzip layers
    command = ["sh", "-c", "cat /etc/debian_version; pwd; echo $IW_EXPORT"]
    loaded = _run("podman", "load", "-i", archive, env=podman_env)  # reads oci-archive itself
    image_id = re.search(r"Loaded image(?:\(s\))?: *(\S+)", loaded).group(1)
    ran = _run("podman", "run", "--rm", "--network=host", image_id, *command, env=podman_env)
    assert ran.startswith("12.") and ran.splitlines()[1:] == ["modified", "/srv", "1"]

    # Docker 20.10 loads docker-archives only: skopeo converts the layout, blob for blob
    converted = tmp_path / "image-docker.tar"
    _run("skopeo", "copy", "--quiet", f"oci-archive:{archive}", f"docker-archive:{converted}:{TAG}")
    docker(docker_env, "load", "-i", str(converted))
    out = docker(docker_env, "run", "--rm", "--network=host", TAG, *command)
    assert out.startswith("12.") and out.splitlines()[1:] == ["modified", "/srv", "1"]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_skopeo_copies_every_compression(image, store, tmp_path, compression):
    _require("skopeo")
    result = export_image(image, tmp_path / "a", compression=compression, tag=TAG, store=store)
    _run("skopeo", "copy", "--quiet", f"oci:{tmp_path}/a:v1", f"oci:{tmp_path}/b:v1")
    ours, copied = _manifest(tmp_path / "a"), _manifest(tmp_path / "b")
    suffix = {"gzip": ".tar+gzip", "zstd": ".tar+zstd", "none": ".tar"}[compression]
    assert len(ours["layers"]) == len(copied["layers"]) == result.layers
    assert all(layer["mediaType"].endswith(suffix) for layer in ours["layers"])
    assert copied["config"]["digest"] == result.image_id  # the diff_ids held up
    if compression != "none":  # skopeo compresses plain tars on the way, and keeps the rest
        assert copied["layers"] == ours["layers"]


def _manifest(layout: Path) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    return json.loads((layout / "blobs" / "sha256" / digest).read_text())


# ---- determinism and reuse ------------------------------------------------------------------


def test_exports_are_deterministic_and_reuse_stored_blobs(image, store, tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first = export_image(image, tmp_path / "one.tar", tag=TAG, store=store)
    blobs = LayerBlobs(store)
    stored = sorted(blobs.blob_dir.iterdir())
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stored}
    second = export_image(image, tmp_path / "two.tar", tag=TAG, store=store)
    assert second.reused == second.layers  # nothing was compressed again...
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stored} == before  # ...or rewritten
    assert second.manifest_digest == first.manifest_digest
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    export_image(image, tmp_path / "dir", tag=TAG, store=store)
    assert (tmp_path / "dir" / "index.json").read_bytes() == _tar_member(
        tmp_path / "one.tar", "index.json"
    )

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    clamped = export_image(image, tmp_path / "sde.tar", tag=TAG, store=store)
    assert clamped.manifest_digest != first.manifest_digest
    config = json.loads(_tar_member(tmp_path / "sde.tar", f"blobs/sha256/{clamped.image_id[7:]}"))
    assert {h["created"] for h in config["history"]} == {"2023-11-14T22:13:20Z"}
    again = export_image(image, tmp_path / "sde2.tar", tag=TAG, store=store)
    assert again.manifest_digest == clamped.manifest_digest and again.reused == again.layers


@pytest.mark.parametrize("output", ["layout.tar", "layout"])
def test_a_stored_blob_changed_on_disk_is_made_again(image, store, tmp_path, output):
    """Blobs made by the export itself are copied as they are; stored ones are checked as they
    are copied out, and one that changed since it was made is dropped and made again."""
    shutil.rmtree(LayerBlobs(store).blob_dir, ignore_errors=True)
    made = export_image(image, tmp_path / "made.tar", tag=TAG, store=store)
    assert made.reused == 0
    _check_blobs(tmp_path / "made.tar")
    victim = max(LayerBlobs(store).blob_dir.iterdir(), key=lambda p: p.stat().st_size)
    with open(victim, "r+b") as f:  # edited in place, as through an old export's hard link
        f.seek(100)
        f.write(b"\0" * 64)
    lines: list[str] = []
    again = export_image(image, tmp_path / output, tag=TAG, store=store, progress=lines.append)
    assert again.manifest_digest == made.manifest_digest
    assert any(f"{victim.name}" in line and "making it again" in line for line in lines), lines
    assert again.reused == again.layers - 1  # that one layer was compressed again
    if output.endswith(".tar"):
        assert (tmp_path / output).read_bytes() == (tmp_path / "made.tar").read_bytes()
    else:
        for blob in (tmp_path / output / "blobs" / "sha256").iterdir():
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def _check_blobs(archive: Path) -> None:
    """Every blob of an OCI layout tar has the digest its name says."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("blobs/sha256/"):
                data = tar.extractfile(member)
                assert data is not None
                digest = hashlib.sha256(data.read()).hexdigest()
                assert member.name == f"blobs/sha256/{digest}"


def _tar_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


# ---- the CLI ------------------------------------------------------------------------------


def test_cli_export_and_bad_options(image, store, tmp_path):
    (tmp_path / "app.py").write_text(
        "import imagewright as modal\n"
        f"app_image = modal.Image.debian_slim(python_version='3.11').run_commands({CHANGES!r})\n"
    )
    proc = cli("export", f"{tmp_path}/app.py", "-o", str(tmp_path / "out.tar"), "--tag", TAG)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Exported {TAG} to {tmp_path}/out.tar (oci, gzip")
    proc = cli("export", f"{tmp_path}/app.py", "-o", "x.tar", "--format", "docker",
               "--compression", "zstd")  # fmt: skip
    assert proc.returncode == 2 and "zstd" in proc.stderr
    proc = cli("export", f"{tmp_path}/app.py", "-o", "x", "--tag", "Bad Name")
    assert proc.returncode == 2 and "Invalid image reference" in proc.stderr


def test_cli_imports_zstandard_only_to_export():
    code = (
        "import sys; from imagewright.cli.main import run; run(['images']); "
        "assert 'zstandard' not in sys.modules and 'imagewright.export' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

"""Volumes on the host: names, the volumes= check, file operations, symlinks refused, the
container side's lookup of mount points, and the binds a container gets."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pickle
import pwd
import time
from datetime import datetime
from pathlib import Path, PurePosixPath

import pytest

from imagewright import settings
from imagewright.exception import (
    AlreadyExistsError,
    InvalidError,
    NotFoundError,
    UnimplementedError,
)
from imagewright.execute.volumes import volume_binds
from imagewright.volume import (
    FileEntryType,
    Volume,
    check_volumes,
    create_volume,
    delete_volume,
    list_volumes,
    volume_dir,
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMAGEWRIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(settings.IN_CONTAINER, raising=False)
    return tmp_path / "home"


def _upload(volume: Volume, files: dict[str, bytes], force: bool = False) -> None:
    with volume.batch_upload(force=force) as batch:
        for path, data in files.items():
            batch.put_file(io.BytesIO(data), path)


def test_names_are_checked_when_made_and_existence_when_used() -> None:
    for bad in ("", "a/b", "..", "x" * 65, "a b"):
        with pytest.raises(InvalidError):
            Volume.from_name(bad)
    missing = Volume.from_name("data")  # costs nothing until used
    with pytest.raises(NotFoundError, match="imagewright volume create data"):
        missing.listdir("/")
    created = Volume.from_name("data", create_if_missing=True)
    assert created.listdir("/") == []
    assert missing.listdir("/") == []  # now it exists


def test_check_volumes() -> None:
    vol, other = Volume.from_name("a"), Volume.from_name("b")
    assert check_volumes({PurePosixPath("/data"): vol, "/b": other}) == {"/data": vol, "/b": other}
    for bad in ({"data": vol}, {"/": vol}, {"/tmp": vol}, {"/root": vol}, {"/a/../b": vol},
                {"/x": "not a volume"}, {"/x": vol, "/y": Volume.from_name("a")}):  # fmt: skip
        with pytest.raises(InvalidError):
            check_volumes(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="Two volumes"):
        check_volumes({"/x": vol, PurePosixPath("/x"): other})


def test_files_round_trip() -> None:
    vol = Volume.from_name("v", create_if_missing=True)
    _upload(vol, {"/a/b.txt": b"hello", "c.txt": b"c"})
    assert [(e.path, e.type) for e in vol.listdir("/", recursive=True)] == [
        ("a", FileEntryType.DIRECTORY), ("a/b.txt", FileEntryType.FILE),
        ("c.txt", FileEntryType.FILE),
    ]  # fmt: skip
    assert [e.path for e in vol.listdir("a/b.txt")] == ["a/b.txt"]
    assert b"".join(vol.read_file("a/b.txt")) == b"hello"
    sink = io.BytesIO()
    assert vol.read_file_into_fileobj("/a/b.txt", sink) == 5 and sink.getvalue() == b"hello"
    with pytest.raises(FileExistsError):
        _upload(vol, {"c.txt": b"new"})
    _upload(vol, {"c.txt": b"new"}, force=True)
    assert b"".join(vol.read_file("c.txt")) == b"new"
    vol.copy_files(["a"], "copy", recursive=True)
    vol.copy_files(["c.txt", "a/b.txt"], "copy")
    assert {e.path for e in vol.listdir("copy")} == {"copy/b.txt", "copy/c.txt"}
    with pytest.raises(InvalidError, match="recursive"):
        vol.copy_files(["a"], "other")
    with pytest.raises(InvalidError, match="itself"):
        vol.copy_files(["a"], "a/inner", recursive=True)
    with pytest.raises(InvalidError, match="not empty"):
        vol.remove_file("a")
    vol.remove_file("a", recursive=True)
    with pytest.raises(FileNotFoundError):
        vol.remove_file("a")
    with pytest.raises(FileNotFoundError):
        b"".join(vol.read_file("a/b.txt"))
    with pytest.raises(NotFoundError):
        vol.listdir("a")
    with pytest.raises(InvalidError):
        vol.listdir("../outside")
    vol.commit()
    vol.reload()


def test_put_directory_keeps_modes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "sub" / "x").write_text("x")
    vol = Volume.from_name("v", create_if_missing=True)
    with vol.batch_upload() as batch:
        batch.put_directory(src, "/dst")
    root = volume_dir(vol)
    assert (root / "dst" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (root / "dst" / "sub" / "x").read_text() == "x"
    # nothing is written when the block fails
    with pytest.raises(ValueError), vol.batch_upload() as batch:
        batch.put_file(io.BytesIO(b"1"), "never")
        raise ValueError
    assert not (root / "never").exists()


def test_symlinks_planted_in_a_volume_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host file")
    vol = Volume.from_name("v", create_if_missing=True)
    root = volume_dir(vol)
    (root / "link").symlink_to(outside)
    (root / "file-link").symlink_to(outside / "secret")
    with pytest.raises(NotADirectoryError):
        b"".join(vol.read_file("link/secret"))
    with pytest.raises(InvalidError, match="symlink"):
        b"".join(vol.read_file("file-link"))
    with pytest.raises(NotADirectoryError):
        _upload(vol, {"link/planted": b"x"})
    assert sorted(os.listdir(outside)) == ["secret"]
    entries = {e.path: e.type for e in vol.listdir("/", recursive=True)}
    assert entries == {"link": FileEntryType.SYMLINK, "file-link": FileEntryType.SYMLINK}
    vol.remove_file("link")  # removes the link, not what it points at
    assert (outside / "secret").exists()


def test_async_twins() -> None:
    vol = Volume.from_name("v", create_if_missing=True)

    async def main() -> None:
        async with vol.batch_upload.aio() as batch:
            batch.put_file(io.BytesIO(b"x"), "f")
        assert [e.path for e in await vol.listdir.aio("/")] == ["f"]
        assert [c async for c in vol.read_file.aio("f")] == [b"x"]
        await vol.commit.aio()
        async with Volume.ephemeral() as eph:
            assert await eph.listdir.aio("/") == []

    asyncio.run(main())


def test_ephemeral_lives_as_long_as_its_block() -> None:
    with Volume.ephemeral() as vol:
        _upload(vol, {"x": b"1"})
        root = volume_dir(vol)
        assert (root / "x").exists()
    assert not root.exists()
    with pytest.raises(NotFoundError, match="no longer exists"):
        vol.listdir("/")


def test_named_volumes_are_listed_and_deleted() -> None:
    create_volume("one")
    with pytest.raises(AlreadyExistsError, match="already exists"):
        create_volume("one")
    create_volume("two")
    assert list(list_volumes()) == ["one", "two"]
    delete_volume("one")
    assert list(list_volumes()) == ["two"]
    with pytest.raises(NotFoundError):
        delete_volume("one")
    delete_volume("one", allow_missing=True)


def test_in_a_container_the_mount_point_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol = Volume.from_name("data", create_if_missing=True)
    binds, env = volume_binds(check_volumes({"/data": vol}))
    assert [(b.source, b.target, b.readonly) for b in binds] == [
        (str(volume_dir(vol)), "/data", False)
    ]
    assert json.loads(env[settings.VOLUMES]) == {"name/data": "/data"}
    assert volume_binds({}) == ([], {})

    mount = tmp_path / "mnt"
    mount.mkdir()
    (mount / "seen").write_text("x")
    monkeypatch.setenv(settings.IN_CONTAINER, "1")
    monkeypatch.setenv(settings.VOLUMES, json.dumps({"name/data": str(mount)}))
    restored = pickle.loads(pickle.dumps(vol))  # as it crosses into a container
    assert [e.path for e in restored.listdir("/")] == ["seen"]
    with pytest.raises(NotFoundError, match="not mounted in this container"):
        Volume.from_name("other").listdir("/")
    with pytest.raises(InvalidError):
        Volume.ephemeral().__enter__()


def test_a_missing_volume_cannot_be_bound() -> None:
    with pytest.raises(NotFoundError, match="imagewright volume create nope"):
        volume_binds({"/data": Volume.from_name("nope")})
    binds, _ = volume_binds({"/data": Volume.from_name("made", create_if_missing=True)})
    assert Path(binds[0].source).is_dir()


def _build_step() -> None:
    pass


def test_run_function_takes_checked_volumes() -> None:
    from imagewright import Image

    vol = Volume.from_name("data")  # need not exist until the step runs
    image = Image.debian_slim(python_version="3.11").run_function(
        _build_step, volumes={PurePosixPath("/data"): vol}, gpu="any", cpu=2.0, memory=512
    )
    assert image._layer is not None
    assert image._layer.ops[0].volumes == (("/data", vol),)
    with pytest.raises(InvalidError, match="canonical, absolute"):
        Image.debian_slim().run_function(_build_step, volumes={"data": vol})
    with pytest.raises(InvalidError, match="network_file_systems"):
        Image.debian_slim().run_function(_build_step, network_file_systems={"/n": object()})


def test_ids_info_and_rename() -> None:
    create_volume("data")
    vol = Volume.from_name("data")
    assert vol.object_id == "vo-data" and vol.hydrate() is vol
    assert repr(Volume.from_id(vol.object_id)) == "Volume.from_name('data')"
    info = vol.info()
    assert info.name == "data" and info.created_at.tzinfo is not None
    assert info.created_by == pwd.getpwuid(os.geteuid()).pw_name
    with Volume.ephemeral() as scratch:
        assert Volume.from_id(scratch.object_id).listdir("/") == []
        assert scratch.info().name is None
    with pytest.raises(InvalidError, match="Invalid Volume id"):
        Volume.from_id("st-data")
    Volume.rename("data", "renamed")
    assert list(list_volumes()) == ["renamed"]
    create_volume("other")
    with pytest.raises(AlreadyExistsError):
        asyncio.run(Volume.rename.aio("renamed", "other"))
    with pytest.raises(NotFoundError):
        Volume.rename("data", "elsewhere")
    with pytest.raises(NotFoundError):
        Volume.from_name("data").hydrate()


def test_objects_manage_the_named_volumes(monkeypatch: pytest.MonkeyPatch) -> None:
    Volume.objects.create("old")
    time.sleep(0.05)  # file times move by the kernel's tick
    asyncio.run(Volume.objects.create.aio("new"))
    with pytest.raises(AlreadyExistsError):
        Volume.objects.create("new")
    Volume.objects.create("new", allow_existing=True)
    assert [v.name for v in Volume.objects.list()] == ["new", "old"]
    assert [v.name for v in Volume.objects.list(max_objects=1)] == ["new"]
    made = list_volumes()
    before = datetime.fromtimestamp((made["old"] + made["new"]) / 2)
    assert [v.name for v in Volume.objects.list(created_before=before)] == ["old"]
    assert Volume.objects.list(created_before="2000-01-01") == []
    with pytest.raises(InvalidError, match="cannot be negative"):
        Volume.objects.list(max_objects=-1)
    Volume.objects.delete("old")
    Volume.objects.delete("old", allow_missing=True)
    assert [v.name for v in asyncio.run(Volume.objects.list.aio())] == ["new"]
    monkeypatch.setenv(settings.IN_CONTAINER, "1")
    with pytest.raises(InvalidError, match="inside a container"):
        Volume.objects.list()


def test_read_only_volumes() -> None:
    create_volume("ro")
    plain = Volume.from_name("ro")
    _upload(plain, {"f": b"x"})
    locked, mounted = plain.read_only(), plain.with_mount_options(read_only=True)
    assert locked.object_id == mounted.object_id == plain.object_id
    # read_only() refuses writes; the mount option alone does not (as in Modal)
    for write in (
        lambda: locked.remove_file("f"),
        lambda: locked.copy_files(["f"], "g"),
        lambda: locked.batch_upload(),
    ):
        with pytest.raises(InvalidError, match="Read-only Volume can not be written to"):
            write()
    assert locked.read_file_into_fileobj("f", io.BytesIO()) == 1
    mounted.copy_files(["f"], "g")
    with pytest.raises(InvalidError, match="Cannot call with_mount_options"):
        locked.with_mount_options(read_only=True)
    with pytest.raises(InvalidError, match="Cannot call read_only"):
        plain.with_mount_options(read_only=False).read_only()
    binds = {
        path: bind.readonly
        for path, vol in [("/a", plain), ("/b", locked), ("/c", mounted)]
        for bind in volume_binds({path: vol})[0]
    }
    assert binds == {"/a": False, "/b": True, "/c": True}
    assert volume_binds({"/d": mounted.with_mount_options()})[0][0].readonly
    assert not volume_binds({"/e": mounted.with_mount_options(read_only=False)})[0][0].readonly
    thawed = pickle.loads(pickle.dumps(locked))  # as a function's argument reaches a container
    with pytest.raises(InvalidError, match="Read-only"):
        thawed.remove_file("f")
    plain.with_mount_options(sub_path="/")
    with pytest.raises(UnimplementedError, match="sub_path"):
        plain.with_mount_options(sub_path="/users/me")

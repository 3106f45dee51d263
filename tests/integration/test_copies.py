"""Local files copied into images: straight into the layer where nothing of the image is in the
way (execute/copydirect.py), through the sandboxed helper where something is. Both must leave
the layer overlayfs and the helper leave, and the image must read the same from inside."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from imagewright import Image
from imagewright.execute import copydirect
from imagewright.execute.copies import copy_into
from imagewright.execute.layers import lowers_for
from imagewright.execute.overlay import Overlay
from imagewright.plan.files import FileEntry, collect_dir, collect_file
from imagewright.plan.planner import plan_image

# The image's own tree: a directory with an odd mode and owner, a sticky one, a file to
# replace, a symlink to a directory, and a directory an earlier layer deleted.
PREPARED = (
    "mkdir -p /srv/odd /opt/real /gone/dir && chmod 0710 /srv/odd && chown 7:8 /srv/odd"
    " && chmod 1777 /opt/real && echo old > /srv/odd/replace && ln -s /opt/real /app"
)


@pytest.fixture(scope="module")
def prepared(builder, py311: Image) -> Image:
    image = py311.run_commands(PREPARED).run_commands("rm -r /gone/dir")
    builder.build(image)
    return image


@pytest.fixture
def local(tmp_path: Path) -> Path:
    """A local tree: files with their own modes, a subdirectory and a relative symlink."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (tree / "sub" / "run.sh").chmod(0o750)
    (tree / "link").symlink_to("sub/run.sh")
    (tmp_path / "new").write_text("new\n")
    return tmp_path


def _entries(local: Path) -> dict[str, list[FileEntry]]:
    """What each case copies, by the directory it meets in the image."""
    return {
        "odd": collect_dir(str(local / "tree"), "/srv/odd/tree", ()),
        "replace": collect_file(str(local / "new"), "/srv/odd/replace"),
        "sticky": collect_file(str(local / "new"), "/opt/real/new"),
        "fresh": collect_dir(str(local / "tree"), "/fresh/deep/tree", ()),
        "link": collect_file(str(local / "new"), "/app/through-link"),
        "deleted": collect_file(str(local / "new"), "/gone/dir/again"),
    }


def _tree(upper: Path) -> dict[str, tuple[object, ...]]:
    """Everything of an upper dir a layer records, but directories' mtimes: a copy sets its
    parents' to the moment it ran."""
    found: dict[str, tuple[object, ...]] = {}
    for root, dirs, files in os.walk(upper):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            xattrs = sorted(
                (k, os.getxattr(path, k, follow_symlinks=False))
                for k in os.listxattr(path, follow_symlinks=False)
                if not k.startswith("trusted.overlay.")
            )
            record: tuple[object, ...] = (st.st_mode, st.st_uid, st.st_gid, tuple(xattrs))
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                record += (content, st.st_mtime_ns)
            elif stat.S_ISLNK(st.st_mode):
                record += (os.readlink(path),)
            elif not stat.S_ISDIR(st.st_mode):
                record += (st.st_rdev,)
            found[os.path.relpath(path, upper)] = record
    return found


def _copy(store, image: Image, entries: list[FileEntry], owner: str | None) -> tuple[int, dict]:
    plan = plan_image(image)
    with store.scratch() as area:
        overlay = Overlay(store.root, lowers_for(plan, store), area.upper, area.work, area.merged)
        status = copy_into(overlay, tuple(entries), lambda line: None, owner)
        return status, _tree(area.upper)


@pytest.mark.parametrize("owner", [None, "1234:99"])
@pytest.mark.parametrize("case", ["odd", "replace", "sticky", "fresh", "link", "deleted"])
def test_a_direct_copy_leaves_the_layer_the_helper_leaves(
    store, prepared, local, monkeypatch, case, owner
):
    entries = _entries(local)[case]
    direct = _copy(store, prepared, entries, owner)
    with monkeypatch.context() as m:
        m.setattr(copydirect, "copy_direct", lambda *args, **kwargs: None)
        helper = _copy(store, prepared, entries, owner)
    assert direct == helper
    assert direct[0] == 0 and direct[1]


def test_what_is_in_the_way_goes_to_the_helper(store, prepared, local):
    plan = plan_image(prepared)
    entries = _entries(local)
    with store.scratch() as area:
        overlay = Overlay(store.root, lowers_for(plan, store), area.upper, area.work, area.merged)
        for case in ("link", "deleted"):
            assert copydirect.copy_direct(overlay, tuple(entries[case]), print) is None, case
        assert copydirect.copy_direct(overlay, tuple(entries["odd"]), print, "app") is None
        assert os.listdir(area.upper) == []  # nothing written on the way
        assert copydirect.copy_direct(overlay, tuple(entries["odd"]), print) == 0
        assert copydirect.copy_direct(overlay, tuple(entries["fresh"]), print) is None  # written


def test_copies_read_right_from_inside(builder, prepared, local):
    image = (
        prepared.add_local_dir(str(local / "tree"), "/srv/odd/tree", copy=True)
        .add_local_file(str(local / "new"), "/srv/odd/replace", copy=True)
        .add_local_file(str(local / "new"), "/app/through-link", copy=True)
        .add_local_dir(str(local / "tree"), "/fresh/tree", copy=True)
    )
    out = builder.run(
        image,
        "stat -c '%n %a %u:%g' /srv/odd /srv/odd/tree /srv/odd/tree/sub/run.sh /opt/real;"
        " cat /srv/odd/replace /opt/real/through-link; readlink /app /fresh/tree/link;"
        " /fresh/tree/sub/run.sh",
    )
    assert out.splitlines() == [
        "/srv/odd 710 7:8",
        "/srv/odd/tree 755 0:0",
        "/srv/odd/tree/sub/run.sh 750 0:0",
        "/opt/real 1777 0:0",
        "new",
        "new",
        "/opt/real",
        "sub/run.sh",
        "run",
    ]


def test_a_symlink_of_the_image_never_leads_a_copy_onto_the_host(builder, py311, local):
    # a directory of the host, named by the image's symlink (not under /tmp, which containers
    # get empty)
    host = Path(f"/var/tmp/iw-copy-host-{os.getpid()}")
    host.mkdir()
    try:
        image = py311.run_commands(f"ln -s {host} /app").add_local_file(
            str(local / "new"), "/app/x", copy=True
        )
        out = builder.run(image, f"cat {host}/x; readlink /app")
        assert out.splitlines() == ["new", str(host)]  # made in the image's own tree
        assert list(host.iterdir()) == []
    finally:
        shutil.rmtree(host)

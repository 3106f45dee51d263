"""Failed steps kept for `shell --failed`: where they are kept, what is written (never a secret
value), and what removes them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagewright.definition.config import ImageConfig
from imagewright.exception import NotFoundError
from imagewright.execute.failed import find_secret, keep_failed_step, run_failed_shell, slot_for
from imagewright.store.gc import prune
from imagewright.store.store import Store

CONFIG = ImageConfig(env=(("PATH", "/usr/bin"), ("ROLE", "web")), workdir="/srv", user="nobody")


def _fail(store: Store, slot_ref: str, written: bytes, secrets: dict[str, str]) -> str:
    """Keep a failed step whose command wrote `written` to /srv/out; the error's last line."""
    with store.scratch() as area:
        (area.upper / "srv").mkdir()
        (area.upper / "srv" / "out").write_bytes(written)
        slot = slot_for(slot_ref, "image")
        return keep_failed_step(
            store, slot, area, ("k1",), ("l/k1",), CONFIG, {"ARG": "1"}, secrets, "app.py:3"
        )


def test_slot_is_the_definition_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative, absolute = slot_for("app.py", "web"), slot_for(str(tmp_path / "app.py"), "web")
    assert relative.name == absolute.name
    assert relative.ref == "app.py::web"  # as the user typed it
    assert slot_for("app.py", "worker").name != relative.name
    assert slot_for("my app.py", "web").ref == "'my app.py::web'"  # quoted for the shell


def test_kept_step_holds_the_area_and_no_secret_value(tmp_path):
    store = Store(tmp_path / "store")
    hint = _fail(store, "app.py", b"partial output", {"TOKEN": "s3cr3t-value"})
    assert hint == "Step into it as it failed: imagewright shell app.py::image --failed"
    area = store.failed_area(slot_for("app.py", "image").name)
    assert area is not None
    assert (area / "diff" / "srv" / "out").read_bytes() == b"partial output"
    record = (area / "failed.json").read_text()
    assert "TOKEN" in record and "s3cr3t-value" not in record  # the name, never the value
    assert os.listdir(store.root / "tmp") == []  # the work area itself is gone


def test_an_area_holding_a_secret_value_is_not_kept(tmp_path):
    store = Store(tmp_path / "store")
    hint = _fail(store, "app.py", b"x" * 10 + b"s3cr3t-value", {"TOKEN": "s3cr3t-value"})
    assert "was not kept" in hint and "into /srv/out," in hint
    assert store.failed_area(slot_for("app.py", "image").name) is None


def test_find_secret_sees_a_value_across_chunks_and_in_symlinks(tmp_path, monkeypatch):
    import imagewright.execute.failed as failed

    monkeypatch.setattr(failed, "_CHUNK", 4)
    (tmp_path / "a").write_bytes(b"...abcdefgh...")
    assert find_secret(tmp_path, ["abcdefgh"]) == tmp_path / "a"
    assert find_secret(tmp_path, ["nothere", ""]) is None
    (tmp_path / "a").unlink()
    os.symlink("/x/abcdefgh", tmp_path / "link")
    assert find_secret(tmp_path, ["abcdefgh"]) == tmp_path / "link"


def test_a_new_failure_replaces_the_kept_one_and_prune_removes_all(tmp_path):
    store = Store(tmp_path / "store")
    _fail(store, "app.py", b"first", {})
    _fail(store, "app.py", b"second", {})
    _fail(store, "other.py", b"other", {})
    area = store.failed_area(slot_for("app.py", "image").name)
    assert area is not None and (area / "diff" / "srv" / "out").read_bytes() == b"second"
    prune(store)
    assert not any((store.root / "failed").iterdir())


def test_shell_failed_without_a_kept_step_names_the_build_command(tmp_path):
    store = Store(tmp_path / "store")
    with pytest.raises(NotFoundError, match=r"imagewright build app\.py::image"):
        run_failed_shell(store, slot_for("app.py", "image"), ["true"], interactive=False)
    # a record that cannot be read counts as none
    _fail(store, "app.py", b"x", {})
    area = store.failed_area(slot_for("app.py", "image").name)
    assert area is not None
    Path(area / "failed.json").write_text("{garbage")
    with pytest.raises(NotFoundError, match=r"No failed build of app\.py::image is kept"):
        run_failed_shell(store, slot_for("app.py", "image"), ["true"], interactive=False)


def test_find_secret_follows_no_link_out_of_the_area_and_never_blocks(tmp_path):
    # what a step leaves is untrusted: a link to a host file holding the value, and a fifo
    # that would block a reader forever, are neither followed nor read
    outside = tmp_path / "host-file"
    outside.write_text("the-secret-value")
    area = tmp_path / "area"
    area.mkdir()
    (area / "link").symlink_to(outside)
    os.mkfifo(area / "fifo")
    assert find_secret(area, ["the-secret-value"]) is None
    (area / "plain").write_text("x the-secret-value y")
    assert find_secret(area, ["the-secret-value"]) == area / "plain"

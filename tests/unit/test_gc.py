"""Prune tells layers apart by the kind their record holds, never by their description: files
attached on top of an image live as long as the image, every other layer as long as an image
lists it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from imagewright.store.gc import prune
from imagewright.store.store import ATTACHED, STEP, Store

IMAGE, ATTACHED_TO_IMAGE, ATTACHED_TO_NOTHING, UNLISTED = (c * 64 for c in "abcd")

# Layers are committed by another process: this one would hold them in its use record, where
# prune leaves them alone.
_COMMIT = """
import sys
from pathlib import Path
from imagewright.store.store import Store

store = Store(Path(sys.argv[1]))
for key, parent, description, kind in (
    ("{IMAGE}", None, "Image.debian_slim()", "{STEP}"),
    ("{ATTACHED_TO_IMAGE}", "{IMAGE}", "files", "{ATTACHED}"),
    ("{ATTACHED_TO_NOTHING}", "{UNLISTED}", "files", "{ATTACHED}"),
    # what prune once took for attached files, going by the description
    ("{UNLISTED}", "{IMAGE}", "local files (copy=False)", "{STEP}"),
):
    with store.scratch() as area:
        (area.upper / "file").write_text(key)
        store.commit(area, key, parent, description, kind=kind)
""".format(**globals())


def _commit_layers(store: Store) -> None:
    subprocess.run([sys.executable, "-c", _COMMIT, str(store.root)], check=True)


def test_prune_keeps_the_files_attached_to_a_recorded_image(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    _commit_layers(store)
    store.record_image(IMAGE, {"key": IMAGE, "steps": [IMAGE]})
    result = prune(store)
    assert (result.removed, result.in_use) == (2, 0)
    assert {layer.key for layer in store.layers()} == {IMAGE, ATTACHED_TO_IMAGE}


def test_a_record_without_a_kind_reads_as_a_step(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    _commit_layers(store)
    path = store.layer_dir(ATTACHED_TO_IMAGE) / "layer.json"
    record = json.loads(path.read_text())
    assert record.pop("kind") == ATTACHED
    path.write_text(json.dumps(record))
    layer = store.lookup(ATTACHED_TO_IMAGE)
    assert layer is not None and layer.kind == STEP

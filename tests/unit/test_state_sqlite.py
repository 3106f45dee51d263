"""Dict and Queue on the SQLite backend, in a temporary home: Modal's semantics (missing keys,
empty and full queues, partitions, timeouts, iterate, TTLs), named and ephemeral objects, and
many processes writing one file at once without losing or repeating anything."""

from __future__ import annotations

import asyncio
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import imagewright as modal
from imagewright.exception import AlreadyExistsError, InvalidError, NotFoundError
from imagewright.state.backend import PARTITION_LIMIT
from imagewright.state.sqlite import SqliteBackend


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMAGEWRIGHT_HOME", str(tmp_path))
    monkeypatch.delenv("IMAGEWRIGHT_REDIS_URL", raising=False)
    monkeypatch.delenv("IMAGEWRIGHT_STATE_DIR", raising=False)
    monkeypatch.delenv("IMAGEWRIGHT_IN_CONTAINER", raising=False)
    return tmp_path


def test_dict_behaves_as_modals() -> None:
    d = modal.Dict.from_name("d", create_if_missing=True)
    d["a"] = 1
    d.update({"b": 2}, c=3)
    assert d.put("a", 10, skip_if_exists=True) is False and d["a"] == 1
    assert d.put("z", 26, skip_if_exists=True) is True and d.put("z", 0) is True
    assert list(d.keys()) == ["a", "b", "c", "z"] and list(d.values()) == [1, 2, 3, 0]
    assert dict(d.items()) == {"a": 1, "b": 2, "c": 3, "z": 0}
    assert d.len() == 4 and "b" in d and d.contains("c") and "nope" not in d
    assert d.get("nope") is None and d.get("nope", 5) == 5
    assert d.pop("a") == 1 and d.pop("a", "gone") == "gone"
    with pytest.raises(KeyError, match="nope not in dict di-d"):
        d["nope"]
    with pytest.raises(KeyError):
        d.pop("nope")
    del d["b"]
    with pytest.raises(KeyError):
        del d["b"]
    d.clear()
    assert d.len() == 0 and list(d.items()) == []


def test_keys_are_compared_by_their_pickles() -> None:
    d = modal.Dict.from_name("keys", create_if_missing=True)
    d[(1, "x")] = "tuple"
    d[1] = "int"
    d[1.0] = "float"  # equal to 1 in Python, but another pickle: another key here
    assert d[(1, "x")] == "tuple" and d[1] == "int" and d[1.0] == "float" and d.len() == 3


def test_values_round_trip_as_pickles() -> None:
    d = modal.Dict.from_name("values", create_if_missing=True)
    d["f"] = lambda x: x + 1  # cloudpickle, as Modal's
    d["nested"] = {"list": [1, 2], "bytes": b"\x00"}
    assert d["f"](1) == 2 and d["nested"] == {"list": [1, 2], "bytes": b"\x00"}


def test_a_missing_name_is_not_found_until_created() -> None:
    missing = modal.Dict.from_name("later")
    with pytest.raises(NotFoundError, match="create_if_missing=True"):
        missing.get("k")
    with pytest.raises(NotFoundError):
        modal.Queue.from_name("later").hydrate()
    modal.Dict.objects.create("later")
    with pytest.raises(AlreadyExistsError):
        modal.Dict.objects.create("later")
    modal.Dict.objects.create("later", allow_existing=True)
    assert missing.hydrate() is missing and missing.get("k") is None
    with pytest.raises(InvalidError, match="Invalid Dict name"):
        modal.Dict.from_name("no spaces")


def test_objects_list_and_delete_the_named_ones() -> None:
    for name in ("one", "two", "three"):
        modal.Queue.objects.create(name)
        time.sleep(0.01)
    with modal.Queue.ephemeral():
        names = [q.name for q in modal.Queue.objects.list()]
    assert names == ["three", "two", "one"]  # newest first, no ephemeral one
    assert [q.name for q in modal.Queue.objects.list(max_objects=1)] == ["three"]
    assert modal.Dict.objects.list() == []
    q = modal.Queue.from_name("two")
    q.put(1)
    modal.Queue.objects.delete("two")
    with pytest.raises(NotFoundError):
        modal.Queue.objects.delete("two")
    modal.Queue.objects.delete("two", allow_missing=True)
    with pytest.raises(NotFoundError, match="deleted"):
        q.put(2)  # the handle knew the old one: it cannot write into a new "two"
    modal.Queue.objects.create("two")
    assert modal.Queue.from_name("two").len() == 0


def test_ephemeral_objects_end_with_their_block() -> None:
    with modal.Dict.ephemeral() as d:
        d["k"] = "v"
        again = pickle.loads(pickle.dumps(d))  # as a function's argument arrives
        assert again["k"] == "v" and modal.Dict.from_id(d.object_id)["k"] == "v"
        assert d.info().name is None and repr(d) == "Dict.ephemeral()"
    with pytest.raises(NotFoundError, match="block has ended"):
        modal.Dict.from_id(d.object_id).get("k")

    async def use() -> list[int]:
        async with modal.Queue.ephemeral() as q:
            await q.put_many.aio([1, 2])
            return [item async for item in q.iterate.aio()]

    assert asyncio.run(use()) == [1, 2]


def test_queue_get_and_put_behave_as_modals() -> None:
    q = modal.Queue.from_name("q", create_if_missing=True)
    q.put(1)
    q.put_many([2, 3, 4])
    assert q.get() == 1 and q.get_many(2) == [2, 3] and q.get_many(10) == [4]
    assert q.get(block=False) is None and q.get_many(3, block=False) == []
    with pytest.warns(UserWarning, match="ignored"):
        q.get(block=False, timeout=1)
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.3)
    with pytest.raises(queue.Empty):
        q.get_many(2, timeout=0)
    assert 0.3 <= time.monotonic() - started < 2
    with pytest.raises(InvalidError, match="n_values"):
        q.get_many(0)


def test_a_blocking_get_wakes_for_a_later_put() -> None:
    q = modal.Queue.from_name("wake", create_if_missing=True)
    threading.Timer(0.2, q.put, args=("late",)).start()
    started = time.monotonic()
    assert q.get(timeout=10) == "late"
    assert time.monotonic() - started < 1


def test_partitions_are_separate_queues() -> None:
    q = modal.Queue.from_name("parts", create_if_missing=True)
    q.put_many([1, 2])
    q.put("a", partition="left")
    q.put_many(["b", "c"], partition="right")
    assert q.len() == 2 and q.len(partition="right") == 2 and q.len(total=True) == 5
    assert q.get(partition="right") == "b" and q.get() == 1
    q.clear(partition="left")
    assert q.len(partition="left") == 0 and q.len(total=True) == 2
    q.clear(all=True)
    assert q.len(total=True) == 0
    with pytest.raises(InvalidError, match="between 1 and 64"):
        q.put(1, partition="")
    with pytest.raises(InvalidError, match="between 1 and 64"):
        q.get(partition="x" * 65)
    with pytest.raises(InvalidError, match="total length"):
        q.len(partition="left", total=True)
    with pytest.raises(InvalidError, match="clear all"):
        q.clear(partition="left", all=True)


def test_a_partition_holds_5000_items() -> None:
    q = modal.Queue.from_name("full", create_if_missing=True)
    q.put_many(list(range(PARTITION_LIMIT)))
    with pytest.raises(queue.Full):
        q.put("one more", block=False)
    with pytest.raises(queue.Full):
        q.put("one more", timeout=0.2)
    with pytest.raises(queue.Full):
        q.put_many(list(range(PARTITION_LIMIT + 1)), partition="other")
    q.put("elsewhere", partition="other")  # partitions fill separately
    threading.Timer(0.2, q.get).start()
    q.put("waits for room", timeout=10)
    assert q.len() == PARTITION_LIMIT


def test_a_partition_empties_after_its_ttl() -> None:
    q = modal.Queue.from_name("ttl", create_if_missing=True)
    q.put("old", partition="p", partition_ttl=1)
    q.put("kept")
    time.sleep(1.2)
    assert q.len(partition="p") == 0 and q.get(block=False, partition="p") is None
    assert list(q.iterate(partition="p")) == [] and q.get() == "kept"


def test_iterate_does_not_take_and_waits_for_more() -> None:
    q = modal.Queue.from_name("iter", create_if_missing=True)
    q.put_many([1, 2, 3])
    assert list(q.iterate()) == [1, 2, 3] and q.len() == 3
    threading.Timer(0.2, q.put, args=(4,)).start()
    assert list(q.iterate(item_poll_timeout=2)) == [1, 2, 3, 4]


_WORKER = """
import sys
import imagewright as modal

index = int(sys.argv[1])
q, d = modal.Queue.from_name("work"), modal.Dict.from_name("claims")
taken = []
while True:
    got = q.get_many(3, block=False)
    if not got:
        break
    taken.extend(got)
    for item in got:
        d.put(("claim", item % 7), index, skip_if_exists=True)
    d[("by", index)] = taken
print(len(taken))
"""


def test_many_processes_share_one_file_without_losing_anything(tmp_path: Path) -> None:
    q = modal.Queue.from_name("work", create_if_missing=True)
    d = modal.Dict.from_name("claims", create_if_missing=True).hydrate()
    q.put_many(list(range(600)))
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    workers = [
        subprocess.Popen([sys.executable, str(script), str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    counts = [int(w.communicate(timeout=120)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers) and sum(counts) == 600
    taken = [item for i in range(6) for item in d.get(("by", i), [])]
    assert sorted(taken) == list(range(600))  # each item taken once, none lost
    claims = [d[("claim", k)] for k in range(7)]
    busy = sum(1 for c in counts if c)  # each worker that took something said what
    assert all(0 <= c < 6 for c in claims) and d.len() == 7 + busy
    assert q.len() == 0


_KILLED = """
import os
import imagewright as modal

d = modal.Dict.ephemeral().__enter__()
d["k"] = 1
print(d.object_id, flush=True)
os._exit(0)  # no `with` exit, no atexit: as if killed
"""


def test_the_ephemeral_objects_of_a_dead_process_are_reaped(home: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _KILLED], capture_output=True, text=True)
    object_id = out.stdout.strip()
    key = f"ephemeral/{object_id.split(':')[1]}"
    assert out.returncode == 0 and object_id.startswith("di-ephemeral:"), out.stderr
    fresh = SqliteBackend(home / "state")  # as the next process opens it
    assert key not in fresh.listing("dict")


def test_build_steps_cannot_use_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEWRIGHT_IN_CONTAINER", "1")
    with pytest.raises(InvalidError, match="while an image builds"):
        modal.Dict.from_name("d", create_if_missing=True).get("k")


def test_the_state_directory_is_private(home: Path) -> None:
    modal.Dict.from_name("d", create_if_missing=True)["k"] = 1
    assert os.stat(home / "state").st_mode & 0o777 == 0o700
    assert (home / "state" / "state.db").exists()

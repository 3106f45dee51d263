"""`memory=` and `cpu=` are read as Modal reads them: a bare number is a request, a tuple is
(request, limit), and only a limit becomes a ceiling. What lands in a cgroup's files is checked
on a stand-in directory tree of each cgroup version (the real kernel: the integration tests)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from imagewright.exception import InvalidError, InvalidTypeError
from imagewright.execute import limits
from imagewright.execute.limits import Cgroup, Limits


@pytest.mark.parametrize(
    ("memory", "cpu", "expected"),
    [
        (None, None, Limits()),
        (0, 0, Limits()),  # Modal takes zero for unset
        # a request reserves no memory locally (a cluster reserves it: cluster/driver.py)
        (1024, None, Limits(memory_request_mib=1024)),
        ((512, 1024), None, Limits(memory_limit_mib=1024, memory_request_mib=512)),
        (None, 2, Limits(cpu_request=2.0)),
        (None, 0.25, Limits(cpu_request=0.25)),
        (None, (0.5, 1), Limits(cpu_request=0.5, cpu_limit=1.0)),
        (
            (100, 100),
            (1.0, 1.0),
            Limits(memory_limit_mib=100, cpu_request=1.0, cpu_limit=1.0, memory_request_mib=100),
        ),
    ],
)
def test_modal_forms(memory: object, cpu: object, expected: Limits) -> None:
    assert Limits.from_modal(memory, cpu) == expected


@pytest.mark.parametrize(
    ("memory", "cpu", "message"),
    [
        (None, (0, 1), "CPU request must be a positive number"),
        (None, (1, 0), "CPU limit must be a positive number"),
        (None, (-1, 1), "CPU request must be a positive number"),
        (None, -1, "CPU request must be a positive number"),
        (None, (2, 1.5), "Cannot specify a CPU limit lower than request: 1500 < 2000"),
        ((1024, 512), None, "Cannot specify a memory limit lower than request: 512 < 1024"),
        ((0, 512), None, "Memory request must be a positive number"),
        ((512, -1), None, "Memory limit must be a positive number"),
        (-5, None, "Memory request must be a positive number"),
    ],
)
def test_bad_values_are_refused_with_modals_messages(
    memory: object, cpu: object, message: str
) -> None:
    with pytest.raises(InvalidError, match=f"^{message}$"):
        Limits.from_modal(memory, cpu)


@pytest.mark.parametrize(
    ("memory", "cpu"),
    [
        (1.5, None),  # MiB are whole
        ((256, 512.0), None),
        ("1Gi", None),
        ([256, 512], None),
        ((1, 2, 3), None),
        (None, "2"),
        (None, True),
        (None, (1,)),
        (None, (0.5, None)),
        (None, float("inf")),
        (None, (0.5, float("nan"))),
    ],
)
def test_bad_forms_are_type_errors(memory: object, cpu: object) -> None:
    with pytest.raises(InvalidTypeError):
        Limits.from_modal(memory, cpu)


def test_nothing_to_apply_makes_no_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "_hierarchies", _unreachable)
    assert Cgroup.create(Limits()) is None


def _unreachable() -> dict[str, object]:
    raise AssertionError("no cgroup should be looked for")


_FILES = {
    False: {
        "memory": ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
        "cpu": ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"),
    },
    True: {"": ("memory.max", "memory.swap.max", "cpu.max", "cpu.weight")},
}


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_settings_land_in_each_hierarchy(
    v2: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in cgroupfs: directories and files made up front, as the kernel would make
    them. A leftover of a dead process goes; one of a live process stays."""
    name = f"{os.getpid()}-1"
    monkeypatch.setattr(limits, "_names", itertools.count(1))
    monkeypatch.setattr(limits, "_swept", set())
    hierarchies = {}
    for mount, files in _FILES[v2].items():
        root = tmp_path / mount
        leaf = root / "imagewright" / name
        leaf.mkdir(parents=True)
        for file in (*files, "cgroup.procs"):
            (leaf / file).touch()
        (root / "cgroup.subtree_control").touch()
        (root / "imagewright" / "cgroup.subtree_control").touch()
        (root / "imagewright" / "4194305-1").mkdir()  # above any pid_max
        (root / "imagewright" / "1-1").mkdir()
        for controller in ("memory", "cpu"):
            if mount in ("", controller):
                hierarchies[controller] = limits._Hierarchy(root, v2)
    monkeypatch.setattr(limits, "_hierarchies", lambda: hierarchies)

    cgroup = Cgroup.create(Limits(memory_limit_mib=100, cpu_limit=0.25, cpu_request=0.5))
    assert cgroup is not None
    cgroup.join()

    def read(controller: str, file: str) -> str:
        return (cgroup.paths[controller] / file).read_text()

    if v2:
        assert read("memory", "memory.max") == str(100 << 20)
        assert read("memory", "memory.swap.max") == "0"
        assert read("cpu", "cpu.max") == "25000 100000"
        assert read("cpu", "cpu.weight") == "20"
        for parent in (tmp_path, tmp_path / "imagewright"):
            assert (parent / "cgroup.subtree_control").read_text() == "+memory +cpu"
    else:
        # written as -1, the limit, then the limit again: the last write shows
        assert read("memory", "memory.limit_in_bytes") == str(100 << 20)
        assert read("memory", "memory.memsw.limit_in_bytes") == str(100 << 20)
        assert read("cpu", "cpu.cfs_period_us") == "100000"
        assert read("cpu", "cpu.cfs_quota_us") == "25000"
        assert read("cpu", "cpu.shares") == "512"
    for path in cgroup.paths.values():
        assert (path / "cgroup.procs").read_text() == "0"
        assert not (path.parent / "4194305-1").exists()
        assert (path.parent / "1-1").exists()

"""Limits hold on the real kernel: past its memory limit a container is OOM-killed, past its CPU
limit it is throttled, and where cgroups cannot be written nothing is applied and one warning
says so. No assertion rests on timing: throttling is read from the cgroup's own counters."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from imagewright import Image
from imagewright.execute import limits
from imagewright.execute.container import runtime_binds
from imagewright.execute.environment import container_env
from imagewright.execute.layers import container_lowers
from imagewright.execute.limits import Cgroup, Limits
from imagewright.execute.overlay import Overlay, SandboxCommand
from imagewright.execute.sandbox import spawn
from imagewright.store.store import Store

from .conftest import Builder

ALLOCATE = "b = b'x' * (300 << 20); print('allocated')"  # written, so the pages are real
BUSY = "for _ in range(5_000_000): pass"


def _cgroup(wanted: Limits, monkeypatch: pytest.MonkeyPatch) -> Cgroup:
    """A cgroup with `wanted`, or a skip saying why this machine cannot make one."""
    for controller in ("memory", "cpu"):
        if controller not in limits._hierarchies():
            pytest.skip(f"no cgroup {controller} controller on this machine")
    monkeypatch.setattr(limits, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cgroup = Cgroup.create(wanted)
    if cgroup is None:
        pytest.skip(str(caught[0].message))
    return cgroup


def _run(code: str, cgroup: Cgroup | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cgroup.join if cgroup else None,
    )


def test_past_its_memory_limit_a_process_is_oom_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    cgroup = _cgroup(Limits(memory_limit_mib=100), monkeypatch)
    try:
        result = _run(ALLOCATE, cgroup)
        assert result.returncode == -9, result
        assert cgroup.oom_killed()
    finally:
        cgroup.remove()
    assert not any(path.exists() for path in cgroup.paths.values())


def test_within_its_memory_limit_or_without_one_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(ALLOCATE, None).stdout == "allocated\n"
    cgroup = _cgroup(Limits(memory_limit_mib=1024), monkeypatch)
    try:
        assert _run(ALLOCATE, cgroup).stdout == "allocated\n"
        assert not cgroup.oom_killed()
    finally:
        cgroup.remove()


def test_past_its_cpu_limit_a_process_is_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    cgroup = _cgroup(Limits(cpu_limit=0.2, cpu_request=0.2), monkeypatch)
    try:
        assert _run(BUSY, cgroup).returncode == 0
        lines = (cgroup.paths["cpu"] / "cpu.stat").read_text().splitlines()
        stat = dict(line.split() for line in lines)
        assert int(stat["nr_throttled"]) > 0, stat
    finally:
        cgroup.remove()
    assert not cgroup.paths["cpu"].exists()


def test_a_leftover_of_a_killed_run_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed before removing its cgroups leaves them, named for its gone process."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    cgroup = _cgroup(Limits(memory_limit_mib=64), monkeypatch)
    leftover = cgroup.paths["memory"].parent / f"{dead.stdout.strip()}-1"
    cgroup.remove()
    leftover.mkdir()
    monkeypatch.setattr(limits, "_swept", set())
    cgroup = _cgroup(Limits(memory_limit_mib=64), monkeypatch)
    cgroup.remove()
    assert not leftover.exists()


# Privileges go after the imports: our interpreter lives where nobody may read.
_UNPRIVILEGED = """
import os
import warnings
from imagewright.execute.limits import Cgroup, Limits

os.setgroups([])
os.setgid(65534)
os.setuid(65534)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    made = [
        Cgroup.create(Limits(memory_limit_mib=100)),
        Cgroup.create(Limits(cpu_limit=1.0)),
        Cgroup.create(Limits(cpu_request=1.0)),
    ]
print(made, len(caught))
print(caught[0].message)
"""


def test_without_privileges_nothing_is_applied_and_one_warning_says_so() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _UNPRIVILEGED],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    made, message = result.stdout.splitlines()
    assert made == "[None, None, None] 1"
    assert message.startswith("memory= and cpu= limits are not applied on this machine: ")


def test_a_sandboxed_container_is_held_by_its_limits(
    builder: Builder, py311: Image, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through bwrap, its user namespace and its seccomp filter, as a function container runs."""
    plan = builder.build(py311)[0].plan

    def sandboxed(code: str, cgroup: Cgroup) -> tuple[int, bytes]:
        argv = ["python3", "-c", code]
        cmd = SandboxCommand(argv, container_env(plan.config, {}), "/", tuple(runtime_binds()))
        with store.scratch() as area:
            lowers = container_lowers(plan, store, ())
            overlay = Overlay(store.root, lowers, area.upper, area.work, area.merged)
            pipe = subprocess.PIPE
            proc = spawn(overlay, cmd, stdout=pipe, stderr=pipe, preexec_fn=cgroup.join)
            output, _ = proc.communicate(timeout=120)
        return proc.returncode, output

    cgroup = _cgroup(Limits(memory_limit_mib=100, cpu_limit=0.2), monkeypatch)
    try:
        assert sandboxed(BUSY, cgroup)[0] == 0
        stat = (cgroup.paths["cpu"] / "cpu.stat").read_text().splitlines()
        assert int(dict(line.split() for line in stat)["nr_throttled"]) > 0, stat
        status, output = sandboxed(ALLOCATE, cgroup)
        assert status != 0 and not output, (status, output)
        assert cgroup.oom_killed()
    finally:
        cgroup.remove()
    assert not any(path.exists() for path in cgroup.paths.values())

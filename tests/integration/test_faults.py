"""Builds survive faults: a SIGKILLed builder and concurrent builders of one image."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from imagewright.plan.planner import plan_image


def _mounts_mentioning(path: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                text = Path(f"/proc/{pid}/mountinfo").read_text()
            except OSError:
                continue
            found += [line for line in text.splitlines() if path in line]
    return found


def _processes_mentioning(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(cmdline.decode(errors="replace"))
    return found


def _write_module(tmp_path: Path, body: str) -> Path:
    module = tmp_path / "img.py"
    module.write_text(textwrap.dedent(body))
    return module


def test_sigkill_mid_step_leaves_nothing_behind(builder, py311, store, tmp_path):
    marker = f"iw-kill-{os.getpid()}"
    sleep = f"sleep 4.{os.getpid() % 1000:03d}"  # a command line only this test runs
    module = _write_module(
        tmp_path,
        f"""
        import imagewright as modal
        image = modal.Image.debian_slim(python_version="3.11").run_commands(
            "echo {marker} > /marker; {sleep}")
    """,
    )
    builder.build(py311)  # the base is not what this test is about
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagewright", "build", str(module)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not any(p.startswith(sleep) for p in _processes_mentioning(sleep)):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    assert _processes_mentioning(sleep) == []
    assert _mounts_mentioning(str(store.root)) == []
    sys.path.insert(0, str(tmp_path))
    import img

    key = plan_image(img.image).key
    assert store.lookup(key) is None
    assert not store.layer_dir(key).exists()
    result, _ = builder.build(img.image)
    assert not result.steps[-1].cached
    assert store.clean_stale() == 0
    assert list((store.root / "tmp").iterdir()) == []
    assert builder.run(img.image, "cat /marker").strip() == marker


def test_concurrent_builds_of_one_image(builder, py311, tmp_path):
    stamp = f"{time.time_ns()}"
    module = _write_module(
        tmp_path,
        f"""
        import imagewright as modal
        image = modal.Image.debian_slim(python_version="3.11").run_commands(
            "sleep 2; echo {stamp}-$$ > /stamp")
    """,
    )
    builder.build(py311)
    cmd = [sys.executable, "-m", "imagewright", "build", "--json", str(module)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(2)
    ]
    results = [json.loads(p.communicate()[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert results[0]["image_id"] == results[1]["image_id"]
    last_steps = sorted(r["steps"][-1]["cached"] for r in results)
    assert last_steps == [False, True]  # one ran the step; the other waited and reused it

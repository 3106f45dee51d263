"""The report: one markdown table per kind of scenario (builds, function calls, transfers),
each giving imagewright's time and every peer's, with the ratio imagewright / peer (below 1,
imagewright is faster), then the machine's facts and notes on the checks and targets."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from tests.integration.docker_helpers import DOCKER

from harness.common import REPO
from harness.imagewright import Imagewright
from harness.podman import PODMAN
from harness.scenarios.builds import SCENARIOS, SMALL_TARGET_SECONDS, Samples
from harness.scenarios.calls import CallRow
from harness.scenarios.transfers import TransferRow
from harness.units import milliseconds, milliseconds_cell, ratio_cell, seconds_cell

RATIOS = "Ratios: imagewright's median time over the peer's; below 1, imagewright is faster."


def command_output(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return "n/a"
    return proc.stdout.decode().strip() if proc.returncode == 0 else "n/a"


def source_revision() -> str:
    """The commit the measured source comes from, and whether src/ differs from it."""
    git = ["git", "-C", str(REPO)]
    commit = command_output([*git, "rev-parse", "--short", "HEAD"])
    changed = command_output([*git, "status", "--porcelain", "--", "src", "pyproject.toml"])
    return f"git {commit}" + (" with uncommitted changes in src/" if changed else "")


def machine_facts(
    iw: Imagewright, docker_env: dict[str, str] | None, podman: bool = False
) -> list[tuple[str, str]]:
    """The machine, the date and the versions measured; a peer not run is "skipped"."""
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    docker = "skipped"
    if docker_env is not None:
        server = command_output([DOCKER, "version", "--format", "{{.Server.Version}}"], docker_env)
        docker = f"{server} (`{DOCKER}`, BuildKit, overlay2, runc)"
    podman_version = "skipped"
    if podman:
        version = command_output([PODMAN, "--version"]).removeprefix("podman version ")
        runc = command_output(["runc", "--version"]).split("\n")[0].removeprefix("runc version ")
        podman_version = f"{version} (runc {runc}, cgroupfs, overlay)"
    return [
        ("machine", platform.node()),
        ("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("cpus", f"{os.cpu_count()} ({cpu.group(1) if cpu else 'unknown model'})"),
        ("memory", f"{mem_kib / 2**20:.1f} GiB"),
        ("kernel", platform.release()),
        ("os", command_output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])),
        ("imagewright", f"{command_output([iw.executable, '--version'])}, {source_revision()}"),
        (
            "imagewright builds",
            "through its build server, which the first build starts (`small-here`: without)",
        ),
        ("docker server", docker),
        ("podman", podman_version),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


def header(first: str, unit: str, peers: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """A table's two header lines: imagewright's column, one per peer, one ratio per peer."""
    columns = [first, "runs", f"imagewright {unit}, median (min)"]
    columns += [f"{peer} {unit}, median (min)" for peer in peers]
    columns += [f"imagewright / {peer}" for peer in peers]
    columns += extra
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def build_table(
    results: dict[str, Samples], repeats: dict[str, int], warnings: list[str]
) -> list[str]:
    peers = [name for name in next(iter(results.values())) if name != "imagewright"]
    lines = header("scenario", "s", peers)
    for key, samples in results.items():
        scenario = SCENARIOS[key]
        ours = [o.seconds for o in samples["imagewright"]]
        theirs = [[o.seconds for o in samples[peer]] for peer in peers]
        cells = [f"{key}: {scenario.title}", str(repeats[key]), seconds_cell(ours)]
        cells += [seconds_cell(times) for times in theirs]
        cells += [ratio_cell(ours, times) for times in theirs]
        lines.append("| " + " | ".join(cells) + " |")
        for name, outcomes in samples.items():
            odd = [o.steps_run for o in outcomes if o.steps_run != scenario.steps_run]
            if odd:
                warnings.append(
                    f"{key}/{name}: expected {scenario.steps_run} step(s) to run, saw {odd}"
                )
        if key == "small" and ours:
            median = statistics.median(ours)
            verdict = "met" if median < SMALL_TARGET_SECONDS else "NOT met"
            warnings.append(f"small: target < {SMALL_TARGET_SECONDS} s for imagewright {verdict}")
    return lines


def call_table(rows: list[CallRow], warnings: list[str]) -> list[str]:
    peers = list(rows[0].peers)
    lines = header("function calls", "ms", peers)
    for row in rows:
        theirs = [row.peers.get(peer, []) for peer in peers]
        cells = [f"{row.key}: {row.title}", str(len(row.imagewright))]
        cells += [milliseconds_cell(row.imagewright)]
        cells += [milliseconds_cell(times) for times in theirs]
        cells += [ratio_cell(row.imagewright, times) for times in theirs]
        lines.append("| " + " | ".join(cells) + " |")
        if row.target is not None:
            median = statistics.median(row.imagewright)
            verdict = "met" if median < row.target else "NOT met"
            warnings.append(
                f"{row.key}: target < {row.target * 1000:g} ms for imagewright {verdict} "
                f"(median {milliseconds(median)} ms)"
            )
    return lines


def transfer_table(rows: list[TransferRow]) -> list[str]:
    lines = ["| export, push and pull | runs | imagewright s, median (min) | against |"]
    lines[0] += " their s, median (min) | imagewright / they | MB, imagewright / they |"
    lines.append("|---|---|---|---|---|---|---|")
    for row in rows:
        lines.append(
            f"| {row.key}: {row.title} | {len(row.imagewright)} "
            f"| {seconds_cell(row.imagewright)} | {row.peer} | {seconds_cell(row.theirs)} "
            f"| {ratio_cell(row.imagewright, row.theirs)} | {row.sizes} |"
        )
    return lines


def report(
    results: dict[str, Samples],
    call_rows: list[CallRow],
    transfer_rows: list[TransferRow],
    facts: list[tuple[str, str]],
    repeats: dict[str, int],
) -> str:
    warnings: list[str] = []
    lines: list[str] = []
    if results:
        lines += [*build_table(results, repeats, warnings), ""]
    if call_rows:
        lines += [*call_table(call_rows, warnings), ""]
    if transfer_rows:
        lines += [*transfer_table(transfer_rows), ""]
    peers_ran = any(len(s) > 1 for s in results.values()) or any(r.peers for r in call_rows)
    if peers_ran or transfer_rows:  # a transfer row always names its peer
        lines += [RATIOS, ""]
    lines += ["Machine:", ""]
    lines += [f"- {label}: {value}" for label, value in facts]
    lines.append(f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if warnings:
        lines += ["", "Notes:", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines)

"""The transfer scenarios: imagewright's export against `docker save`, its push against
`skopeo copy`, and its pull (a build of `Image.from_registry`) against `podman pull`. Each is
one timed process per run on both sides, with its output in a log; each push and pull uses
registries started for it and removed after, and every scenario removes its files when it ends,
also after a failure."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tests.integration.docker_helpers import DOCKER

from harness.common import (
    PREFIX,
    WORKLOAD_FILE,
    BenchError,
    Paths,
    apt_get_install,
    log_file,
    show,
    timed_run,
)
from harness.docker import BuildKit
from harness.imagewright import Imagewright
from harness.podman import PODMAN, podman_store
from harness.registry import DOCKER_REGISTRY, registry, stored_bytes, uploads_started
from harness.units import megabytes

SKOPEO = "/usr/bin/skopeo"
# The data image, exported as (format, compression) twice each, first with an empty blob store
# and then with its blobs stored; pushed (gzip) under this tag, and pulled back.
TRANSFER_IMAGE = "data"
EXPORT_VARIANTS = (("docker", "gzip"), ("oci", "gzip"), ("docker", "none"), ("oci", "zstd"))
PUSH_TAG = "bench"
ATTEMPTS = ("first", "second")


class Peers(NamedTuple):
    """The peers a transfer scenario may run against, by what the command line left in."""

    buildkit: BuildKit | None  # None with --skip-docker
    podman: bool  # False with --skip-podman


class TransferRow(NamedTuple):
    """One row of the transfer table: wall seconds per run on each side, and sizes."""

    key: str  # the scenario
    title: str
    imagewright: list[float]
    peer: str  # the command imagewright is measured against
    theirs: list[float]  # empty when the peer was skipped
    sizes: str  # MB written (export) or held by the registry (push, pull): ours / the peer's


def export_summary(output: str) -> tuple[int, str]:
    """The number of layers and the manifest digest `imagewright export` reports."""
    found = re.search(r"(\d+) layers\): manifest (sha256:[0-9a-f]{64})", output)
    if found is None:
        raise BenchError(f"imagewright export printed no summary: {output[-300:]!r}")
    return int(found.group(1)), found.group(2)


EXPORT_FORMATS = {"docker": "docker-archive", "oci": "OCI layout tar"}
EXPORT_ATTEMPTS = {
    "first": "blob store empty (every layer blob made)",
    "second": "layer blobs stored (copied into the tar)",
}


def imagewright_export(
    iw: Imagewright, dest: Path, fmt: str, compression: str, first: bool
) -> float:
    """Time one `imagewright export` to `dest`; it must make every layer blob when `first` and
    none otherwise (a failed check raises BenchError)."""
    dest.unlink(missing_ok=True)
    seconds, output = iw.timed(
        "export", f"{WORKLOAD_FILE}::{TRANSFER_IMAGE}", "-o", str(dest), "--format", fmt,
        "--compression", compression,
    )  # fmt: skip
    layers, _ = export_summary(output)
    made = output.count("Compressing layer")  # printed before each layer blob is made
    expected = layers if first else 0
    if made != expected:
        log = log_file(iw.paths, "imagewright-export")
        raise BenchError(
            f"export {fmt} {compression}: {made} layer blobs made, expected {expected}; see {log}"
        )
    return seconds


def run_export(iw: Imagewright, peers: Peers, repeat: int) -> list[TransferRow]:
    buildkit = peers.buildkit
    work = iw.paths.transfers / "export"
    work.mkdir(parents=True, exist_ok=True)
    iw.build(TRANSFER_IMAGE)  # untimed, usually cached, as is BuildKit's build below
    if buildkit is not None:
        buildkit.build(TRANSFER_IMAGE)
    keys = [(f, c, a) for f, c in EXPORT_VARIANTS for a in ATTEMPTS]
    ours: dict[tuple[str, str, str], list[float]] = {k: [] for k in keys}
    sizes: dict[tuple[str, str], int] = {}
    saves: list[float] = []
    save_size = None
    try:
        for i in range(repeat):
            for fmt, compression, attempt in keys:
                if attempt == "first":  # no layer blob stored (docker and OCI share gzip ones)
                    shutil.rmtree(iw.paths.home / "blobs", ignore_errors=True)
                dest = work / f"imagewright-{fmt}-{compression}.tar"
                seconds = imagewright_export(iw, dest, fmt, compression, attempt == "first")
                ours[fmt, compression, attempt].append(seconds)
                sizes[fmt, compression] = dest.stat().st_size
                show(iw.name, f"{fmt} {compression} {attempt}", i, repeat, seconds)
            if buildkit is not None:
                dest = work / "docker-save.tar"
                dest.unlink(missing_ok=True)
                argv = [DOCKER, "save", "-o", str(dest), f"{PREFIX}/{TRANSFER_IMAGE}"]
                seconds, _ = timed_run(argv, log_file(iw.paths, "docker-save"), buildkit.env)
                saves.append(seconds)
                save_size = dest.stat().st_size
                show("docker save", "uncompressed", i, repeat, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        TransferRow(
            "export",
            f"{EXPORT_FORMATS[fmt]}, {compression}: {EXPORT_ATTEMPTS[attempt]}",
            ours[fmt, compression, attempt],
            "docker save",
            saves,
            f"{megabytes(sizes[fmt, compression])} / {megabytes(save_size)}",
        )
        for fmt, compression, attempt in keys
    ]


class PushCheck(NamedTuple):
    """What every push of the scenario must do: send the image's layers and config."""

    layers: int
    manifest: str  # the digest the export reported, which both pushes must give

    def blobs_there(self, attempt: str) -> int:
        return 0 if attempt == "first" else self.layers + 1  # + the config


def imagewright_push(iw: Imagewright, address: str, check: PushCheck, attempt: str) -> float:
    """Time one `imagewright push`; a failed check raises BenchError."""
    source = f"{WORKLOAD_FILE}::{TRANSFER_IMAGE}"
    seconds, output = iw.timed("push", source, f"{address}/bench:{PUSH_TAG}")
    there = check.blobs_there(attempt)
    sent = check.layers + 1 - there
    expected = f"{check.manifest} ({sent} blob(s) sent, 0 mounted, {there} already there)"
    if expected not in output:
        raise BenchError(f"imagewright push {attempt}: expected `{expected}` in {output!r}")
    return seconds


def skopeo_push(paths: Paths, layout: Path, address: str, check: PushCheck, attempt: str) -> float:
    """Time one `skopeo copy` of the OCI layout; a failed check raises BenchError."""
    digest_file = layout.with_name("skopeo-digest")
    argv = [SKOPEO, "copy", "--dest-tls-verify=false", "--digestfile", str(digest_file)]
    argv += [f"oci:{layout}:{PUSH_TAG}", f"docker://{address}/bench2:{PUSH_TAG}"]
    seconds, _ = timed_run(argv, log_file(paths, "skopeo"), dict(os.environ))
    pushed = digest_file.read_text().strip()
    if pushed != check.manifest:
        raise BenchError(f"skopeo copy {attempt}: manifest {pushed}, expected {check.manifest}")
    return seconds


def run_push(iw: Imagewright, _peers: Peers, repeat: int) -> list[TransferRow]:
    apt_get_install(iw.paths, "docker-registry", DOCKER_REGISTRY)
    apt_get_install(iw.paths, "skopeo", SKOPEO)
    work = iw.paths.transfers / "push"
    shutil.rmtree(work, ignore_errors=True)
    layout = work / "layout"
    # Untimed: stores the gzip blobs `imagewright push` sends and writes the layout skopeo
    # sends (links to those blobs), so both push the same bytes under the same manifest.
    exported = iw.output(
        "export", f"{WORKLOAD_FILE}::{TRANSFER_IMAGE}", "-o", str(layout), "--format", "oci",
        "--compression", "gzip", "--tag", f"{PREFIX}/{TRANSFER_IMAGE}:{PUSH_TAG}",
    )  # fmt: skip
    check = PushCheck(*export_summary(exported))
    pushes: dict[str, Callable[[str, str], float]] = {
        "imagewright": lambda address, attempt: imagewright_push(iw, address, check, attempt),
        "skopeo": lambda address, attempt: skopeo_push(iw.paths, layout, address, check, attempt),
    }
    times: dict[tuple[str, str], list[float]] = {(s, a): [] for s in pushes for a in ATTEMPTS}
    stored: dict[str, int] = {}
    try:
        for i in range(repeat):
            for side, push in pushes.items():  # each into its own empty registry
                log = log_file(iw.paths, f"registry-{side}")
                with registry(work / f"registry-{side}", log) as (address, storage):
                    for attempt in ATTEMPTS:
                        since = log.stat().st_size
                        times[side, attempt].append(push(address, attempt))
                        show(side, f"push {attempt}", i, repeat, times[side, attempt][-1])
                        expected = check.layers + 1 - check.blobs_there(attempt)
                        if uploads_started(log, since) != expected:
                            raise BenchError(
                                f"{side} push {attempt}: {uploads_started(log, since)} blob "
                                f"uploads, expected {expected}; see {log}"
                            )
                    stored[side] = stored_bytes(storage)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if stored["imagewright"] != stored["skopeo"]:
        raise BenchError(f"push: the two registries hold different numbers of bytes: {stored}")
    sizes = f"{megabytes(stored['imagewright'])} / {megabytes(stored['skopeo'])}"
    titles = {
        "first": "empty registry (every blob uploaded)",
        "second": "again (every blob there: HEAD checks, manifest)",
    }
    return [
        TransferRow(
            "push",
            titles[a],
            times["imagewright", a],
            "skopeo copy",
            times["skopeo", a],
            sizes,
        )
        for a in ATTEMPTS
    ]


def run_pull(iw: Imagewright, peers: Peers, repeat: int) -> list[TransferRow]:
    """Pull the data image, pushed once untimed to a registry, into an empty store each round:
    imagewright builds `Image.from_registry(REF)` (manifest, config, every layer fetched in
    parallel, checked, unpacked into the store), Podman runs `podman pull` into its storage."""
    apt_get_install(iw.paths, "docker-registry", DOCKER_REGISTRY)
    work = iw.paths.transfers / "pull"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = log_file(iw.paths, "pull")
    home = work / "home"
    env = {**os.environ, "IMAGEWRIGHT_HOME": str(home)}
    ours: list[float] = []
    theirs: list[float] = []
    try:
        iw.build(TRANSFER_IMAGE)  # untimed, usually cached
        with registry(work / "registry", log_file(iw.paths, "registry-pull")) as (address, data):
            ref = f"{address}/bench:pull"
            iw.output("push", f"{WORKLOAD_FILE}::{TRANSFER_IMAGE}", ref)
            (work / "pull.py").write_text(
                f"import imagewright as modal\nimage = modal.Image.from_registry({ref!r})\n"
            )
            for i in range(repeat):
                shutil.rmtree(home, ignore_errors=True)
                seconds, _ = timed_run([iw.executable, "build", "pull.py"], log, env, cwd=work)
                ours.append(seconds)
                show(iw.name, "pull into an empty store", i, repeat, seconds)
                shutil.rmtree(home, ignore_errors=True)
                if peers.podman:
                    with podman_store(work / "podman") as penv:
                        argv = [PODMAN, "pull", "--tls-verify=false", ref]
                        theirs.append(timed_run(argv, log, penv, cwd=work)[0])
                    show("podman", "pull into an empty store", i, repeat, theirs[-1])
            size = megabytes(stored_bytes(data))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    title = "data image from a registry on 127.0.0.1 into an empty store"
    sizes = f"{size} / {size if theirs else '–'}"  # both pull what the registry holds
    return [TransferRow("pull", title, ours, "podman pull", theirs, sizes)]


class TransferScenario(NamedTuple):
    title: str
    run: Callable[[Imagewright, Peers, int], list[TransferRow]]  # (.., .., repeat)


TRANSFER_SCENARIOS = {
    "export": TransferScenario(
        "export of the data image (docker gzip and none, OCI gzip and zstd; empty and full "
        "blob store) against docker save",
        run_export,
    ),
    "push": TransferScenario(
        "push of the data image to an empty docker-registry, then again, against skopeo copy",
        run_push,
    ),
    "pull": TransferScenario(
        "pull of the data image from a docker-registry into an empty store, against podman pull",
        run_pull,
    ),
}

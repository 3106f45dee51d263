"""Dockerfiles out: the lines each step becomes, and a round trip through Docker's BuildKit."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from imagewright import Image, Secret
from imagewright.exception import InvalidError
from imagewright.export.dockerfile import render_dockerfile, write_dockerfile
from imagewright.plan.planner import plan_image
from imagewright.version import BUNDLED_UV

from .conftest import Builder, cli
from .docker_helpers import docker
from .podman_helpers import podman

CA = "/etc/ssl/certs/ca-certificates.crt"


def _lines(image: Image, **options: object) -> list[str]:
    lines = render_dockerfile(image, **options).lines
    return [line for line in lines if not line.startswith("#")]


def test_bases_map_to_public_images() -> None:
    assert _lines(Image.debian_slim(python_version="3.11")) == [
        "FROM python:3.11-slim-bookworm",
        "RUN apt-get update",
        "RUN apt-get install -y gcc gfortran build-essential",
        "RUN pip install --upgrade pip wheel uv",
        "RUN echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections",
    ]
    assert _lines(Image.debian_slim(python_version="3.13"))[0] == "FROM python:3.13-slim-trixie"
    assert _lines(Image.debian_slim(python_version="3.9"), bare_base=True) == [
        "FROM python:3.9-slim-bullseye"
    ]
    ubuntu = _lines(Image.ubuntu())
    assert ubuntu[0] == "FROM ubuntu:noble"
    assert f"COPY --from=ghcr.io/astral-sh/uv:{BUNDLED_UV} /uv /.uv/uv" in ubuntu
    assert _lines(Image.from_scratch()) == ["FROM scratch"]
    assert _lines(Image.from_registry("127.0.0.1:5000/me/app:v1")) == [
        "FROM 127.0.0.1:5000/me/app:v1"
    ]


def test_steps_become_lines(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("hi\n")
    data.chmod(0o640)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (tree / "sub" / "run.sh").chmod(0o755)
    (tree / "skip.pyc").write_text("")
    image = (
        Image.debian_slim(python_version="3.11")
        .apt_install("jq")
        .uv_pip_install("six", uv_version="0.8.0")
        .run_commands("echo 'a\nb'")
        .env({"GREETING": 'say "$hi"'})
        .workdir("/app")
        .copy_local_file(data, "./")
        .copy_local_dir(tree, "tree", ignore=["*.pyc"])
        .entrypoint(["/bin/sh", "-c"])
        .cmd(["echo ok"])
        .shell(["/bin/bash", "-c"])
    )
    lines = _lines(image, bare_base=True)
    assert lines == [
        "FROM python:3.11-slim-bookworm",
        "RUN apt-get update",
        "RUN apt-get install -y jq",
        "COPY --from=ghcr.io/astral-sh/uv:0.8.0 /uv /.uv/uv",
        "RUN --mount=type=cache,target=/root/.cache/uv /.uv/uv pip install --python "
        "$(command -v python) --compile-bytecode six",
        'RUN ["/bin/sh", "-c", "echo \'a\\nb\'"]',
        'ENV GREETING="say \\"\\$hi\\""',
        "WORKDIR /app",
        'COPY ["s06_0/data.txt", "/app/data.txt"]',
        'COPY ["s07_0/", "/app/tree/"]',
        'ENTRYPOINT ["/bin/sh", "-c"]',
        'CMD ["sleep", "172800"]',  # Docker would clear the base's CMD; imagewright keeps it
        'CMD ["echo ok"]',
        'SHELL ["/bin/bash", "-c"]',
    ]
    out = tmp_path / "out"
    write_dockerfile(image, out, ca_bundle=CA)
    assert stat.S_IMODE((out / "s06_0" / "data.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "s07_0" / "sub" / "run.sh").stat().st_mode) == 0o755
    assert not (out / "s07_0" / "skip.pyc").exists()
    assert (out / "ca-certificates.crt").read_bytes() == Path(CA).read_bytes()
    text = (out / "Dockerfile").read_text()
    assert f"ARG SSL_CERT_FILE={CA}" in text
    assert f"RUN --mount=type=bind,source=ca-certificates.crt,target={CA} apt-get update" in text
    with pytest.raises(InvalidError, match="not an empty directory"):
        write_dockerfile(image, out)


def test_add_from_a_url_is_written_back() -> None:
    image = Image.debian_slim(python_version="3.11").dockerfile_commands(
        "ADD --chown=app --checksum=sha256:ab https://example.com/x.tar.gz /opt/"
    )  # nothing is fetched: rendering a Dockerfile plans nothing
    assert _lines(image)[-1] == (
        'ADD --chown=app --checksum=sha256:ab ["https://example.com/x.tar.gz", "/opt/x.tar.gz"]'
    )


def test_multi_stage_definitions_stay_multi_stage(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch AS tools\nCOPY a.txt /a\n"
        "FROM python:3.11-slim-bookworm\nCOPY --from=tools --chown=1:2 /a /b /opt/\n"
        "COPY --from=0 /a /c\n"
    )
    (tmp_path / "a.txt").write_text("a")
    lines = _lines(Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path))
    assert lines[:3] == [
        "FROM scratch AS stage-0",
        'COPY ["stage-0_s01_0/a", "/a"]',
        "FROM python:3.11-slim-bookworm",
    ]
    assert lines[-2:] == [
        'COPY --from=stage-0 --chown=1:2 ["/a", "/b", "/opt/"]',
        'COPY --from=stage-0 ["/a", "/c"]',
    ]


def test_refuses_what_a_dockerfile_cannot_say() -> None:
    base = Image.debian_slim(python_version="3.11")
    with pytest.raises(InvalidError, match="run_function"):
        render_dockerfile(base.run_function(test_bases_map_to_public_images))
    with pytest.raises(InvalidError, match="secrets"):
        render_dockerfile(base.run_commands("true", secrets=[Secret.from_dict({"T": "x"})]))


def test_cli_writes_a_context(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        "import imagewright as modal\n"
        "image = modal.Image.debian_slim(python_version='3.11').uv_pip_install('six')\n"
    )
    out = tmp_path / "ctx"
    proc = cli("dockerfile", str(app), "-o", str(out), "--uv-from-context")
    assert proc.returncode == 0, proc.stderr
    assert f"COPY uv-{BUNDLED_UV} /.uv/uv" in (out / "Dockerfile").read_text()
    assert os.access(out / f"uv-{BUNDLED_UV}", os.X_OK)
    assert cli("dockerfile", "--help").returncode == 0


_ROUND_TRIP_CHECK = (
    "ls /usr/local/lib/python3.11/dist-packages | grep '^six' | sort; ls -l /app | tail -n +2 "
    "| awk '{print $1, $NF}'; jq --version; cat /app/payload.txt; python -c 'import six'; id -un"
)


def _round_trip_image(tmp_path: Path) -> Image:
    payload = tmp_path / "payload.txt"
    payload.write_text("from the context\n")
    return (
        Image.debian_slim(python_version="3.11")
        .apt_install("jq")
        .uv_pip_install("six")
        .env({"GREETING": "hello $USER"})
        .workdir("/app")
        .copy_local_file(payload, "./")
        .cmd(["python", "-c", "print(1)"])
    )


def _round_trip(builder: Builder, tmp_path: Path, engine: Callable[..., str], tag: str) -> None:
    """Build the exported Dockerfile with `engine` (docker or podman, our base already loaded
    under its public name) and compare the result with our build: files, then config."""
    image = _round_trip_image(tmp_path)
    ours = builder.run(image, _ROUND_TRIP_CHECK)
    context = tmp_path / "context"
    write_dockerfile(image, context, uv_from_context=True, ca_bundle=CA, bare_base=True)
    engine("build", "--network=host", "-t", tag, str(context))
    assert engine("run", "--rm", "--network=none", tag, "sh", "-c", _ROUND_TRIP_CHECK) == ours
    config = json.loads(engine("inspect", tag))[0]["Config"]
    expected = plan_image(image).config.to_json()
    for field in ("Env", "WorkingDir", "Cmd"):
        assert config[field] == expected[field], field


def test_round_trip_through_docker(
    builder: Builder, docker_env: dict[str, str], tmp_path: Path
) -> None:
    """Our base under its public name, the Dockerfile built by BuildKit: same files, same config."""
    _round_trip(builder, tmp_path, partial(docker, docker_env), "iwtest/roundtrip")


def test_round_trip_through_podman(
    builder: Builder, podman_env: dict[str, str], tmp_path: Path
) -> None:
    """The same Dockerfile built by `podman build` (buildah): same files, same config."""
    archive = tmp_path / "base.tar"
    base = Image.debian_slim(python_version="3.11")
    base.export(archive, format="docker", compression="none", tag="python:3.11-slim-bookworm")
    podman(podman_env, "load", "-i", str(archive))
    _round_trip(builder, tmp_path, partial(podman, podman_env), "localhost/iwtest/roundtrip")

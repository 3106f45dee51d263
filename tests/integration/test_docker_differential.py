"""Dockerfiles judged by Docker itself: each is built by Docker's engine (BuildKit) and by us,
from the same base, and the two images must hold the same files and the same config.

Both images are saved as docker-archives. The files compared are what the Dockerfile's own
layers add, change or delete above the shared base: type, mode, owner, content and link target
(not timestamps), with whiteouts as deletions. A directory counts only when it is new or its
mode or owner changed, since layer diffs may list unchanged parents. Docker 20.10's built-in
frontend predates heredocs and `# syntax=` frontends cannot be pulled here, so heredocs are
tested in test_from_dockerfile.py only. Docker's engine comes from Debian's docker.io, which
`make test` installs; without it these tests are skipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from imagewright import Image
from imagewright.export.dockerfile import write_dockerfile

from .conftest import Builder, serve_directory
from .docker_helpers import docker

BASE = "python:3.11-slim-bookworm"
CONFIG_FIELDS = (
    "Env", "WorkingDir", "User", "Entrypoint", "Cmd", "Labels", "ExposedPorts", "Volumes",
    "StopSignal", "Healthcheck", "Shell",
)  # fmt: skip

CONFIG = r"""# escape=`
ARG BASE_TAG=3.11-slim-bookworm
ARG UNUSED_GLOBAL=x
FROM python:${BASE_TAG}
ARG BASE_TAG
ARG GREETING=hello
ARG FROM_BUILD_ARG
ENV APP_HOME=/srv/app `
    GREETING_TEXT="${GREETING} world" `
    FALLBACK=${UNSET_VAR:-fallback} PLUS=${GREETING:+set} TAG=$BASE_TAG
ENV LEGACY value with  spaces
ENV PATH=$APP_HOME/bin:$PATH QUOTED='$NOT_EXPANDED' ESCAPED=`$HOME
LABEL org.example.name="demo app" version=$FROM_BUILD_ARG multi.word="a b c"
WORKDIR $APP_HOME
WORKDIR sub
EXPOSE 8080 53/udp
VOLUME ["/data", "/logs"]
VOLUME /cache
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=1m30s --retries=2 `
  CMD curl -f http://localhost/ || exit 1
SHELL ["/bin/bash", "-c"]
ENTRYPOINT ["python", "-m", "app"]
CMD echo serving on port 8080
USER 1000:1000
"""

FILES = r"""FROM python:3.11-slim-bookworm
RUN useradd -m app && groupadd -g 2000 extra && useradd -M -u 1600 -g extra other
WORKDIR /app
COPY a.txt .
COPY *.txt texts/
COPY ["with space.txt", "/app/spaced/"]
COPY src /app/src
COPY src/ /app/src2/
COPY --chown=app a.txt /owned/one/
COPY --chown=other a.txt /owned/two/
COPY --chown=app:extra src /owned/tree
COPY --chown=1500 a.txt /owned/three.txt
COPY --chown=1500:1600 --chmod=640 b.txt /owned/four.txt
COPY --chown=app a.txt /usr/local/
COPY --chmod=700 src /modes/
ADD t.tar.gz /unpacked/
ADD --chown=app t.tar.gz /unpacked2/
ADD a.txt b.txt /added/
ADD {SERVER}/a.txt {SERVER}/src/main.py /fetched/
ADD --chown=app {SERVER}/b.txt /fetched/b-owned
"""

RUN = r"""FROM python:3.11-slim-bookworm
RUN useradd -m builder
RUN echo "shell form $HOME" > /shell.txt
RUN ["/bin/sh", "-c", "echo exec form > /exec.txt"]
RUN --mount=type=cache,target=/var/cache/thing echo cached > /var/cache/thing/x `
    && cat /var/cache/thing/x > /from-cache.txt
SHELL ["/bin/bash", "-c"]
RUN echo ${BASH_VERSION:+bash} > /shell2.txt && [[ -n x ]]
ARG BUILD_NUMBER=0
RUN echo "build $BUILD_NUMBER" > /arg.txt
RUN ["/bin/sh", "-c", "echo exec build $BUILD_NUMBER > /exec-arg.txt"]
ENV BUILD_NUMBER=from-env
RUN echo "env wins: $BUILD_NUMBER" > /env-wins.txt
RUN mkdir /tmp/work && echo kept > /tmp/work/file
RUN cat /tmp/work/file > /from-tmp.txt
USER builder
WORKDIR /home/builder/work
RUN whoami > who.txt && id -u >> who.txt && echo $HOME >> who.txt && touch made-by-builder
USER root
RUN rm /shell.txt /etc/debian_version && rm -r /etc/apt/apt.conf.d \
 && rm -r /etc/cron.daily && mkdir /etc/cron.daily && echo new > /etc/cron.daily/only
""".replace("`", "\\")

STAGES = r"""ARG VERSION=1.0
FROM python:3.11-slim-bookworm AS build
ARG VERSION
RUN useradd -m app && mkdir -p /out/lib /out/bin && echo "v$VERSION" > /out/version \
 && printf '#!/bin/sh\necho tool\n' > /out/bin/tool && chmod 755 /out/bin/tool \
 && ln -s ../version /out/lib/version-link && chown -R app /out/lib && echo lib > /out/lib/data \
 && mkdir -p /tree/usr/local/share /tree/newdir /empty && chmod 700 /tree/usr/local /tree/newdir \
 && chown app /tree/usr/local /tree/newdir && echo x > /tree/usr/local/share/x
FROM build AS test
RUN echo tested > /out/tested
FROM python:3.11-slim-bookworm
RUN useradd -m web
COPY --from=build /out/version /etc/app-version
COPY --from=0 /out/bin/ /usr/local/bin/
COPY --from=build /out/lib /opt/lib
COPY --from=test --chown=web --chmod=750 /out/tested /opt/
COPY --from=build /out/ver* /out/bin/tool /opt/many/
COPY --from=build --chown=1234:2345 /out /opt/all
COPY --from=build /tree /
COPY --from=build /empty /opt/empty
"""

BASES = r"""ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS py
RUN echo py > /which
FROM debian:bookworm-slim AS deb
RUN echo deb > /which
FROM scratch
COPY --from=py /which /py
COPY --from=deb /which /etc/deb
COPY --chmod=755 a.txt /
ENTRYPOINT ["/a.txt"]
"""

CASES = {
    "config": (CONFIG, {"FROM_BUILD_ARG": "7", "UNDECLARED": "x"}),
    "files": (FILES, {}),
    "run": (RUN, {"BUILD_NUMBER": "42"}),
    "stages": (STAGES, {"VERSION": "2.5"}),
    "bases": (BASES, {}),
}


def _context(root: Path) -> None:
    files = {
        "a.txt": ("a\n", 0o644),
        "b.txt": ("b\n", 0o600),
        "with space.txt": ("spaced\n", 0o644),
        "src/main.py": ("print('main')\n", 0o755),
        "src/pkg/__init__.py": ("", 0o644),
        "src/.hidden": ("h\n", 0o640),
        "src/skip.log": ("ignored\n", 0o644),
        "secret.key": ("never copied\n", 0o600),
        ".dockerignore": ("**/*.log\n*.key\n", 0o644),
    }
    for name, (text, mode) in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    (root / "src/link").symlink_to("main.py")
    with tarfile.open(root / "t.tar.gz", "w:gz") as archive:
        for name, uid, gid, mode in [
            ("x/owned.txt", 1234, 2345, 0o640),
            ("x/root.txt", 0, 0, 0o644),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mode = 3, uid, gid, mode
            archive.addfile(info, fileobj=io.BytesIO(b"hi\n"))


class _Case(NamedTuple):
    theirs: _Archive  # Docker's build
    ours: _Archive
    image: Image  # our definition of it


@pytest.fixture(scope="module")
def built(
    builder: Builder, docker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, _Case]]:
    """Each case built both ways."""
    base = json.loads(docker(docker_env, "image", "inspect", BASE))[0]["RootFS"]["Layers"]
    out: dict[str, _Case] = {}
    for name, (text, build_args) in CASES.items():
        root = tmp_path_factory.mktemp(name)
        _context(root)
        tag = f"iwdiff/{name}"
        flags = [arg for k, v in build_args.items() for arg in ("--build-arg", f"{k}={v}")]
        theirs, ours = root / "docker.tar", root / "ours.tar"
        with serve_directory(root) as server:  # for ADD <url>
            (root / "Dockerfile").write_text(text.replace("{SERVER}", server))
            docker(docker_env, "build", "--network=host", "-t", tag, *flags, str(root))
            docker(docker_env, "save", "-o", str(theirs), tag)
            image = Image.from_dockerfile(
                root / "Dockerfile", context_dir=root, build_args=build_args
            )
            builder.build(image)
        image.export(ours, format="docker", compression="none", tag=tag)
        out[name] = _Case(_Archive(theirs, base), _Archive(ours, base), image)
    yield out
    for case in out.values():
        case.theirs.path.unlink()
        case.ours.path.unlink()


@pytest.mark.parametrize("name", list(CASES))
def test_same_config_as_docker(built: dict[str, _Case], name: str) -> None:
    theirs, ours = (_config(archive.config) for archive in built[name][:2])
    differences = [
        f"{field}: Docker {theirs.get(field)!r}, ours {ours.get(field)!r}"
        for field in CONFIG_FIELDS
        if theirs.get(field) != ours.get(field)
    ]
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("name", list(CASES))
def test_same_files_as_docker(built: dict[str, _Case], name: str) -> None:
    theirs, ours, _ = built[name]
    assert ours.base == theirs.base, "both images start from the same base"
    _assert_same_changes(theirs, ours)


def test_exported_multi_stage_dockerfile_gives_docker_the_same_files(
    built: dict[str, _Case], docker_env: dict[str, str], tmp_path: Path
) -> None:
    """Our definition of the multi-stage case, written back out as a Dockerfile (its stages
    become stage-N) and built by Docker, holds what Docker's build of the original holds."""
    case = built["stages"]
    write_dockerfile(case.image, tmp_path / "context", bare_base=True)
    docker(
        docker_env, "build", "--network=host", "-t", "iwdiff/exported", str(tmp_path / "context")
    )
    docker(docker_env, "save", "-o", str(tmp_path / "exported.tar"), "iwdiff/exported")
    base_ids = case.theirs.config["rootfs"]["diff_ids"][: case.theirs.base]
    _assert_same_changes(case.theirs, _Archive(tmp_path / "exported.tar", base_ids))


def _assert_same_changes(theirs: _Archive, ours: _Archive) -> None:
    base = theirs.base_index()
    their_changes, our_changes = theirs.changes(base), ours.changes(base)
    assert their_changes, "the Dockerfile changed nothing: the comparison would prove nothing"
    differences = [
        f"{path}: Docker {their_changes.get(path)}, ours {our_changes.get(path)}"
        for path in sorted({*their_changes, *our_changes})
        if their_changes.get(path) != our_changes.get(path)
    ]
    assert not differences, "\n".join(differences)


def _config(config: dict[str, object]) -> dict[str, object]:
    fields = config["config"]
    assert isinstance(fields, dict)
    kept = {k: fields.get(k) for k in CONFIG_FIELDS if fields.get(k) not in (None, "", [], {})}
    kept.setdefault("WorkingDir", "/")  # Docker leaves it empty for "/"
    return kept


Entry = tuple[object, ...]
_DELETED: Entry = ("deleted",)


class _Archive:
    """A docker-archive; its first `base` layers are the shared base image (none for scratch)."""

    def __init__(self, path: Path, base_diff_ids: list[str]):
        self.path = path
        with tarfile.open(path) as archive:
            manifest = json.load(archive.extractfile("manifest.json"))[0]
            self.config = json.load(archive.extractfile(manifest["Config"]))
        self.layers: list[str] = manifest["Layers"]
        diff_ids = self.config["rootfs"]["diff_ids"]
        self.base = len(base_diff_ids) if diff_ids[: len(base_diff_ids)] == base_diff_ids else 0

    def _members(
        self, layers: list[str]
    ) -> Iterator[tuple[tarfile.TarFile, list[tarfile.TarInfo]]]:
        with tarfile.open(self.path) as archive:
            for name in layers:
                with tarfile.open(fileobj=archive.extractfile(name), mode="r:") as layer:
                    yield layer, layer.getmembers()

    def base_index(self) -> dict[str, Entry | None]:
        """Every path in the base: a directory's entry (for telling changes), else None."""
        index: dict[str, Entry | None] = {}
        for layer, members in self._members(self.layers[: self.base]):
            for member in members:
                index[_where(member)] = _entry(layer, member) if member.isdir() else None
        return index

    def changes(self, base: dict[str, Entry | None]) -> dict[str, Entry]:
        """What the layers above the base leave changed: entries, and deletions of base paths.

        Whiteouts are expanded into the paths they hide, so an opaque directory and a list of
        whiteouts that hide the same things compare equal."""
        present = set(base)
        changes: dict[str, Entry] = {}
        for layer, members in self._members(self.layers[self.base :]):
            for member in members:  # a layer's whiteouts hide only what lies below it
                parent, name = posixpath.split(_where(member))
                if name.startswith(".wh."):
                    opaque = name == ".wh..wh..opq"
                    gone = parent if opaque else posixpath.join(parent, name[4:])
                    inside = gone.rstrip("/") + "/"
                    hidden = [
                        p for p in present if p.startswith(inside) or (p == gone and not opaque)
                    ]
                    for path in hidden:
                        present.discard(path)
                        changes.pop(path, None)
                        if path in base:
                            changes[path] = _DELETED
            for member in members:
                where = _where(member)
                if not posixpath.basename(where).startswith(".wh."):
                    present.add(where)
                    changes[where] = _entry(layer, member)
        return {p: e for p, e in changes.items() if not (e[0] == "dir" and base.get(p) == e)}


def _where(member: tarfile.TarInfo) -> str:
    return posixpath.normpath("/" + member.name)


def _entry(layer: tarfile.TarFile, member: tarfile.TarInfo) -> Entry:
    owner = (oct(member.mode & 0o7777), member.uid, member.gid)
    if member.isdir():
        return ("dir", *owner)
    if member.issym():
        return ("symlink", member.uid, member.gid, member.linkname)
    if member.islnk():
        return ("hardlink", posixpath.normpath("/" + member.linkname))
    data = layer.extractfile(member)
    assert data is not None
    return ("file", *owner, hashlib.sha256(data.read()).hexdigest())

"""Image.from_dockerfile / dockerfile_commands: real builds of translated Dockerfiles."""

from __future__ import annotations

import io
import re
import tarfile
import time
from pathlib import Path

import pytest

from imagewright import Image, Mount
from imagewright.exception import ImageBuildError, InvalidError
from imagewright.plan.planner import plan_image
from imagewright.registry.resolve import RegistryResolver

from .conftest import cli


def _dockerfile(tmp_path: Path, text: str, **files: str) -> Path:
    for name, content in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (tmp_path / "Dockerfile").write_text(text)
    return tmp_path / "Dockerfile"


def test_config_instructions(tmp_path: Path) -> None:
    path = _dockerfile(
        tmp_path,
        "ARG BASE=3.11\n"
        "FROM python:${BASE}-slim-bookworm\n"
        "ARG VERSION=1.0\n"
        "ENV APP_HOME=/srv/app PATH=/opt/bin:$PATH\n"
        'ENV GREETING="hello ${VERSION}" OTHER=${UNSET:-fallback}\n'
        "WORKDIR $APP_HOME\n"
        "LABEL org.example.version=$VERSION maintainer=me\n"
        "USER 1000:1000\n"
        "EXPOSE 8080 53/udp\n"
        "VOLUME /data\n"
        "STOPSIGNAL SIGTERM\n"
        "HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/\n"
        'ENTRYPOINT ["python", "-m", "app"]\n'
        "CMD serve --port 8080\n",
    )
    image = Image.from_dockerfile(path, context_dir=tmp_path, build_args={"VERSION": "2.5"})
    config = plan_image(image).config.to_json()
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["APP_HOME"] == "/srv/app" and env["GREETING"] == "hello 2.5"
    assert env["PATH"].startswith("/opt/bin:/usr/local/sbin:") and env["OTHER"] == "fallback"
    assert config["WorkingDir"] == "/srv/app" and config["User"] == "1000:1000"
    assert config["Labels"] == {"org.example.version": "2.5", "maintainer": "me"}
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/data": {}} and config["StopSignal"] == "SIGTERM"
    health = config["Healthcheck"]
    assert health == {
        "Test": ["CMD-SHELL", "curl -f http://localhost/"],
        "Interval": 30 * 10**9,
        "Retries": 3,
    }
    assert config["Entrypoint"] == ["python", "-m", "app"]
    assert config["Cmd"] == ["/bin/sh", "-c", "serve --port 8080"]
    assert plan_image(image).steps[-1].layer.callsite.endswith("Dockerfile:14")


def test_entrypoint_drops_base_cmd(tmp_path: Path) -> None:
    path = _dockerfile(tmp_path, "FROM debian:bookworm-slim\nENTRYPOINT echo hi\n")
    config = plan_image(Image.from_dockerfile(path, context_dir=tmp_path)).config.to_json()
    assert config["Entrypoint"] == ["/bin/sh", "-c", "echo hi"] and "Cmd" not in config


def test_run_copy_add(builder, tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"from the tar\n"
        info = tarfile.TarInfo("pkg/inner.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "bundle.tar.gz").write_bytes(archive.getvalue())
    path = _dockerfile(
        tmp_path,
        "FROM python:3.11-slim-bookworm\n"
        "ARG WHO=world\n"
        "WORKDIR /app\n"
        "COPY src/*.py ./\n"
        "COPY conf /etc/myconf\n"
        'COPY ["top.txt", "rel/"]\n'
        "COPY --chmod=0700 run.sh /usr/local/bin/run\n"
        "COPY . /ctx/\n"
        "ADD bundle.tar.gz /opt/\n"
        'RUN ["sh", "-c", "echo exec-form > /exec.txt"]\n'
        'RUN echo "hi $WHO" > /arg.txt\n'
        "RUN <<EOF\n"
        "set -e\n"
        "echo heredoc > /heredoc.txt\n"
        "EOF\n"
        "RUN cat > /fed.txt <<EOT\n"
        "fed line\n"
        "EOT\n",
        **{
            "src__a.py": "A",
            "src__b.py": "B",
            "src__c.txt": "C",
            "conf__x.ini": "X",
            "conf__sub__y.ini": "Y",
            "conf__secret.key": "KEY",
            "top.txt": "TOP",
            "run.sh": "#!/bin/sh\necho run\n",
            ".dockerignore": "**/*.key\nsrc/c.txt\n",
        },
    )
    image = Image.from_dockerfile(
        path, context_mount=Mount.from_local_dir(tmp_path, remote_path="/context")
    )
    out = builder.run(
        image,
        "ls /app; cat /etc/myconf/x.ini /etc/myconf/sub/y.ini; ls /etc/myconf; cat /app/rel/top.txt;"
        " stat -c %a /usr/local/bin/run; run; ls -a /ctx; cat /opt/pkg/inner.txt /exec.txt"
        " /arg.txt /heredoc.txt /fed.txt",
    )
    lines = out.split()
    assert lines[:3] == ["a.py", "b.py", "rel"]
    assert "XY" in out and "secret.key" not in out and "TOP" in out
    assert "TOP700\nrun\n" in out  # --chmod applied
    assert "Dockerfile" in lines and "c.txt" not in out
    for expected in ("from the tar", "exec-form", "hi world", "heredoc", "fed line"):
        assert expected in out


def test_copy_heredocs(builder, tmp_path: Path) -> None:
    """Inline files: expanded unless the marker is quoted, quotes kept, named after the marker."""
    path = _dockerfile(
        tmp_path,
        "FROM python:3.11-slim-bookworm\n"
        "ARG NAME=world\n"
        "COPY <<EOF /app/greeting.txt\n"
        'hello "$NAME" \\$HOME\n'
        "EOF\n"
        "COPY --chmod=755 <<run.sh <<'raw.txt' /app/bin/\n"
        "#!/bin/sh\necho ran\nrun.sh\n"
        "$NAME stays\nraw.txt\n",
    )
    out = builder.run(
        Image.from_dockerfile(path, context_dir=tmp_path),
        "cat /app/greeting.txt; /app/bin/run.sh; cat /app/bin/raw.txt; stat -c %a /app/*.txt",
    )
    assert out.splitlines() == ['hello "world" $HOME', "ran", "$NAME stays", "644"]


def test_add_from_a_url(builder, tmp_path: Path, served: tuple[Path, str]) -> None:
    """ADD <url>: mode 600 as in Docker, and the content (fetched when planned) keys the step."""
    root, base = served
    stamp = time.time_ns()  # new content for every run, even with a reused store
    (root / "tool.sh").write_text(f"#!/bin/sh\necho v1 # {stamp}\n")
    context = tmp_path / "ctx"
    context.mkdir()
    _dockerfile(
        context,
        f"FROM python:3.11-slim-bookworm\nADD {base}/tool.sh /opt/\n"
        f"ADD --chmod=755 {base}/tool.sh /usr/local/bin/tool\n",
    )
    (tmp_path / "img.py").write_text(
        "import imagewright as modal\n"
        f"image = modal.Image.from_dockerfile({str(context / 'Dockerfile')!r}, context_dir={str(context)!r})\n"
    )
    first = cli("shell", str(tmp_path / "img.py"), "--cmd", "stat -c %a /opt/tool.sh; tool")
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["600", "v1"]
    (root / "tool.sh").write_text(f"#!/bin/sh\necho v2 # {stamp}\n")  # same address, new content
    second = cli("shell", str(tmp_path / "img.py"), "--cmd", "tool")
    assert second.stdout == "v2\n" and "2 step(s) run" in second.stderr, second.stderr


@pytest.mark.parametrize(
    ("flags", "path", "message"),
    [
        ("--checksum=sha256:" + "0" * 64, "tool.sh", "checksum is sha256:"),
        ("", "missing.sh", "HTTP 404"),
    ],
)
def test_add_url_errors_name_the_line(
    tmp_path: Path, served: tuple[Path, str], flags: str, path: str, message: str
) -> None:
    root, base = served
    (root / "tool.sh").write_text("x")
    dockerfile = _dockerfile(tmp_path, f"FROM scratch\n\nADD {flags} {base}/{path} /x\n")
    image = Image.from_dockerfile(dockerfile, context_dir=tmp_path)
    with pytest.raises(InvalidError, match=rf"Dockerfile:3: ADD .*{message}"):
        plan_image(image, resolver=RegistryResolver())


def test_cache_mount_persists_but_not_in_layer(builder, tmp_path: Path) -> None:
    stamp = str(time.time_ns())
    text = (
        "FROM python:3.11-slim-bookworm\n"
        "RUN --mount=type=cache,target=/var/cache/iwtest "
        "echo {} >> /var/cache/iwtest/log && cat /var/cache/iwtest/log > /seen.txt\n"
    )
    first = Image.from_dockerfile(
        _dockerfile(tmp_path, text.replace("{}", f"one-{stamp}")), context_dir=tmp_path
    )
    builder.build(first)
    second = Image.from_dockerfile(
        _dockerfile(tmp_path, text.replace("{}", f"two-{stamp}")), context_dir=tmp_path
    )
    out = builder.run(second, "cat /seen.txt; echo files: $(ls -A /var/cache/iwtest | wc -l)")
    assert f"one-{stamp}" in out and f"two-{stamp}" in out
    assert out.splitlines()[-1] == "files: 0"  # as in Docker, only the empty mount point stays


def test_dockerfile_commands(builder, py311: Image, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("ctx file")
    image = py311.dockerfile_commands(
        ["ENV X=1", "COPY f.txt /f.txt", "RUN echo $X$Y > /x.txt"],
        context_dir=tmp_path,
        build_args={"Y": "unused"},
    )
    assert builder.run(image, "cat /f.txt /x.txt").split() == ["ctx", "file1"]
    with pytest.raises(InvalidError, match=r"^dockerfile_commands:2: .*not found"):
        py311.dockerfile_commands("ENV A=1", "COPY nope /x", context_dir=tmp_path)


def test_build_error_names_line(builder, tmp_path: Path) -> None:
    path = _dockerfile(tmp_path, "FROM python:3.11-slim-bookworm\n\nRUN exit 3\n")
    with pytest.raises(ImageBuildError, match="Dockerfile:3"):
        builder.build(Image.from_dockerfile(path, context_dir=tmp_path))


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("FROM scratch AS a\nFROM scratch\n\nCOPY --from=7 /x /y\n", 4, "there is no stage 7"),
        ("FROM scratch AS a\nCOPY --from=a /x /y\n", 2, "circular dependency .* stage: a"),
        ("FROM scratch\nCOPY --from=0 /x /y\n", 2, "circular dependency detected on stage: 0"),
        (
            "FROM scratch AS a\nCOPY --from=b /x /y\nFROM scratch AS b\n\nCOPY --from=a /y /z\n",
            2,  # found while stage b (the target) needs a, which needs b
            "circular dependency detected on stage: b",
        ),
        ("FROM scratch\nCOPY --chown=a:b:c a.txt /x\n", 2, "expected user.:group."),
        ("FROM scratch AS a\nFROM a\nCOPY --from=a /x /y /z\n", 3, "must be a directory"),
        ("FROM scratch\nONBUILD RUN x\n", 2, "ONBUILD"),
        ("FROM scratch\nCOPY ../outside /x\n", 2, "outside the build context"),
        ("FROM scratch\n\nCOPY missing.txt /x\n", 3, "not found"),
        ("FROM scratch\nCOPY secret.key /x\n", 2, "excluded by .dockerignore"),
        ("FROM scratch\nADD ftp://example.com/x /x\n", 2, "only http:// and https://"),
        ("FROM scratch\nADD http://127.0.0.1:9/ /x/\n", 2, "the URL names no file"),
        ("FROM scratch AS a\nFROM scratch\nCOPY --from=a <<EOF /x\nhi\nEOF\n", 3, "no heredoc"),
        ("FROM scratch\nCOPY <<../../x /x\nhi\n../../x\n", 2, "must be a plain file name"),
        ("FROM scratch\nADD --checksum=sha256:00 a.txt /x\n", 2, "--checksum works only"),
        ("FROM scratch\nCOPY a.txt b.txt /dir\n", 2, "must be a directory"),
        ("FROM scratch\nRUN --mount=type=bind,target=/x true\n", 2, "type=cache"),
        ("FROM scratch\nCOPY --chmod=abc a.txt /x\n", 2, "octal"),
        ("FROM scratch\nBOGUS x\n", 2, "unknown instruction"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _dockerfile(
        tmp_path, text, **{"a.txt": "a", "b.txt": "b", "secret.key": "k", ".dockerignore": "*.key"}
    )
    with pytest.raises(InvalidError, match=rf"Dockerfile:{line}: .*{message}"):
        Image.from_dockerfile(path, context_dir=tmp_path)


def test_unreachable_registry_base(tmp_path: Path) -> None:
    path = _dockerfile(tmp_path, "FROM alpine:3.20\nRUN true\n")
    image = Image.from_dockerfile(path, context_dir=tmp_path)
    base = image._layers()[0]  # other bases are pulled; building needs the registry reachable
    assert base.method == "from_registry" and base.callsite.endswith("Dockerfile:1")


def test_user_runs_later_steps(builder, tmp_path: Path) -> None:
    path = _dockerfile(
        tmp_path,
        "FROM python:3.11-slim-bookworm\n"
        "RUN useradd -m app\n"
        "USER app\n"
        "RUN whoami > /home/app/who && id -u > /home/app/uid && echo $HOME > /home/app/home\n"
        "USER 4242\n"
        "RUN id -u > /tmp/x && id -g >> /tmp/x && cat /tmp/x > /dev/null\n"
        "USER app:root\n",
    )
    image = Image.from_dockerfile(path, context_dir=tmp_path)
    out = builder.run(image, "whoami; id -gn; cat /home/app/who /home/app/uid /home/app/home")
    assert out.split() == ["app", "root", "app", "1000", "/home/app"]


def test_unknown_user_fails_the_step(builder, tmp_path: Path) -> None:
    path = _dockerfile(tmp_path, "FROM python:3.11-slim-bookworm\nUSER nobody-here\nRUN true\n")
    with pytest.raises(ImageBuildError, match=r"(?s)Dockerfile:3.*no user 'nobody-here'"):
        builder.build(Image.from_dockerfile(path, context_dir=tmp_path))


def test_multi_stage_copy_from(builder, tmp_path: Path) -> None:
    path = _dockerfile(
        tmp_path,
        "FROM python:3.11-slim-bookworm AS build\n"
        "RUN mkdir -p /out/lib && printf '#!/bin/sh\\necho built\\n' > /out/app"
        " && chmod 755 /out/app && echo data > /out/lib/d && ln -s /etc/shadow /out/lib/link"
        " && ln -s /out/app /out/alias\n"
        "FROM python:3.11-slim-bookworm\n"
        "COPY --from=build /out/app /usr/local/bin/app\n"
        "COPY --from=0 /out/lib /opt/lib\n"
        "COPY --from=build /out/alias /out/lib/d /opt/more/\n",
    )
    image = Image.from_dockerfile(path, context_dir=tmp_path)
    out = builder.run(
        image,
        "app; cat /opt/lib/d; readlink /opt/lib/link; stat -c %a /usr/local/bin/app;"
        " cat /opt/more/d; /opt/more/alias; test -e /out || echo no-out",
    )
    assert out.split() == ["built", "data", "/etc/shadow", "755", "data", "built", "no-out"]


def test_copy_from_a_later_stage_and_only_needed_stages_build(builder, tmp_path: Path) -> None:
    """As in BuildKit, --from may name a later stage, and stages nothing needs never build."""
    path = _dockerfile(
        tmp_path,
        "FROM python:3.11-slim-bookworm AS final-base\n"
        "COPY --from=tool /made /made\n"
        "FROM python:3.11-slim-bookworm AS unused\n"
        "RUN exit 1\n"
        "FROM python:3.11-slim-bookworm AS tool\n"
        "RUN echo made > /made\n"
        "FROM final-base\n",
    )
    assert builder.run(Image.from_dockerfile(path, context_dir=tmp_path), "cat /made") == "made\n"


def test_chown_names_come_from_the_image(builder, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    path = _dockerfile(
        tmp_path,
        "FROM python:3.11-slim-bookworm AS build\nRUN useradd -u 1234 maker && echo x > /x\n"
        "FROM python:3.11-slim-bookworm\nRUN useradd -u 4321 app\n"
        "COPY --chown=app a.txt /in/\nCOPY --from=build --chown=app:app /x /in/x\n",
    )
    out = builder.run(Image.from_dockerfile(path, context_dir=tmp_path), "stat -c %u:%g /in/*")
    assert out.split() == ["4321:4321", "4321:4321"]
    missing = _dockerfile(
        tmp_path, "FROM python:3.11-slim-bookworm\n\nCOPY --chown=nobody-here a.txt /a\n"
    )
    with pytest.raises(ImageBuildError, match=r"(?s)Dockerfile:3.*no user 'nobody-here'"):
        builder.build(Image.from_dockerfile(missing, context_dir=tmp_path))
    from_stage = _dockerfile(
        tmp_path,
        "FROM python:3.11-slim-bookworm AS build\nRUN echo x > /x\n"
        "FROM python:3.11-slim-bookworm\nCOPY --from=build --chown=app:ghosts /x /x\n",
    )
    with pytest.raises(ImageBuildError, match=r"(?s)Dockerfile:4.*no user 'app'"):
        builder.build(Image.from_dockerfile(from_stage, context_dir=tmp_path))


def test_copy_from_missing_path(builder, tmp_path: Path) -> None:
    path = _dockerfile(
        tmp_path,
        "FROM python:3.11-slim-bookworm AS build\nRUN true\n"
        "FROM python:3.11-slim-bookworm\nCOPY --from=build /nope /x\n",
    )
    with pytest.raises(ImageBuildError, match=r"(?s)Dockerfile:4.*/nope not found"):
        builder.build(Image.from_dockerfile(path, context_dir=tmp_path))


def test_expose_splits_expanded_words(tmp_path: Path) -> None:
    """`EXPOSE $PORTS` exposes each port, as BuildKit splits EXPOSE's words after expansion."""
    path = _dockerfile(
        tmp_path,
        'FROM debian:bookworm-slim\nARG PORTS="80 443"\nENV UDP=53/udp\nEXPOSE $PORTS $UDP\n'
        "ARG VERSION=v1.2.3\nLABEL version=${VERSION#v}\n",
    )
    config = plan_image(Image.from_dockerfile(path, context_dir=tmp_path)).config.to_json()
    assert config["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}, "53/udp": {}}
    assert config["Labels"] == {"version": "1.2.3"}


def test_copy_parents_exclude_and_add_unpack(builder, tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("inner.txt")
        tar.addfile(info, io.BytesIO(b""))
    (tmp_path / "kept.tar").write_bytes(archive.getvalue())
    path = _dockerfile(
        tmp_path,
        "FROM debian:bookworm-slim\n"
        "COPY --parents x/a.txt y/*.txt /parents/\n"
        "COPY --parents ./src/./pkg/ /pivot/\n"
        "COPY --exclude=**/*.md --exclude=sub/skip.txt docs /docs/\n"
        "COPY --exclude=*.md hom* /home-files/\n"
        "ADD --unpack=false kept.tar /tars/\n"
        "ADD kept.tar /unpacked/\n",
        **{
            "x__a.txt": "a",
            "y__b.txt": "b",
            "y__c.md": "c",
            "src__pkg__mod.py": "m",
            "docs__guide.txt": "g",
            "docs__readme.md": "r",
            "docs__sub__skip.txt": "s",
            "docs__sub__deep.md": "d",
            "docs__sub__keep.txt": "k",
            "home1.txt": "h",
            "home2.md": "h",
        },
    )
    image = Image.from_dockerfile(path, context_dir=tmp_path)
    found = builder.run(
        image,
        "cd / && find /parents /pivot /docs /home-files /tars /unpacked -type f | sort",
    )
    assert found.split() == [
        "/docs/guide.txt",
        "/docs/sub/keep.txt",
        "/home-files/home1.txt",
        "/parents/x/a.txt",
        "/parents/y/b.txt",
        "/pivot/pkg/mod.py",
        "/tars/kept.tar",
        "/unpacked/inner.txt",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY --from=base --parents /x /y/", "COPY --from with --parents or --exclude"),
        ("ADD --unpack=true https://example.com/a.tar /y/", "ADD --unpack=true of a URL"),
        ("COPY --unpack a /y/", "COPY: unknown flag: unpack"),
    ],
)
def test_unsupported_new_flags_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = _dockerfile(tmp_path, f"FROM debian:bookworm-slim AS base\n{text}\n", a="a")
    with pytest.raises(InvalidError, match=rf"Dockerfile:2: {re.escape(message)}"):
        Image.from_dockerfile(path, context_dir=tmp_path)


def test_from_registry_setup_lines_take_any_instruction(
    builder, store, py311: Image, tmp_path: Path
) -> None:
    """Modal accepts any instruction there (real programs use `ENTRYPOINT []`)."""
    from imagewright.export.push import push_image

    from .registry_helpers import registry

    with registry(tmp_path / "registry") as reg:
        push_image(py311.entrypoint(["/bin/false"]), f"{reg}/base:1", store=store)
        image = Image.from_registry(
            f"{reg}/base:1",
            setup_dockerfile_commands=["ENTRYPOINT []", "ENV STAGE=setup", "RUN echo $STAGE > /s"],
        )
        config = plan_image(image, resolver=RegistryResolver()).config.to_json()
        assert not config.get("Entrypoint") and config["Env"][-1] == "STAGE=setup"
        assert builder.run(image, "cat /s") == "setup\n"

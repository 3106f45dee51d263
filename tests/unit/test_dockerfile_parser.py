"""The Dockerfile parser and variable substitution follow Docker's documented rules."""

from __future__ import annotations

import textwrap

import pytest

from imagewright.dockerfile.instructions import Command, CopyArgs
from imagewright.dockerfile.parser import DockerfileError, Instruction, parse
from imagewright.dockerfile.substitute import expand, resolve_args
from imagewright.dockerfile.words import Heredoc
from imagewright.exception import InvalidError


def dockerfile(text: str):
    return parse(textwrap.dedent(text).lstrip("\n"))


def only(text: str) -> Instruction:
    """The single instruction after `FROM scratch`."""
    (instruction,) = (
        parse("FROM scratch\n" + textwrap.dedent(text).lstrip("\n")).stages[0].instructions
    )
    return instruction


def error(text: str) -> str:
    with pytest.raises(DockerfileError) as raised:
        parse(textwrap.dedent(text).lstrip("\n"))
    return str(raised.value)


REALISTIC = r"""
# syntax=docker/dockerfile:1
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS build
ENV HOME=/home/app PIP_NO_CACHE_DIR="1"
ENV GREETING hello there
WORKDIR $HOME/app
RUN --mount=type=cache,target=/root/.cache/pip pip install x
RUN <<EOF
set -e
echo built > /built
EOF

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="demo app" version=1
COPY --from=build /home/app /app
EXPOSE 8080/tcp
VOLUME ["/data"]
USER 1000:1000
SHELL ["/bin/bash", "-c"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s CMD curl -f http://localhost/ || exit 1
CMD ["python", "-m", "app"]
"""


def test_realistic_multi_stage_file():
    parsed = dockerfile(REALISTIC)
    assert parsed.directives == {"syntax": "docker/dockerfile:1"}
    assert [arg.args for arg in parsed.global_args] == [(("PYTHON_VERSION", "3.11"),)]
    build, final = parsed.stages
    assert (build.name, build.base, build.line) == ("build", "python:${PYTHON_VERSION}-slim", 3)
    assert (final.name, final.line) == (None, 13)
    assert [i.keyword for i in build.instructions] == ["ENV", "ENV", "WORKDIR", "RUN", "RUN"]
    env, legacy, workdir, cached, heredoc = build.instructions
    assert env.args == (("HOME", "/home/app"), ("PIP_NO_CACHE_DIR", '"1"'))
    assert legacy.args == (("GREETING", "hello there"),)
    assert workdir.args == "$HOME/app"
    assert cached.flags == {"mount": ("type=cache,target=/root/.cache/pip",)}
    assert cached.args == Command(None, "pip install x")
    assert heredoc.args.heredocs == (Heredoc("EOF", "set -e\necho built > /built\n", True, False),)
    assert heredoc.line == 8
    label, copy, expose, volume, user, shell, stopsignal, health, cmd = final.instructions
    assert label.args == (("org.opencontainers.image.title", '"demo app"'), ("version", "1"))
    assert copy.flags == {"from": "build"}
    assert copy.args == CopyArgs(("/home/app",), "/app")
    assert expose.args == ("8080/tcp",)
    assert volume.args == ("/data",)
    assert user.args == "1000:1000"
    assert shell.args == Command(("/bin/bash", "-c"), None)
    assert stopsignal.args == "SIGTERM"
    assert health.flags == {"interval": "30s"}
    assert health.args == Command(None, "curl -f http://localhost/ || exit 1")
    assert cmd.args == Command(("python", "-m", "app"), None)
    assert cmd.line == 22 and cmd.filename == "Dockerfile"


def test_realistic_file_resolves_args_and_env():
    parsed = dockerfile(REALISTIC)
    build, final = resolve_args(parsed, {"PYTHON_VERSION": "3.12", "UNUSED": "x"})
    assert build.base == final.base == "python:3.12-slim"
    workdir_scope = build.scopes[2]
    assert expand(parsed.stages[0].instructions[2].args, workdir_scope) == "/home/app/app"
    assert workdir_scope["PIP_NO_CACHE_DIR"] == "1"  # quotes are removed when expanded
    assert "PYTHON_VERSION" not in final.scopes[-1]  # not re-declared in the stage


def test_escape_directive_with_backtick_continuation():
    parsed = dockerfile(
        r"""
        # escape=`
        FROM mcr.microsoft.com/windows/servercore
        COPY testfile.txt c:\
        RUN dir c:\ `
            && echo done
        """
    )
    copy, run = parsed.stages[0].instructions
    assert parsed.directives == {"escape": "`"}
    assert copy.args == CopyArgs(("testfile.txt",), "c:\\")
    assert run.args.shell == "dir c:\\     && echo done"
    assert run.original == "RUN dir c:\\     && echo done"


# -- lines, comments, continuations ---------------------------------------------------------


def test_comments_and_blank_lines_inside_a_continuation_are_skipped():
    run = only(
        """
        RUN apt-get update && \\
            # install the tools
            apt-get install -y \\

              curl
        """
    )
    assert run.args.shell == "apt-get update &&     apt-get install -y       curl"
    assert run.line == 2


def test_keywords_are_case_insensitive_and_may_be_indented():
    parsed = dockerfile("  from alpine as Base\n\trun echo hi\n")
    assert parsed.stages[0].name == "base"
    assert parsed.stages[0].instructions[0].keyword == "RUN"


def test_continuation_at_end_of_file_is_accepted():
    run = only("RUN echo hi \\")
    assert (run.args.shell, run.original) == ("echo hi", "RUN echo hi ")


def test_continuation_character_may_be_followed_by_spaces():
    assert only("RUN echo a \\   \n  b\n").args.shell == "echo a   b"


def test_line_numbers_count_comments_blanks_and_continuations():
    parsed = dockerfile("# c\n\nFROM a\nRUN x \\\n  y\n\nENV A=1\n")
    run, env = parsed.stages[0].instructions
    assert (parsed.stages[0].line, run.line, env.line) == (3, 4, 7)


def test_crlf_line_endings_and_bom():
    parsed = parse("\ufeffFROM a\r\nRUN echo hi\r\n")
    assert parsed.stages[0].instructions[0].args.shell == "echo hi"


# -- parser directives ----------------------------------------------------------------------


def test_directives_are_case_insensitive_and_spacing_is_free():
    parsed = parse("#  SYNTAX = docker/dockerfile:1.7\n# check=skip=JSONArgsRecommended\nFROM a\n")
    assert parsed.directives == {
        "syntax": "docker/dockerfile:1.7",
        "check": "skip=JSONArgsRecommended",
    }


def test_directive_after_a_comment_or_blank_line_is_a_comment():
    assert parse("# hello\n# escape=`\nFROM a\n").directives == {}
    assert parse("\n# escape=`\nFROM a\n").directives == {}


def test_unknown_directive_is_a_comment_and_ends_directives():
    assert parse("# unknowndirective=value\n# escape=`\nFROM a\n").directives == {}


def test_directive_after_an_instruction_is_a_comment():
    parsed = parse("FROM a\n# escape=`\nRUN echo \\\n  b\n")
    assert parsed.directives == {}
    assert parsed.stages[0].instructions[0].args.shell == "echo   b"


def test_repeated_directive_is_an_error():
    assert error("# escape=\\\n# escape=`\nFROM a\n") == (
        "Dockerfile:2: only one escape parser directive can be used"
    )


def test_invalid_escape_token():
    assert error("# escape=x\nFROM a\n").startswith("Dockerfile:1: invalid escape token 'x'")


# -- exec form and shell form ---------------------------------------------------------------


def test_exec_form_is_a_json_array():
    assert only('ENTRYPOINT ["/bin/tini", "--"]').args == Command(("/bin/tini", "--"), None)
    assert only("CMD []").args == Command((), None)


def test_malformed_json_falls_back_to_shell_form_like_docker():
    assert only("CMD [\"python\", 'app.py']").args == Command(None, "[\"python\", 'app.py']")
    assert only('RUN ["echo", "unclosed"').args.shell == '["echo", "unclosed"'


def test_json_array_of_non_strings_is_an_error():
    assert error("FROM a\nCMD [1, 2]\n") == (
        "Dockerfile:2: CMD: when using JSON array syntax, arrays must be comprised of strings only"
    )


def test_shell_requires_json_form():
    assert error("FROM a\nSHELL /bin/bash -c\n") == (
        "Dockerfile:2: SHELL requires the arguments to be in JSON form"
    )


# -- flags ----------------------------------------------------------------------------------


def test_several_mounts_and_other_run_flags():
    run = only("RUN --mount=type=cache,target=/a --network=none --mount=type=secret,id=t make")
    assert run.flags == {"mount": ("type=cache,target=/a", "type=secret,id=t"), "network": "none"}
    assert run.args.shell == "make"


def test_copy_flags_quotes_and_booleans():
    copy = only('COPY --chown="1000:1000" --chmod=755 --link src/ /app/')
    assert copy.flags == {"chown": "1000:1000", "chmod": "755", "link": "true"}
    assert copy.args == CopyArgs(("src/",), "/app/")


def test_from_platform():
    stage = parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS Builder\n").stages[0]
    assert (stage.platform, stage.base, stage.name) == ("$BUILDPLATFORM", "golang:1.22", "builder")


def test_unknown_flag_suggests_the_closest():
    assert error("FROM a\nCOPY --form=x a b\n") == (
        "Dockerfile:2: COPY: unknown flag: form (did you mean from?)"
    )


def test_flag_on_an_instruction_without_flags():
    assert error("FROM a\nWORKDIR --chown=1 /x\n") == "Dockerfile:2: WORKDIR: unknown flag: chown"


def test_duplicate_and_valueless_flags():
    assert error("FROM a\nCOPY --from=a --from=b x y\n") == (
        "Dockerfile:2: COPY: duplicate flag specified: from"
    )
    assert error("FROM a\nCOPY --from x y\n") == "Dockerfile:2: COPY: missing a value on flag: from"


def test_healthcheck_flags_are_checked():
    assert error("FROM a\nHEALTHCHECK --interval=5 CMD true\n").startswith(
        "Dockerfile:2: HEALTHCHECK: --interval must be a duration"
    )
    assert error("FROM a\nHEALTHCHECK --retries=-1 CMD true\n").startswith(
        "Dockerfile:2: HEALTHCHECK: --retries must be a non-negative integer"
    )


# -- heredocs -------------------------------------------------------------------------------


def test_chomped_heredoc_strips_leading_tabs():
    run = only("RUN <<-EOF\n\techo hi\n\t\techo there\n\tEOF\n")
    assert run.args.heredocs == (Heredoc("EOF", "echo hi\necho there\n", True, True),)


def test_quoted_heredoc_disables_expansion():
    run = only("RUN python3 <<'PY' > /out\nprint('$HOME')\nPY\n")
    assert run.args.shell == "python3 <<'PY' > /out"
    assert run.args.heredocs == (Heredoc("PY", "print('$HOME')\n", False, False),)
    assert only('RUN cat <<"EOF"\nx\nEOF\n').args.heredocs[0].expand is False


def test_several_heredocs_on_one_line():
    parsed = dockerfile(
        """
        FROM a
        RUN cat <<A 3<<B
        first
        A
        second
        B
        ENV X=1
        """
    )
    run, env = parsed.stages[0].instructions
    assert run.args.heredocs == (
        Heredoc("A", "first\n", True, False),
        Heredoc("B", "second\n", True, False, fd=3),
    )
    assert env.line == 7


def test_copy_heredoc_source():
    copy = only("COPY --chmod=755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello\nEOF\n")
    assert copy.args == CopyArgs(
        (), "/usr/local/bin/hello", (Heredoc("EOF", "#!/bin/sh\necho hello\n", True, False),)
    )


def test_quoted_heredoc_marker_is_not_a_heredoc():
    assert only('RUN echo "<<EOF"').args == Command(None, 'echo "<<EOF"')


def test_json_form_takes_no_heredocs():
    copy = only('COPY ["<<EOF", "/x"]')
    assert copy.args == CopyArgs(("<<EOF",), "/x")
    # no body is read, so the would-be terminator is parsed as an instruction
    assert error('FROM a\nRUN ["cat", "<<EOF"]\nEOF\n').startswith(
        "Dockerfile:3: unknown instruction: EOF"
    )


def test_onbuild_heredoc_body_is_attached():
    parsed = dockerfile("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nENV A=1\n")
    onbuild, env = parsed.stages[0].instructions
    assert onbuild.args == "RUN <<EOF\necho hi\nEOF"
    assert env.line == 5


def test_unterminated_heredoc():
    assert error("FROM a\nRUN <<EOF\necho hi\n") == "Dockerfile:2: unterminated heredoc EOF"


def test_heredoc_as_copy_destination():
    assert error("FROM a\nCOPY x <<EOF\nhi\nEOF\n") == (
        "Dockerfile:2: COPY cannot accept a heredoc as a destination"
    )


# -- per-instruction arguments --------------------------------------------------------------


def test_env_forms():
    assert only('ENV A=1 B="two words" C=a\\ b').args == (
        ("A", "1"),
        ("B", '"two words"'),
        ("C", "a\\ b"),
    )
    assert only("ENV PATH /usr/bin:/bin  and more").args == (("PATH", "/usr/bin:/bin  and more"),)


def test_env_errors():
    assert error("FROM a\nENV ONLY\n") == "Dockerfile:2: ENV must have two arguments"
    assert error("FROM a\nENV A=1 B\n").startswith(
        "Dockerfile:2: ENV: Syntax error - can't find = in 'B'"
    )
    assert error("FROM a\nENV =x\n") == "Dockerfile:2: ENV names can not be blank"


def test_arg_with_and_without_default():
    assert only("ARG A B=2 C=").args == (("A", None), ("B", "2"), ("C", ""))


def test_copy_shell_form_splits_on_whitespace_and_json_form_keeps_spaces():
    assert only("COPY a.txt b.txt /dst/").args == CopyArgs(("a.txt", "b.txt"), "/dst/")
    assert only('ADD ["my file.txt", "/my dir/"]').args == CopyArgs(("my file.txt",), "/my dir/")


def test_copy_needs_a_destination():
    assert error("FROM a\nCOPY onlyone\n").startswith(
        "Dockerfile:2: COPY requires at least two arguments"
    )


def test_expose_and_volume_forms():
    assert only("EXPOSE 80 443/tcp 53/udp").args == ("80", "443/tcp", "53/udp")
    assert only("VOLUME /var/log /data").args == ("/var/log", "/data")
    assert (
        error('FROM a\nVOLUME [""]\n')
        == "Dockerfile:2: VOLUME specified can not be an empty string"
    )


def test_healthcheck_none_and_exec_form():
    assert only("HEALTHCHECK NONE").args is None
    assert only('HEALTHCHECK --timeout=3s --retries=3 CMD ["curl", "-f", "http://x/"]').args == (
        Command(("curl", "-f", "http://x/"), None)
    )
    assert (
        error("FROM a\nHEALTHCHECK CMD\n")
        == "Dockerfile:2: HEALTHCHECK: Missing command after HEALTHCHECK CMD"
    )
    assert error("FROM a\nHEALTHCHECK RUN x\n").startswith(
        'Dockerfile:2: HEALTHCHECK: Unknown type "RUN"'
    )


def test_onbuild_is_kept_raw_and_maintainer_is_valid():
    assert only("ONBUILD RUN echo $HOME").args == "RUN echo $HOME"
    assert only("MAINTAINER Jane <jane@example.com>").args == "Jane <jane@example.com>"
    assert error("FROM a\nONBUILD ONBUILD RUN x\n").startswith(
        "Dockerfile:2: ONBUILD: Chaining ONBUILD"
    )
    assert (
        error("FROM a\nONBUILD FROM x\n")
        == "Dockerfile:2: ONBUILD: FROM isn't allowed as an ONBUILD trigger"
    )


def test_single_argument_instructions_keep_the_whole_text():
    assert only("USER app:app").args == "app:app"
    assert error("FROM a\nWORKDIR\n") == "Dockerfile:2: WORKDIR requires exactly one argument"


# -- structural errors ----------------------------------------------------------------------


def test_unknown_instruction_suggests_the_closest_keyword():
    assert (
        error("FROM a\nRUNN echo hi\n")
        == "Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)"
    )


def test_instruction_before_first_from():
    assert error("ARG A=1\nRUN echo hi\nFROM a\n").startswith(
        "Dockerfile:2: RUN before the first FROM"
    )


def test_from_without_image_and_with_bad_alias():
    assert error("FROM\n").startswith("Dockerfile:1: FROM requires either one or three arguments")
    assert error("FROM a AS\n").startswith(
        "Dockerfile:1: FROM requires either one or three arguments"
    )
    assert error("FROM a AS 1st\n").startswith(
        "Dockerfile:1: FROM: invalid name for build stage: '1st'"
    )


def test_duplicate_stage_names():
    assert error("FROM a AS x\nFROM b AS X\n") == "Dockerfile:2: FROM: duplicate stage name 'x'"


def test_missing_arguments():
    assert error("FROM a\nRUN\n") == "Dockerfile:2: RUN requires at least one argument"
    assert error("FROM a\nEXPOSE\n") == "Dockerfile:2: EXPOSE requires at least one argument"


def test_file_without_stages():
    assert error("# nothing here\n") == "Dockerfile:1: file with no instructions"
    assert error("ARG A=1\n").startswith("Dockerfile:1: no FROM")


def test_filename_appears_in_errors():
    with pytest.raises(DockerfileError, match=r"^build/Dockerfile\.dev:1: unknown instruction"):
        parse("FORM a\n", filename="build/Dockerfile.dev")


def test_errors_are_invalid_errors():
    assert issubclass(DockerfileError, InvalidError)


# -- variable substitution ------------------------------------------------------------------


ENV = {"NAME": "world", "EMPTY": "", "DIR": "/srv"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$NAME", "world"),
        ("${NAME}s", "worlds"),
        ("$NAMEs", ""),
        ("$UNSET-x", "-x"),
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${EMPTY-default}", ""),
        ("${UNSET-default}", "default"),
        ("${NAME:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-$DIR/x}", "/srv/x"),
        ("\\$NAME", "$NAME"),
        ("'$NAME'", "$NAME"),
        ('"$NAME is ${DIR}"', "world is /srv"),
        ('"a\\"b" c\\ d', 'a"b c d'),
        ('"keep \\n"', "keep \\n"),
        ("cost: $", "cost: $"),
        ("$1", ""),
    ],
)
def test_expand(word, expected):
    assert expand(word, ENV) == expected


def test_expand_with_backtick_escape():
    assert expand("c:\\dir\\`$NAME", ENV, escape="`") == "c:\\dir\\$NAME"


@pytest.mark.parametrize(
    "word", ["${", "${}", "${NAME", "${NAME:3}", "'open", '"open', "${UNSET:?must be set}"]
)
def test_expand_errors(word):
    with pytest.raises(InvalidError):
        expand(word, ENV)


# -- ARG scoping ----------------------------------------------------------------------------


def test_global_arg_needs_redeclaring_inside_a_stage():
    parsed = dockerfile(
        """
        ARG VERSION=1.0
        FROM alpine:$VERSION
        RUN echo before
        ARG VERSION
        RUN echo after
        """
    )
    (stage,) = resolve_args(parsed, {})
    assert stage.base == "alpine:1.0"
    assert stage.scopes == ({}, {}, {"VERSION": "1.0"})


def test_build_args_override_defaults_everywhere():
    parsed = dockerfile(
        """
        ARG VERSION=1.0
        FROM alpine:${VERSION}
        ARG VERSION
        ARG MODE=debug
        RUN true
        """
    )
    (stage,) = resolve_args(parsed, {"VERSION": "2.0", "MODE": "release"})
    assert stage.base == "alpine:2.0"
    assert stage.scopes[-1] == {"VERSION": "2.0", "MODE": "release"}


def test_undeclared_build_arg_is_ignored_and_valueless_arg_stays_unset():
    parsed = dockerfile("FROM a\nARG MISSING\nRUN true\n")
    (stage,) = resolve_args(parsed, {"OTHER": "x"})
    assert stage.scopes[-1] == {}


def test_env_wins_over_arg_of_the_same_name():
    parsed = dockerfile(
        """
        FROM ubuntu
        ARG CONT_IMG_VER
        ENV CONT_IMG_VER=v1.0.0
        RUN echo $CONT_IMG_VER
        """
    )
    (stage,) = resolve_args(parsed, {"CONT_IMG_VER": "v2.0.1"})
    assert stage.scopes[1] == {"CONT_IMG_VER": "v2.0.1"}
    assert stage.scopes[2] == {"CONT_IMG_VER": "v1.0.0"}


def test_env_pairs_see_the_values_from_before_the_instruction():
    parsed = dockerfile("FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nRUN true\n")
    (stage,) = resolve_args(parsed, {})
    assert stage.scopes[-1] == {"abc": "bye", "def": "hello", "ghi": "bye"}


def test_arg_default_can_use_earlier_values():
    parsed = dockerfile(
        "ARG BASE=alpine\nARG TAG=${BASE}:3\nFROM $TAG\nARG X=${UNSET:-fallback}\nRUN true\n"
    )
    (stage,) = resolve_args(parsed, {})
    assert stage.base == "alpine:3"
    assert stage.scopes[-1] == {"X": "fallback"}


def test_platform_is_expanded_with_global_args():
    parsed = dockerfile("ARG PLATFORM=linux/amd64\nFROM --platform=$PLATFORM a\n")
    assert resolve_args(parsed, {})[0].platform == "linux/amd64"


def test_substitution_error_names_the_line():
    parsed = dockerfile("FROM a\nENV A=${B\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: syntax error"):
        resolve_args(parsed, {})

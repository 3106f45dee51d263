"""The command lines of the package methods (apt_install, pip_install*, uv_pip_install,
uv_sync, poetry_install_from_file, pip_install_private_repos): arguments Image has already
checked become the ops that install them, with the commands Modal's builder runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .ops import CopyLocal, Run, SetConfig

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from .ops import Op

__all__ = [
    "apt_install_ops",
    "pip_flags",
    "pip_install_op",
    "pip_requirements_ops",
    "poetry_ops",
    "private_repo_ops",
    "shell_join",
    "shell_quote",
    "uv_pip_install_ops",
    "uv_sync_ops",
]

_UV = "/.uv/uv"  # where a step's Run(uv=...) binds uv
# The characters shlex.quote leaves a word unquoted for (its `[^\w@%+=:,./-]`, ASCII).
_UNQUOTED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-"


def shell_quote(word: str) -> str:
    """shlex.quote(word), character for character (commands enter cache keys), without
    importing shlex, its class and its regex: ~0.5 ms of every definition's import."""
    if not isinstance(word, str):
        import shlex

        return shlex.quote(word)  # (and its error)
    if not word:
        return "''"
    if not word.strip(_UNQUOTED):  # (every character is one of them)
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def shell_join(words: Sequence[str]) -> str:
    """shlex.join(words)."""
    return " ".join(shell_quote(word) for word in words)


def apt_install_ops(packages: Sequence[str]) -> tuple[Op, ...]:
    return (Run("apt-get update"), Run(f"apt-get install -y {shell_join(packages)}"))


def pip_flags(
    find_links: str | None,
    index_url: str | None,
    extra_index_url: str | None,
    pre: bool,
    extra_options: str,
) -> str:
    pairs = (
        ("--find-links", find_links),
        ("--index-url", index_url),
        ("--extra-index-url", extra_index_url),
    )
    flags = [f"{flag} {shell_quote(value)}" for flag, value in pairs if value is not None]
    flags += ["--pre"] if pre else []
    flags += [extra_options] if extra_options else []
    return " ".join(flags)


def pip_install_op(packages: Sequence[str], flags: str) -> Run:
    """`pip install` of `packages` into the image's Python; `flags` from pip_flags."""
    return Run(_join("python -m pip install", shell_join(packages), flags))


def pip_requirements_ops(requirements_txt: str, flags: str) -> tuple[Op, ...]:
    """Copy a local requirements file in, then `pip install -r` it."""
    return (
        CopyLocal(requirements_txt, "/.requirements.txt"),
        Run(_join("python -m pip install -r /.requirements.txt", flags)),
    )


def uv_pip_install_ops(
    packages: Sequence[str],
    requirements: Sequence[str],
    find_links: str | None,
    index_url: str | None,
    extra_index_url: str | None,
    pre: bool,
    extra_options: str,
    uv: str,
) -> list[Op]:
    """`uv pip install` into the first `python` on PATH, each requirements file (an absolute
    path: see validate.local_path) copied in."""
    ops: list[Op] = []
    args = [f"{_UV} pip install --python $(command -v python) --compile-bytecode"]
    args += [f"--find-links {shell_quote(find_links)}"] if find_links else []
    args += [f"--index-url {shell_quote(index_url)}"] if index_url else []
    args += [f"--extra-index-url {shell_quote(extra_index_url)}"] if extra_index_url else []
    args += ["--prerelease allow"] if pre else []
    args += [extra_options] if extra_options else []
    for i, req in enumerate(requirements):
        target = f"/.uv/{i}/{os.path.basename(req)}"
        ops.append(CopyLocal(req, target))
        args.append(f"--requirements {target}")
    args += [shell_quote(p) for p in packages]
    ops.append(Run(" ".join(args), uv=uv))
    return ops


def uv_sync_ops(
    project: Path,
    groups: Sequence[str],
    extras: Sequence[str],
    frozen: bool,
    extra_options: str,
    uv: str,
) -> list[Op]:
    """`uv sync` of a project's locked dependencies into /.uv/.venv, then that venv on PATH."""
    lock = project / "uv.lock"
    ops: list[Op] = [CopyLocal(str(project / "pyproject.toml"), "/.uv/pyproject.toml")]
    if lock.exists():
        ops.append(CopyLocal(str(lock), "/.uv/uv.lock"))
    cmd = [f"{_UV} sync --project=/.uv --no-install-workspace --compile-bytecode"]
    cmd += [f"--group={g}" for g in groups] + [f"--extra={e}" for e in extras]
    cmd += [extra_options] if extra_options else []
    cmd += ["--frozen"] if frozen and lock.exists() else []
    ops.append(Run(" ".join(cmd), uv=uv))
    ops.append(SetConfig("env_expand", (("PATH", "/.uv/.venv/bin:$PATH"),)))
    return ops


def poetry_ops(
    pyproject_toml: str,
    lockfile: str | None,
    poetry_version: str | None,
    old_installer: bool,
    groups: Sequence[tuple[str, Sequence[str]]],
) -> list[Op]:
    """Install Poetry with pip (unless `poetry_version` is None), copy the project's
    pyproject.toml (and `lockfile`) to /tmp/poetry, and `poetry install --no-root` its
    dependencies into the image's Python. `groups` pairs --with/--without/--only with names."""
    ops: list[Op] = []
    if poetry_version is not None:
        spec = "" if poetry_version == "latest" else f"=={poetry_version}"
        ops.append(Run(f"python -m pip install {shell_quote(f'poetry{spec}')}"))
    if old_installer:
        ops.append(Run("poetry config experimental.new-installer false"))
    if lockfile is not None:
        ops.append(CopyLocal(lockfile, "/tmp/poetry/poetry.lock"))
    ops.append(CopyLocal(pyproject_toml, "/tmp/poetry/pyproject.toml"))
    install = ["poetry install --no-root"]
    install += [f"{flag} {shell_quote(','.join(names))}" for flag, names in groups if names]
    install.append("--compile")  # Modal compiles at build time so no cold start has to
    command = "cd /tmp/poetry && poetry config virtualenvs.create false && " + " ".join(install)
    # The files were copied into the image's /tmp, as Modal's COPY puts them there: this step
    # must see that /tmp, not the private tmpfs other steps get.
    ops.append(Run(command, image_tmp=True))
    return ops


# Where a private-repo step puts its git askpass helper: in the step's private tmpfs /tmp, so it
# never reaches the layer.
GIT_ASKPASS = "/tmp/.imagewright-git-askpass"
# The helper answers git's password prompt with the token of the prompt's host. It reads the
# token from its environment and prints it with the shell's builtin printf: the token is in no
# command line (argv), where any process on the host could read it, only in the step's
# environment and on the pipe to git.
_ASKPASS_SCRIPT = (
    "#!/bin/sh",
    'case "$1" in *gitlab.com*) printf "%s\\n" "$GITLAB_TOKEN" ;;'
    ' *) printf "%s\\n" "$GITHUB_TOKEN" ;; esac',
)
TOKEN_VARIABLES = {"github.com": "GITHUB_TOKEN", "gitlab.com": "GITLAB_TOKEN"}


def private_repo_ops(
    repositories: Sequence[str], git_user: str, flags: str, secret_names: str
) -> list[Op]:
    """pip installs of git repositories on github.com / gitlab.com (already checked), each
    authenticated as `git_user` with the host's token (GITHUB_TOKEN or GITLAB_TOKEN) from the
    step's secrets.

    Modal writes the token into the URL (`git+https://user:$GITHUB_TOKEN@...`), which puts it in
    the argv of pip and git; here the URL names only the user, and git asks the GIT_ASKPASS
    helper for the password. `flags` comes from pip_flags; `secret_names` names the secrets in
    the message of a missing token, as Modal's does.
    """
    ops: list[Op] = []
    hosts = {repo.split("/")[0] for repo in repositories}
    for host, variable in TOKEN_VARIABLES.items():
        if host in hosts:
            message = f"{variable} env var not set by provided modal.Secret(s): {secret_names}"
            check = f'[ -n "${{{variable}+set}}" ] || {{ echo {shell_quote(message)}; exit 1; }}'
            ops.append(Run(check))
    ops.append(Run("apt-get update && apt-get install -y git"))
    helper = (
        f"printf '%s\\n' {' '.join(shell_quote(line) for line in _ASKPASS_SCRIPT)}"
        f" > {GIT_ASKPASS} && chmod 700 {GIT_ASKPASS}"
    )
    for repo in repositories:
        url = shell_quote(f"git+https://{git_user}@{repo}")
        install = _join(f"GIT_ASKPASS={GIT_ASKPASS} python3 -m pip install {url}", flags)
        ops.append(Run(f"{helper} && {install}"))
    return ops


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)

"""Image: the immutable, lazy, fluent recipe users write, with Modal's methods and checks.

Every method returns a new Image that points at its parent; nothing is read or built here.
Argument shapes are checked eagerly with Modal's exception types; everything that needs the
filesystem (local files, Python versions, pyproject contents) is checked by the planner, before
any step runs. What builds, ships or parses Dockerfiles is reached through definition/engine.py,
so this layer imports nothing above it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

from .. import settings
from .._callsite import user_callsite
from .._unsupported import NoLocalMeaning, no_local_meaning
from ..cloud import ModalObject
from ..exception import InvalidError, InvalidTypeError, NotFoundError
from .engine import engine
from .envvars import check_env_vars
from .layer import Layer, LocalMount
from .ops import Bootstrap, CopyLocal, FromRegistry, Run, RunFunction, SetConfig
from .packages import (
    TOKEN_VARIABLES,
    apt_install_ops,
    pip_flags,
    pip_install_op,
    pip_requirements_ops,
    poetry_ops,
    private_repo_ops,
    uv_pip_install_ops,
    uv_sync_ops,
)
from .patterns import AUTO_DOCKERIGNORE, NON_PYTHON_FILES
from .reference import parse_pull_reference
from .validate import (
    abs_dir,
    absolute_remote,
    check_secrets,
    check_str_list,
    check_uv_version,
    describe,
    flatten,
    ignore_spec,
    local_path,
    refuse_flags,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:  # (Secret, Volume and Mount objects are only passed through here)
    from typing import Any

    from ..mount import Mount
    from ..secret import Secret
    from ..volume import Volume
    from .ops import Op

__all__ = ["Image"]


class Image(ModalObject):
    """A container image definition. Build it with `.build()` or `imagewright build`."""

    __slots__ = ("_force", "_layer", "_mounts", "_parent")

    _parent: Image | None
    _layer: Layer | None
    _mounts: tuple[LocalMount, ...]
    _force: bool

    _id_prefix = "im"
    logs = NoLocalMeaning()  # Modal's build logs of a published image: ours stream as it builds

    @staticmethod
    def from_id(image_id: str, client: object = None) -> Image:
        """Modal's images built on its service, by id; locally an image is its definition."""
        raise no_local_meaning("modal.Image.from_id")

    @staticmethod
    def from_name(
        name: str, *, environment_name: str | None = None, client: object = None
    ) -> Image:
        """An image published to Modal's service under a name."""
        raise no_local_meaning("modal.Image.from_name")

    def publish(
        self,
        name: str,
        *,
        environment_name: str | None = None,
        experimental_options: dict[str, Any] | None = None,
        client: object = None,
    ) -> None:
        """Publishing to Modal's service; locally `image.push(ref)` sends it to a registry."""
        raise no_local_meaning("modal.Image.publish (use image.push(ref) for a registry)")

    def __init__(self) -> None:
        raise InvalidError(
            "Class Image has no constructor; use a static factory method such as "
            "Image.debian_slim() or Image.from_scratch()."
        )

    @classmethod
    def _make(
        cls,
        parent: Image | None,
        layer: Layer | None,
        mounts: tuple[LocalMount, ...] = (),
        force: bool = False,
    ) -> Image:
        image = object.__new__(cls)
        image._parent, image._layer, image._mounts, image._force = parent, layer, mounts, force
        return image

    def __repr__(self) -> str:
        names = [layer.call for layer in self._layers()]
        return f"Image({' → '.join(names) or 'empty'})"

    # ---- traversal used by the planner ------------------------------------------------------

    def _chain(self) -> list[Image]:
        """Every node from the root to this image."""
        nodes: list[Image] = []
        node: Image | None = self
        while node is not None:
            nodes.append(node)
            node = node._parent
        return nodes[::-1]

    def _layers(self) -> list[Layer]:
        return [node._layer for node in self._chain() if node._layer is not None]

    # ---- constructors -----------------------------------------------------------------------

    @staticmethod
    def debian_slim(python_version: str | None = None, force_build: bool = False) -> Image:
        """A slim Debian base with the requested Python series (default: the host's), or the
        exact CPython a version such as "3.11.4" names (see definition/pythons.py)."""
        from .pythons import series_of

        if isinstance(python_version, float):
            raise InvalidTypeError("The `python_version` argument should be a string, not a float.")
        callsite = user_callsite()
        if python_version is not None:
            try:  # Modal's format checks, at the call rather than when the image is planned
                series_of(python_version, "Image.debian_slim()")
            except InvalidError as exc:
                raise InvalidError(f"{exc} (at {callsite})") from None
        call = describe("Image.debian_slim", python_version=python_version)
        op = Bootstrap("debian", python_version)
        return Image._make(None, Layer("debian_slim", call, callsite, (op,), (), force_build))

    @staticmethod
    def ubuntu(python_version: str | None = None, force_build: bool = False) -> Image:
        """An Ubuntu base (jammy for 3.10, noble for 3.12, the default) set up like debian_slim."""
        if isinstance(python_version, float):
            raise InvalidTypeError("The `python_version` argument should be a string, not a float.")
        call = describe("Image.ubuntu", python_version=python_version)
        op = Bootstrap("ubuntu", python_version)
        return Image._make(None, Layer("ubuntu", call, user_callsite(), (op,), (), force_build))

    @staticmethod
    def from_scratch(force_build: bool = False) -> Image:
        """An empty image: no shell, no Python. Add files with copy=True."""
        layer = Layer("from_scratch", "Image.from_scratch()", user_callsite(), (), (), force_build)
        return Image._make(None, layer)

    @staticmethod
    def micromamba(python_version: str | None = None, force_build: bool = False) -> Image:
        """Modal's micromamba base: mambaorg/micromamba with Python and pip from conda-forge in
        its base environment (default: the host's Python series), which every later RUN
        activates. Pulled from Docker Hub when planned, as from_registry's images are."""
        from .micromamba import MICROMAMBA_IMAGE, micromamba_setup_ops
        from .pythons import local_series, series_of

        version = local_series() if python_version is None else python_version
        series_of(version, "Image.micromamba")  # Modal's format checks and messages
        call = describe("Image.micromamba", python_version=python_version)
        op = FromRegistry(MICROMAMBA_IMAGE)
        layer = Layer("micromamba", call, user_callsite(), (op,), (), force_build)
        image = Image._make(None, layer, (), force_build)
        setup = describe("micromamba setup", python=version)
        return image._step("micromamba", setup, micromamba_setup_ops(version))

    @staticmethod
    def from_registry(
        tag: str,
        secret: Secret | None = None,
        *,
        setup_dockerfile_commands: list[str] = [],  # noqa: B006 - Modal's signature
        add_python: str | None = None,
        force_build: bool = False,
    ) -> Image:
        """An image pulled from an OCI registry (linux/amd64), its config as the base config.

        `secret`'s keys choose the auth: REGISTRY_USERNAME and REGISTRY_PASSWORD, a GCP
        SERVICE_ACCOUNT_JSON or AWS ECR keys (see `from_aws_ecr`); without it credentials
        come from $DOCKER_CONFIG/config.json. `add_python` adds a uv-managed standalone CPython
        under /usr/local. `setup_dockerfile_commands` are Dockerfile instructions (no FROM),
        run as by `dockerfile_commands`.
        """
        return Image._from_registry(
            tag, secret, setup_dockerfile_commands, add_python, force_build, None
        )

    @staticmethod
    def from_aws_ecr(
        tag: str,
        secret: Secret | None = None,
        *,
        setup_dockerfile_commands: list[str] = [],  # noqa: B006 - Modal's signature
        force_build: bool = False,
        add_python: str | None = None,
        **kwargs: object,
    ) -> Image:
        """`from_registry` from AWS ECR: `secret` needs AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY and AWS_REGION (or AWS_ROLE_ARN and AWS_REGION).

        Locally, the registry password is what `aws ecr get-login-password` prints, run with
        the secret's keys when the image is planned; that needs the aws CLI and AWS's API.
        Role-ARN secrets pass these checks but cannot be used locally (Modal assumes the role
        with its own identity): planning such an image raises InvalidError.
        """
        _refuse_secrets("from_aws_ecr", kwargs)
        return Image._from_registry(
            tag, secret, setup_dockerfile_commands, add_python, force_build, "aws"
        )

    @staticmethod
    def from_gcp_artifact_registry(
        tag: str,
        secret: Secret | None = None,
        *,
        setup_dockerfile_commands: list[str] = [],  # noqa: B006 - Modal's signature
        force_build: bool = False,
        add_python: str | None = None,
        **kwargs: object,
    ) -> Image:
        """`from_registry` from GCP Artifact Registry: `secret` needs SERVICE_ACCOUNT_JSON,
        sent as basic auth with the username `_json_key`, as Google documents."""
        _refuse_secrets("from_gcp_artifact_registry", kwargs)
        return Image._from_registry(
            tag, secret, setup_dockerfile_commands, add_python, force_build, "gcp"
        )

    @staticmethod
    def _from_registry(
        tag: str,
        secret: Secret | None,
        setup_dockerfile_commands: list[str],
        add_python: str | None,
        force_build: bool,
        forced_auth: str | None,
    ) -> Image:
        from .registryauth import registry_auth

        if not isinstance(tag, str):
            raise InvalidError(f"from_registry() needs the image reference as a str, not {tag!r}")
        try:
            parse_pull_reference(tag)
        except InvalidError as exc:
            raise InvalidError(f"{exc} (at {user_callsite()})") from None
        secrets = check_secrets([secret] if secret is not None else None, None)
        names = {"aws": "from_aws_ecr", "gcp": "from_gcp_artifact_registry"}
        name = names.get(forced_auth or "", "from_registry")
        auth = registry_auth(secret, forced_auth, name)
        check_str_list(setup_dockerfile_commands, "setup_dockerfile_commands must be a list of str")
        call = describe(f"Image.{name}", tag, add_python=add_python)
        op = FromRegistry(tag, add_python, auth)
        layer = Layer("from_registry", call, user_callsite(), (op,), secrets, force_build)
        image = Image._make(None, layer, (), force_build)
        # any Dockerfile instruction, as in Modal: the lines go through dockerfile_commands
        return image.dockerfile_commands(setup_dockerfile_commands, force_build=force_build)

    @staticmethod
    def from_dockerfile(
        path: str | Path,
        *,
        force_build: bool = False,
        context_dir: str | Path | None = None,
        ignore: object = AUTO_DOCKERIGNORE,
        build_args: dict[str, str] = {},  # noqa: B006 - Modal's signature
        registry_secret: Secret | None = None,
        secrets: Sequence[Secret] | None = None,
        env: Mapping[str, str | None] | None = None,
        gpu: str | None = None,
        add_python: str | None = None,
        context_mount: Mount | None = None,
    ) -> Image:
        """An image built from a Dockerfile (its last stage), one cached step per instruction.

        The build context is `context_dir` (or `context_mount`'s local dir, Modal 0.x's way),
        default the current directory; `ignore` defaults to the Dockerfile's .dockerignore
        (see §7 of Modal's docs). Registry images it names are pulled with `registry_secret`'s
        auth. Steps that fail name their Dockerfile line. `gpu` is accepted and ignored, as
        by every build step: steps run on the CPU. Relative paths are resolved against the
        current directory, as Modal's are, when the method is called.
        """
        if context_dir is not None:
            context_dir = local_path(context_dir, "from_dockerfile", "directory")
        dockerfile = local_path(path, "from_dockerfile")
        return engine().from_dockerfile(
            dockerfile, context_dir=context_dir, context_mount=context_mount, build_args=build_args,
            ignore=ignore, force_build=force_build, secrets=secrets, env=env,
            add_python=add_python, registry_secret=registry_secret,
        )  # fmt: skip

    def dockerfile_commands(
        self,
        *dockerfile_commands: str | list[str],
        context_files: dict[str, str] = {},  # noqa: B006 - Modal's signature
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        gpu: str | None = None,
        context_dir: str | Path | None = None,
        force_build: bool = False,
        ignore: object = AUTO_DOCKERIGNORE,
        build_args: dict[str, str] = {},  # noqa: B006 - Modal's signature
    ) -> Image:
        """Dockerfile instructions (no FROM) on top of this image, one step per instruction.
        `gpu` is accepted and ignored, as by every build step: steps run on the CPU."""
        if context_dir is not None:
            context_dir = local_path(context_dir, "dockerfile_commands", "directory")
        files = {k: local_path(v, "dockerfile_commands") for k, v in context_files.items()}
        return engine().dockerfile_commands(
            self, dockerfile_commands, context_files=files, context_dir=context_dir,
            ignore=ignore, build_args=build_args, secrets=secrets, env=env,
            force_build=force_build,
        )  # fmt: skip

    # ---- build steps ------------------------------------------------------------------------

    def _step(
        self,
        method: str,
        call: str,
        ops: Sequence[Op],
        *,
        force_build: bool = False,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        inherit_force: bool = True,
    ) -> Image:
        all_secrets = check_secrets(secrets, env)
        force = force_build or (self._force and inherit_force)
        layer = Layer(method, call, user_callsite(), tuple(ops), all_secrets, force)
        return Image._make(self, layer, (), force)

    def apt_install(
        self,
        *packages: str | list[str],
        force_build: bool = False,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        gpu: str | None = None,
    ) -> Image:
        """Install Debian packages: `apt-get update`, then `apt-get install -y`."""
        pkgs = flatten("apt_install", "packages", packages)
        if not pkgs:
            return self
        ops = apt_install_ops(pkgs)
        call = describe("apt_install", *pkgs)
        return self._step(
            "apt_install", call, ops, force_build=force_build, env=env, secrets=secrets
        )

    def pip_install(
        self,
        *packages: str | list[str],
        find_links: str | None = None,
        index_url: str | None = None,
        extra_index_url: str | None = None,
        pre: bool = False,
        extra_options: str = "",
        force_build: bool = False,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        gpu: str | None = None,
    ) -> Image:
        """Install Python packages with pip into the image's Python."""
        pkgs = sorted(flatten("pip_install", "packages", packages))
        if not pkgs:
            return self
        refuse_flags("pip_install", pkgs)
        flags = pip_flags(find_links, index_url, extra_index_url, pre, extra_options)
        op = pip_install_op(pkgs, flags)
        call = describe("pip_install", *pkgs, index_url=index_url, extra_options=extra_options)
        return self._step(
            "pip_install", call, (op,), force_build=force_build, env=env, secrets=secrets
        )

    def uv_pip_install(
        self,
        *packages: str | list[str],
        requirements: list[str] | None = None,
        find_links: str | None = None,
        index_url: str | None = None,
        extra_index_url: str | None = None,
        pre: bool = False,
        extra_options: str = "",
        force_build: bool = False,
        uv_version: str | None = None,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        gpu: str | None = None,
    ) -> Image:
        """Install Python packages with uv into the first `python` on PATH."""
        pkgs = sorted(flatten("uv_pip_install", "packages", packages))
        if requirements is not None and (
            not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements)
        ):
            raise InvalidError("requirements must be None or a list of strings")
        if not pkgs and not requirements:
            return self
        refuse_flags("uv_pip_install", pkgs)
        files = [local_path(r, "uv_pip_install") for r in requirements or []]
        ops = uv_pip_install_ops(
            pkgs, files, find_links, index_url, extra_index_url, pre, extra_options,
            check_uv_version(uv_version),
        )  # fmt: skip
        call = describe("uv_pip_install", *pkgs, requirements=requirements, uv_version=uv_version)
        return self._step(
            "uv_pip_install", call, ops, force_build=force_build, env=env, secrets=secrets
        )

    def uv_pip_install_from_requirements(self, requirements_txt: str, **kwargs: Any) -> Image:
        """`uv_pip_install(requirements=[requirements_txt], ...)`."""
        return self.uv_pip_install(requirements=[requirements_txt], **kwargs)

    def pip_install_from_requirements(
        self,
        requirements_txt: str,
        find_links: str | None = None,
        *,
        index_url: str | None = None,
        extra_index_url: str | None = None,
        pre: bool = False,
        extra_options: str = "",
        force_build: bool = False,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        gpu: str | None = None,
    ) -> Image:
        """Install a requirements file with pip."""
        local = local_path(requirements_txt, "pip_install_from_requirements")
        flags = pip_flags(find_links, index_url, extra_index_url, pre, extra_options)
        ops = pip_requirements_ops(local, flags)
        call = describe("pip_install_from_requirements", requirements_txt)
        return self._step(
            "pip_install_from_requirements",
            call,
            ops,
            force_build=force_build,
            env=env,
            secrets=secrets,
        )

    def pip_install_from_pyproject(
        self,
        pyproject_toml: str,
        optional_dependencies: list[str] = [],  # noqa: B006 (Modal's signature)
        *,
        find_links: str | None = None,
        index_url: str | None = None,
        extra_index_url: str | None = None,
        pre: bool = False,
        extra_options: str = "",
        force_build: bool = False,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        gpu: str | None = None,
    ) -> Image:
        """Install `[project].dependencies` (and chosen optional groups) of a pyproject.toml."""
        from .pyproject import read_dependencies

        local = local_path(pyproject_toml, "pip_install_from_pyproject")
        # read on the host only: a container imports the program again, without its files
        on_host = not settings.in_container()
        deps = sorted(read_dependencies(local, optional_dependencies)) if on_host else []
        flags = pip_flags(find_links, index_url, extra_index_url, pre, extra_options)
        op = pip_install_op(deps, flags)
        call = describe("pip_install_from_pyproject", pyproject_toml)
        return self._step(
            "pip_install_from_pyproject",
            call,
            (op,),
            force_build=force_build,
            env=env,
            secrets=secrets,
        )

    def uv_sync(
        self,
        uv_project_dir: str = "./",
        *,
        force_build: bool = False,
        groups: list[str] | None = None,
        extras: list[str] | None = None,
        frozen: bool = True,
        extra_options: str = "",
        uv_version: str | None = None,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        gpu: str | None = None,
    ) -> Image:
        """Install a uv project's locked dependencies into /.uv/.venv and put it on PATH."""
        from .pyproject import check_uv_project

        for name, value in (("groups", groups), ("extras", extras)):
            if value is not None and not isinstance(value, list):
                raise InvalidError(f"Image.uv_sync: {name} must be a list of strings")
        project = Path(local_path(uv_project_dir, "uv_sync", "directory"))
        if not settings.in_container():  # a container imports the program without its files
            check_uv_project(project / "pyproject.toml")
        uv = check_uv_version(uv_version)
        ops = uv_sync_ops(project, groups or [], extras or [], frozen, extra_options, uv)
        call = describe("uv_sync", uv_project_dir)
        return self._step("uv_sync", call, ops, force_build=force_build, env=env, secrets=secrets)

    def micromamba_install(
        self,
        *packages: str | list[str],
        spec_file: str | None = None,
        channels: list[str] = [],  # noqa: B006 - Modal's signature
        force_build: bool = False,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        gpu: str | None = None,
    ) -> Image:
        """Install conda packages (and a local spec file's, with `-f`) into the base
        environment with micromamba, from `channels` (each passed with `-c`)."""
        from .micromamba import micromamba_install_ops

        pkgs = flatten("micromamba_install", "packages", packages)
        if spec_file is not None and not isinstance(spec_file, str):
            raise InvalidError("micromamba_install: spec_file must be a str path")
        check_str_list(channels, "micromamba_install: channels must be a list of strings")
        if not pkgs and spec_file is None:
            return self
        local = None if spec_file is None else local_path(spec_file, "micromamba_install")
        ops = micromamba_install_ops(pkgs, local, channels)
        call = describe("micromamba_install", *pkgs, spec_file=spec_file, channels=channels)
        return self._step(
            "micromamba_install", call, ops, force_build=force_build, env=env, secrets=secrets
        )

    def poetry_install_from_file(
        self,
        poetry_pyproject_toml: str,
        poetry_lockfile: str | None = None,
        *,
        ignore_lockfile: bool = False,
        force_build: bool = False,
        with_: list[str] = [],  # noqa: B006 - Modal's signature
        without: list[str] = [],  # noqa: B006 - Modal's signature
        only: list[str] = [],  # noqa: B006 - Modal's signature
        poetry_version: str | None = "latest",
        old_installer: bool = False,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        gpu: str | None = None,
    ) -> Image:
        """Install a Poetry project's dependencies (not the project) into the image's Python
        with `poetry install --no-root`, from its lockfile unless `ignore_lockfile`.

        The lockfile defaults to poetry.lock beside the pyproject.toml. Poetry itself is
        installed with pip first (`poetry_version="latest"`, or that exact version), unless
        `poetry_version` is None.
        """
        if not isinstance(poetry_pyproject_toml, str):
            raise InvalidError("poetry_install_from_file: poetry_pyproject_toml must be a str")
        if poetry_version is not None and not isinstance(poetry_version, str):
            raise InvalidError("poetry_install_from_file: poetry_version must be a str or None")
        groups = (("--with", with_), ("--without", without), ("--only", only))
        for flag, names in groups:
            check_str_list(names, f"poetry_install_from_file: {flag} groups must be a list of str")
        pyproject = local_path(poetry_pyproject_toml, "poetry_install_from_file")
        lockfile = None
        if not ignore_lockfile:
            lockfile = _poetry_lockfile(pyproject, poetry_lockfile)
        ops = poetry_ops(pyproject, lockfile, poetry_version, old_installer, groups)
        call = describe("poetry_install_from_file", poetry_pyproject_toml)
        return self._step(
            "poetry_install_from_file",
            call,
            ops,
            force_build=force_build,
            env=env,
            secrets=secrets,
        )

    def pip_install_private_repos(
        self,
        *repositories: str,
        git_user: str,
        find_links: str | None = None,
        index_url: str | None = None,
        extra_index_url: str | None = None,
        pre: bool = False,
        extra_options: str = "",
        gpu: str | None = None,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        force_build: bool = False,
    ) -> Image:
        """Install packages from private git repositories on github.com or gitlab.com with pip.

        Each repository is a git URL without scheme (`github.com/org/repo@ref`, optionally with
        `#subdirectory=...`), fetched over HTTPS as `git_user` with the token in the secrets'
        GITHUB_TOKEN (or GITLAB_TOKEN). The token reaches git through the step's environment
        only: it is in no command line, and never in a layer or the build log.
        """
        if not secrets:
            raise InvalidError(
                "No secrets provided to function. Installing private packages requires tokens "
                "to be passed via modal.Secret objects."
            )
        if not isinstance(git_user, str):
            raise InvalidError("pip_install_private_repos: git_user must be a str")
        invalid = [
            repo
            for repo in repositories
            if not isinstance(repo, str) or repo.split("/")[0] not in TOKEN_VARIABLES
        ]
        if invalid:
            raise InvalidError(
                f"{len(invalid)} out of {len(repositories)} given repository refs are invalid. "
                f"Invalid refs: {invalid}. "
            )
        flags = pip_flags(find_links, index_url, extra_index_url, pre, extra_options)
        # the secrets the missing-token message names, env's too, as in Modal
        names = ",".join(str(secret) for secret in check_secrets(secrets, env))
        ops = private_repo_ops(repositories, git_user, flags, names)
        call = describe("pip_install_private_repos", *repositories, git_user=git_user)
        return self._step(
            "pip_install_private_repos",
            call,
            ops,
            force_build=force_build,
            env=env,
            secrets=secrets,
        )

    def run_commands(
        self,
        *commands: str | list[str],
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        volumes: Mapping[str, Any] | None = None,
        gpu: str | None = None,
        force_build: bool = False,
    ) -> Image:
        """Run shell commands, each as its own step of one layer (like separate RUN lines)."""
        cmds = flatten("run_commands", "commands", commands)
        if not cmds:
            return self
        call = describe("run_commands", *cmds)
        ops = tuple(Run(c) for c in cmds)
        return self._step(
            "run_commands", call, ops, force_build=force_build, env=env, secrets=secrets
        )

    def run_function(
        self,
        raw_f: Callable[..., Any],
        *,
        env: Mapping[str, str | None] | None = None,
        secrets: Sequence[Secret] | None = None,
        volumes: Mapping[str | PurePosixPath, Volume] = {},
        network_file_systems: Mapping[str | PurePosixPath, object] = {},
        gpu: str | list[str] | None = None,
        cpu: float | None = None,
        memory: int | None = None,
        timeout: float = 3600,
        cloud: str | None = None,
        region: str | Sequence[str] | None = None,
        force_build: bool = False,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] = {},
        include_source: bool = True,
    ) -> Image:
        """Run `raw_f` at build time in a container of this image and keep what it writes.

        The layer's cache key is the function's source, the values of the globals it uses, and
        its arguments: editing any of them rebuilds the layer. `volumes` are mounted read-write
        and what the function writes to them stays out of the layer. `gpu`, `cpu`, `memory`,
        `cloud` and `region` have no local meaning; network file systems are not supported.
        """
        if network_file_systems:
            raise InvalidError(
                "Image.run_function: network_file_systems are not supported locally; use volumes"
            )
        from ..volume import check_volumes  # (only here: a definition rarely needs volume.py)

        mounted = tuple(check_volumes(volumes).items())
        if not callable(raw_f):
            raise InvalidError("Image.run_function expects a function")
        if getattr(raw_f, "__name__", "") == "<lambda>":
            raise InvalidError("Image.run_function does not support lambda functions.")
        raw_f = getattr(raw_f, "raw_f", raw_f)  # accept an @app.function too
        op = RunFunction(
            raw_f, tuple(args), tuple(dict(kwargs).items()), timeout, include_source, mounted
        )
        call = f"run_function({raw_f.__qualname__})"
        return self._step(
            "run_function", call, (op,), force_build=force_build, env=env, secrets=secrets
        )

    # ---- config -----------------------------------------------------------------------------

    def env(self, vars: dict[str, str]) -> Image:
        """Set environment variables in the image (persist into containers)."""
        if not isinstance(vars, Mapping):
            raise InvalidError("Image.env expects a dict of str → str")
        bad = [k for k, v in vars.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise InvalidError(
                f"Image ENV variables must be strings. Invalid keys: {bad} (at {user_callsite()})"
            )
        check_env_vars(vars)
        op = SetConfig("env", tuple(vars.items()))
        return self._step("env", describe("env", dict(vars)), (op,), inherit_force=False)

    def workdir(self, path: str | PurePosixPath) -> Image:
        """Set the working directory for later steps and for containers (created if missing)."""
        if not isinstance(path, (str, PurePosixPath)):
            raise InvalidError("Image.workdir expects a str or PurePosixPath")
        op = SetConfig("workdir", str(path))
        return self._step("workdir", describe("workdir", str(path)), (op,), inherit_force=False)

    def entrypoint(self, entrypoint_commands: list[str]) -> Image:
        """Set the image's ENTRYPOINT."""
        check_str_list(entrypoint_commands, "entrypoint_commands must be a list of strings.")
        op = SetConfig("entrypoint", tuple(entrypoint_commands))
        return self._step("entrypoint", describe("entrypoint", entrypoint_commands), (op,))

    def cmd(self, cmd: list[str]) -> Image:
        """Set the image's CMD."""
        check_str_list(cmd, "Image CMD must be a list of strings.")
        op = SetConfig("cmd", tuple(cmd))
        return self._step("cmd", describe("cmd", cmd), (op,))

    def shell(self, shell_commands: list[str]) -> Image:
        """Set the shell later run_commands steps run under (Docker's SHELL)."""
        check_str_list(shell_commands, "shell_commands must be a list of strings.")
        op = SetConfig("shell", tuple(shell_commands))
        return self._step("shell", describe("shell", shell_commands), (op,))

    # ---- local files ------------------------------------------------------------------------

    def copy_local_file(self, local_path: str | Path, remote_path: str | Path = "./") -> Image:
        """Copy a local file into a layer; a relative remote path resolves against WORKDIR."""
        op = CopyLocal(os.path.abspath(os.path.expanduser(local_path)), str(remote_path))
        call = describe("copy_local_file", str(local_path), str(remote_path))
        return self._step("copy_local_file", call, (op,))

    def copy_local_dir(
        self,
        local_path: str | Path,
        remote_path: str | Path = ".",
        ignore: Sequence[str] | Callable[[Path], bool] = [],  # noqa: B006 (Modal's signature)
    ) -> Image:
        """Copy a local directory's contents into a layer, skipping `ignore` patterns."""
        op = CopyLocal(abs_dir(local_path), str(remote_path), ignore_spec(ignore), is_dir=True)
        call = describe("copy_local_dir", str(local_path), str(remote_path), ignore=ignore)
        return self._step("copy_local_dir", call, (op,))

    def add_local_file(
        self, local_path: str | Path, remote_path: str, *, copy: bool = False
    ) -> Image:
        """Add a local file at an absolute path: attached at start, or baked in with copy=True."""
        remote = absolute_remote("add_local_file", str(remote_path))
        local = os.path.abspath(os.path.expanduser(local_path))
        call = describe("add_local_file", str(local_path), remote, copy=copy)
        return self._add_local("add_local_file", call, CopyLocal(local, remote), copy)

    def add_local_dir(
        self,
        local_path: str | Path,
        remote_path: str,
        *,
        copy: bool = False,
        ignore: Sequence[str] | Callable[[Path], bool] = [],  # noqa: B006 (Modal's signature)
    ) -> Image:
        """Add a local directory at an absolute path: attached at start, or baked in."""
        remote = absolute_remote("add_local_dir", str(remote_path))
        op = CopyLocal(abs_dir(local_path), remote, ignore_spec(ignore), is_dir=True)
        call = describe("add_local_dir", str(local_path), remote, copy=copy)
        return self._add_local("add_local_dir", call, op, copy)

    def add_local_python_source(
        self,
        *modules: str,
        copy: bool = False,
        ignore: Sequence[str] | Callable[[Path], bool] = NON_PYTHON_FILES,
    ) -> Image:
        """Add local Python modules or packages under /root, where containers import them."""
        from .pysource import locate_module

        image = self
        for module in modules:
            if not isinstance(module, str):
                raise InvalidError("Local Python modules must be specified as strings.")
            local, remote = locate_module(module)
            is_dir = os.path.isdir(local)
            op = CopyLocal(local, remote, ignore_spec(ignore) if is_dir else (), is_dir)
            call = describe("add_local_python_source", module, copy=copy)
            image = image._add_local("add_local_python_source", call, op, copy)
        return image

    def _add_local(self, method: str, call: str, op: CopyLocal, copy: bool) -> Image:
        if copy:
            return self._step(method, call, (op,), inherit_force=False)
        mount = LocalMount(op.local, op.remote, op.ignore, op.is_dir, user_callsite())
        return Image._make(self, None, (*self._mounts, mount), self._force)

    # ---- composition and building -----------------------------------------------------------

    def pipe(self, func: Callable[..., Image], *args: Any, **kwargs: Any) -> Image:
        """Return `func(self, *args, **kwargs)`, for composing image recipes."""
        return func(self, *args, **kwargs)

    def build(self, app: object = None, *, force: bool = False) -> Image:
        """Build every layer now (with a live view on a terminal) and return self.

        `app` is Modal's argument (the app whose session runs the build there); builds here
        need no app, so it is accepted and changes nothing.
        """
        engine().build(self, force=force)
        return self

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        format: str = "oci",
        compression: str | None = None,
        tag: str = "imagewright:latest",
    ) -> Any:
        """Build if needed, then write the image to `path` as an OCI layout or docker-archive.

        `format="oci"` writes an OCI image layout (a directory, or a tar of one when `path`
        ends in .tar); `format="docker"` a tar that `docker load` and `podman load` accept.
        `compression` is "zstd", "gzip" or "none" (default: zstd for oci, gzip for docker).
        Returns an `ExportResult` with the manifest digest and image ID.
        """
        return engine().export(self, path, format=format, compression=compression, tag=tag)

    def to_dockerfile(self, directory: str | os.PathLike[str], **options: bool | str) -> Path:
        """Write DIRECTORY/Dockerfile and its build context (see imagewright.export.dockerfile
        for `uv_from_context`, `ca_bundle` and `bare_base`); nothing is built."""
        return engine().to_dockerfile(self, directory, **options)

    def push(self, ref: str, *, insecure: bool = False, compression: str = "gzip") -> Any:
        """Build if needed, then push the image to `ref` (REGISTRY/REPO[:TAG]).

        Blobs the registry already holds are not sent again. Credentials come from
        $DOCKER_CONFIG/config.json; `insecure` allows plain HTTP (loopback registries always
        use it). Raises RegistryError when the registry refuses or drops the push. Returns a
        `PushResult`.
        """
        return engine().push(self, ref, insecure=insecure, compression=compression)

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """Guard imports that exist only inside the image.

        Locally any exception in the block is swallowed (with a warning unless it is an
        ImportError); inside a container of the image it propagates.
        """
        try:
            yield
        except Exception as exc:
            if settings.in_container():
                raise
            if not isinstance(exc, ImportError):
                warnings.warn(
                    f"Warning: caught a non-ImportError exception in an `imports()` block: {exc!r}",
                    stacklevel=3,
                )


def _poetry_lockfile(pyproject: str, lockfile: str | None) -> str:
    """The lockfile poetry_install_from_file copies in: the one given, or poetry.lock beside
    the pyproject.toml, which must then exist on the host (Modal's check and message)."""
    if lockfile is not None:
        return local_path(lockfile, "poetry_install_from_file")
    inferred = Path(pyproject).parent / "poetry.lock"
    if not inferred.exists() and not settings.in_container():
        raise NotFoundError(
            f"poetry.lock not found at inferred location: {inferred.absolute()}. "
            f"If a lockfile is not needed, `ignore_lockfile=True` can be used. "
            f"(at {user_callsite()})"
        )
    return str(inferred)


def _refuse_secrets(method: str, kwargs: dict[str, object]) -> None:
    """Modal's from_aws_ecr / from_gcp_artifact_registry take one `secret`, never `secrets`."""
    if "secrets" in kwargs:
        raise InvalidTypeError(
            "Passing a list of 'secrets' is not supported; use the singular 'secret' argument."
        )
    if kwargs:
        raise InvalidTypeError(
            f"{method}() got an unexpected keyword argument {next(iter(kwargs))!r}"
        )

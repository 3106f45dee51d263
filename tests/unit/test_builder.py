"""The builder's cache logic on a fake sandbox: as any user, with no kernel namespaces.

The fake runs no command: it writes each one into the step's layer as a file and fails on
request, and it copies local files straight into the layer. What the builder decides (which
steps run, what it caches, what a failure leaves behind) is the same as with bubblewrap.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import imagewright as modal
from imagewright.exception import ImageBuildError
from imagewright.execute.builder import build_image
from imagewright.execute.events import BuildResult
from imagewright.execute.overlay import Overlay, SandboxCommand
from imagewright.plan.files import FileEntry
from imagewright.store.store import Store


class FakeSandbox:
    """Records each command in the layer (as /ran/<n>) and fails those that say `fail`."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, overlay: Overlay, cmd: SandboxCommand, on_line: Callable[[str], None]) -> int:
        command = cmd.argv[-1]
        self.commands.append(command)
        on_line(f"fake: {command}")
        ran = overlay.upper / "ran"
        ran.mkdir(exist_ok=True)
        (ran / str(len(self.commands))).write_text(command)
        return 3 if "fail" in command else 0

    def copy_into(
        self,
        overlay: Overlay,
        entries: tuple[FileEntry, ...],
        on_line: Callable[[str], None],
        owner: str | None = None,
    ) -> int:
        for entry in entries:
            dest = overlay.upper / entry.dest.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if entry.kind == "file":
                shutil.copyfile(entry.source, dest)
        return 0


class Quiet:
    def build_started(self, plan: object) -> None: ...
    def step_started(self, index: int, step: object) -> None: ...
    def step_output(self, index: int, line: str) -> None: ...
    def step_finished(self, index: int, step: object, result: object) -> None: ...
    def build_finished(self, result: object) -> None: ...


@pytest.fixture
def build(tmp_path: Path) -> Callable[..., tuple[BuildResult, FakeSandbox]]:
    store = Store(tmp_path / "store")

    def run(
        image: modal.Image, sandbox: FakeSandbox | None = None, **kwargs: object
    ) -> tuple[BuildResult, FakeSandbox]:
        sandbox = sandbox or FakeSandbox()
        result = build_image(image, store=store, reporter=Quiet(), sandbox=sandbox, **kwargs)
        return result, sandbox

    return run


def test_a_second_build_runs_nothing(build):
    image = modal.Image.from_scratch().run_commands("one").run_commands("two")
    first, sandbox = build(image)
    assert sandbox.commands == ["one", "two"] and not any(s.cached for s in first.steps)
    second, sandbox = build(image)
    assert sandbox.commands == [] and all(s.cached for s in second.steps)
    assert second.plan.key == first.plan.key


def test_editing_a_copied_file_reruns_that_step_and_those_after(build, tmp_path):
    source = tmp_path / "config.txt"
    source.write_text("a")
    image = (
        modal.Image.from_scratch()
        .run_commands("before")
        .add_local_file(source, "/config.txt", copy=True)
        .run_commands("after")
    )
    build(image)
    source.write_text("b")
    result, sandbox = build(image)
    assert [s.cached for s in result.steps] == [True, True, False, False]  # scratch first
    assert sandbox.commands == ["after"]


def test_a_failed_step_caches_nothing_and_keeps_the_steps_before(build):
    failing = modal.Image.from_scratch().run_commands("good").run_commands("fail now")
    with pytest.raises(ImageBuildError) as failure:
        build(failing)
    assert "'fail now' exited with status 3" in str(failure.value)
    sandbox = FakeSandbox()
    with pytest.raises(ImageBuildError):
        build(failing, sandbox)
    assert sandbox.commands == ["fail now"]  # "good" stayed cached; the failure did not


def test_force_build_reruns_only_from_the_forced_step(build):
    base = modal.Image.from_scratch().run_commands("stable")
    build(base.run_commands("stamp"))
    result, sandbox = build(base.run_commands("stamp", force_build=True))
    assert [s.cached for s in result.steps] == [True, True, False]
    assert sandbox.commands == ["stamp"]

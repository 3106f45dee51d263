"""`build --explain`: keys keep their values now that they carry their components, and the diff
of components names what changed. Offline; any user can run these."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagewright import Image, Secret
from imagewright.plan import keys
from imagewright.plan.explain import NO_EARLIER, EarlierStep, explain
from imagewright.plan.planner import Plan, plan_image
from imagewright.store.builds import last_build, record_build
from imagewright.store.store import Store

# The keys of _definition() below, computed before keys carried components: a change here is a
# change of every user's cache. Pinned to the versions they were computed with.
GOLDEN = (
    "72d6e818563790c65c970201a6476aabbfcc3847af7a8231800ab34e882f7095",
    "8ded453f1bff230205c8201ec6f11ee42c375923dccdf737f542bb1d4f17c963",
    "925d319685801fa5ecd686a2bedc78f49a427af531ee711aa87d00e89e407efd",
    "ae3a05d2b6a702e5265dec601a2d2463efb94f88dd64b40a211ef0c60dd8e888",
    "f60e980ac89b8749348a71f4cb9d6b68a8df7e3089470d3dc7e2d064cb6bb62b",
    "f8c1b2345d491da3751162ee88f560e740458e4c57124ac80d9691904ab578aa",
    "01bcf199818f84d2154aa5849dbc7299cca34ca6fa067b001c240a78348dad0f",
)


@pytest.fixture
def context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(keys, "BUILDER_VERSION", "imagewright-2026.11.2")
    monkeypatch.setattr(keys, "BUNDLED_UV", "0.13.9")
    (tmp_path / "req.txt").write_text("pandas==2.1\n")
    os.chmod(tmp_path / "req.txt", 0o644)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _definition(package: str = "pandas==2.1") -> Image:
    return (
        Image.debian_slim(python_version="3.11")
        .env({"A": "1"})
        .workdir("/app")
        .copy_local_file("req.txt", "/app/req.txt")
        .run_commands("echo hi", secrets=[Secret.from_dict({"TOKEN": "x"})])
        .uv_pip_install(package)
    )


def _earlier(plan: Plan) -> list[EarlierStep]:
    return [EarlierStep(s.key, s.description, s.components) for s in plan.steps]


def _missing(plan: Plan, earlier: Plan) -> list[list[str]]:
    """The reasons of each step of `plan` that `earlier` did not build."""
    built = {s.key for s in earlier.steps}
    return [list(e.reasons) for e in explain(plan, _earlier(earlier), built.__contains__)]


def test_keys_are_unchanged(context: Path) -> None:
    assert tuple(s.key for s in plan_image(_definition()).steps) == GOLDEN


def test_components_are_what_the_key_hashes(context: Path) -> None:
    step = plan_image(_definition()).steps[5]
    ops = step.components["ops"]
    assert isinstance(ops, list)
    assert keys.layer_key(step.parent_key, ops, ["TOKEN"]) == (step.key, step.components)


def test_a_changed_file_is_named_and_later_steps_blame_their_parent(context: Path) -> None:
    before = plan_image(_definition())
    (context / "req.txt").write_text("pandas==2.2\n")
    after = plan_image(_definition())
    (copy, file_reason), run, pip = [
        (e.step, e.reasons[0]) for e in explain(after, _earlier(before), lambda k: False)
    ][4:]
    assert copy == 5
    assert file_reason.startswith("file /app/req.txt (from req.txt) changed (sha256 ")
    assert run == (6, "parent step 5 changed") and pip == (7, "parent step 6 changed")


def test_a_changed_argument_is_named(context: Path) -> None:
    before, after = plan_image(_definition()), plan_image(_definition("pandas==2.2"))
    assert _missing(after, before) == [["argument changed: 'pandas==2.1' → 'pandas==2.2'"]]


def test_uv_builder_and_secret_names(context: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = plan_image(_definition())
    monkeypatch.setattr(keys, "BUNDLED_UV", "0.14.0")
    assert _missing(plan_image(_definition()), before) == [["uv 0.13.9 → 0.14.0"]]
    monkeypatch.setattr(keys, "BUILDER_VERSION", "imagewright-2027.1.0")
    reasons = _missing(plan_image(_definition()), before)
    assert reasons[0] == ["builder imagewright-2026.11.2 → imagewright-2027.1.0"]
    assert reasons[2] == [
        "builder imagewright-2026.11.2 → imagewright-2027.1.0",
        "parent step 2 changed",
    ]
    monkeypatch.undo()
    monkeypatch.chdir(context)
    other = _definition().run_commands("true", secrets=[Secret.from_dict({"B": "1"})])
    again = _definition().run_commands("true", secrets=[Secret.from_dict({"A": "1", "B": "2"})])
    assert _missing(plan_image(again), plan_image(other)) == [['secret names ["B"] → ["A", "B"]']]


def test_config_added_steps_and_no_earlier_build(context: Path) -> None:
    before = plan_image(_definition())
    after = plan_image(_definition().env({"A": "2"}).run_commands("a", "b"))
    assert _missing(
        plan_image(_definition().env({"A": "2"})), plan_image(_definition().env({"A": "3"}))
    ) == [['env changed: [["A", "3"]] → [["A", "2"]]']]
    assert _missing(after, before)[-1] == ["a new step (the earlier build had 7)"]
    cached = explain(after, None, {s.key for s in before.steps}.__contains__)
    assert [e.reasons for e in cached] == [(NO_EARLIER,), (NO_EARLIER,)]
    assert explain(before, _earlier(before), lambda k: True) == []


def test_a_tree_names_its_files(context: Path) -> None:
    tree = context / "tree"
    tree.mkdir()
    for index in range(14):
        (tree / f"f{index:02}").write_text("1")
    before = plan_image(_definition().copy_local_dir("tree", "/t"))
    for index in range(12):
        (tree / f"f{index:02}").write_text("2")
    (tree / "f12").unlink()
    os.chmod(tree / "f13", 0o755)
    (tree / "new").write_text("")
    (reasons,) = _missing(plan_image(_definition().copy_local_dir("tree", "/t")), before)
    assert reasons[0].startswith("file /t/f00 (from tree/f00) changed (sha256 6b86b273ff34… → ")
    assert reasons[-1] == "and 5 more files"  # 12 changed, one mode, one removed, one added
    assert len(reasons) == 11


def test_records_round_trip_through_the_store(context: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    store.root.mkdir()
    plan = plan_image(_definition())
    assert last_build(store, "/x/app.py::img") is None
    record_build(store, "/x/app.py::img", plan)
    earlier = last_build(store, "/x/app.py::img")
    assert earlier is not None and [s.key for s in earlier] == list(GOLDEN)
    assert last_build(store, "/x/app.py::other") is None
    # a step built with these very inputs whose layer was pruned since
    assert explain(plan, earlier, lambda k: k != GOLDEN[-1])[0].reasons == (
        "built before with these same inputs, but its layer has left the store",
    )
    next(store.root.glob("builds/*.json")).write_text("{garbage")
    assert last_build(store, "/x/app.py::img") is None

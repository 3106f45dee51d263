"""Each kind of op, and of planned action, has exactly one entry in each stage's table: a new
kind that a stage does not handle fails here, not halfway through a build or an export."""

from __future__ import annotations

from typing import get_args

from imagewright.definition.ops import Op
from imagewright.execute.steps import _ACTIONS
from imagewright.export.dockerfile import _BASE_OPS, _STEP_OPS
from imagewright.plan.planner import _BASES, _OPS, Action


def test_plan_plans_every_kind_of_op_once() -> None:
    assert not set(_BASES) & set(_OPS)
    assert set(_BASES) | set(_OPS) == set(get_args(Op))


def test_execute_runs_every_kind_of_action() -> None:
    assert set(_ACTIONS) == set(get_args(Action))


def test_dockerfile_export_writes_every_kind_of_op_once() -> None:
    assert not set(_BASE_OPS) & set(_STEP_OPS)
    assert set(_BASE_OPS) | set(_STEP_OPS) == set(get_args(Op))

"""Each kind of op, and of planned action, has exactly one entry in each stage's table: a new
kind that a stage does not handle fails here, not halfway through a build or an export."""

from __future__ import annotations

import ast
import inspect
from typing import get_args

from imagewright.definition import ops
from imagewright.execute.steps import _ACTIONS
from imagewright.export.dockerfile import _BASE_OPS, _STEP_OPS
from imagewright.plan.planner import _BASES, _OPS, Action


def _op_kinds() -> set[type]:
    """The classes of ops.py's `Op` alias, which exists for type checkers only (ops.py is
    imported by every program, and typing's Union is not loaded for it): read from its source."""
    tree = ast.parse(inspect.getsource(ops))
    alias = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "Op"
    )
    assert alias is not None
    names = [n.id for n in ast.walk(alias) if isinstance(n, ast.Name)]
    assert len(names) >= 8, names
    return {getattr(ops, name) for name in names}


def test_plan_plans_every_kind_of_op_once() -> None:
    assert not set(_BASES) & set(_OPS)
    assert set(_BASES) | set(_OPS) == _op_kinds()


def test_execute_runs_every_kind_of_action() -> None:
    assert set(_ACTIONS) == set(get_args(Action))


def test_dockerfile_export_writes_every_kind_of_op_once() -> None:
    assert not set(_BASE_OPS) & set(_STEP_OPS)
    assert set(_BASE_OPS) | set(_STEP_OPS) == _op_kinds()

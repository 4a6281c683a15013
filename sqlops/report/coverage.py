"""Assertion coverage of the project as it is now: which models and columns some check names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlops.assertions.definition import Assertion, CheckKind
from sqlops.project.definition import Kind

if TYPE_CHECKING:
    from sqlops.project.loader import Project


@dataclass(frozen=True)
class ModelCoverage:
    node: str
    assertions: int
    columns: tuple[str, ...] | None  # None: the model's columns are not known
    covered: tuple[str, ...]  # columns some assertion names

    @property
    def uncovered(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns or () if c not in self.covered)

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "assertions": self.assertions,
            "columns": None if self.columns is None else len(self.columns),
            "covered_columns": list(self.covered),
            "uncovered_columns": list(self.uncovered),
        }


@dataclass(frozen=True)
class Coverage:
    models: tuple[ModelCoverage, ...]

    @property
    def covered_models(self) -> int:
        return sum(1 for m in self.models if m.assertions)

    @property
    def model_rate(self) -> float | None:
        return self.covered_models / len(self.models) if self.models else None

    @property
    def columns(self) -> int:
        return sum(len(m.columns) for m in self.models if m.columns is not None)

    @property
    def covered_columns(self) -> int:
        return sum(len(m.covered) for m in self.models if m.columns is not None)

    @property
    def column_rate(self) -> float | None:
        return self.covered_columns / self.columns if self.columns else None

    @property
    def without_assertions(self) -> tuple[str, ...]:
        return tuple(m.node for m in self.models if not m.assertions)

    def to_json(self) -> dict[str, Any]:
        return {
            "models": len(self.models),
            "covered_models": self.covered_models,
            "model_rate": self.model_rate,
            "columns": self.columns,
            "covered_columns": self.covered_columns,
            "column_rate": self.column_rate,
            "models_without_assertions": list(self.without_assertions),
            "by_model": [m.to_json() for m in self.models],
        }


def coverage(project: Project) -> Coverage:
    models = []
    for node in sorted(project.nodes.values(), key=lambda n: n.id):
        if node.kind is not Kind.MODEL:
            continue
        named: set[str] = set()
        for assertion in node.assertions:
            named |= {c.lower() for c in named_columns(assertion, project.dialect)}
        columns = node.column_names
        covered = tuple(c for c in columns or () if c.lower() in named)
        models.append(ModelCoverage(node.id, len(node.assertions), columns, covered))
    return Coverage(tuple(models))


def named_columns(assertion: Assertion, dialect: str) -> list[str]:
    """The model's columns an assertion names: a builtin's arguments, or the columns of a
    row or table check and its `where` outside subqueries. A query block names none."""
    if assertion.kind is CheckKind.QUERY:
        return []
    if assertion.kind in (CheckKind.ROW, CheckKind.TABLE):
        texts = [assertion.expression, assertion.where or ""]
        return [c for text in texts if text for c in _own_columns(text, dialect)]
    return list(assertion.columns)


def _own_columns(sql: str, dialect: str) -> list[str]:
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:  # it parsed when the project loaded; be safe anyway
        return []
    # `st.a` on a model is field `a` of struct column `st`: no table is in scope
    return [
        col.parts[0].name
        for col in tree.find_all(exp.Column)
        if not col.find_ancestor(exp.Query) and isinstance(col.this, exp.Identifier)
    ]

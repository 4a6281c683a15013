"""Sources: is a source's real table or file what its CREATE TABLE declares?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlglot
from sqlglot.errors import SqlglotError

from sqlops.engines.base import Engine, Relation
from sqlops.errors import EngineError
from sqlops.project.definition import Node

if TYPE_CHECKING:
    from sqlops.project.loader import Project


def check_source_columns(project: Project, engine: Engine, node: Node) -> list[str]:
    """Schema drift: a missing or retyped column is an error, an added one a warning."""
    relation = Relation(node.schema, node.name)
    declared = node.columns or ()
    warnings: list[str] = []
    if node.location:
        actual = engine.file_columns(project.location_path(node))
        where = node.location
    else:
        found = engine.columns(relation)
        if found is None:
            raise EngineError(
                f"source {node.id} does not exist in the target database",
                hint=f"load it, or read it from a file with `-- @location data/{node.name}.csv` "
                f"in {node.relpath}",
            )
        actual = found
        where = f"table {node.id}"
    have = {name.lower(): ctype for name, ctype in actual}
    problems = []
    for col in declared:
        if col.name.lower() not in have:
            problems.append(f"column `{col.name}` is declared but missing from {where}")
        elif (
            not node.location
            and col.type
            and not _same_type(col.type, have[col.name.lower()], project.dialect, engine.dialect)
        ):
            problems.append(
                f"column `{col.name}` is declared {col.type} but is {have[col.name.lower()]}"
            )
    if problems:
        raise EngineError(
            f"schema drift in source {node.id}: " + "; ".join(problems),
            hint=f"update the CREATE TABLE in {node.relpath} or fix the data",
        )
    known = {c.name.lower() for c in declared}
    for name, _ in actual:
        if name.lower() not in known:
            warnings.append(f"{where} has column `{name}` that {node.relpath} does not declare")
    return warnings


def _same_type(declared: str, actual: str, dialect: str, target: str) -> bool:
    try:
        a = sqlglot.exp.DataType.build(declared, dialect=dialect).sql(target)
        b = sqlglot.exp.DataType.build(actual, dialect=target).sql(target)
    except (SqlglotError, ValueError):
        return declared.lower() == actual.lower()
    return a.upper() == b.upper()

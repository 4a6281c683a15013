"""How a model's references are pointed at the nodes they name, and the error for a column that
is not there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp

from sqlops.errors import ProjectError, did_you_mean, snippet_at
from sqlops.graph.lineage import MissingColumn
from sqlops.project.definition import Node
from sqlops.syntax import LineMap, normalize_name


def missing_column_error(
    missing: MissingColumn, path: Path, text: str, lines: LineMap | None, upstream: Node | None
) -> ProjectError:
    """A model names a column its upstream (or its own CTE or subquery) does not have: where,
    and how to fix it."""
    line = lines(missing.line) if lines and missing.line else None
    column = missing.col if line == missing.line else None  # Jinja may have moved it
    if upstream is None:
        known: tuple[str, ...] = missing.known
        owner = f"`{missing.written.rpartition('.')[0]}`"
        hint = f"{owner} returns: {', '.join(known)}; select the column there, or fix the name"
    else:
        known = upstream.column_names or ()
        owner = upstream.id
        hint = (
            f"{upstream.id} ({upstream.relpath}) has columns: {', '.join(known)}; if the column "
            "was removed or renamed there, change this model too"
        )
    return ProjectError(
        f"`{missing.written}`: {owner} has no column `{missing.column}`"
        f"{did_you_mean(missing.column, known)}",
        path=path,
        line=line,
        column=column,
        snippet=snippet_at(text, line, column) if line else None,
        hint=hint,
    )


def point(
    tree: exp.Expr, tables: Sequence[exp.Table], targets: Sequence[Node | Target], dialect: str
) -> None:
    """Name in a query, for each of its table references (`tables`, in `syntax.table_refs`'s
    order), the node it resolved to; a column qualified by such a table's schema drops it."""
    for table, target in zip(tables, targets, strict=True):
        point_at(table, target)
    drop_schema_qualifiers(tree, {f"{t.schema}.{t.name}" for t in targets}, dialect)


@dataclass(frozen=True)
class Target:
    """What `point` needs of a node: its relation's names (a snapshot keeps only these)."""

    schema: str
    name: str


def point_at(table: exp.Table, node: Node | Target) -> None:
    """Rewrite a table reference to the node's `schema.name`, keeping what it was called."""
    alias = table.alias
    written = table.name
    table.set("this", exp.to_identifier(node.name))
    table.set("db", exp.to_identifier(node.schema))
    table.set("catalog", None)
    if not alias:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(written)))


def drop_schema_qualifiers(ast: exp.Expr, tables: set[str], dialect: str) -> None:
    """`staging.orders.id` becomes `orders.id`: a table is known by its alias once rewritten.

    Only names of tables the query reads; `a.b.c` may also be a field of a struct column.
    """
    for column in ast.find_all(exp.Column):
        db, table = column.args.get("db"), column.args.get("table")
        if db is None or table is None:
            continue
        name = f"{normalize_name(db.name, dialect, db.quoted)}."
        name += normalize_name(table.name, dialect, table.quoted)
        if name in tables:
            column.set("db", None)
            column.set("catalog", None)

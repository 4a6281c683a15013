"""Rewrites a target needs before sqlglot writes a query in its dialect: constructs of the
project's dialect that the target lacks but that mean the same in other words."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError, UnsupportedError
from sqlglot.optimizer.qualify import qualify

from sqlops.errors import ProjectError
from sqlops.project.definition import Kind, Node
from sqlops.syntax import schema_for_sqlglot

if TYPE_CHECKING:
    from sqlops.project.loader import Project

# targets without GROUP BY ALL
_NO_GROUP_BY_ALL = frozenset({"postgres"})


def for_target(query: exp.Expr, dialect: str) -> exp.Expr:
    """The query, rewritten in place where `dialect` needs it."""
    if dialect in _NO_GROUP_BY_ALL:
        for select in query.find_all(exp.Select):
            group = select.args.get("group")
            if isinstance(group, exp.Group) and group.args.get("all"):
                _expand_group_by_all(select)
    return query


def _expand_group_by_all(select: exp.Select) -> None:
    """GROUP BY ALL groups by every select item that is not an aggregate: name them by position."""
    positions = [
        exp.Literal.number(i)
        for i, item in enumerate(select.expressions, start=1)
        if not any(_aggregate_of(select, node) for node in item.walk())
        and not isinstance(item.unalias(), exp.Literal)
    ]
    select.set("group", exp.Group(expressions=positions) if positions else None)


def _aggregate_of(select: exp.Select, node: exp.Expr) -> bool:
    """An aggregate of this SELECT: not the function of a window (`sum(x) OVER ()`), and not in
    a subquery. `sum(sum(x)) OVER ()` holds one: the inner sum."""
    if not isinstance(node, exp.AggFunc):
        return False
    outer = node.parent if isinstance(node.parent, exp.Filter) else node
    if isinstance(outer.parent, exp.Window) and outer.parent.this is outer:
        return False
    return node.find_ancestor(exp.Select) is select


def expand_stars(query: exp.Expr, project: Project, node: Node) -> exp.Expr:
    """`SELECT * EXCLUDE (...)` / `REPLACE (...)` spelt out from the columns of what the model
    reads, when sqlops knows them all; else the query as it was."""
    if not any(_star_with_options(n) for n in query.walk()):
        return query
    tables: dict[str, dict[str, dict[str, str]]] = {}
    for dep in node.depends_on:
        upstream = project.nodes[dep]
        if upstream.columns is None:
            return query
        columns = {c.name: c.type or "VARCHAR" for c in upstream.columns}
        tables.setdefault(upstream.schema, {})[upstream.name] = columns
    schema: dict[str, object] = dict(tables)
    try:
        expanded = qualify(
            query.copy(),
            schema=schema_for_sqlglot(schema, project.dialect),
            dialect=project.dialect,
            expand_stars=True,
            validate_qualify_columns=False,
            quote_identifiers=False,
        )
    except (SqlglotError, KeyError, ValueError):
        return query
    return query if any(_star_with_options(n) for n in expanded.walk()) else expanded


def _star_with_options(node: exp.Expr) -> bool:
    return isinstance(node, exp.Star | exp.Column) and any(
        node.args.get(key) for key in ("except_", "replace", "rename")
    )


def unsupported(query: exp.Expr, dialect: str) -> str | None:
    """The first construct of the query that `dialect` cannot run and sqlops cannot rewrite, in
    words; None when there is none."""
    if dialect == "duckdb":
        return None
    for node in query.walk():
        if isinstance(node, exp.Pivot):
            return "UNPIVOT" if node.args.get("unpivot") else "PIVOT"
        if isinstance(node, exp.Lambda) and dialect == "postgres":  # Spark has lambdas
            return "a lambda (x -> ...)"
        if isinstance(node, exp.Join) and node.text("method").upper() in ("ASOF", "POSITIONAL"):
            return f"{node.text('method').upper()} JOIN"
        if _star_with_options(node):
            return "SELECT * EXCLUDE / REPLACE of a relation whose columns sqlops does not know"
        if dialect == "postgres" and isinstance(node, exp.Struct):
            return "a STRUCT value"
    try:
        query.sql(dialect, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        return str(exc).splitlines()[0]
    return None


def check_target(project: Project) -> None:
    """Every model can run on the project's target: a construct the target lacks, which sqlops
    cannot rewrite, is an error before anything runs, not a database error halfway."""
    _check_name_lengths(project)
    dialect = project.target.dialect
    if dialect == project.dialect:
        return
    for node in project.nodes.values():
        if node.kind is not Kind.MODEL:
            continue
        construct = unsupported(expand_stars(project.asts[node.id], project, node), dialect)
        if construct is not None:
            raise ProjectError(
                f"{node.id} uses {construct}, which target `{project.target.name}` "
                f"({dialect}) cannot run",
                path=node.path,
                hint="write it another way that both dialects have (see docs/engines.md), "
                "or build this project on DuckDB",
            )


# the longest name an engine keeps whole, in bytes (PostgreSQL cuts longer ones to this)
NAME_LIMITS = {"postgres": 63}


def _check_name_lengths(project: Project) -> None:
    """Every relation sqlops would make has a name the engine keeps whole: a version's name is
    the model's and `__` and 12 hex digits, its schema `sqlops__` and the model's schema."""
    from sqlops.plan.relations import SANDBOX_PREFIX  # it imports this module

    limit = NAME_LIMITS.get(project.target.engine)
    if limit is None:
        return
    suffix = len("__") + 12
    for node in project.nodes.values():
        if not node.is_versioned:
            continue
        longest = max(
            len(node.name.encode()) + suffix, len(f"{SANDBOX_PREFIX}{node.schema}".encode())
        )
        if longest > limit:
            raise ProjectError(
                f"{node.id} is too long a name for target `{project.target.name}`: the names of "
                f"its versions would be {longest} bytes, and {project.target.engine} keeps "
                f"{limit}",
                path=node.path,
                hint=f"rename the file to at most {limit - suffix} bytes, and its schema folder "
                f"to at most {limit - len(SANDBOX_PREFIX)}",
            )

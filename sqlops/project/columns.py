"""What a model's output columns are, and checking the columns its assertions name."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.qualify_columns import qualify_outputs
from sqlglot.optimizer.scope import Scope, build_scope
from sqlglot.schema import MappingSchema

from sqlops.assertions.definition import Assertion, CheckKind
from sqlops.assertions.parse import ParsedAssertion
from sqlops.errors import ProjectError, did_you_mean, snippet_at
from sqlops.graph.lineage import (
    LINEAGE_VERSION,
    Lineage,
    Unknowable,
    column_lineage,
    find_missing_column,
)
from sqlops.project.cache import ParseCache, content_key
from sqlops.project.definition import Column, Kind, Node
from sqlops.project.resolve import Resolver
from sqlops.syntax import (
    TableRef,
    normalize_name,
    normalized_schema,
    outer_select,
    release,
    selects_star,
    sqlglot_dialect,
)


@dataclass(frozen=True)
class Analysis:
    """What one qualified pass over a model's SQL tells: its columns and their lineage."""

    columns: tuple[Column, ...] | None  # None when only the database can tell
    lineage: Lineage | None  # None when the SQL uses something the lineage walk does not follow


def analyze_model(
    node: Node,
    ast: exp.Expr,
    nodes: dict[str, Node],
    dialect: str,
    cache: ParseCache,
    *,
    lineage: bool = True,
    ast_key: str | None = None,
) -> Analysis:
    """A model's output columns and column lineage, from its SQL and its upstream columns.
    `ast_key`: a hash of what decides `ast` (the loader's), which spares printing it for the
    cache key.

    Raises `MissingColumn` when the SQL names a column an upstream does not have.
    """
    schema: dict[str, object] = {}
    for dep in node.depends_on:
        upstream = nodes[dep]
        if upstream.columns is None:
            return Analysis(None, None)
        tables = schema.setdefault(upstream.schema, {})
        assert isinstance(tables, dict)
        tables[upstream.name] = {c.name: c.type or "UNKNOWN" for c in upstream.columns}
    key = content_key(
        "analysis",
        LINEAGE_VERSION,
        dialect,
        ast_key or ast.sql(dialect),
        json.dumps(schema),
        str(lineage),
    )
    cached = cache.get(key)
    if isinstance(cached, dict):
        try:
            return Analysis(
                None if cached["columns"] is None else tuple(Column(*c) for c in cached["columns"]),
                None if cached["lineage"] is None else Lineage.from_json(cached["lineage"]),
            )
        except (KeyError, TypeError, ValueError):
            pass  # a damaged entry is only a cache miss
    try:
        qualified = qualified_copy(ast, schema, dialect)
    except (SqlglotError, KeyError, ValueError, AssertionError):
        # sqlglot asserts its own invariants (a star over two columns of one name, grouped by
        # position): columns it cannot work out are unknown, and fingerprints fall back to the
        # whole model (never less safe)
        missing = find_missing_column(ast, nodes, dialect)
        if missing is not None:
            raise missing from None
        return Analysis(None, None)
    analysis = Analysis(_output_columns(ast, qualified, dialect), None)
    if lineage and analysis.columns is not None:
        try:
            found = column_lineage(qualified, [c.name for c in analysis.columns], nodes, dialect)
        except Unknowable:
            found = None
        analysis = Analysis(analysis.columns, found)
    release(qualified)  # this call's own copy
    cache.put(
        key,
        {
            "columns": None
            if analysis.columns is None
            else [[c.name, c.type, c.description] for c in analysis.columns],
            "lineage": None if analysis.lineage is None else analysis.lineage.to_json(),
        },
    )
    return analysis


def qualified_copy(ast: exp.Expr, schema: dict[str, object], dialect: str) -> exp.Query:
    """A copy of a model's query with every column qualified against its upstream columns.

    Raises SqlglotError, KeyError or ValueError where sqlglot cannot qualify it.
    """
    known = normalized_schema(schema, dialect)
    glot = sqlglot_dialect(dialect)
    tree = normalize_identifiers(ast.copy(), dialect=glot, store_original_column_identifiers=True)
    if not (isinstance(known, MappingSchema) and _qualify_plain(tree, known.mapping, glot)):
        tree = qualify(
            tree,
            schema=known,
            dialect=glot,
            validate_qualify_columns=False,
            quote_identifiers=False,
        )
    assert isinstance(tree, exp.Query)
    return tree


def _qualify_plain(tree: exp.Expr, schema: dict[str, Any], dialect: Dialect) -> bool:
    """Qualify, in place, a query that needs none of what makes sqlglot's `qualify` general,
    as `qualify` would: each column gets its table, each output its name (sqlglot's own
    `qualify_outputs`). Tables get no alias of their own, which the lineage walk gives every
    source anyway. It takes half of `qualify`'s time, a tenth of a model's load.

    A plain query is SELECTs (CTEs and derived tables too) of upstream tables and of each
    other, each column naming its table or in exactly one of them; no star, set operation,
    subquery in an expression, USING, ORDER BY, DISTINCT, positional GROUP BY, or column
    named like an output outside the output that names it. False, and nothing changed, for
    anything else: `qualify` does it. Its identifiers must be normalized already, as
    `qualify` first does."""
    try:
        found = _plain_columns(tree, schema)
    except SqlglotError:  # e.g. two sources of one name: `qualify` tells
        return False
    if found is None:
        return False
    scopes, columns = found
    for column, table in columns:
        column.set("table", exp.to_identifier(table))
    for scope in scopes:
        qualify_outputs(scope, dialect)
    return True


def _plain_columns(
    tree: exp.Expr, schema: dict[str, Any]
) -> tuple[list[Scope], list[tuple[exp.Column, str]]] | None:
    """`_qualify_plain`'s look at the query, which changes nothing: its scopes and the table of
    each of its unqualified columns; None when it is not plain."""
    root = build_scope(tree)
    if root is None:
        return None
    scopes = list(root.traverse())  # each scope after the ones it reads
    outputs: dict[int, set[str]] = {}  # id of a scope's query -> the names of its outputs
    found: list[tuple[exp.Column, str]] = []  # unqualified columns, and their tables
    for scope in scopes:
        query = scope.expression
        if not (
            isinstance(query, exp.Select)
            and (scope.is_root or scope.is_cte or scope.is_derived_table)
            and not any(v for k, v in query.args.items() if k not in _PLAIN_SELECT)
            and not scope.stars
            and not scope.comprehensions
            and _plain_group(query.args.get("group"))
            and all(_plain_join(j) for j in query.args.get("joins") or ())
            and not (isinstance(query.parent, exp.CTE) and query.parent.alias_column_names)
        ):
            return None
        sources = _plain_sources(scope, schema, outputs)
        if sources is None:
            return None
        names = []
        for selected in query.expressions:
            if not isinstance(selected, exp.Alias | exp.Column):
                return None  # an unnamed output (sqlglot names it _col_N), or a subquery
            names.append(selected.alias if isinstance(selected, exp.Alias) else selected.name)
        aliases = {s.alias for s in query.expressions if isinstance(s, exp.Alias)}
        own = _select_list_columns(query, aliases)
        if own is None:
            return None
        for column in scope.columns:
            if column.args.get("db") is not None:
                return None
            if column.table:
                if column.name not in sources.get(column.table, ()):
                    return None  # a field of a struct, or a column that is not there
                continue
            owners = [s for s, columns in sources.items() if column.name in columns]
            if (column.name in aliases and id(column) not in own) or len(owners) != 1:
                return None
            found.append((column, owners[0]))
        # HAVING and QUALIFY may name outputs, which the scope leaves out of its columns
        for key in ("having", "qualify"):
            clause = query.args.get(key)
            if clause is not None and any(not c.table for c in clause.find_all(exp.Column)):
                return None
        if len(set(names)) != len(names):
            return None  # two outputs of one name
        outputs[id(query)] = set(names)
    return scopes, found


# what a plain SELECT may have (anything else, e.g. ORDER BY, DISTINCT or a named window, and
# `qualify` does the work); a plain join's parts, and its kinds
_PLAIN_SELECT = frozenset(
    {
        "expressions",
        "from_",
        "joins",
        "where",
        "group",
        "having",
        "qualify",
        "limit",
        "offset",
        "with_",
    }
)
_PLAIN_JOIN = frozenset(("this", "on", "kind", "side"))
_PLAIN_JOIN_KINDS = frozenset(("", "INNER", "OUTER", "CROSS"))
_PLAIN_TABLE = frozenset(("this", "db", "alias"))


def _select_list_columns(query: exp.Select, aliases: set[str]) -> set[int] | None:
    """The ids of the select list's columns that are named like an output, if none of them
    names one before it (`SELECT lower(region) AS region` reads the column; `SELECT a AS b,
    b + 1 AS c` reads the alias, which `qualify` expands): None when one does."""
    if not aliases:
        return set()
    found: set[int] = set()
    before: set[str] = set()
    for selected in query.expressions:
        for column in selected.find_all(exp.Column):
            if not column.table and column.name in aliases:
                if column.name in before:
                    return None
                found.add(id(column))
        if isinstance(selected, exp.Alias):
            before.add(selected.alias)
    return found


def _plain_group(group: exp.Group | None) -> bool:
    """No positions, ROLLUP, CUBE or GROUPING SETS: a list of expressions, or ALL."""
    if group is None:
        return True
    if any(v for k, v in group.args.items() if k not in ("expressions", "all")):
        return False
    return not any(
        isinstance(e, exp.Literal | exp.Rollup | exp.Cube | exp.GroupingSets)
        for e in group.expressions
    )


def _plain_join(join: exp.Join) -> bool:
    return not any(v for k, v in join.args.items() if k not in _PLAIN_JOIN) and (
        join.kind in _PLAIN_JOIN_KINDS
    )


def _plain_sources(
    scope: Scope, schema: dict[str, Any], outputs: dict[int, set[str]]
) -> dict[str, set[str]] | None:
    """Each source of a plain scope by its name, with its columns; None where one is not
    plain: a table function, a table with no known columns, a renamed column (`AS t(a, b)`),
    two sources of one name."""
    query = scope.expression
    selected = scope.selected_sources
    if len(selected) != 1 + len(query.args.get("joins") or ()) or "" in selected:
        return None
    sources: dict[str, set[str]] = {}
    for name, (node, source) in selected.items():
        alias = node.args.get("alias")
        if alias is not None and alias.args.get("columns"):
            return None
        if isinstance(source, exp.Table):
            if any(v for k, v in source.args.items() if k not in _PLAIN_TABLE):
                return None
            if not isinstance(source.this, exp.Identifier):
                return None
            columns = schema.get(source.db, {}).get(source.name)
            if not isinstance(columns, dict):
                return None
            sources[name] = set(columns)
        elif isinstance(source, Scope) and id(source.expression) in outputs:
            sources[name] = outputs[id(source.expression)]
        else:
            return None
    return sources


def _output_columns(ast: exp.Expr, qualified: exp.Query, dialect: str) -> tuple[Column, ...] | None:
    outer = outer_select(qualified)
    if outer is None or selects_star(outer):
        return None
    if any(re.fullmatch(r"_col_\d+", name) for name in outer.named_selects):
        return None  # an unaliased expression: only the engine knows what it will be called
    descriptions = _select_comments(ast)
    return tuple(
        Column(name, None, descriptions.get(i))
        for i, name in enumerate(_engine_names(outer.named_selects, dialect))
    )


def validate_assertions(
    node: Node,
    assertions: list[ParsedAssertion],
    text: str,
    nodes: dict[str, Node],
    resolver: Resolver,
    dialect: str,
) -> None:
    """Every column an assertion names exists: an error at its line, with a suggestion."""
    known = node.column_names
    for pa in assertions:
        a = pa.assertion
        if known is not None and node.kind is not Kind.TEST:
            _check_columns(node.path, pa.checked_columns, known, node, a, text, dialect)
        if a.kind is CheckKind.REFERENCES and a.target and a.target_column:
            schema, _, model = a.target.rpartition(".")
            ref = TableRef(
                normalize_name(schema, dialect) if schema else None,
                normalize_name(model, dialect),
                a.line,
                1,
            )
            target = nodes[resolver.resolve(ref, node, text)]
            if target.column_names is not None:
                _check_columns(
                    node.path,
                    (a.target_column,),
                    target.column_names,
                    target,
                    a,
                    text,
                    dialect,
                )


def _check_columns(
    path: Path,
    names: tuple[str, ...],
    known: tuple[str, ...],
    node: Node,
    assertion: Assertion,
    text: str,
    dialect: str,
) -> None:
    folded = {normalize_name(k, dialect): k for k in known}
    for name in names:
        if normalize_name(name, dialect) not in folded:
            raise ProjectError(
                f"unknown column `{name}` in assertion on {node.id}{did_you_mean(name, known)}",
                path=path,
                line=assertion.line,
                snippet=snippet_at(text, assertion.line),
                hint=f"{node.id} has columns: {', '.join(known)}",
            )


def _engine_names(names: list[str], dialect: str) -> list[str]:
    """Output names as the database makes them: a repeated name gets `_1`, `_2`, ... (DuckDB)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        key = normalize_name(name, dialect)
        if key in seen:
            seen[key] += 1
            name = f"{name}_{seen[key]}"
        else:
            seen[key] = 0
        out.append(name)
    return out


def _select_comments(ast: exp.Expr) -> dict[int, str]:
    outer = outer_select(ast)
    if outer is None:
        return {}
    return {
        i: " ".join(c.strip() for c in s.comments)
        for i, s in enumerate(outer.selects)
        if s.comments
    }

"""What a model's output columns are, and checking the columns its assertions name."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify

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
    qualified = qualify(
        ast.copy(),
        schema=normalized_schema(schema, dialect),
        dialect=sqlglot_dialect(dialect),
        validate_qualify_columns=False,
        quote_identifiers=False,
    )
    assert isinstance(qualified, exp.Query)
    return qualified


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

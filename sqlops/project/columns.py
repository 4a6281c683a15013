"""What a model's output columns are, and checking the columns its assertions name."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify

from sqlops.assertions.definition import Assertion, CheckKind
from sqlops.assertions.parse import ParsedAssertion
from sqlops.errors import ProjectError, did_you_mean, snippet_at
from sqlops.project.cache import ParseCache, content_key
from sqlops.project.definition import Column, Kind, Node
from sqlops.project.resolve import Resolver
from sqlops.syntax import TableRef, normalize_name


def infer_columns(
    node: Node, ast: exp.Expr, nodes: dict[str, Node], dialect: str, cache: ParseCache
) -> tuple[Column, ...] | None:
    """A model's output columns from its SQL and its upstream columns; None when unknowable."""
    schema: dict[str, object] = {}
    for dep in node.depends_on:
        upstream = nodes[dep]
        if upstream.columns is None:
            return None
        tables = schema.setdefault(upstream.schema, {})
        assert isinstance(tables, dict)
        tables[upstream.name] = {c.name: c.type or "UNKNOWN" for c in upstream.columns}
    key = content_key("columns", dialect, ast.sql(dialect), json.dumps(schema))
    cached = cache.get(key)
    if isinstance(cached, list):
        return tuple(Column(*c) for c in cached)
    try:
        qualified = qualify(
            ast.copy(),
            schema=schema,
            dialect=dialect,
            validate_qualify_columns=False,
            quote_identifiers=False,
        )
    except (SqlglotError, KeyError, ValueError):
        return None
    assert isinstance(qualified, exp.Query)
    outer = qualified
    while isinstance(outer, exp.SetOperation):
        outer = outer.left
    if not isinstance(outer, exp.Select) or any(
        isinstance(s, exp.Star) or (isinstance(s, exp.Column) and s.is_star) for s in outer.selects
    ):
        return None
    if any(re.fullmatch(r"_col_\d+", name) for name in outer.named_selects):
        return None  # an unaliased expression: only the engine knows what it will be called
    descriptions = _select_comments(ast)
    columns = tuple(
        Column(name, None, descriptions.get(i))
        for i, name in enumerate(_engine_names(outer.named_selects, dialect))
    )
    cache.put(key, [[c.name, c.type, c.description] for c in columns])
    return columns


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
    outer = ast
    while isinstance(outer, exp.SetOperation):
        outer = outer.left
    if not isinstance(outer, exp.Select):
        return {}
    return {
        i: " ".join(c.strip() for c in s.comments)
        for i, s in enumerate(outer.selects)
        if s.comments
    }

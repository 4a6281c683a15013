"""What a parsed tree keeps of sqlglot's metadata (syntax._keep_positions)."""

from __future__ import annotations

from pathlib import Path

from sqlglot import exp

from sqlops.syntax import parse_statements


def _parsed(sql: str) -> exp.Expr:
    return parse_statements(sql, "duckdb", Path("m.sql"), sql)[0]


def test_identifiers_keep_line_and_column_and_nothing_else_keeps_positions() -> None:
    tree = _parsed("SELECT\n  count(*) AS n,\n  o.amount + 1 AS a\nFROM raw.orders AS o")
    metas = {(type(n).__name__, n.name): n._meta for n in tree.walk() if n._meta}
    assert metas[("Identifier", "amount")] == {"line": 3, "col": 10}
    assert metas[("Identifier", "orders")] == {"line": 4, "col": 15}
    assert all(type(n) is exp.Identifier for n in tree.walk() if n._meta)


def test_a_sqlglot_meta_comment_is_kept() -> None:
    tree = _parsed('SELECT "Id" /* sqlglot.meta case_sensitive */ FROM t')
    column = next(tree.find_all(exp.Column))
    assert column.meta.get("case_sensitive") is True

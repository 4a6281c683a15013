"""What a parsed tree keeps of sqlglot's metadata (syntax._keep_positions), and how a load frees
the trees it is done with (syntax.release, loader._Collector)."""

from __future__ import annotations

import gc
from pathlib import Path

import sqlglot
from sqlglot import exp

from sqlops.project.loader import load_project
from sqlops.syntax import parse_statements, release


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


def test_release_cuts_every_parent_link() -> None:
    tree = sqlglot.parse_one("SELECT a + 1 AS b FROM t WHERE c IN (SELECT d FROM u)")
    nodes = list(tree.walk())
    release(tree)
    assert len(nodes) > 10
    assert all(node.parent is None for node in nodes)


def test_a_load_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    (tmp_path / "sqlops.toml").write_text(
        '[project]\nname = "p"\ndialect = "duckdb"\ndefault_schema = "main"\n'
        'default_target = "local"\n[targets.local]\nengine = "duckdb"\npath = "p.duckdb"\n',
        encoding="utf-8",
    )
    (tmp_path / "models").mkdir()
    for i in range(60):  # past _Collector.EVERY, so that it collects and freezes
        (tmp_path / "models" / f"m{i}.sql").write_text(f"SELECT {i} AS x\n", encoding="utf-8")
    threshold = gc.get_threshold()
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            project = load_project(tmp_path, use_cache=False)
            assert gc.isenabled() is enabled
            assert gc.get_threshold() == threshold
            assert gc.get_freeze_count() == 0
            assert project.lineage["main.m59"].columns[0].name == "x"
        finally:
            gc.enable()

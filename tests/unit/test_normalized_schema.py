"""The schema `qualify` gets with its names normalized once (syntax.normalized_schema) qualifies
every query as the plain schema sqlglot normalizes itself does, odd names included."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlglot import exp, parse_one
from sqlglot.errors import SchemaError
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from sqlops.graph.lineage import column_lineage
from sqlops.project.definition import Column, Kind, Node
from sqlops.project.loader import load_project
from sqlops.project.scaffold import scaffold
from sqlops.syntax import normalized_schema, schema_for_sqlglot

# names as they come from a seed's header or a model's aliases: any text at all
COLUMNS = {
    "id": "INT",
    "Mixed_Case": "VARCHAR",
    "Order Id": "INT",
    "a;b": "VARCHAR",
    "'x'": "VARCHAR",
    "select": "INT",
    "UPPER": "INT",
    "ünïcode": "VARCHAR",
}
SCHEMA: dict[str, object] = {"raw": {"orders": COLUMNS, "Customers": {"id": "INT", "Name": "X"}}}

QUERIES = {
    "duckdb": [
        "SELECT * FROM raw.orders",
        'SELECT o.id, o."Mixed_Case", mixed_case, "Order Id", "a;b", "\'x\'", "select", upper '
        "FROM raw.orders AS o",
        'SELECT c.*, o.* FROM raw.orders o JOIN raw."Customers" c ON c.id = o.id',
        "SELECT name, count(*) AS n FROM raw.customers GROUP BY ALL",
        'SELECT "ünïcode" FROM raw.orders WHERE id IN (SELECT id FROM raw.customers)',
    ],
    "postgres": [
        "SELECT * FROM raw.orders",
        'SELECT "Mixed_Case", "Order Id", "UPPER", "a;b" FROM raw.orders',
        "SELECT mixed_case, upper FROM raw.orders",  # folded: not the quoted names
        "SELECT * FROM raw.customers JOIN raw.orders USING (id)",
    ],
    "spark": [
        "SELECT * FROM raw.orders",
        "SELECT `Mixed_Case`, mixed_case, `Order Id`, `a;b` FROM raw.orders",
        "SELECT c.name, o.upper FROM raw.customers c JOIN raw.orders o ON c.id = o.id",
    ],
}


def _qualified(sql: str, schema: object, dialect: str) -> str:
    tree = qualify(
        parse_one(sql, dialect=dialect),
        schema=schema,  # type: ignore[arg-type]
        dialect=dialect,
        validate_qualify_columns=False,
        quote_identifiers=False,
    )
    return tree.sql(dialect)


@pytest.mark.parametrize(
    ("dialect", "sql"), [(d, q) for d, queries in QUERIES.items() for q in queries]
)
def test_qualifies_as_the_plain_schema_does(dialect: str, sql: str) -> None:
    expected = _qualified(sql, schema_for_sqlglot(SCHEMA, dialect), dialect)
    got = _qualified(sql, normalized_schema(SCHEMA, dialect), dialect)
    assert got == expected
    # and the star expanded to real columns: the schema was read, not ignored
    assert "*" not in got or "count(*)" in got.lower()


def test_a_table_without_columns_is_refused_as_before() -> None:
    schema: dict[str, object] = {"raw": {"orders": COLUMNS, "empty": {}}}
    for given in (schema_for_sqlglot(schema, "duckdb"), normalized_schema(schema, "duckdb")):
        with pytest.raises(SchemaError):
            _qualified("SELECT * FROM raw.empty", given, "duckdb")


def test_names_are_those_sqlglot_would_normalize_to() -> None:
    for dialect in QUERIES:
        mine = normalized_schema(SCHEMA, dialect)
        assert isinstance(mine, MappingSchema) and not mine.normalize
        theirs = MappingSchema(schema_for_sqlglot(SCHEMA, dialect), dialect=dialect)
        assert mine.mapping == theirs.mapping


def test_a_table_kept_case_sensitive_still_finds_its_columns(tmp_path: Path) -> None:
    """A model's tables are pointed at their nodes' folded names before `qualify`, so the schema
    that does not normalize finds one a `sqlglot.meta case_sensitive` comment keeps as written."""
    root = scaffold(tmp_path / "p", "duckdb")
    (root / "models" / "foo.sql").write_text("SELECT 1 AS a, 2 AS B")
    (root / "models" / "bar.sql").write_text(
        "SELECT x.* FROM main.Foo /* sqlglot.meta case_sensitive */ AS x"
    )
    project = load_project(root, use_cache=False)
    assert project.nodes["main.bar"].column_names == ("a", "b")


def test_the_lineage_walk_keeps_what_is_not_a_position() -> None:
    """BigQuery prints a function by the name it was written with, kept in its metadata: the
    walk takes positions out of the tree it hashes, and nothing else."""
    schema: dict[str, object] = {"d": {"t": {"a": "STRING"}}}
    tree = qualify(
        parse_one("SELECT SUBSTR(a, 1, 2) AS s FROM d.t", dialect="bigquery"),
        schema=normalized_schema(schema, "bigquery"),  # type: ignore[arg-type]
        dialect="bigquery",
    )
    assert isinstance(tree, exp.Query)
    called = next(tree.find_all(exp.Substring))
    written = dict(called.meta)
    assert "SUBSTR" in tree.sql("bigquery")
    node = Node("d.t", Kind.MODEL, "d", "t", Path("t.sql"), "t.sql", columns=(Column("a"),))
    column_lineage(tree, ["s"], {"d.t": node}, "bigquery")
    assert {k: v for k, v in called.meta.items()} == {
        k: v for k, v in written.items() if k not in ("line", "col", "start", "end")
    }
    assert "SUBSTR" in tree.sql("bigquery")

"""A plain query is qualified by sqlops itself (columns._qualify_plain), and gives what sqlglot's
`qualify` gives: the same output columns and the same column lineage, every hash included.
Anything else is left untouched, for `qualify`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlglot import exp, serde
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from sqlops.graph.lineage import Lineage, Unknowable, column_lineage
from sqlops.project.columns import _output_columns, _qualify_plain, qualified_copy
from sqlops.project.definition import Column, Node
from sqlops.project.loader import Project, load_project
from sqlops.syntax import normalized_schema, sqlglot_dialect

SOURCES = {
    "sources/raw/orders.sql": "CREATE TABLE raw.orders (order_id INTEGER, customer_id INTEGER, "
    "amount DECIMAL(10, 2), status VARCHAR, items INTEGER[])\n",
    "sources/raw/customers.sql": "CREATE TABLE raw.customers (customer_id INTEGER, "
    "region VARCHAR, name VARCHAR, info STRUCT(city VARCHAR))\n",
}

PLAIN = {
    "self-named alias": "SELECT customer_id, lower(region) AS region, name FROM raw.customers",
    "join": """
        SELECT o.order_id, c.region, amount * 2 AS doubled,
               CASE WHEN status = 'paid' THEN amount ELSE 0 END AS paid
        FROM raw.orders AS o LEFT JOIN raw.customers AS c ON c.customer_id = o.customer_id
        WHERE o.amount > 0
    """,
    "unaliased tables": """
        SELECT orders.order_id, region FROM raw.orders
        JOIN raw.customers ON customers.customer_id = orders.customer_id
    """,
    "grouped": """
        SELECT customer_id, count(*) AS n, sum(amount) AS total FROM raw.orders
        GROUP BY customer_id HAVING sum(orders.amount) > 0
    """,
    "group by all, window": """
        SELECT customer_id, order_id,
               sum(amount) OVER (PARTITION BY customer_id ORDER BY order_id) AS running,
               row_number() OVER (PARTITION BY customer_id ORDER BY amount DESC) AS rank
        FROM raw.orders
    """,
    "cte and derived table": """
        WITH paid AS (SELECT order_id, customer_id, amount FROM raw.orders WHERE status = 'paid')
        SELECT p.customer_id, t.total, region
        FROM paid AS p
        JOIN (SELECT customer_id, sum(amount) AS total FROM raw.orders GROUP BY ALL) AS t
          ON t.customer_id = p.customer_id
        JOIN raw.customers AS c ON c.customer_id = p.customer_id
        LIMIT 10
    """,
    "qualify on a qualified column": """
        SELECT o.order_id, o.amount FROM raw.orders AS o
        QUALIFY row_number() OVER (PARTITION BY o.customer_id ORDER BY o.amount) = 1
    """,
    "mixed case": "SELECT Customer_ID, UPPER(Region) AS Region FROM RAW.Customers AS C",
}

NOT_PLAIN = {
    "star": "SELECT *, 1 AS one FROM raw.orders",
    "qualified star": "SELECT o.*, c.region FROM raw.orders AS o JOIN raw.customers AS c "
    "ON c.customer_id = o.customer_id",
    "union": "SELECT order_id FROM raw.orders UNION ALL SELECT customer_id FROM raw.customers",
    "order by": "SELECT order_id, amount AS a FROM raw.orders ORDER BY a LIMIT 3",
    "distinct": "SELECT DISTINCT customer_id FROM raw.orders",
    "using": "SELECT order_id, region FROM raw.orders JOIN raw.customers USING (customer_id)",
    "positional group by": "SELECT customer_id, count(*) AS n FROM raw.orders GROUP BY 1",
    "alias named in where": "SELECT amount * 2 AS amount FROM raw.orders WHERE amount > 1",
    "earlier alias in the select list": "SELECT amount * 2 AS d, d + 1 AS e FROM raw.orders",
    "ambiguous column": "SELECT customer_id FROM raw.orders AS o JOIN raw.customers AS c "
    "ON c.customer_id = o.customer_id",
    "output named in having": "SELECT customer_id, count(*) AS n FROM raw.orders "
    "GROUP BY customer_id HAVING n > 1",
    "subquery in an expression": "SELECT order_id FROM raw.orders "
    "WHERE customer_id IN (SELECT customer_id FROM raw.customers)",
    "table function": "SELECT range AS r FROM range(3)",
    "cte with column names": "WITH t(a, b) AS (SELECT order_id, amount FROM raw.orders) "
    "SELECT a, b FROM t",
    "struct field": "SELECT c.info.city AS city FROM raw.customers AS c",
    "unnamed output": "SELECT amount + 1 FROM raw.orders",
    "list comprehension": "SELECT [x * 2 FOR x IN items] AS doubled FROM raw.orders",
    "self join without aliases": "SELECT orders.order_id FROM raw.orders JOIN raw.orders ON true",
    "rollup": "SELECT customer_id, sum(amount) AS t FROM raw.orders GROUP BY ROLLUP (customer_id)",
}


def _project(tmp_path: Path, sql: str) -> Project:
    files = {
        "sqlops.toml": '[project]\nname = "t"\ndialect = "duckdb"\n'
        '[targets.local]\nengine = "duckdb"\npath = "t.duckdb"\n',
        **SOURCES,
        "models/m.sql": sql,
    }
    for relpath, text in files.items():
        (tmp_path / relpath).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relpath).write_text(text)
    return load_project(tmp_path, use_cache=False)


def _schema(node: Node, nodes: dict[str, Node]) -> dict[str, object]:
    schema: dict[str, object] = {}
    for dep in node.depends_on:
        upstream = nodes[dep]
        assert upstream.columns is not None
        tables = schema.setdefault(upstream.schema, {})
        assert isinstance(tables, dict)
        tables[upstream.name] = {c.name: c.type or "UNKNOWN" for c in upstream.columns}
    return schema


def _analysis(
    qualified: exp.Query, ast: exp.Expr, nodes: dict[str, Node]
) -> tuple[tuple[Column, ...] | None, Lineage | str | None]:
    columns = _output_columns(ast, qualified, "duckdb")
    if columns is None:
        return None, None
    try:
        return columns, column_lineage(qualified, [c.name for c in columns], nodes, "duckdb")
    except Unknowable as exc:
        return columns, f"unknowable: {exc}"


def _outcome(
    qualified: Callable[[], exp.Query], ast: exp.Expr, nodes: dict[str, Node]
) -> tuple[tuple[Column, ...] | None, Lineage | str | None]:
    try:
        return _analysis(qualified(), ast, nodes)
    except SqlglotError as exc:  # the load then knows no columns: the same either way
        return None, f"{type(exc).__name__}: {exc}"


def _by_qualify(ast: exp.Expr, schema: dict[str, object]) -> exp.Query:
    """What `qualified_copy` gave before it qualified plain queries itself."""
    qualified = qualify(
        ast.copy(),
        schema=normalized_schema(schema, "duckdb"),
        dialect=sqlglot_dialect("duckdb"),
        validate_qualify_columns=False,
        quote_identifiers=False,
    )
    assert isinstance(qualified, exp.Query)
    return qualified


def _plain(ast: exp.Expr, schema: dict[str, object]) -> tuple[bool, exp.Expr]:
    dialect = sqlglot_dialect("duckdb")
    tree = normalize_identifiers(
        ast.copy(), dialect=dialect, store_original_column_identifiers=True
    )
    known = normalized_schema(schema, "duckdb")
    assert isinstance(known, MappingSchema)
    before = serde.dump(tree)
    plain = _qualify_plain(tree, known.mapping, dialect)
    if not plain:
        assert serde.dump(tree) == before  # left as it was, for qualify
    return plain, tree


@pytest.mark.parametrize(
    ("sql", "plain"),
    [(sql, True) for sql in PLAIN.values()] + [(sql, False) for sql in NOT_PLAIN.values()],
    ids=[f"plain: {k}" for k in PLAIN] + [f"not plain: {k}" for k in NOT_PLAIN],
)
def test_the_same_columns_and_lineage_as_qualify(tmp_path: Path, sql: str, plain: bool) -> None:
    project = _project(tmp_path, sql)
    node = project.nodes["main.m"]
    ast = project.asts["main.m"]
    schema = _schema(node, project.nodes)
    assert _plain(ast, schema)[0] is plain
    ours = _outcome(lambda: qualified_copy(ast, schema, "duckdb"), ast, project.nodes)
    theirs = _outcome(lambda: _by_qualify(ast, schema), ast, project.nodes)
    assert ours == theirs
    if plain:  # what the load kept is this analysis
        assert ours[0] is not None
        assert isinstance(ours[1], Lineage)
        assert node.columns == ours[0] and project.lineage["main.m"] == ours[1]


def test_a_plain_query_reads_what_it_names(tmp_path: Path) -> None:
    project = _project(tmp_path, PLAIN["cte and derived table"])
    lineage = project.lineage["main.m"]
    assert lineage.column("total") is not None
    assert lineage.column("total").reads == (("raw.orders", "amount"),)  # type: ignore[union-attr]
    assert lineage.column("region").reads == (("raw.customers", "region"),)  # type: ignore[union-attr]
    assert ("raw.orders", "status") in lineage.row_reads

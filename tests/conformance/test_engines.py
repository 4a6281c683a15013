"""One suite, every engine: the same project and the same scenarios on DuckDB and PostgreSQL,
each checked in the database itself. A new engine is added by making this suite pass.

Run alone with `pytest tests/conformance`; PostgreSQL comes from a throwaway server the tests
start (tests/pg_server.py).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import Run, Shop, run_sqlops

# the Spark scenarios also run alone: pytest -m spark
ENGINES = ("duckdb", "postgres", pytest.param("spark", marks=pytest.mark.spark))
ENGINE_NAMES = ("duckdb", "postgres", "spark")
MARTS = ("marts.customers", "marts.orders", "marts.revenue_daily")


class Warehouse:
    """The template project, built on one engine, with that engine's database read directly."""

    def __init__(self, root: Path, engine: str, server: str | None) -> None:
        # server: PostgreSQL's DSN, or the sc:// address of the Spark Connect server
        self.root, self.engine, self.server = root, engine, server
        self.dsn = server if engine == "postgres" else None
        if engine == "duckdb":
            return
        config = root / "sqlops.toml"
        text = config.read_text()
        local = f'[targets.local]\nengine = "duckdb"\npath = "{root.name}.duckdb"'
        assert local in text
        target = (
            'engine = "postgres"\ndsn = "${SQLOPS_TEST_SERVER}"'
            if engine == "postgres"
            else 'engine = "spark"\nremote = "${SQLOPS_TEST_SERVER}"'
        )
        # threads: models built at once, each on a connection of its own
        config.write_text(text.replace(local, f"[targets.local]\n{target}\nthreads = 3"))

    def sqlops(self, *args: str) -> Run:
        return run_sqlops(list(args), self.root, {"SQLOPS_TEST_SERVER": self.server or ""})

    def ok(self, *args: str) -> Run:
        result = self.sqlops(*args)
        assert result.code == 0, result.output
        return result

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """A query of the warehouse, or of sqlops_meta (Spark keeps it in a DuckDB file)."""
        if self.engine == "postgres":
            import psycopg

            assert self.dsn is not None
            with psycopg.connect(self.dsn) as con:
                return [tuple(r) for r in con.execute(sql).fetchall()]
        if self.engine == "spark" and "sqlops_meta." not in sql:
            return [tuple(r) for r in self._spark().sql(_in_spark(sql)).collect()]
        con = duckdb.connect(str(self._duckdb_file()), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def execute(self, sql: str) -> None:
        """A statement run directly on the warehouse, as someone other than sqlops would."""
        if self.engine == "postgres":
            import psycopg

            assert self.dsn is not None
            with psycopg.connect(self.dsn, autocommit=True) as con:
                con.execute(sql)
            return
        if self.engine == "spark":
            self._spark().sql(_in_spark(sql)).collect()
            return
        con = duckdb.connect(str(self._duckdb_file()))
        try:
            con.execute(sql)
        finally:
            con.close()

    def relations(self, schema: str) -> set[str]:
        """The tables and views of a schema, from the catalog."""
        if self.engine == "spark":
            spark = self._spark()
            if schema not in {r[0] for r in spark.sql("SHOW DATABASES").collect()}:
                return set()
            return {r[1] for r in spark.sql(f"SHOW TABLES IN `{schema}`").collect() if not r[2]}
        rows = self.query(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'"
        )
        return {name for (name,) in rows}

    def columns(self, relation: str) -> list[str]:
        if self.engine == "spark":
            return list(self._spark().table(relation).columns)
        schema, name = relation.split(".")
        return [
            c
            for (c,) in self.query(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                f"'{schema}' AND table_name = '{name}' ORDER BY ordinal_position"
            )
        ]

    def _duckdb_file(self) -> Path:
        if self.engine == "spark":
            return self.root / "sqlops_state.duckdb"  # the default state database
        return self.root / f"{self.root.name}.duckdb"

    def _spark(self) -> Any:
        from tests.spark_server import client

        assert self.server is not None
        return client(self.server)

    edit = Shop.edit  # the same edit as every other test's project


def _in_spark(sql: str) -> str:
    """The tests write SQL as DuckDB reads it; Spark quotes names with backticks."""
    import sqlglot

    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def make_warehouse(engine: str, folder: Path, request: pytest.FixtureRequest) -> Warehouse:
    result = run_sqlops(["init", "shop"], folder)
    assert result.code == 0, result.output
    server = {"postgres": "pg_dsn", "spark": "spark_remote"}.get(engine)
    return Warehouse(folder / "shop", engine, request.getfixturevalue(server) if server else None)


@pytest.fixture(params=ENGINES)
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    return make_warehouse(request.param, tmp_path, request)


def rows_of(warehouse: Warehouse, relation: str) -> list[tuple[Any, ...]]:
    """Every row, in one order, with numbers compared as numbers."""
    order = ", ".join(f'"{c}"' for c in warehouse.columns(relation))
    rows = warehouse.query(f"SELECT * FROM {relation} ORDER BY {order}")
    return [tuple(_plain(v) for v in row) for row in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal | float):
        return round(float(value), 6)
    return value


@pytest.mark.spark
def test_the_template_serves_the_same_rows_on_every_engine(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    built = {}
    for engine in ENGINE_NAMES:
        (tmp_path / engine).mkdir()
        warehouse = make_warehouse(engine, tmp_path / engine, request)
        warehouse.ok("build")
        built[engine] = {mart: rows_of(warehouse, mart) for mart in MARTS}
    for mart in MARTS:
        assert built["duckdb"][mart], mart
        assert built["postgres"][mart] == built["duckdb"][mart], mart
        assert built["spark"][mart] == built["duckdb"][mart], mart


def test_what_a_target_lacks_is_rewritten(warehouse: Warehouse) -> None:
    # GROUP BY ALL and SELECT * EXCLUDE are DuckDB's; on PostgreSQL sqlops spells them out
    (warehouse.root / "models" / "marts" / "slim.sql").write_text(
        "SELECT * EXCLUDE (email, last_name) FROM marts.customers\n"
    )
    (warehouse.root / "models" / "marts" / "by_country.sql").write_text(
        "SELECT country_code, count(*) AS customers, sum(lifetime_value) AS value "
        "FROM marts.customers GROUP BY ALL\n"
    )
    warehouse.ok("build")
    assert warehouse.columns("marts.slim")[:4] == [
        "customer_id",
        "first_name",
        "country_code",
        "signup_date",
    ]
    # the same as DuckDB's own GROUP BY ALL gives on the template's data
    assert rows_of(warehouse, "marts.by_country")[:3] == [
        ("BE", 1, 0.0),
        ("CA", 1, 522.43),
        ("DE", 2, 139.9),
    ]


def test_a_failing_assertion_leaves_the_environment_untouched(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    before = rows_of(warehouse, "marts.customers")
    warehouse.edit(
        "models/staging/payments.sql",
        "cents_to_dollars('amount_cents')",
        "cents_to_dollars('amount_cents - 2000')",
    )
    failed = warehouse.sqlops("build", "--json")
    assert failed.code == 1
    nodes = {n["id"]: n for n in json.loads(failed.stdout)["nodes"]}
    assert nodes["staging.payments"]["status"] == "failed"
    assert nodes["marts.customers"]["status"] == "skipped"
    assert rows_of(warehouse, "marts.customers") == before
    assert warehouse.query("SELECT count(*) FROM sqlops_meta.deployments") == [(1,)]
    assert warehouse.query("SELECT outcome FROM sqlops_meta.runs ORDER BY id") == [
        ("success",),
        ("failed",),
    ]
    assert warehouse.query("SELECT node FROM sqlops_meta.incidents") == [("staging.payments",)]


def test_dev_is_promoted_to_prod_without_recomputing(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    warehouse.edit(
        "models/marts/revenue_daily.sql",
        "order_date AS revenue_date,",
        "1 AS one, order_date AS revenue_date,",
    )
    dev = json.loads(warehouse.ok("build", "--env", "dev", "--json").stdout)
    assert {n["id"] for n in dev["nodes"] if n["status"] == "built"} == {"marts.revenue_daily"}
    prod = json.loads(warehouse.ok("build", "--json").stdout)
    assert not [n for n in prod["nodes"] if n["status"] == "built"]
    served = warehouse.query(
        "SELECT env, physical_schema, physical_name FROM sqlops_meta.environments "
        "WHERE node = 'marts.revenue_daily' ORDER BY env"
    )
    assert served[0][1:] == served[1][1:]  # dev and prod serve one physical table
    assert warehouse.query("SELECT count(*) FROM marts.revenue_daily WHERE one = 1") == [(56,)]


ASSERTIONS = """SELECT * FROM (VALUES
    (1, 10, 'paid', 10),
    (2, 10, 'paid', 20),
    (2, 11, 'void', 0),
    (3, 99, 'refunded', -5)
) AS v(id, customer_id, status, amount)

-- @warn unique(id)
-- @warn not_null(customer_id)
-- @warn accepted_values(status, 'paid', 'void')
-- @warn references(customer_id, marts.customers.customer_id)
-- @warn amount >= 0
-- @warn amount > 0 where status = 'paid' tolerate 1
-- @warn row_count() > 10
-- @warn sum(amount) = (SELECT sum(amount) FROM marts.checks WHERE status = 'paid')
/* @warn negative: SELECT * FROM {{ this }} WHERE amount < 0 */
"""


def test_every_form_of_assertion_counts_alike(warehouse: Warehouse) -> None:
    (warehouse.root / "models" / "marts" / "checks.sql").write_text(ASSERTIONS)
    result = json.loads(warehouse.ok("build", "--json").stdout)
    checks = next(n for n in result["nodes"] if n["id"] == "marts.checks")["assertions"]
    found = {a["name"]: (a["outcome"], a["failing"]) for a in checks}
    assert found == {
        "unique(id)": ("warn", 2),
        "not_null(customer_id)": ("pass", 0),
        "accepted_values(status, 'paid', 'void')": ("warn", 1),
        "references(customer_id, marts.customers.customer_id)": ("warn", 1),
        "amount >= 0": ("warn", 1),
        "amount > 0 where status = 'paid' tolerate 1": ("pass", 0),
        "row_count() > 10": ("warn", 1),
        "sum(amount) = (SELECT sum(amount) FROM marts.checks WHERE status = 'paid')": ("warn", 1),
        "negative": ("warn", 1),
    }
    stored = warehouse.query(
        "SELECT count(*) FROM sqlops_meta.assertion_results WHERE node = 'marts.checks' "
        "AND outcome = 'warn'"
    )
    assert stored == [(7,)]


def test_selectors_history_impact_and_diff(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    warehouse.edit(
        "models/marts/orders.sql", "    o.order_id,\n", "    o.order_id,\n    2 AS two,\n"
    )
    selected = json.loads(warehouse.ok("build", "marts.orders+", "--env", "dev", "--json").stdout)
    status = {n["id"]: n["status"] for n in selected["nodes"]}
    # a column nobody reads: only its model is built; what reads marts.orders is reused
    assert {n: s for n, s in status.items() if n.startswith("marts.")} == {
        "marts.orders": "built",
        "marts.customers": "reused",
        "marts.revenue_daily": "reused",
    }
    impact = json.loads(warehouse.ok("impact", "--json").stdout)
    assert [c["model"] for c in impact["changes"]] == ["marts.orders"]
    assert [c["class"] for c in impact["changes"]] == ["additive"]
    diff = json.loads(warehouse.ok("diff", "marts.orders", "--env", "dev", "--json").stdout)
    assert [c["name"] for c in diff["schema"]["added"]] == ["two"]
    assert diff["schema"]["removed"] == []
    runs = json.loads(warehouse.ok("history", "--json").stdout)
    assert [(r["id"], r["env"], r["outcome"]) for r in runs] == [
        (2, "dev", "success"),
        (1, "prod", "success"),
    ]
    report = json.loads(warehouse.ok("report", "--json").stdout)
    assert report["deployment_frequency"]["deployments"] == 1


def test_history_checks_learn_on_every_engine(warehouse: Warehouse) -> None:
    for _ in range(2):
        warehouse.ok("build", "--env", "a")
        warehouse.ok("test", "--env", "a")
    series = warehouse.query(
        "SELECT expr, count(*) FROM sqlops_meta.measurements WHERE env = 'a' "
        "AND node = 'marts.customers' GROUP BY expr ORDER BY expr"
    )
    assert series == [("avg(lifetime_value)", 1), ("row_count()", 1)]  # one version: one value
    result = json.loads(warehouse.ok("test", "--env", "a", "--json").stdout)
    node = next(n for n in result["nodes"] if n["id"] == "marts.customers")
    prev = next(a for a in node["assertions"] if "prev(" in a["name"])
    assert prev["measured"] == {"row_count()": 25, "prev(row_count())": 25}

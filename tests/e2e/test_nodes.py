"""Sources, seeds and materializations on a real DuckDB file."""

from __future__ import annotations

import json
from collections.abc import Callable

import duckdb

from tests.conftest import Shop

ORDERS = """-- @location data/orders.csv
CREATE TABLE raw.orders (order_id INTEGER, customer TEXT, amount DECIMAL(10, 2))

-- @assert unique(order_id)
-- @assert amount >= 0
"""
ORDERS_CSV = "order_id,customer,amount\n1,ann,10.50\n2,bob,20\n3,ann,5\n"

Factory = Callable[[dict[str, str]], Shop]


def project(make: Factory, **models: str) -> Shop:
    files = {"sources/raw/orders.sql": ORDERS, "data/orders.csv": ORDERS_CSV}
    files.update({f"models/{k.replace('__', '/')}.sql": v for k, v in models.items()})
    return make(files)


def test_location_source_is_loaded_with_declared_types(make_project: Factory) -> None:
    p = project(make_project, staging__orders="SELECT * FROM raw.orders")
    p.ok("build")
    types = dict(
        p.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND table_name = 'orders'"
        )
    )
    assert types == {"order_id": "INTEGER", "customer": "VARCHAR", "amount": "DECIMAL(10,2)"}
    assert p.query("SELECT sum(amount) FROM staging.orders")[0][0] == 35.5


def test_source_assertions_run_first_and_block(make_project: Factory) -> None:
    p = project(make_project, staging__orders="SELECT * FROM raw.orders")
    p.ok("build")
    p.write("data/orders.csv", ORDERS_CSV + "3,cid,-1\n")
    result = p.sqlops("build", "--json")
    assert result.code == 1
    nodes = {n["id"]: n for n in json.loads(result.stdout)["nodes"]}
    assert nodes["raw.orders"]["status"] == "failed"
    assert nodes["staging.orders"]["status"] == "skipped"
    failures = {a["name"]: a["failing"] for a in nodes["raw.orders"]["assertions"]}
    assert failures["unique(order_id)"] == 2  # both rows with the duplicated key
    assert failures["amount >= 0"] == 1


def test_schema_drift_missing_column_is_an_error(make_project: Factory) -> None:
    p = project(make_project, staging__orders="SELECT order_id FROM raw.orders")
    p.write("data/orders.csv", "order_id,customer\n1,ann\n")
    result = p.sqlops("build")
    assert result.code == 1
    assert "schema drift" in result.stdout and "`amount`" in result.stdout


def test_schema_drift_added_column_is_a_warning(make_project: Factory) -> None:
    p = project(make_project, staging__orders="SELECT order_id FROM raw.orders")
    p.write("data/orders.csv", "order_id,customer,amount,extra\n1,ann,1,x\n")
    result = p.sqlops("build")
    assert result.code == 0, result.output
    assert "warning" in result.stdout and "`extra`" in result.stdout


def test_source_table_without_location(make_project: Factory) -> None:
    p = make_project(
        {
            "sources/raw/events.sql": "CREATE TABLE raw.events (id INTEGER, kind VARCHAR)\n"
            "-- @assert not_null(id)\n",
            "models/counts.sql": "SELECT kind, count(*) AS n FROM raw.events GROUP BY kind",
        }
    )
    result = p.sqlops("build")
    assert result.code == 1
    assert "raw.events does not exist" in result.stdout
    con = duckdb.connect(str(p.db))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.events (id BIGINT, kind VARCHAR)")
    con.execute("INSERT INTO raw.events VALUES (1, 'a'), (2, 'a'), (3, 'b')")
    con.close()
    result = p.sqlops("build")
    assert result.code == 1  # declared INTEGER, is BIGINT: retyped
    assert "is declared INT but is BIGINT" in result.stdout
    p.write(
        "sources/raw/events.sql",
        "CREATE TABLE raw.events (id BIGINT, kind VARCHAR)\n-- @assert not_null(id)\n",
    )
    p.ok("build")
    assert p.query("SELECT * FROM main.counts ORDER BY kind") == [("a", 2), ("b", 1)]


def test_seed_is_versioned_by_content(make_project: Factory) -> None:
    p = make_project(
        {
            "seeds/ref/fx.csv": "currency,rate\nEUR,1.1\nGBP,1.3\n",
            "models/rates.sql": "SELECT currency, rate * 100 AS cents FROM ref.fx",
        }
    )
    p.ok("build")
    assert p.query("SELECT count(*) FROM ref.fx") == [(2,)]
    p.write("seeds/ref/fx.csv", "currency,rate\nEUR,1.1\nGBP,1.3\nJPY,0.01\n")
    statuses = {n["id"]: n["status"] for n in json.loads(p.ok("build", "--json").stdout)["nodes"]}
    assert statuses == {"ref.fx": "built", "main.rates": "built"}
    assert p.query("SELECT count(*) FROM main.rates") == [(3,)]


def test_view_and_ephemeral_materializations(make_project: Factory) -> None:
    p = project(
        make_project,
        staging__orders="-- @materialized view\nSELECT * FROM raw.orders",
        staging__big="-- @materialized ephemeral\nSELECT * FROM staging.orders WHERE amount > 6\n"
        "-- @assert amount > 6",
        marts__customers="SELECT customer, sum(amount) AS total FROM staging.big GROUP BY ALL",
    )
    p.ok("build")
    kinds = dict(
        p.query(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = 'sqlops__staging'"
        )
    )
    assert list(kinds.values()) == ["VIEW"]
    # the ephemeral model has no relation of its own; its reader inlines it
    assert p.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'big%'"
    ) == [(0,)]
    assert p.query("SELECT * FROM marts.customers ORDER BY customer") == [
        ("ann", 10.5),
        ("bob", 20),
    ]
    compiled = p.ok("compile", "marts.customers").stdout
    assert "amount > 6" in compiled


def test_tricky_sql(make_project: Factory) -> None:
    p = project(
        make_project,
        staging__orders='SELECT "Order_ID" AS id, customer, amount FROM "Raw"."Orders"',
        marts__ranked="""
WITH orders AS (SELECT * FROM staging.orders WHERE amount > 0)  -- shadows the model name
SELECT
    o.*,
    row_number() OVER (PARTITION BY customer ORDER BY amount DESC) AS rank_in_customer,
    (SELECT max(amount) FROM staging.orders) AS top
FROM orders AS o
WHERE o.customer IN (SELECT customer FROM staging.orders GROUP BY 1 HAVING count(*) >= 1)
UNION ALL
SELECT id, customer, amount, 0, 0 FROM staging.orders WHERE FALSE
-- @assert unique(id)
-- @assert rank_in_customer >= 1
-- @assert top = (SELECT max(amount) FROM raw.orders)
""",
    )
    result = p.ok("build", "--json")
    assert json.loads(result.stdout)["promoted"]
    listed = {n["id"]: n for n in json.loads(p.ok("ls", "--json").stdout)}
    assert listed["marts.ranked"]["depends_on"] == ["staging.orders"]
    assert listed["marts.ranked"]["columns"] == [
        "id",
        "customer",
        "amount",
        "rank_in_customer",
        "top",
    ]
    assert p.query("SELECT id, rank_in_customer FROM marts.ranked ORDER BY id") == [
        (1, 1),
        (2, 1),
        (3, 2),
    ]


def test_new_source_data_is_a_new_version_promoted_atomically(make_project: Factory) -> None:
    p = project(
        make_project,
        staging__orders="-- @materialized view\nSELECT * FROM raw.orders",
        marts__totals="SELECT customer, sum(amount) AS total FROM staging.orders GROUP BY ALL",
    )
    p.ok("build")
    assert p.query("SELECT count(*) FROM staging.orders") == [(3,)]
    # new rows arrive: everything downstream is a new version, built, tested and promoted
    p.write("data/orders.csv", ORDERS_CSV + "4,cid,7\n")
    statuses = {n["id"]: n["status"] for n in json.loads(p.ok("build", "--json").stdout)["nodes"]}
    assert statuses == {"raw.orders": "built", "staging.orders": "built", "marts.totals": "built"}
    assert p.query("SELECT count(*) FROM staging.orders") == [(4,)]
    assert p.query("SELECT total FROM marts.totals WHERE customer = 'cid'") == [(7,)]
    # bad rows arrive: nothing of them is served, not even through the view model
    p.write("data/orders.csv", ORDERS_CSV + "4,cid,7\n5,dan,-1\n")
    assert p.sqlops("build").code == 1
    assert p.query("SELECT count(*) FROM raw.orders") == [(4,)]
    assert p.query("SELECT count(*) FROM staging.orders") == [(4,)]
    assert p.query("SELECT count(*) FROM marts.totals") == [(3,)]


def test_changed_rows_of_a_database_source_rebuild_what_reads_it(make_project: Factory) -> None:
    p = make_project(
        {
            "sources/raw/events.sql": "CREATE TABLE raw.events (id INTEGER, kind VARCHAR)\n",
            "models/counts.sql": "SELECT kind, count(*) AS n FROM raw.events GROUP BY kind",
        }
    )
    con = duckdb.connect(str(p.db))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.events (id INTEGER, kind VARCHAR)")
    con.execute("INSERT INTO raw.events VALUES (1, 'a')")
    con.close()
    p.ok("build")
    statuses = {n["id"]: n["status"] for n in json.loads(p.ok("build", "--json").stdout)["nodes"]}
    assert statuses["main.counts"] == "reused"
    con = duckdb.connect(str(p.db))
    con.execute("UPDATE raw.events SET kind = 'b'")
    con.close()
    statuses = {n["id"]: n["status"] for n in json.loads(p.ok("build", "--json").stdout)["nodes"]}
    assert statuses["main.counts"] == "built"
    assert p.query("SELECT * FROM main.counts") == [("b", 1)]


def test_partial_builds_check_ephemeral_models_they_read(make_project: Factory) -> None:
    p = project(
        make_project,
        stg__e="-- @materialized ephemeral\nSELECT order_id, amount FROM raw.orders\n"
        "-- @assert amount >= 0",
        mart__t="SELECT sum(amount) AS total FROM stg.e",
    )
    p.ok("build")
    p.write(
        "models/stg/e.sql",
        "-- @materialized ephemeral\nSELECT order_id, amount - 100 AS amount"
        " FROM raw.orders\n-- @assert amount >= 0",
    )
    assert p.sqlops("build", "mart.t").code == 1
    # new data under the ephemeral model: its assertion runs in a build of the source alone
    p.write(
        "models/stg/e.sql",
        "-- @materialized ephemeral\nSELECT order_id, amount FROM raw.orders"
        "\n-- @assert amount >= 0",
    )
    p.write("data/orders.csv", ORDERS_CSV.replace("2,bob,20", "2,bob,-20"))
    p.write("sources/raw/orders.sql", ORDERS.replace("-- @assert amount >= 0\n", ""))
    assert p.sqlops("build", "raw.orders").code == 1
    assert p.query("SELECT total FROM mart.t") == [(35.5,)]


def test_a_recheck_is_not_remembered_as_a_pass(make_project: Factory) -> None:
    p = make_project(
        {
            "models/m/p.sql": "SELECT * FROM (VALUES (1, 4), (2, 6)) t(id, x)",
            "models/m/q.sql": "SELECT * FROM (VALUES (1, 10)) t(id, x)",
            "models/m/r.sql": "SELECT 1 AS one\n"
            "-- @assert sums_match: (SELECT sum(x) FROM m.p) = (SELECT sum(x) FROM m.q)",
        }
    )
    p.ok("build")
    p.write("models/m/p.sql", "SELECT * FROM (VALUES (1, 3), (2, 7)) t(id, x)")
    p.write("models/m/q.sql", "SELECT * FROM (VALUES (1, 20)) t(id, x)")
    p.ok("build", "m.p")  # r is re-tested against the new p and the served q: passes
    assert p.sqlops("build").code == 1  # against the new q it fails, and is not reused as passed


def test_a_view_model_that_cannot_be_read_fails_the_build(make_project: Factory) -> None:
    p = project(
        make_project,
        m__v="-- @materialized view\nSELECT order_id, CAST(customer AS INT) AS n FROM raw.orders",
    )
    result = p.sqlops("build")
    assert result.code == 1
    assert "Conversion Error" in result.stdout


def test_a_file_source_can_become_a_database_table(make_project: Factory) -> None:
    p = project(make_project, stg__orders="SELECT * FROM raw.orders")
    p.ok("build")
    p.write("sources/raw/orders.sql", ORDERS.replace("-- @location data/orders.csv\n", ""))
    result = p.sqlops("build")
    assert result.code == 2 and "DROP VIEW raw.orders" in result.stderr
    con = duckdb.connect(str(p.db))
    con.execute("DROP VIEW raw.orders")
    con.execute(
        "CREATE TABLE raw.orders AS SELECT 9 AS order_id, 'zed' AS customer, 1.0::DECIMAL(10,2) AS amount"
    )
    con.close()
    p.ok("build")
    assert p.query("SELECT order_id FROM stg.orders") == [(9,)]
    assert p.query("SELECT count(*) FROM raw.orders") == [(1,)]

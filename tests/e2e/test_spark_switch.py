"""Spark has no transactions: a switch killed halfway is journaled in the state database, and the
next command that writes finishes it (sqlops/run/switch.py, docs/engines.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conformance.test_engines import Warehouse, make_warehouse, rows_of
from tests.conftest import run_sqlops

pytestmark = pytest.mark.spark

DAILY = "models/marts/revenue_daily.sql"
PLAIN = "order_date AS revenue_date,"


@pytest.fixture
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    return make_warehouse("spark", tmp_path, request)


def killed_switch(warehouse: Warehouse, *args: str, after: int = 3) -> None:
    """Run sqlops killed right after it replaced its `after`-th view."""
    killed = run_sqlops(
        list(args),
        warehouse.root,
        {
            "SQLOPS_TEST_SERVER": warehouse.server or "",
            "SQLOPS_TEST_KILL_MATCHING": "CREATE OR REPLACE VIEW",
            "SQLOPS_TEST_KILL_AFTER": str(after),
        },
    )
    assert killed.code == -9, killed.output


def points_at(warehouse: Warehouse, views: list[str]) -> dict[str, str]:
    """view -> the physical table it reads, from Spark's catalog."""
    found = {}
    for view in views:
        schema, name = view.split(".")
        details = warehouse._spark().sql(f"DESCRIBE TABLE EXTENDED `{schema}`.`{name}`").collect()
        (text,) = [r[1] for r in details if r[0] == "View Text"]
        found[view] = text.split("FROM ")[1].replace("`", "")
    return found


def recorded(warehouse: Warehouse) -> dict[str, str]:
    rows = warehouse.query(
        "SELECT node, physical_schema || '.' || physical_name FROM sqlops_meta.environments "
        "WHERE env = 'prod'"
    )
    return dict(rows)


def test_a_switch_killed_halfway_is_finished_by_the_next_build(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    before = recorded(warehouse)
    warehouse.edit(DAILY, PLAIN, "1 AS one, " + PLAIN)
    warehouse.edit("models/marts/customers.sql", "c.customer_id,", "c.customer_id, 2 AS two,")

    # a build replaces only the views whose version changed: these two, killed after the first
    killed_switch(warehouse, "build", after=1)
    # the journal holds the switch; the state still says what was deployed before
    assert warehouse.query("SELECT key FROM sqlops_meta.meta WHERE key LIKE 'switch:%'") == [
        ("switch:prod",)
    ]
    assert recorded(warehouse) == before
    assert warehouse.query("SELECT id, outcome FROM sqlops_meta.runs ORDER BY id") == [
        (1, "success"),
        (2, "running"),
    ]
    # commands that only read leave it alone
    assert json.loads(warehouse.ok("history", "--json").stdout)[0]["outcome"] == "running"

    again = warehouse.ok("build", "--json")
    assert "note: finished the switch of environment `prod` that run 2 left half done" in (
        again.stderr
    )
    assert json.loads(again.stdout)["up_to_date"] is True  # nothing left to switch
    assert warehouse.query("SELECT key FROM sqlops_meta.meta WHERE key LIKE 'switch:%'") == []
    assert warehouse.query(
        "SELECT id, outcome, deployment_id FROM sqlops_meta.runs ORDER BY id"
    ) == [
        (1, "success", 1),
        (2, "success", 2),
        (3, "success", None),
    ]
    # the run's new versions brought the values they measured to prod's series
    assert warehouse.query(
        "SELECT expr FROM sqlops_meta.measurements WHERE env = 'prod' "
        "AND node = 'marts.customers' AND run_id = 2 ORDER BY expr"
    ) == [("avg(lifetime_value)",), ("row_count()",)]
    now = recorded(warehouse)
    assert now["marts.revenue_daily"] != before["marts.revenue_daily"]
    assert points_at(warehouse, list(now)) == now  # every view reads what the state records
    assert warehouse.columns("marts.revenue_daily")[0] == "one"
    assert {r[0] for r in rows_of(warehouse, "marts.revenue_daily")} == {1}


def test_a_rollback_killed_halfway_is_finished_by_the_next_rollback(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    first = recorded(warehouse)
    warehouse.edit(DAILY, PLAIN, "1 AS one, " + PLAIN)
    warehouse.edit(
        "models/marts/orders.sql", "    o.order_id,\n", "    o.order_id,\n    2 AS two,\n"
    )
    warehouse.ok("build")
    second = recorded(warehouse)
    assert {n for n in second if second[n] != first[n]} == {
        "marts.revenue_daily",
        "marts.orders",
    }

    killed_switch(warehouse, "rollback", after=1)  # of its two views
    assert recorded(warehouse) == second
    done = warehouse.ok("rollback", "--dry-run")  # looks, changes nothing: still half done
    assert warehouse.query("SELECT count(*) FROM sqlops_meta.deployments") == [(2,)]
    done = warehouse.ok("gc", "--keep", "1")  # any command that writes finishes it first
    assert "note: finished the switch of environment `prod` that a rollback left half done" in (
        done.stderr
    )
    assert recorded(warehouse) == first
    assert points_at(warehouse, list(first)) == first
    (restores,) = warehouse.query(
        "SELECT value FROM sqlops_meta.meta WHERE key = 'deployment:3:restores'"
    )
    assert restores == ("1",)

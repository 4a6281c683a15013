"""`sqlops rollback` and `sqlops gc` on every engine, checked in the database itself: the rows a
view serves, sqlops_meta, and the catalog of the sandbox schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.test_engines import ENGINES, Warehouse, make_warehouse, rows_of

DAILY = "models/marts/revenue_daily.sql"
PLAIN = "order_date AS revenue_date,"


@pytest.fixture(params=ENGINES)
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    return make_warehouse(request.param, tmp_path, request)


def served(warehouse: Warehouse, env: str = "prod") -> dict[str, str]:
    """node -> fingerprint of what the environment serves, as sqlops_meta says."""
    rows = warehouse.query(
        f"SELECT node, fingerprint FROM sqlops_meta.environments WHERE env = '{env}'"
    )
    return dict(rows)


def deployments(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return warehouse.query("SELECT id, env, nodes FROM sqlops_meta.deployments ORDER BY id")


def sandbox(warehouse: Warehouse, schema: str = "sqlops__marts") -> set[str]:
    return warehouse.relations(schema)


def view_exists(warehouse: Warehouse, schema: str, name: str) -> bool:
    return name in warehouse.relations(schema)


def relation_of(warehouse: Warehouse, node: str, env: str = "prod") -> str:
    ((schema, name),) = warehouse.query(
        "SELECT physical_schema, physical_name FROM sqlops_meta.environments "
        f"WHERE env = '{env}' AND node = '{node}'"
    )
    return f"{schema}.{name}"


def three_versions(warehouse: Warehouse) -> list[dict[str, str]]:
    """Deployments 1, 2 and 3 of prod, each with another marts.revenue_daily; what prod served
    after each."""
    states = []
    warehouse.ok("build")
    states.append(served(warehouse))
    warehouse.edit(DAILY, PLAIN, "1 AS one, " + PLAIN)
    warehouse.ok("build")
    states.append(served(warehouse))
    warehouse.edit(DAILY, "1 AS one, ", "2 AS one, ")
    warehouse.ok("build")
    states.append(served(warehouse))
    return states


def test_rollback_serves_the_previous_deployment_again(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    first_rows = rows_of(warehouse, "marts.revenue_daily")
    first = served(warehouse)
    warehouse.edit(DAILY, PLAIN, "1 AS one, " + PLAIN)
    warehouse.ok("build")
    second_rows = rows_of(warehouse, "marts.revenue_daily")
    second = served(warehouse)
    assert second_rows != first_rows
    assert {n for n in first if first[n] != second[n]} == {"marts.revenue_daily"}

    # --dry-run says what would change, and changes nothing
    dry = warehouse.ok("rollback", "--dry-run")
    assert "from deployment 2 to deployment 1" in dry.stdout
    assert "marts.revenue_daily" in dry.stdout and "nothing was changed" in dry.stdout
    assert rows_of(warehouse, "marts.revenue_daily") == second_rows
    assert served(warehouse) == second
    assert len(deployments(warehouse)) == 2

    done = json.loads(warehouse.ok("rollback", "--json").stdout)
    assert (done["from_deployment"], done["to_deployment"], done["deployment"]) == (2, 1, 3)
    assert [c["node"] for c in done["changes"]] == ["marts.revenue_daily"]
    assert rows_of(warehouse, "marts.revenue_daily") == first_rows
    assert served(warehouse) == first
    # the rollback is a deployment: what it promoted, and which deployment it restored
    assert deployments(warehouse)[-1][:2] == (3, "prod")
    assert json.loads(deployments(warehouse)[-1][2]) == {
        "marts.revenue_daily": first["marts.revenue_daily"]
    }
    assert warehouse.query(
        "SELECT value FROM sqlops_meta.meta WHERE key = 'deployment:3:restores'"
    ) == [("1",)]
    # the working tree has the newer version: impact must not take the older one for it
    assert "marts.revenue_daily" in warehouse.ok("impact").stdout

    # a rollback can be rolled back: the previous deployment is the newer build
    again = json.loads(warehouse.ok("rollback", "--json").stdout)
    assert (again["to_deployment"], again["deployment"]) == (2, 4)
    assert rows_of(warehouse, "marts.revenue_daily") == second_rows
    assert served(warehouse) == second

    # --to names any deployment of the environment
    warehouse.ok("rollback", "--to", "1")
    assert rows_of(warehouse, "marts.revenue_daily") == first_rows
    assert served(warehouse) == first
    same = warehouse.ok("rollback", "--to", "3")
    assert "already serves what deployment 3 (deployed " in same.stdout
    assert "served: nothing to do" in same.stdout
    assert len(deployments(warehouse)) == 5

    # deployment frequency counts rollbacks
    report = json.loads(warehouse.ok("report", "--json").stdout)
    assert report["deployment_frequency"]["deployments"] == 5


def test_the_working_tree_back_at_the_old_code_keeps_impact_quiet(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    warehouse.edit(DAILY, PLAIN, "1 AS one, " + PLAIN)
    warehouse.ok("build")
    warehouse.edit(DAILY, "1 AS one, ", "")  # the change is reverted in git, say
    done = json.loads(warehouse.ok("rollback", "--json").stdout)
    assert done["definitions"] == {"recorded": ["marts.revenue_daily"], "forgotten": []}
    assert "No changes against prod" in warehouse.ok("impact").stdout


def test_nothing_to_roll_back_to(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    one = warehouse.sqlops("rollback")
    assert one.code == 2
    assert "environment `prod` has only one deployment (1): there is nothing to roll back to" in (
        one.stderr
    )
    none = warehouse.sqlops("rollback", "--env", "qa")
    assert none.code == 2
    assert "environment `qa` has no deployments" in none.stderr
    assert "environments with deployments: prod" in none.stderr
    unknown = warehouse.sqlops("rollback", "--to", "7")
    assert unknown.code == 2
    assert "deployment 7 is not a deployment of environment `prod`" in unknown.stderr
    assert len(deployments(warehouse)) == 1


def test_rollback_refuses_when_a_relation_is_gone(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    old = relation_of(warehouse, "marts.revenue_daily")
    warehouse.edit(DAILY, PLAIN, "1 AS one, " + PLAIN)
    warehouse.ok("build")
    rows, state = rows_of(warehouse, "marts.revenue_daily"), served(warehouse)
    warehouse.execute("DROP TABLE " + ".".join(f'"{part}"' for part in old.split(".")))
    refused = warehouse.sqlops("rollback")
    assert refused.code == 2
    assert f"1 relation it served is gone: {old} (marts.revenue_daily); nothing was changed" in (
        refused.stderr
    )
    assert "Traceback" not in refused.output
    assert rows_of(warehouse, "marts.revenue_daily") == rows
    assert served(warehouse) == state
    assert len(deployments(warehouse)) == 2


def test_partial_builds_and_retired_models_are_replayed(warehouse: Warehouse) -> None:
    warehouse.ok("build")  # 1
    first = served(warehouse)
    warehouse.edit(DAILY, PLAIN, "1 AS one, " + PLAIN)
    warehouse.ok("build", "marts.revenue_daily")  # 2: only revenue_daily
    second = served(warehouse)
    warehouse.edit("models/marts/customers.sql", "c.first_name,", "c.first_name, 1 AS one,")
    warehouse.ok("build", "marts.customers")  # 3: only customers
    third = served(warehouse)
    assert (
        third["marts.revenue_daily"]
        == second["marts.revenue_daily"]
        != first["marts.revenue_daily"]
    )
    warehouse.ok("rollback")  # 4: back to 2, which promoted revenue_daily over 1
    assert served(warehouse) == second
    assert served(warehouse)["marts.customers"] == first["marts.customers"]

    # a model added, then deleted: the full build after the deletion retired it
    (warehouse.root / "models" / "marts" / "extra.sql").write_text("SELECT 1 AS x\n")
    warehouse.ok("build")  # 5
    assert "marts.extra" in served(warehouse)
    (warehouse.root / "models" / "marts" / "extra.sql").unlink()
    warehouse.ok("build")  # 6
    assert "marts.extra" not in served(warehouse)
    assert not view_exists(warehouse, "marts", "extra")

    # someone's table where the view would go: refused, nothing changes
    warehouse.execute("CREATE TABLE marts.extra AS SELECT 2 AS x")
    refused = warehouse.sqlops("rollback")
    assert refused.code == 2
    assert "would replace the table marts.extra, which sqlops did not create" in refused.stderr
    assert "marts.extra" not in served(warehouse) and len(deployments(warehouse)) == 6
    warehouse.execute("DROP TABLE marts.extra")
    back = warehouse.ok("rollback")  # 7: back to 5, which served it
    assert "marts.extra: not in the project any more" in back.stdout
    assert "marts.extra" in served(warehouse)
    assert warehouse.query("SELECT x FROM marts.extra") == [(1,)]
    warehouse.ok("rollback", "--to", "4")  # 8: before it was added
    assert served(warehouse) == second
    assert not view_exists(warehouse, "marts", "extra")


def test_gc_drops_what_nothing_uses(warehouse: Warehouse) -> None:
    warehouse.ok("build")  # 1: prod serves v1
    v1 = relation_of(warehouse, "marts.revenue_daily").split(".")[1]
    warehouse.ok("build", "--env", "dev")  # 2: dev serves v1 too
    warehouse.edit(DAILY, PLAIN, "1 AS one, " + PLAIN)
    warehouse.ok("build")  # 3: prod v2
    v2 = relation_of(warehouse, "marts.revenue_daily").split(".")[1]
    warehouse.edit(DAILY, "1 AS one, ", "2 AS one, ")
    warehouse.ok("build")  # 4: prod v3
    v3 = relation_of(warehouse, "marts.revenue_daily").split(".")[1]
    # left by an interrupted build (unrecorded), and a table sqlops did not make
    warehouse.execute('CREATE TABLE "sqlops__marts"."junk__0123456789ab" AS SELECT 1 AS x')
    warehouse.execute('CREATE TABLE "sqlops__marts"."notes" AS SELECT 1 AS x')
    before = sandbox(warehouse)
    assert {v1, v2, v3} <= before

    dry = json.loads(warehouse.ok("gc", "--keep", "1", "--dry-run", "--json").stdout)
    assert {g["relation"] for g in dry["dropped"]} == {
        f"sqlops__marts.{v2}",
        "sqlops__marts.junk__0123456789ab",
    }
    assert dry["dry_run"] is True
    assert sandbox(warehouse) == before

    text = warehouse.ok("gc", "--keep", "1")
    assert f"sqlops__marts.{v2}" in text.stdout and "dropped 2 relations" in text.stdout
    # prod serves v3, dev serves v1 (each its last deployment too); v2 and the leftover go
    assert before - sandbox(warehouse) == {v2, "junk__0123456789ab"}
    assert warehouse.query(
        f"SELECT count(*) FROM sqlops_meta.versions WHERE physical_name = '{v2}'"
    ) == [(0,)]
    assert warehouse.query(
        f"SELECT count(*) FROM sqlops_meta.versions WHERE physical_name = '{v1}'"
    ) == [(1,)]
    # nothing else is left to collect
    assert json.loads(warehouse.ok("gc", "--keep", "1", "--json").stdout)["dropped"] == []

    # rollback to what was collected refuses cleanly; to what was kept, works
    refused = warehouse.sqlops("rollback")  # to 3, which served v2
    assert refused.code == 2
    assert f"sqlops__marts.{v2} (marts.revenue_daily)" in refused.stderr
    assert relation_of(warehouse, "marts.revenue_daily") == f"sqlops__marts.{v3}"
    warehouse.ok("rollback", "--to", "1")
    assert relation_of(warehouse, "marts.revenue_daily") == f"sqlops__marts.{v1}"
    assert rows_of(warehouse, "marts.revenue_daily") == rows_of(
        warehouse, "marts__dev.revenue_daily"
    )


def test_gc_keeps_the_last_deployments_and_rollback_still_works(warehouse: Warehouse) -> None:
    states = three_versions(warehouse)
    relations = [relation_of(warehouse, "marts.revenue_daily")]
    assert len({s["marts.revenue_daily"] for s in states}) == 3
    kept = json.loads(warehouse.ok("gc", "--json").stdout)  # --keep 5: all three deployments
    assert kept["dropped"] == []
    assert kept["kept_deployments"] == {"prod": [1, 2, 3]}
    gone = json.loads(warehouse.ok("gc", "--keep", "2", "--json").stdout)
    assert [g["node"] for g in gone["dropped"]] == ["marts.revenue_daily"]
    assert gone["dropped"][0]["status"] == "passed"
    warehouse.ok("rollback")  # to 2: kept
    assert served(warehouse) == states[1]
    relations.append(relation_of(warehouse, "marts.revenue_daily"))
    warehouse.ok("rollback")  # to 3 (the rollback's previous deployment): kept
    assert served(warehouse) == states[2]
    assert relation_of(warehouse, "marts.revenue_daily") == relations[0]
    refused = warehouse.sqlops("rollback", "--to", "1")
    assert refused.code == 2 and "`sqlops gc` (or someone) dropped it" in refused.stderr
    assert served(warehouse) == states[2]


def test_gc_keeps_what_a_kept_view_version_reads(warehouse: Warehouse) -> None:
    # a view version reads the upstream versions it was built on, which may be served no more
    (warehouse.root / "models" / "marts" / "order_days.sql").write_text(
        "-- @materialized view\nSELECT order_id, order_date FROM marts.orders\n"
    )
    warehouse.ok("build")
    old_orders = relation_of(warehouse, "marts.orders")
    view = relation_of(warehouse, "marts.order_days")
    warehouse.edit("models/marts/orders.sql", "    o.order_id,", "    o.order_id, 1 AS extra,")
    warehouse.ok("build")
    assert relation_of(warehouse, "marts.orders") != old_orders
    assert relation_of(warehouse, "marts.order_days") == view  # not rebuilt: it reads no `extra`
    result = json.loads(warehouse.ok("gc", "--keep", "1", "--json").stdout)
    assert result["dropped"] == []
    assert result["kept"]["read_by_views"] == 1
    assert old_orders.split(".")[1] in sandbox(warehouse)
    assert warehouse.query("SELECT count(*) FROM marts.order_days") == [(60,)]


def test_rollback_works_when_the_project_does_not_load(warehouse: Warehouse) -> None:
    warehouse.ok("build")
    first = served(warehouse)
    warehouse.edit(DAILY, PLAIN, "1 AS one, " + PLAIN)
    warehouse.ok("build")
    warehouse.edit(DAILY, "FROM marts.orders", "FROM marts.nope")  # broken: roll back anyway
    assert warehouse.sqlops("build").code == 2
    done = warehouse.ok("rollback")
    assert "note: the project does not load (models/marts/revenue_daily.sql" in done.stdout
    assert served(warehouse) == first
    assert warehouse.query(
        "SELECT count(*) FROM sqlops_meta.definitions WHERE node = 'marts.revenue_daily'"
    ) == [(0,)]

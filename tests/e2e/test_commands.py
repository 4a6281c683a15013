"""The inspection commands and `init`, `test`, `impact` on the template project."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Shop, run_sqlops


def test_init_refuses_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "keep.txt").write_text("mine")
    result = run_sqlops(["init", "shop"], tmp_path)
    assert result.code == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "shop" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == ["keep.txt"]


def test_init_copies_the_whole_template(shop: Shop) -> None:
    assert (shop.root / ".github" / "workflows" / "sqlops.yml").is_file()
    assert (shop.root / ".gitignore").is_file()
    assert 'name = "shop"' in (shop.root / "sqlops.toml").read_text()
    assert "__PROJECT_NAME__" not in (shop.root / "README.md").read_text()


def test_template_has_assertions_of_every_form(shop: Shop) -> None:
    nodes = json.loads(shop.ok("ls", "--json").stdout)
    texts = [a["name"] for n in nodes for a in n["assertions"]]
    severities = {a["severity"] for n in nodes for a in n["assertions"]}
    assert len(texts) >= 10
    assert severities == {"error", "warn"}
    joined = "\n".join(texts)
    for form in ("unique(", "not_null(", "accepted_values(", "references(", "row_count()"):
        assert form in joined
    kinds = {n["kind"] for n in nodes}
    assert kinds == {"model", "source", "seed", "test"}


def test_impact_tree_json_and_mermaid(shop: Shop) -> None:
    tree = shop.ok("impact", "staging.orders").stdout
    for node in ("marts.orders", "marts.customers", "marts.revenue_daily"):
        assert node in tree
    assert "unique(order_id)" in tree
    data = json.loads(shop.ok("impact", "staging.orders", "--format", "json").stdout)
    depth = {d["id"]: d["depth"] for d in data["downstream"]}
    assert depth["marts.orders"] == 1
    assert depth["marts.customers"] == 1 or depth["marts.customers"] == 2
    assert depth["test:payments_reconcile"] >= 2
    assert "staging.customers" not in depth
    assert any("accepted_values" in a["check"] for a in data["assertions"])
    orders = next(d for d in data["downstream"] if d["id"] == "marts.orders")
    unique = next(a for a in orders["assertions"] if a["name"] == "unique(order_id)")
    assert unique["blocking"] is True
    assert unique["location"] == "models/marts/orders.sql:41"
    mermaid = shop.ok("impact", "staging.orders", "--format", "mermaid").stdout
    assert mermaid.startswith("graph LR")
    assert "-->" in mermaid and "marts.revenue_daily" in mermaid
    # an unqualified name works when it is unique, and a bad one is an error
    assert shop.sqlops("impact", "revenue_daily").code == 0
    assert shop.sqlops("impact", "orders").code == 2


def test_ls_and_dag(shop: Shop) -> None:
    listed = shop.ok("ls").stdout
    assert "marts.customers" in listed and "11 nodes" in listed
    nodes = {n["id"]: n for n in json.loads(shop.ok("ls", "--json").stdout)}
    assert nodes["staging.customers"]["materialized"] == "view"
    assert "lifetime_value" in nodes["marts.customers"]["columns"]
    assert nodes["marts.customers"]["owner"]
    dag = json.loads(shop.ok("dag", "--json").stdout)
    assert ["staging.orders", "marts.orders"] in dag["edges"]
    order = [n["id"] for n in dag["nodes"]]
    assert order.index("raw.orders") < order.index("staging.orders") < order.index("marts.orders")
    assert "-->" in shop.ok("dag", "--format", "mermaid").stdout
    assert "staging.orders" in shop.ok("dag", "+marts.orders").stdout


def test_compile_resolves_names_for_an_environment(built_shop: Shop) -> None:
    sql = built_shop.ok("compile", "marts.customers").stdout
    assert '"staging"."customers"' in sql
    dev = built_shop.ok("compile", "marts.customers", "--env", "dev", "--assertions").stdout
    assert '"staging__dev"."customers"' in dev
    assert "-- assertion: unique(customer_id)" in dev
    assert "__failing" in dev
    # the compiled SQL runs as it is against prod
    rows = built_shop.query(sql)
    assert len(rows) == 25


def test_show_previews_rows_without_building(shop: Shop) -> None:
    shop.ok("build")
    shop.edit("models/marts/customers.sql", "c.first_name,", "'X' || c.first_name AS first_name,")
    data = json.loads(shop.ok("show", "marts.customers", "--limit", "3", "--json").stdout)
    assert len(data) == 3
    assert all(r["first_name"].startswith("X") for r in data)
    # nothing was built by show
    assert shop.query("SELECT count(*) FROM marts.customers WHERE first_name LIKE 'X%'") == [(0,)]
    assert "customer_id" in shop.ok("show", "raw.orders").stdout


def test_test_command_monitors_what_prod_serves(built_shop: Shop) -> None:
    result = built_shop.ok("test", "--json")
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["assertion_counts"]["fail"] == 0
    # what prod serves goes bad under it (a duplicated order in the table a view points at)
    (physical,) = built_shop.query(
        "SELECT physical_schema || '.' || physical_name FROM sqlops_meta.environments "
        "WHERE env = 'prod' AND node = 'marts.orders'"
    )[0]
    import duckdb

    con = duckdb.connect(str(built_shop.db))
    con.execute(f"INSERT INTO {physical} SELECT * FROM {physical} WHERE order_id = 1001")
    con.close()
    result = built_shop.sqlops("test", "marts.orders")
    assert result.code == 1
    assert "unique(order_id)" in result.stdout
    assert "models/marts/orders.sql" in result.stdout
    assert built_shop.sqlops("test", "raw.orders").code == 0


def test_test_command_needs_a_deployed_environment(built_shop: Shop) -> None:
    result = built_shop.sqlops("test", "--env", "qa", "marts.orders")
    assert result.code == 1
    assert "sqlops build --env qa" in result.output


def test_failing_standalone_test_blocks_promotion(built_shop: Shop) -> None:
    built_shop.write(
        "tests/no_big_orders.sql",
        "-- @assert (SELECT max(amount) FROM marts.orders) < 1\n",
    )
    result = built_shop.sqlops("build")
    assert result.code == 1
    assert "tests/no_big_orders.sql:1" in result.stdout
    assert built_shop.query("SELECT count(*) FROM sqlops_meta.deployments") == [(1,)]


def test_a_test_file_that_is_a_query(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    project = make_project(
        {
            "seeds/raw/numbers.csv": "n\n1\n2\n3\n",
            "models/doubled.sql": "SELECT n * 2 AS d FROM raw.numbers",
            "tests/no_odd.sql": "-- rows returned are failures\nSELECT d FROM doubled WHERE d % 2 = 1\n",
        }
    )
    project.ok("build")
    project.write("models/doubled.sql", "SELECT n * 2 + 1 AS d FROM raw.numbers")
    result = project.sqlops("build")
    assert result.code == 1
    assert "3 rows fail" in result.stdout.replace(" of", "") or "3 rows" in result.stdout
    assert project.query("SELECT sum(d) FROM main.doubled") == [(12,)]


def test_help_and_version_of_commands() -> None:
    result = run_sqlops(["--help"], Path.cwd())
    assert result.code == 0
    for command in ("init", "build", "test", "impact", "ls", "compile", "show", "diff", "dag"):
        assert command in result.stdout


def test_a_test_file_with_any_name(make_project: Callable[[dict[str, str]], Shop]) -> None:
    project = make_project(
        {
            "seeds/raw/numbers.csv": "n\n1\n2\n",
            "tests/no-negatives.sql": "SELECT n FROM raw.numbers WHERE n < 0\n",
        }
    )
    project.ok("build")
    assert "test:no-negatives" in project.ok("ls").stdout


def test_a_glob_that_matches_nothing_is_an_error(built_shop: Shop) -> None:
    result = built_shop.sqlops("test", "stagin.*")
    assert result.code == 2 and "matches nothing" in result.stderr

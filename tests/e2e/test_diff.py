"""`sqlops diff` on real DuckDB projects, checked against SQL written here by hand."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from sqlops.cli.render import to_jsonable
from tests.conftest import Shop, run_sqlops

DEV, PROD = "marts__dev.customers", "marts.customers"


@pytest.fixture(scope="module")
def changed(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """The template built into prod, then a change to marts.customers built into dev.

    In dev, customers 6 and 17 become 106 and 117 (two rows disappear, two appear), 23 is
    filtered out, first names of every fourth customer are upper-cased, `email` is dropped and
    `last_name_length` is added.
    """
    root = tmp_path_factory.mktemp("diff")
    assert run_sqlops(["init", "shop"], root).code == 0
    shop = Shop(root / "shop")
    shop.ok("build")
    model = "models/marts/customers.sql"
    shop.edit(
        model,
        "    c.customer_id,\n    c.first_name,",
        "    CASE WHEN c.customer_id IN (6, 17) THEN c.customer_id + 100 ELSE c.customer_id END"
        " AS customer_id,\n"
        "    CASE WHEN c.customer_id % 4 = 0 THEN upper(c.first_name) ELSE c.first_name END"
        " AS first_name,",
    )
    shop.edit(model, "    c.email,\n", "    length(c.last_name) AS last_name_length,\n")
    shop.edit(model, "GROUP BY ALL", "WHERE c.customer_id <> 23\nGROUP BY ALL")
    shop.ok("build", "--env", "dev")
    return shop


def columns(shop: Shop, relation: str) -> dict[str, str]:
    schema, name = relation.split(".")
    rows = shop.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{schema}' AND table_name = '{name}' ORDER BY ordinal_position"
    )
    return {str(n): str(t) for n, t in rows}


def diff_json(shop: Shop, *args: str) -> dict[str, Any]:
    result = shop.ok("diff", *args, "--json")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_a_real_change_matches_a_hand_written_comparison(changed: Shop) -> None:
    data = diff_json(changed, "marts.customers", "--env", "dev")
    dev, prod = columns(changed, DEV), columns(changed, PROD)
    assert data["model"] == "marts.customers"
    assert (data["env"], data["against"]) == ("dev", "prod")
    assert data["relations"] == {"env": DEV, "against": PROD}
    assert data["key"] == ["customer_id"]
    assert data["key_from"] == "unique(customer_id) at models/marts/customers.sql:23"
    assert data["identical"] is False

    # schema
    schema = data["schema"]
    assert schema["added"] == [{"name": n, "type": t} for n, t in dev.items() if n not in prod]
    assert schema["added"] == [{"name": "last_name_length", "type": "BIGINT"}]
    assert schema["removed"] == [{"name": n, "type": t} for n, t in prod.items() if n not in dev]
    assert [c["name"] for c in schema["removed"]] == ["email"]
    assert schema["retyped"] == []
    common = [c for c in dev if c in prod and c != "customer_id"]
    assert schema["compared"] == common

    # row counts, and rows only on one side, by key
    ((dev_rows, prod_rows),) = changed.query(
        f"SELECT (SELECT count(*) FROM {DEV}), (SELECT count(*) FROM {PROD})"
    )
    assert data["rows"] == {"env": dev_rows, "against": prod_rows} == {"env": 24, "against": 25}
    only_dev = changed.query(
        f"SELECT * FROM {DEV} WHERE customer_id NOT IN (SELECT customer_id FROM {PROD}) "
        "ORDER BY customer_id"
    )
    only_prod = changed.query(
        f"SELECT * FROM {PROD} WHERE customer_id NOT IN (SELECT customer_id FROM {DEV}) "
        "ORDER BY customer_id"
    )
    assert [r[0] for r in only_dev] == [106, 117]
    assert [r[0] for r in only_prod] == [6, 17, 23]
    for side, rows, names in (("only_in_env", only_dev, dev), ("only_in_against", only_prod, prod)):
        assert data[side]["count"] == len(rows)
        assert data[side]["sample"] == [to_jsonable(dict(zip(names, r, strict=True))) for r in rows]

    # rows with the same key whose values changed, and how many values changed per column
    by_key = data["by_key"]
    joined = f"FROM {DEV} AS d JOIN {PROD} AS p USING (customer_id)"
    ((matched,),) = changed.query(f"SELECT count(*) {joined}")
    differs = " OR ".join(f'd."{c}" IS DISTINCT FROM p."{c}"' for c in common)
    changed_rows = changed.query(
        f"SELECT customer_id, p.first_name, d.first_name {joined} WHERE {differs} "
        "ORDER BY customer_id"
    )
    assert by_key["matched"] == matched == 22
    assert by_key["changed"] == len(changed_rows) == 6
    assert by_key["unchanged"] == matched - len(changed_rows)
    per_column = {
        c: changed.query(f'SELECT count(*) {joined} WHERE d."{c}" IS DISTINCT FROM p."{c}"')[0][0]
        for c in common
    }
    assert by_key["changed_by_column"] == per_column
    assert {c: n for c, n in per_column.items() if n} == {"first_name": 6}
    assert by_key["changed_sample"] == [
        {"key": {"customer_id": k}, "changes": {"first_name": {"before": b, "after": a}}}
        for k, b, a in changed_rows[:5]
    ]
    assert by_key["null_key_rows"] == {"env": 0, "against": 0}
    assert by_key["duplicate_keys"]["ambiguous"] == 0


def test_the_text_output_gives_the_main_numbers(changed: Shop) -> None:
    text = changed.ok("diff", "marts.customers", "--env", "dev").stdout
    assert "marts.customers: dev (marts__dev.customers) against prod (marts.customers)" in text
    assert "key: customer_id (from unique(customer_id) at models/marts/customers.sql:23)" in text
    assert "+  last_name_length  BIGINT" in text
    assert "-  email" in text
    assert "25 in prod, 24 in dev (-1)" in text
    assert "2 only in dev, 3 only in prod" in text
    assert "22 matched by key: 6 changed, 16 unchanged" in text
    assert "changed values: first_name 6" in text
    assert "changed in dev (6 rows, first 5)" in text
    assert "Noah" in text and "NOAH" in text  # customer 4's first name, before and after
    assert "only in prod (3 rows)" in text and "lily.moreau@example.com" in text


def test_a_key_that_is_not_unique_is_reported(changed: Shop) -> None:
    data = diff_json(changed, "marts.customers", "--env", "dev", "--key", "country_code")
    assert data["key"] == ["country_code"] and data["key_from"] == "--key"
    dup = data["by_key"]["duplicate_keys"]
    for side, relation in (("env", DEV), ("against", PROD)):
        ((keys, rows),) = changed.query(
            "SELECT count(*), sum(n) FROM (SELECT country_code, count(*) AS n "
            f"FROM {relation} GROUP BY 1 HAVING count(*) > 1)"
        )
        assert dup[side] == {"keys": keys, "rows": rows}
    ((ambiguous,),) = changed.query(
        f"SELECT count(*) FROM (SELECT country_code FROM {DEV} GROUP BY 1) AS d "
        f"JOIN (SELECT country_code FROM {PROD} GROUP BY 1) AS p USING (country_code) "
        f"WHERE country_code IN (SELECT country_code FROM {DEV} GROUP BY 1 HAVING count(*) > 1 "
        f"UNION SELECT country_code FROM {PROD} GROUP BY 1 HAVING count(*) > 1)"
    )
    assert dup["ambiguous"] == ambiguous > 0
    assert dup["sample"][0] == {"key": {"country_code": "US"}, "env": 4, "against": 4}
    text = changed.ok("diff", "marts.customers", "-e", "dev", "-k", "country_code").stdout
    assert "the key is not unique in dev" in text
    assert f"{ambiguous} key values are on both sides but not unique" in text


def test_a_composite_key_override(changed: Shop) -> None:
    # two options or one comma-separated list; the case of a name does not matter
    one = diff_json(changed, "marts.customers", "-e", "dev", "--key", "last_name, First_Name")
    two = diff_json(changed, "marts.customers", "-e", "dev", "-k", "last_name", "-k", "first_name")
    assert one == two
    assert one["key"] == ["last_name", "first_name"]
    # upper-cased first names are new keys now: 6 rows went, 6 came, plus the changes by id
    ((only_dev,),) = changed.query(
        f"SELECT count(*) FROM (SELECT last_name, first_name FROM {DEV} "
        f"EXCEPT SELECT last_name, first_name FROM {PROD})"
    )
    assert one["only_in_env"]["count"] == only_dev == 6
    assert one["by_key"]["changed_by_column"]["customer_id"] == 2


def test_without_a_key_rows_are_compared_whole(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    project = make_project(
        {
            "seeds/raw/items.csv": "sku,qty\na,1\nb,2\nb,2\nc,3\n",
            "models/stock.sql": "SELECT sku, qty FROM raw.items\n",
        }
    )
    project.ok("build")
    project.write(
        "models/stock.sql", "SELECT sku, qty * (sku = 'c')::INT + 0 AS qty FROM raw.items\n"
    )
    project.ok("build", "--env", "dev")
    data = diff_json(project, "stock", "--env", "dev")
    assert data["key"] is None and data["key_from"] is None and data["by_key"] is None
    expected = {}
    for side, first, second in (("env", "main__dev", "main"), ("against", "main", "main__dev")):
        expected[side] = project.query(
            f"SELECT * FROM (SELECT sku, qty FROM {first}.stock EXCEPT ALL "
            f"SELECT sku, qty FROM {second}.stock) ORDER BY 1, 2"
        )
    assert data["only_in_env"]["count"] == len(expected["env"]) == 3
    assert data["only_in_against"]["count"] == len(expected["against"]) == 3
    assert [tuple(r.values()) for r in data["only_in_env"]["sample"]] == expected["env"]
    assert [tuple(r.values()) for r in data["only_in_against"]["sample"]] == expected["against"]
    text = project.ok("diff", "stock", "--env", "dev").stdout
    assert "key: none" in text and "3 only in dev, 3 only in prod" in text
    # the same version on both sides
    project.ok("build")
    same = diff_json(project, "main.stock", "--env", "dev")
    assert same["identical"] is True and same["versions"]["env"] == same["versions"]["against"]
    assert "no differences" in project.ok("diff", "stock", "--env", "dev").stdout


def test_errors(shop: Shop) -> None:
    def fails(*args: str) -> str:
        result = shop.sqlops("diff", *args)
        assert result.code == 2, result.output
        assert "Traceback" not in result.output
        return result.stderr

    assert "nothing has been built in target `local` yet" in fails("marts.orders", "--env", "dev")
    shop.ok("build")
    message = fails("marts.orders", "--env", "dev")
    assert "marts.orders is not served by environment `dev`" in message
    assert "sqlops build --env dev" in message
    assert "matches nothing" in fails("marts.nope", "--env", "dev")
    assert "matches 3 nodes" in fails("orders", "--env", "dev")
    assert "Missing option '--env'" in fails("marts.orders")
    assert "both name `prod`" in fails("marts.orders", "--env", "prod")
    assert "not a valid environment name" in fails("marts.orders", "--env", "Dev")
    assert "test file" in fails("test:payments_reconcile", "--env", "dev")
    shop.ok("build", "--env", "dev")
    message = fails("marts.orders", "--env", "dev", "--key", "order_idd")
    assert "key column `order_idd` is not in marts__dev.orders nor marts.orders" in message
    assert "did you mean `order_id`" in message and "to fix this: pass --key" in message
    shop.write("models/marts/fast.sql", "-- @materialized ephemeral\nSELECT 1 AS x\n")
    assert "ephemeral" in fails("marts.fast", "--env", "dev")
    shop.write("sources/ext/things.sql", "CREATE TABLE ext.things (id INT)\n")
    assert "every environment reads the same table" in fails("ext.things", "--env", "dev")

"""End to end: the real CLI builds the template project on a real DuckDB file."""

from __future__ import annotations

import json

from tests.conftest import Shop

MODELS = {
    "staging.customers",
    "staging.orders",
    "staging.payments",
    "marts.orders",
    "marts.customers",
    "marts.revenue_daily",
    "ref.payment_methods",
}
# sources read from files are versioned like seeds: a change in their data is a new version
SOURCES = {"raw.customers", "raw.orders", "raw.payments"}
VERSIONED = MODELS | SOURCES


def actions(run_json: str) -> dict[str, str]:
    data = json.loads(run_json)
    return {n["id"]: n["status"] for n in data["nodes"]}


def test_template_builds_tables_views_and_state(built_shop: Shop) -> None:
    shop = built_shop
    # every model and seed is served in prod through a view onto its sandbox relation
    views = {
        f"{s}.{n}"
        for s, n in shop.query(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'VIEW' AND table_schema IN ('staging', 'marts', 'ref', 'raw')"
        )
    }
    assert views == VERSIONED
    physical = shop.query(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_schema LIKE 'sqlops\\_\\_%' ESCAPE '\\'"
    )
    assert len(physical) == len(VERSIONED)
    assert all("__" in name for _, name, _ in physical)
    # staging.customers is materialized as a view, the rest as tables
    kinds = {f"{s.removeprefix('sqlops__')}.{n.rsplit('__', 1)[0]}": k for s, n, k in physical}
    assert kinds["staging.customers"] == "VIEW"
    assert kinds["marts.customers"] == "BASE TABLE"
    # the data is right: raw rows flow through, totals reconcile
    assert shop.query("SELECT count(*) FROM raw.orders") == [(60,)]
    assert shop.query("SELECT count(*) FROM marts.orders") == [(60,)]
    assert shop.query("SELECT count(*) FROM marts.customers") == [(25,)]
    (paid,) = shop.query("SELECT sum(amount) FROM staging.payments")[0]
    (mart,) = shop.query("SELECT sum(amount) FROM marts.orders")[0]
    assert paid == mart
    # state: one deployment of prod naming every model and seed
    deployments = shop.query("SELECT env, nodes FROM sqlops_meta.deployments")
    assert len(deployments) == 1 and deployments[0][0] == "prod"
    assert set(json.loads(deployments[0][1])) == VERSIONED
    statuses = shop.query("SELECT DISTINCT status FROM sqlops_meta.versions")
    assert statuses == [("passed",)]


def test_second_build_of_unchanged_project_builds_nothing(built_shop: Shop) -> None:
    result = built_shop.ok("build", "--json")
    statuses = actions(result.stdout)
    assert {statuses[m] for m in MODELS} == {"reused"}
    assert json.loads(result.stdout)["deployment_id"] is None
    assert built_shop.query("SELECT count(*) FROM sqlops_meta.deployments") == [(1,)]


def test_cosmetic_change_rebuilds_nothing(built_shop: Shop) -> None:
    built_shop.edit(
        "models/staging/orders.sql", "    customer_id,", "    -- who ordered\n    CUSTOMER_ID ,"
    )
    statuses = actions(built_shop.ok("build", "--json").stdout)
    assert {statuses[m] for m in MODELS} == {"reused"}


def test_editing_one_model_rebuilds_it_and_its_descendants_only(built_shop: Shop) -> None:
    built_shop.edit(
        "models/staging/customers.sql", "FROM raw.customers", "FROM raw.customers WHERE TRUE"
    )
    statuses = actions(built_shop.ok("build", "--json").stdout)
    rebuilt = {n for n, s in statuses.items() if s == "built"}
    # marts.customers reads staging.customers; staging.orders only checks references to it
    assert "staging.customers" in rebuilt
    assert "marts.customers" in rebuilt
    assert "staging.payments" not in rebuilt
    assert "ref.payment_methods" not in rebuilt
    # an assertion that reads the changed model is re-run on the existing version, not rebuilt
    assert statuses["staging.orders"] == "retested"
    for node in rebuilt:
        assert node == "staging.customers" or node in descendants(built_shop, "staging.customers")
    assert built_shop.query("SELECT count(*) FROM sqlops_meta.deployments") == [(2,)]


def descendants(shop: Shop, node: str) -> set[str]:
    data = json.loads(shop.ok("impact", node, "--format", "json").stdout)
    return {d["id"] for d in data["downstream"]}


def test_failing_blocking_assertion_leaves_prod_untouched(built_shop: Shop) -> None:
    shop = built_shop
    before = shop.query("SELECT * FROM marts.orders ORDER BY order_id")
    before_views = shop.query(
        "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1"
    )
    shop.edit(
        "models/staging/payments.sql",
        "{{ cents_to_dollars('amount_cents') }} AS amount",
        "{{ cents_to_dollars('amount_cents - 2000') }} AS amount",
    )
    result = shop.sqlops("build")
    assert result.code == 1, result.output
    # the report names the assertion, its file:line, the failing count and sample rows
    assert "positive_amounts" in result.stdout
    assert "models/staging/payments.sql:14" in result.stdout
    assert "rows fail" in result.stdout
    assert "payment_id" in result.stdout  # header of the sample rows
    assert "not promoted" in result.stdout
    # descendants of the failure were skipped
    assert "skipped" in result.stderr
    # prod serves the previous data, row for row, through the same views
    assert shop.query("SELECT * FROM marts.orders ORDER BY order_id") == before
    after_views = shop.query(
        "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1"
    )
    assert after_views == before_views
    assert shop.query("SELECT count(*) FROM sqlops_meta.deployments") == [(1,)]
    # the failed version is kept for inspection, and marked failed
    assert shop.query(
        "SELECT count(*) FROM sqlops_meta.versions WHERE status = 'failed' "
        "AND node = 'staging.payments'"
    ) == [(1,)]


def test_json_report_of_a_failure(built_shop: Shop) -> None:
    built_shop.edit(
        "models/staging/payments.sql",
        "{{ cents_to_dollars('amount_cents') }} AS amount",
        "{{ cents_to_dollars('amount_cents - 2000') }} AS amount",
    )
    result = built_shop.sqlops("build", "--json")
    assert result.code == 1
    data = json.loads(result.stdout)
    assert data["promoted"] is False
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes["staging.payments"]["status"] == "failed"
    assert nodes["marts.orders"]["status"] == "skipped"
    failed = [a for a in nodes["staging.payments"]["assertions"] if a["outcome"] == "fail"]
    assert [a["name"] for a in failed] == ["positive_amounts"]
    assert failed[0]["failing"] > 0
    assert 0 < len(failed[0]["samples"]) <= 5
    assert failed[0]["location"] == "models/staging/payments.sql:14"


def test_fixing_a_failure_then_builds_and_promotes(built_shop: Shop) -> None:
    original = (built_shop.root / "models/staging/payments.sql").read_text()
    built_shop.edit("models/staging/payments.sql", "AS amount ", "- 100 AS amount ")
    assert built_shop.sqlops("build").code == 1
    (built_shop.root / "models/staging/payments.sql").write_text(original)
    statuses = actions(built_shop.ok("build", "--json").stdout)
    assert statuses["staging.payments"] == "reused"  # the original version is still there


def test_warn_failure_still_promotes(built_shop: Shop) -> None:
    built_shop.edit(
        "models/marts/orders.sql",
        "-- @assert unique(order_id)",
        "-- @assert unique(order_id)\n-- @warn too_few: row_count() > 1000000",
    )
    # re-tested on the version prod already serves: it warns; the same version stays, and the
    # environment records the new check (a deployment of the changed code)
    result = built_shop.sqlops("build")
    assert result.code == 0, result.output
    assert "WARN" in result.stdout and "too_few" in result.stdout
    assert "deployment 2" in result.stdout
    assert "already serves" in built_shop.ok("build").stdout
    # a new version whose @warn fails is still promoted
    built_shop.edit("models/marts/orders.sql", "SELECT", "SELECT DISTINCT")
    result = built_shop.sqlops("build", "--json")
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["promoted"] is True and data["deployment_id"] == 3
    orders = next(n for n in data["nodes"] if n["id"] == "marts.orders")
    assert orders["status"] == "built"
    assert [a["outcome"] for a in orders["assertions"] if a["name"] == "too_few"] == ["warn"]


def test_changed_blocking_assertion_is_rerun_without_rebuild(built_shop: Shop) -> None:
    built_shop.edit(
        "models/marts/orders.sql",
        "-- @assert unique(order_id)",
        "-- @assert unique(order_id)\n-- @assert row_count() > 1000000",
    )
    result = built_shop.sqlops("build", "--json")
    assert result.code == 1
    statuses = actions(result.stdout)
    assert statuses["marts.orders"] == "failed"
    assert statuses["raw.orders"] == "reused"  # the same data as before


def test_dev_environment_does_not_touch_prod_and_prod_reuses_it(built_shop: Shop) -> None:
    shop = built_shop
    prod_before = shop.query("SELECT * FROM marts.customers ORDER BY customer_id")
    shop.edit(
        "models/marts/customers.sql",
        "c.first_name,",
        "upper(c.first_name) AS first_name,",
    )
    dev = shop.sqlops("build", "--env", "dev", "--json")
    assert dev.code == 0, dev.output
    assert actions(dev.stdout)["marts.customers"] == "built"
    # dev is served from its own schemas; prod is unchanged
    assert shop.query("SELECT first_name FROM marts__dev.customers WHERE customer_id = 1") == [
        (shop.query("SELECT upper(first_name) FROM marts.customers WHERE customer_id = 1")[0][0],)
    ]
    assert shop.query("SELECT * FROM marts.customers ORDER BY customer_id") == prod_before
    built_tables = shop.query("SELECT count(*) FROM sqlops_meta.versions")
    # promoting to prod recomputes nothing: what was tested in dev is what ships
    prod = shop.ok("build", "--json")
    statuses = actions(prod.stdout)
    assert "built" not in statuses.values()
    assert statuses["marts.customers"] == "reused"
    assert shop.query("SELECT count(*) FROM sqlops_meta.versions") == built_tables
    assert shop.query("SELECT * FROM marts.customers ORDER BY customer_id") == shop.query(
        "SELECT * FROM marts__dev.customers ORDER BY customer_id"
    )
    assert (
        shop.query(
            "SELECT DISTINCT physical_name FROM sqlops_meta.environments WHERE node = 'marts.customers'"
        ).__len__()
        == 1
    )


def test_threads_build_the_same_result(shop: Shop) -> None:
    result = shop.ok("build", "--threads", "4", "--json")
    data = json.loads(result.stdout)
    assert data["promoted"] is True
    assert {n["status"] for n in data["nodes"]} <= {"built", "passed"}
    assert shop.query("SELECT count(*) FROM marts.orders") == [(60,)]


def test_selector_builds_only_the_selection_and_changed_ancestors(built_shop: Shop) -> None:
    built_shop.edit("models/staging/orders.sql", "lower(status)", "lower(trim(status))")
    result = built_shop.ok("build", "marts.customers", "--json")
    statuses = actions(result.stdout)
    # staging.orders changed upstream of the selection, so it is built and promoted with it
    assert statuses["staging.orders"] == "built"
    assert statuses["marts.customers"] == "built"
    # marts.revenue_daily is not rebuilt, but its check reads marts.orders: re-tested against it
    assert statuses["marts.revenue_daily"] == "retested"
    # staging.payments is unchanged, but one of its assertions reads staging.orders: re-tested
    assert statuses["staging.payments"] == "retested"
    assert "ref.payment_methods" not in statuses


def test_exclude_and_tags(built_shop: Shop) -> None:
    result = built_shop.ok("ls", "tag:staging", "--exclude", "staging.payments", "--json")
    ids = {n["id"] for n in json.loads(result.stdout)}
    assert ids == {"staging.customers", "staging.orders"}


def test_dry_run_prints_plan_and_changes_nothing(built_shop: Shop) -> None:
    built_shop.edit(
        "models/marts/orders.sql",
        "SELECT",
        "SELECT /* v2 */ ",
    )
    built_shop.edit("models/staging/orders.sql", "lower(status)", "upper(status)")
    result = built_shop.ok("build", "--dry-run", "--json")
    steps = {s["id"]: s["action"] for s in json.loads(result.stdout)["steps"]}
    assert steps["staging.orders"] == "build"
    assert steps["staging.customers"] == "reuse"
    text = built_shop.ok("build", "--dry-run").stdout
    assert "nothing was run" in text
    assert built_shop.query("SELECT count(*) FROM sqlops_meta.versions") == [(len(VERSIONED),)]


def test_a_dropped_environment_view_is_restored(built_shop: Shop) -> None:
    import duckdb

    con = duckdb.connect(str(built_shop.db))
    con.execute("DROP VIEW marts.orders")
    con.close()
    result = built_shop.ok("build", "--json")
    assert json.loads(result.stdout)["deployment_id"] == 2
    assert built_shop.query("SELECT count(*) FROM marts.orders") == [(60,)]


def test_a_deleted_model_is_retired_by_a_full_build(built_shop: Shop) -> None:
    (built_shop.root / "models/marts/revenue_daily.sql").unlink()
    built_shop.edit(
        "tests/payments_reconcile.sql",
        "(SELECT sum(revenue) FROM marts.revenue_daily)",
        "(SELECT sum(revenue) FROM marts.orders)",
    )
    built_shop.ok("build", "staging.orders")  # a partial build retires nothing
    assert built_shop.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'revenue_daily'"
        " AND table_schema = 'marts'"
    ) == [(1,)]
    built_shop.ok("build")
    assert built_shop.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'revenue_daily'"
        " AND table_schema = 'marts'"
    ) == [(0,)]
    assert built_shop.query(
        "SELECT count(*) FROM sqlops_meta.environments WHERE node = 'marts.revenue_daily'"
    ) == [(0,)]


def test_deployments_record_the_git_commit(shop: Shop) -> None:
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
            cwd=shop.root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "first")
    head = git("rev-parse", "HEAD")
    shop.ok("build")
    shop.edit("models/marts/orders.sql", "SELECT", "SELECT DISTINCT")
    shop.ok("build")
    commits = [
        r[0] for r in shop.query("SELECT git_commit FROM sqlops_meta.deployments ORDER BY id")
    ]
    assert commits == [head, f"{head}-dirty"]


def test_state_from_a_newer_sqlops_is_refused(built_shop: Shop) -> None:
    import duckdb

    con = duckdb.connect(str(built_shop.db))
    con.execute("UPDATE sqlops_meta.meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    result = built_shop.sqlops("build")
    assert result.code == 2
    assert "newer sqlops" in result.stderr


def test_a_partial_build_cannot_break_a_served_check(built_shop: Shop) -> None:
    # marts.revenue_daily (not selected, still served) checks its total against marts.orders
    built_shop.edit(
        "models/marts/orders.sql",
        "LEFT JOIN order_payments AS op USING (order_id)",
        "LEFT JOIN order_payments AS op USING (order_id) WHERE o.order_id <> 1001",
    )
    result = built_shop.sqlops("build", "marts.orders", "--json")
    assert result.code == 1, result.output
    nodes = {n["id"]: n for n in json.loads(result.stdout)["nodes"]}
    assert nodes["marts.orders"]["status"] == "built"
    assert nodes["marts.revenue_daily"]["status"] == "failed"
    assert built_shop.query("SELECT count(*) FROM marts.orders") == [(60,)]


def test_ctrl_c_stops_the_build_and_promotes_nothing(built_shop: Shop) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    built_shop.write(
        "models/marts/slow.sql", "SELECT sum(hash(range * 7)) AS n FROM range(4000000000)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlops", "build"],
        cwd=built_shop.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        # as from a terminal: a job started in the background by a shell without job control
        # (`cmd &` in a script) ignores SIGINT, and its children would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(3)  # loaded and building
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in err
    assert built_shop.query("SELECT count(*) FROM sqlops_meta.deployments") == [(1,)]
    assert built_shop.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'slow'"
    ) == [(0,)]
    # the history says so; what finished before the signal is recorded, and reused next time
    assert built_shop.query("SELECT id, outcome FROM sqlops_meta.runs ORDER BY id") == [
        (1, "success"),
        (2, "interrupted"),
    ]

"""Column-level impact end to end: precise rebuilds on a real DuckDB file, change reports against
an environment and a git ref, `--fail-on`, `--upstream`, and the `changed` selector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.conftest import Shop

FILES = {
    "seeds/raw/orders.csv": "order_id,customer_id,amount,status\n"
    "1,10,5.00,paid\n2,10,7.50,paid\n3,11,2.25,returned\n4,12,9.00,paid\n",
    "models/staging/orders.sql": "SELECT order_id, customer_id, amount, status FROM raw.orders\n"
    "-- @assert unique(order_id)\n",
    # reads amount
    "models/marts/revenue.sql": "SELECT customer_id, sum(amount) AS total\n"
    "FROM staging.orders GROUP BY customer_id\n-- @assert total >= 0\n",
    # reads order_id and status only
    "models/marts/statuses.sql": "SELECT status, count(order_id) AS orders\n"
    "FROM staging.orders GROUP BY status\n",
}


def _physical(db: Path) -> dict[str, set[str]]:
    """schema -> physical relations sqlops built there."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema LIKE 'sqlops\\_\\_%' ESCAPE '\\'"
        ).fetchall()
    finally:
        con.close()
    found: dict[str, set[str]] = {}
    for schema, name in rows:
        found.setdefault(schema, set()).add(name)
    return found


def _served(shop: Shop, view: str) -> str:
    """The physical relation a view of prod reads."""
    [(sql,)] = shop.query(
        f"SELECT sql FROM duckdb_views() WHERE schema_name || '.' || view_name = '{view}'"
    )
    return str(sql).split("FROM")[-1].strip().rstrip(";")


@pytest.fixture
def project(make_project: Callable[[dict[str, str]], Shop]) -> Shop:
    shop = make_project(FILES)
    shop.ok("build")
    return shop


def test_changing_a_column_rebuilds_only_its_readers(project: Shop) -> None:
    before = _physical(project.db)
    statuses_before = _served(project, "marts.statuses")
    revenue_before = _served(project, "marts.revenue")
    project.edit("models/staging/orders.sql", "amount,", "amount * 2 AS amount,")

    data = json.loads(project.ok("build", "--json").stdout)
    statuses = {n["id"]: n["status"] for n in data["nodes"]}
    assert statuses["staging.orders"] == "built"
    assert statuses["marts.revenue"] == "built"
    assert statuses["marts.statuses"] == "reused"

    after = _physical(project.db)
    new = {(s, n) for s, names in after.items() for n in names} - {
        (s, n) for s, names in before.items() for n in names
    }
    # exactly one new physical table for the changed model and one for its reader
    assert sorted(s for s, _ in new) == ["sqlops__marts", "sqlops__staging"]
    assert {n.split("__")[0] for _, n in new} == {"orders", "revenue"}
    # the other reader keeps serving the same physical table, with the same rows
    assert _served(project, "marts.statuses") == statuses_before
    assert _served(project, "marts.revenue") != revenue_before
    assert project.query("SELECT total FROM marts.revenue WHERE customer_id = 10") == [(25,)]
    assert project.query("SELECT orders FROM marts.statuses WHERE status = 'paid'") == [(3,)]


def test_adding_a_column_nobody_reads_rebuilds_only_the_model(project: Shop) -> None:
    project.edit("models/staging/orders.sql", "status FROM", "status, amount > 5 AS big FROM")
    report = json.loads(project.ok("impact", "--json").stdout)
    [change] = report["changes"]
    assert change["class"] == "additive" and change["columns"]["added"] == ["big"]
    assert report["rebuild"] == ["staging.orders"]
    assert report["reuse"] == ["marts.revenue", "marts.statuses"]

    data = json.loads(project.ok("build", "--json").stdout)
    built = sorted(n["id"] for n in data["nodes"] if n["status"] == "built")
    assert built == ["staging.orders"]
    assert project.query("SELECT count(*) FROM staging.orders WHERE big") == [(2,)]
    assert "No changes against prod" in project.ok("impact").stdout


def test_impact_classifies_reports_and_fails_on(project: Shop) -> None:
    project.edit("models/staging/orders.sql", "amount,", "amount * 2 AS amount,")
    tree = project.ok("impact").stdout
    assert "staging.orders modified" in tree
    assert "column `amount` changed" in tree
    assert "marts.revenue depth 1 total" in tree
    assert "checked by total >= 0" in tree
    assert "a build rebuilds 2: staging.orders, marts.revenue" in tree
    assert "reused (inputs unchanged): marts.statuses" in tree

    markdown = project.ok("impact", "--format", "markdown").stdout
    assert markdown.startswith("### sqlops impact against `prod`")
    assert "| `staging.orders` | **modified** | column `amount` changed |" in markdown
    assert "| `marts.revenue` | 1 | `total` |" in markdown
    assert "**Downstream but not rebuilt (1):** `marts.statuses`" in markdown

    mermaid = project.ok("impact", "--format", "mermaid").stdout
    assert mermaid.startswith("graph LR") and "staging.orders<br/>modified" in mermaid

    assert project.sqlops("impact", "--fail-on", "breaking").code == 0
    failed = project.sqlops("impact", "--fail-on", "modified")
    assert failed.code == 1 and "modified" in failed.stdout


def test_removed_column_is_an_error_before_anything_runs(project: Shop) -> None:
    project.edit("models/staging/orders.sql", "customer_id, amount,", "customer_id,")
    result = project.sqlops("impact")
    assert result.code == 2
    assert "staging.orders breaking" in result.stdout
    assert "column `amount` removed; read by marts.revenue (models/marts/revenue.sql:1)" in (
        result.stdout
    )
    assert "models/marts/revenue.sql:1:" in result.output
    assert "staging.orders has no column `amount`" in result.output

    build = project.sqlops("build")
    assert build.code == 2
    assert "models/marts/revenue.sql:1:" in build.stderr
    assert "has no column `amount`" in build.stderr
    assert "change this model too" in build.stderr
    # nothing ran: prod still serves the old columns
    assert project.query("SELECT sum(total) FROM marts.revenue") == [(23.75,)]


def test_impact_of_a_column_and_where_it_comes_from(project: Shop) -> None:
    data = json.loads(project.ok("impact", "staging.orders.amount", "--json").stdout)
    assert data["model"] == "staging.orders" and data["column"] == "amount"
    [reader] = data["downstream"]
    assert reader["id"] == "marts.revenue" and reader["columns"] == ["total"]
    assert [a["check"] for a in reader["assertions"]] == ["total >= 0"]

    up = json.loads(project.ok("impact", "--upstream", "marts.revenue.total", "--json").stdout)
    origins = {(o["id"], o["column"], o["decides_rows"]) for o in up["upstream"]}
    assert origins == {
        ("staging.orders", "amount", False),
        ("staging.orders", "customer_id", True),
        ("raw.orders", "amount", False),
        ("raw.orders", "customer_id", True),
    }
    missing = project.sqlops("impact", "marts.revenue.totl")
    assert missing.code == 2 and "did you mean `total`" in missing.output


def test_changed_selector(project: Shop) -> None:
    listed = json.loads(project.ok("ls", "changed", "--json").stdout)
    assert listed == []
    project.edit("models/marts/statuses.sql", "count(order_id)", "count(DISTINCT order_id)")
    assert [n["id"] for n in json.loads(project.ok("ls", "changed", "--json").stdout)] == [
        "marts.statuses"
    ]
    project.edit("models/staging/orders.sql", "status FROM", "status, 1 AS one FROM")
    plus = [n["id"] for n in json.loads(project.ok("ls", "changed+", "--json").stdout)]
    assert plus == ["staging.orders", "marts.revenue", "marts.statuses"]

    # changed compares with the environment named by --env: dev has nothing yet
    dev = [
        n["id"] for n in json.loads(project.ok("ls", "changed", "--env", "dev", "--json").stdout)
    ]
    assert "raw.orders" in dev and "marts.revenue" in dev

    data = json.loads(project.ok("build", "changed", "--json").stdout)
    assert sorted(n["id"] for n in data["nodes"] if n["status"] == "built") == [
        "marts.statuses",
        "staging.orders",
    ]
    assert json.loads(project.ok("ls", "changed", "--json").stdout) == []


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_impact_against_a_git_ref(project: Shop) -> None:
    _git(project.root, "init", "-q", "-b", "main")
    _git(project.root, "add", ".")
    _git(project.root, "commit", "-q", "-m", "first")
    project.edit(
        "models/marts/statuses.sql", "GROUP BY status", "WHERE status <> 'x' GROUP BY status"
    )
    data = json.loads(project.ok("impact", "--against", "main", "--json").stdout)
    assert data["against"] == "git main"
    [change] = data["changes"]
    assert change["model"] == "marts.statuses" and change["class"] == "breaking"
    assert data["rebuild"] == ["marts.statuses"]

    bad = project.sqlops("impact", "--against", "no-such-branch")
    assert bad.code == 2 and "git knows no commit `no-such-branch`" in bad.output


def test_state_of_version_1_is_migrated(project: Shop) -> None:
    # state as sqlops 0.1 wrote it: no definitions, no history, deployments of five columns
    added = ["runs", "node_results", "assertion_results", "measurements"]
    added += ["source_observations", "incidents", "definitions"]
    con = duckdb.connect(str(project.db))
    for table in added:
        con.execute(f"DROP TABLE sqlops_meta.{table}")
    for column in ("run_id", "commit_time", "author"):
        con.execute(f"ALTER TABLE sqlops_meta.deployments DROP COLUMN {column}")
    con.execute("UPDATE sqlops_meta.meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    # read-only commands read old state as it is: nothing recorded, every node counts as changed
    report = json.loads(project.ok("impact", "--json").stdout)
    assert {c["model"] for c in report["changes"]} >= {"staging.orders", "marts.revenue"}
    assert report["rebuild"] == []
    # a build migrates it and records the definitions
    project.ok("build")
    assert project.query("SELECT value FROM sqlops_meta.meta WHERE key = 'schema_version'") == [
        ("4",)
    ]
    assert "No changes against prod" in project.ok("impact").stdout
    # and keeps the history from then on
    assert project.query("SELECT id, command, outcome FROM sqlops_meta.runs") == [
        (1, "build", "success")
    ]
    assert project.query(
        "SELECT id, run_id FROM sqlops_meta.deployments ORDER BY id DESC LIMIT 1"
    ) == [(2, 1)]


def _workflow_step(shop: Shop, name: str) -> tuple[dict[str, str], str]:
    """The env and run script of a step of the template's GitHub workflow."""
    text = (shop.root / ".github" / "workflows" / "sqlops.yml").read_text()
    block = text.split(f"- name: {name}\n", 1)[1].split("\n      - ", 1)[0]
    env_part, run_part = block.split("        run: |\n")
    env = dict(
        line.strip().split(": ", 1)
        for line in env_part.splitlines()
        if line.startswith("          ")
    )
    script = "\n".join(line[10:] for line in run_part.splitlines())
    return env, script


def test_template_workflow_posts_the_impact_report(shop: Shop, tmp_path: Path) -> None:
    _git(shop.root, "init", "-q", "-b", "main")
    _git(shop.root, "add", ".")
    _git(shop.root, "commit", "-q", "-m", "first")
    _git(shop.root, "update-ref", "refs/remotes/origin/main", "HEAD")
    shop.edit("models/staging/orders.sql", "lower(status)", "upper(status)")
    env, script = _workflow_step(shop, "Impact of this pull request")
    assert "--against" in script and "--format markdown" in script
    # a stand-in for the GitHub CLI, which needs GitHub: it keeps the comment it was given
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(
        '#!/bin/sh\nfor a; do [ "$prev" = --body-file ] && cp "$a" "$COMMENT"; prev=$a; done\n'
    )
    (bin_dir / "gh").chmod(0o755)
    run_env = {
        **os.environ,
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "COMMENT": str(tmp_path / "comment.md"),
        "BASE": "origin/main",
        "PR": "7",
        "GH_TOKEN": "x",
    }
    assert set(env) == {"GH_TOKEN", "BASE", "PR"}
    done = subprocess.run(
        ["bash", "-c", script], cwd=shop.root, env=run_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    comment = (tmp_path / "comment.md").read_text()
    assert comment.startswith("### sqlops impact against `git origin/main`")
    assert "| `staging.orders` | **modified** | column `status` changed |" in comment
    assert (tmp_path / "summary.md").read_text() == comment


def test_a_deleted_model_is_a_breaking_change(project: Shop) -> None:
    (project.root / "models/marts/statuses.sql").unlink()
    report = json.loads(project.ok("impact", "--json").stdout)
    [change] = report["changes"]
    assert change["model"] == "marts.statuses" and change["class"] == "breaking"
    assert change["deleted"] is True
    assert project.sqlops("impact", "--fail-on", "breaking").code == 1

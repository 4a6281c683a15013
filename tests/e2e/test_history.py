"""End to end: `sqlops history` lists recorded runs, filters them, shows one run in full, and
says what to do when there is no history yet."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import duckdb
import pytest

from tests.conftest import Shop

ITEMS = """SELECT id, label FROM raw.items

-- @assert unique(id)
-- @warn short_labels: length(label) <= 3
-- @warn row_count() < 2
"""
SUMMARY = """SELECT count(*) AS n FROM staging.items

-- @assert n > 0
"""
# a label that is rich markup: the terminal must print it as it is
SEED = "id,label\n1,a\n2,[red]boom[/]\n"


@pytest.fixture
def shop(make_project: Callable[[dict[str, str]], Shop]) -> Shop:
    """Runs: 1 build prod (warnings), 2 build dev, 3 build prod that fails, 4 test prod."""
    shop = make_project(
        {
            "seeds/raw/items.csv": SEED,
            "models/staging/items.sql": ITEMS,
            "models/marts/summary.sql": SUMMARY,
        }
    )
    at(shop, "2026-01-05T10:00:00", "build")
    at(shop, "2026-01-05T11:00:00", "build", "--env", "dev", "staging.items+")
    shop.write("seeds/raw/items.csv", SEED + "2,b\n")
    at(shop, "2026-01-06T09:30:00", "build", code=1)
    at(shop, "2026-01-06T10:00:00", "test")
    return shop


def at(shop: Shop, when: str, *args: str, code: int = 0) -> None:
    result = shop.sqlops(*args, env={"SQLOPS_NOW": when})
    assert result.code == code, result.output


def history(shop: Shop, *args: str) -> Any:
    result = shop.sqlops("history", "--json", *args)
    assert result.code == 0, result.output
    return json.loads(result.stdout)


def test_lists_runs_newest_first(shop: Shop) -> None:
    runs = history(shop)
    assert [(r["id"], r["command"], r["env"], r["outcome"]) for r in runs] == [
        (4, "test", "prod", "success"),
        (3, "build", "prod", "failed"),
        (2, "build", "dev", "success"),
        (1, "build", "prod", "success"),
    ]
    first = runs[-1]
    assert first["started_at"] == "2026-01-05T10:00:00"
    assert first["counts"]["built"] == 3
    # unique passes; short_labels fails on `[red]boom[/]`; row_count() is 2
    assert first["assertions"] == {"pass": 2, "fail": 0, "warn": 2, "error": 0}
    assert first["deployment_id"] == 1
    assert runs[2]["selection"] == ["staging.items+"]
    assert runs[1]["assertions"] == {"pass": 0, "fail": 1, "warn": 2, "error": 0}

    text = shop.ok("history").stdout
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].split()[:3] == ["run", "started", "(UTC)"]
    assert lines[1].split()[:5] == ["4", "2026-01-06", "10:00:00", "test", "prod"]
    assert "3 passed" in lines[1]
    assert "1 built, 1 failed, 1 skipped" in lines[2]
    assert "staging.items+" in lines[3]


def test_filters(shop: Shop) -> None:
    assert [r["id"] for r in history(shop, "--status", "failed")] == [3]
    assert [r["id"] for r in history(shop, "--env", "dev")] == [2]
    assert [r["id"] for r in history(shop, "--env", "prod", "--status", "success")] == [4, 1]
    assert [r["id"] for r in history(shop, "--limit", "2")] == [4, 3]
    assert history(shop, "--env", "staging") == []

    # a bare name finds the model; each run shows what that node did in it
    runs = history(shop, "--model", "summary")
    assert [(r["id"], r["node"]["status"]) for r in runs] == [
        (4, "passed"),
        (3, "skipped"),
        (2, "reused"),
        (1, "built"),
    ]
    built = runs[-1]["node"]
    assert built["node"] == "marts.summary" and built["rows"] == 1 and built["duration"] > 0

    text = shop.ok("history", "--model", "marts.summary", "--status", "failed").stdout
    assert "marts.summary" in text and "skipped" in text
    assert "no runs match status interrupted" in shop.ok("history", "-s", "interrupted").stdout


def test_one_run_in_full(shop: Shop) -> None:
    run = history(shop, "3")
    assert (run["id"], run["outcome"], run["deployment_id"]) == (3, "failed", None)
    nodes = {n["node"]: n for n in run["nodes"]}
    assert {n: x["status"] for n, x in nodes.items()} == {
        "raw.items": "built",
        "staging.items": "failed",
        "marts.summary": "skipped",
    }
    assert nodes["raw.items"]["rows"] == 3
    assert nodes["marts.summary"]["message"] == "upstream staging.items did not pass"
    checks = {c["name"]: c for c in run["assertion_results"]}
    unique = checks["unique(id)"]
    assert (unique["outcome"], unique["failing"], unique["location"]) == (
        "fail",
        2,
        "models/staging/items.sql:3",
    )
    assert unique["sample_columns"][:2] == ["id", "label"]
    assert sorted(row[:2] for row in unique["samples"]) == [[2, "[red]boom[/]"], [2, "b"]]
    assert checks["row_count() < 2"]["measured"] == {"row_count()": 3}

    text = shop.ok("history", "3").stdout
    assert "run 3: build of `prod` on target `local`: failed" in text
    assert "started 2026-01-06 09:30:00 UTC" in text
    assert "upstream staging.items did not pass" in text
    assert "FAIL staging.items: unique(id)  models/staging/items.sql:3" in text
    assert "2 of 3 failing" in text
    assert "WARN staging.items: short_labels" in text
    assert "measured: row_count() = 3" in text
    # a value that looks like markup is printed as it is
    assert "[red]boom[/]" in text
    # passing assertions are not listed one by one
    assert "n > 0" not in text


def test_errors(shop: Shop) -> None:
    bad = shop.sqlops("history", "--status", "faild")
    assert bad.code == 2
    assert "unknown status `faild` (did you mean `failed`?)" in bad.stderr
    assert "Traceback" not in bad.output

    missing = shop.sqlops("history", "99")
    assert missing.code == 2
    assert "there is no run 99" in missing.stderr
    assert "the latest run is 4" in missing.stderr

    model = shop.sqlops("history", "--model", "staging.itemz")
    assert model.code == 2
    assert "unknown model `staging.itemz` (did you mean `staging.items`?)" in model.stderr

    both = shop.sqlops("history", "3", "--env", "dev")
    assert both.code == 2
    assert "RUN shows one run" in both.stderr


def test_no_history_yet(make_project: Callable[[dict[str, str]], Shop]) -> None:
    shop = make_project({"models/a.sql": "SELECT 1 AS x\n-- @assert x = 1\n"})
    text = shop.sqlops("history")
    assert text.code == 0, text.output
    assert "no run history yet" in text.stdout
    assert "run `sqlops build`" in text.stdout
    as_json = shop.sqlops("history", "--json")
    assert as_json.code == 0 and json.loads(as_json.stdout) == []
    assert "no run history yet" in as_json.stderr
    assert not shop.db.exists()  # looking created nothing

    report = shop.sqlops("report", "--json")
    assert report.code == 0, report.output
    data = json.loads(report.stdout)
    assert data["notice"]["message"].startswith("no run history yet")
    assert data["run_success"]["runs"] == 0
    assert data["coverage"]["model_rate"] == 1.0  # coverage needs no history


def test_state_of_an_older_version(make_project: Callable[[dict[str, str]], Shop]) -> None:
    shop = make_project({"models/a.sql": "SELECT 1 AS x\n-- @assert x = 1\n"})
    at(shop, "2026-01-05T10:00:00", "build")
    # what sqlops of state version 2 left: no history tables
    con = duckdb.connect(str(shop.db))
    for table in (
        "runs",
        "node_results",
        "assertion_results",
        "measurements",
        "source_observations",
        "incidents",
    ):
        con.execute(f"DROP TABLE sqlops_meta.{table}")
    con.execute("UPDATE sqlops_meta.meta SET value = '2' WHERE key = 'schema_version'")
    con.close()

    for command in ("history", "report"):
        result = shop.sqlops(command)
        assert result.code == 0, result.output
        assert "written by an older sqlops (state version 2)" in result.stdout
        assert "run `sqlops build` once" in result.stdout
        assert "Traceback" not in result.output

    at(shop, "2026-01-06T10:00:00", "build")  # upgrades the state, and is recorded
    assert [r["id"] for r in history(shop)] == [1]


def test_an_environment_without_runs_is_named_with_those_that_have_some(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    shop = make_project({"models/m.sql": "SELECT 1 AS one\n"})
    shop.ok("build")
    shop.ok("build", "--env", "dev")
    for command in (["history", "--env", "qa"], ["report", "--env", "qa", "--json"]):
        result = shop.ok(*command)
        assert "environment `qa` has no runs; environments with runs: dev, prod" in result.stderr
    assert json.loads(shop.ok("report", "--env", "qa", "--json").stdout)["env"] == "qa"


def test_testing_an_environment_that_serves_nothing_says_so(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    shop = make_project({"models/m.sql": "SELECT 1 AS one\n"})
    result = shop.sqlops("test")
    assert result.code == 1
    assert "nothing was tested: environment `prod` serves none of these nodes" in result.stdout
    assert "run `sqlops build --env prod` first" in result.stdout


def test_history_of_state_version_3_is_kept_through_the_upgrade(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    shop = make_project({"models/m.sql": "SELECT 1 AS one\n"})
    shop.ok("build")
    con = duckdb.connect(str(shop.db))  # what the first sqlops with history wrote
    con.execute("ALTER TABLE sqlops_meta.node_results DROP COLUMN seq")
    con.execute("UPDATE sqlops_meta.meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
    old = shop.ok("history", "1")
    assert "state version 3" in old.stdout and "run `sqlops build` once" in old.stdout
    shop.ok("build")
    assert [r["id"] for r in history(shop)] == [2, 1]  # run 1 kept
    assert json.loads(shop.ok("history", "1", "--json").stdout)["nodes"][0]["node"] == "main.m"

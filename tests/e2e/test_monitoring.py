"""History-based checks on real builds: prev(), anomaly(), source volume and freshness monitors,
incidents; each read back from sqlops_meta."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Run, Shop

T0 = datetime(2026, 3, 2, 6, 0)

SOURCE = "-- @location data/events.csv\nCREATE TABLE raw.events (id INTEGER, amount INTEGER)\n"
MODEL = """SELECT id, amount FROM raw.events

-- @warn   anomaly(sum(amount))
-- @assert row_count() >= 0.5 * prev(row_count())
"""


def config(monitor: str = "") -> str:
    return (
        '[project]\nname = "proj"\n\n[targets.local]\nengine = "duckdb"\npath = "proj.duckdb"\n'
        + monitor
    )


@pytest.fixture
def events(make_project: Callable[[dict[str, str]], Shop]) -> Shop:
    return make_project(
        {
            "sqlops.toml": config('\n[monitor]\nsource_volume = "off"\n'),
            "sources/raw/events.sql": SOURCE,
            "models/marts/events.sql": MODEL,
        }
    )


def load(shop: Shop, amounts: list[int]) -> None:
    lines = ["id,amount", *(f"{i},{a}" for i, a in enumerate(amounts, start=1))]
    shop.write("data/events.csv", "\n".join(lines) + "\n")


def build(shop: Shop, at: datetime, *args: str) -> Run:
    return shop.sqlops("build", "--json", *args, env={"SQLOPS_NOW": at.isoformat()})


def checks(run: Run, node: str) -> dict[str, dict[str, Any]]:
    report = json.loads(run.stdout)
    found = next(n for n in report["nodes"] if n["id"] == node)
    return {a["name"]: a for a in found["assertions"]}


def test_anomaly_trains_then_flags_a_planted_outlier(events: Shop) -> None:
    name = "anomaly(sum(amount))"
    sums = [100, 102, 98, 101, 99, 100]
    for day, total in enumerate(sums):
        load(events, [total - 10 - day, 10 + day])  # a new file each day, with this sum
        result = build(events, T0 + timedelta(days=day))
        assert result.code == 0, result.output
        check = checks(result, "marts.events")[name]
        assert check["outcome"] == "pass"
        if day < 5:
            assert check["message"] == f"training: {day} of 5 values of sum(amount) recorded"
        else:
            assert check["message"] is None
    load(events, [490, 10])  # sum 500
    result = build(events, T0 + timedelta(days=6))
    assert result.code == 0, result.output  # a @warn reports and does not block
    check = checks(result, "marts.events")[name]
    assert check["outcome"] == "warn"
    # the last 6 sums: mean 100, sample stddev sqrt((0+4+4+1+1+0)/5) = sqrt(2)
    expected = check["measured"][name]
    assert expected["mean"] == 100
    assert expected["stddev"] == pytest.approx(2**0.5)
    assert expected["high"] == pytest.approx(100 + 3 * 2**0.5)
    assert check["measured"]["sum(amount)"] == 500
    recorded = events.query(
        "SELECT value FROM sqlops_meta.measurements WHERE env = 'prod' "
        "AND node = 'marts.events' AND expr = 'sum(amount)' ORDER BY recorded_at"
    )
    assert [r[0] for r in recorded] == [*sums, 500]
    stored = events.query(
        "SELECT r.outcome, r.measured FROM sqlops_meta.assertion_results r "
        "WHERE r.node = 'marts.events' AND r.name = 'anomaly(sum(amount))' ORDER BY r.run_id"
    )
    assert [s[0] for s in stored] == ["pass"] * 6 + ["warn"]
    assert json.loads(stored[-1][1])["sum(amount)"] == 500


def test_prev_compares_with_the_last_successful_build(events: Shop) -> None:
    load(events, [1] * 4)
    first = build(events, T0)
    assert first.code == 0, first.output
    check = checks(first, "marts.events")["row_count() >= 0.5 * prev(row_count())"]
    assert check["message"] == "no baseline yet for prev(row_count()): passes this time"
    load(events, [1] * 10)
    assert build(events, T0 + timedelta(hours=1)).code == 0
    load(events, [1] * 2)  # 2 < 0.5 * 10: blocked, prod keeps 10 rows
    failed = build(events, T0 + timedelta(hours=2))
    assert failed.code == 1
    check = checks(failed, "marts.events")["row_count() >= 0.5 * prev(row_count())"]
    assert check["outcome"] == "fail"
    assert check["measured"] == {"row_count()": 2, "prev(row_count())": 10}
    assert events.query("SELECT count(*) FROM marts.events") == [(10,)]
    load(events, [1] * 6)  # compared with 10, the last promoted, not with the failed 2
    fixed = build(events, T0 + timedelta(hours=3))
    assert fixed.code == 0, fixed.output
    assert (
        checks(fixed, "marts.events")["row_count() >= 0.5 * prev(row_count())"]["measured"][
            "prev(row_count())"
        ]
        == 10
    )
    series = events.query(
        "SELECT value FROM sqlops_meta.measurements WHERE env = 'prod' "
        "AND node = 'marts.events' AND expr = 'row_count()' ORDER BY recorded_at"
    )
    assert [r[0] for r in series] == [4, 10, 6]
    # the failure opened an incident in prod; the next green check closed it
    assert json.loads(fixed.stdout)["recovered"] == ["marts.events"]
    incidents = events.query(
        "SELECT node, opened_run, opened_at, closed_run, closed_at, reason "
        "FROM sqlops_meta.incidents"
    )
    assert len(incidents) == 1
    node, opened_run, opened_at, closed_run, closed_at, reason = incidents[0]
    assert (node, opened_run, closed_run) == ("marts.events", 3, 4)
    assert (opened_at, closed_at) == (T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    assert reason.startswith("row_count() >= 0.5 * prev(row_count()) (models/marts/events.sql:4)")


def test_measuring_the_same_data_again_counts_once(events: Shop) -> None:
    load(events, [5, 5, 5])
    assert build(events, T0).code == 0
    for hour in (1, 2):
        tested = events.sqlops("test", env={"SQLOPS_NOW": (T0 + timedelta(hours=hour)).isoformat()})
        assert tested.code == 0, tested.output
    series = events.query(
        "SELECT value, run_id, recorded_at FROM sqlops_meta.measurements "
        "WHERE env = 'prod' AND expr = 'row_count()'"
    )
    assert series == [(3.0, 3, T0 + timedelta(hours=2))]  # refreshed by the last test run
    runs = events.query("SELECT id, command, outcome FROM sqlops_meta.runs ORDER BY id")
    assert runs == [(1, "build", "success"), (2, "test", "success"), (3, "test", "success")]


def test_a_version_promoted_from_dev_brings_its_values(events: Shop) -> None:
    load(events, [1, 2])
    assert build(events, T0).code == 0
    load(events, [1, 2, 3])
    assert build(events, T0 + timedelta(hours=1), "--env", "dev").code == 0
    promoted = build(events, T0 + timedelta(hours=2))
    assert promoted.code == 0, promoted.output
    assert {n["status"] for n in json.loads(promoted.stdout)["nodes"]} == {"reused"}
    prod = events.query(
        "SELECT value, run_id FROM sqlops_meta.measurements WHERE env = 'prod' "
        "AND node = 'marts.events' AND expr = 'sum(amount)' ORDER BY recorded_at"
    )
    assert prod == [(3.0, 1), (6.0, 3)]


def test_source_volume_is_watched_by_default(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    shop = make_project(
        {"sources/raw/events.sql": SOURCE, "models/marts/events.sql": "SELECT * FROM raw.events"}
    )
    for day, rows in enumerate([10, 11, 9, 10, 10]):
        load(shop, [day] * rows)  # each day's file differs: a new version of the data
        assert build(shop, T0 + timedelta(days=day)).code == 0
    load(shop, [1] * 100)
    warned = build(shop, T0 + timedelta(days=5))
    assert warned.code == 0, warned.output  # warn by default: reported, not blocking
    volume = checks(warned, "raw.events")["volume"]
    assert volume["outcome"] == "warn"
    assert volume["check"] == "anomaly(row_count())"
    assert volume["measured"]["row_count()"] == 100
    text = shop.sqlops("build", env={"SQLOPS_NOW": (T0 + timedelta(days=6)).isoformat()})
    assert text.code == 0  # the same data again: reused, nothing re-checked
    # [monitor] makes it block, or turns it off
    shop.write("sqlops.toml", config('[monitor]\nsource_volume = "error"\n'))
    load(shop, [1] * 1000)
    blocked = build(shop, T0 + timedelta(days=7))
    assert blocked.code == 1
    assert checks(blocked, "raw.events")["volume"]["outcome"] == "fail"
    shop.write("sqlops.toml", config('[monitor]\nsource_volume = "off"\n'))
    quiet = build(shop, T0 + timedelta(days=8))
    assert quiet.code == 0, quiet.output
    assert "volume" not in checks(quiet, "raw.events")


def test_source_freshness_learns_how_often_data_changes(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    shop = make_project(
        {"sources/raw/events.sql": SOURCE, "models/marts/events.sql": "SELECT * FROM raw.events"}
    )
    for day in range(6):  # new data every 24 hours: 5 intervals of 24 h
        load(shop, [day, 1, 2])
        result = build(shop, T0 + timedelta(days=day))
        assert result.code == 0, result.output
        fresh = checks(result, "raw.events")["freshness"]
        assert fresh["outcome"] == "pass"
        assert fresh["measured"]["hours_since_change"] == 0
    last = T0 + timedelta(days=5)
    on_time = build(shop, last + timedelta(hours=20))
    fresh = checks(on_time, "raw.events")["freshness"]
    assert (fresh["outcome"], fresh["measured"]["hours_since_change"]) == ("pass", 20)
    # every interval was 24 h: no spread, so 10% of it is allowed: 24 + 3 * 2.4 = 31.2 h
    still = build(shop, last + timedelta(hours=31))
    assert checks(still, "raw.events")["freshness"]["outcome"] == "pass"
    late = build(shop, last + timedelta(hours=32))
    assert late.code == 0, late.output
    fresh = checks(late, "raw.events")["freshness"]
    assert fresh["outcome"] == "warn"
    assert fresh["message"] == (
        "its data has not changed for 32.0 h; it usually changes every 24.0 h "
        "(± 0.0 h, 5 intervals seen): late after 31.2 h"
    )
    observed = shop.query(
        "SELECT run_id, row_count, changed_at FROM sqlops_meta.source_observations "
        "WHERE node = 'raw.events' ORDER BY run_id"
    )
    assert observed[-1] == (9, 3, last)
    assert [o[2] for o in observed[:6]] == [T0 + timedelta(days=d) for d in range(6)]


def test_history_of_the_template_in_numbers(shop: Shop) -> None:
    shop.ok("build")
    shop.ok("test")
    fingerprints = shop.query(
        "SELECT run_id, fingerprint FROM sqlops_meta.node_results "
        "WHERE node = 'test:payments_reconcile' ORDER BY run_id"
    )
    assert fingerprints == [(1, None), (2, None)]  # a standalone test has no version
    served = shop.query(
        "SELECT count(DISTINCT r.fingerprint) FROM sqlops_meta.node_results r "
        "JOIN sqlops_meta.environments e ON e.node = r.node AND e.fingerprint = r.fingerprint "
        "WHERE r.run_id = 2"
    )
    assert served == [(10,)]  # each node tested is named by the version prod serves
    measured = shop.query(
        "SELECT measured FROM sqlops_meta.assertion_results WHERE run_id = 1 "
        "AND node = 'test:payments_reconcile' AND measured IS NOT NULL"
    )
    values = [v for (text,) in measured for v in json.loads(text).values()]
    assert values and all(isinstance(v, int | float) for v in values)  # DECIMAL sums as numbers


def test_a_version_built_in_a_failed_run_brings_its_values_when_promoted(events: Shop) -> None:
    events.write("models/marts/guard.sql", "SELECT 1 AS one\n")
    load(events, [1, 2])
    assert build(events, T0).code == 0
    load(events, [1, 2, 3])  # marts.events passes; the guard fails, so nothing is promoted
    events.write("models/marts/guard.sql", "SELECT 1 AS one\n-- @assert row_count() > 5\n")
    assert build(events, T0 + timedelta(hours=1)).code == 1
    events.write("models/marts/guard.sql", "SELECT 1 AS one\n")
    promoted = build(events, T0 + timedelta(hours=2))
    assert promoted.code == 0, promoted.output
    status = {n["id"]: n["status"] for n in json.loads(promoted.stdout)["nodes"]}
    assert status["marts.events"] == "reused"  # built and tested by the failed run
    series = events.query(
        "SELECT value, run_id FROM sqlops_meta.measurements WHERE env = 'prod' "
        "AND node = 'marts.events' AND expr = 'sum(amount)' ORDER BY recorded_at"
    )
    assert series == [(3.0, 1), (6.0, 3)]


def test_a_table_read_in_place_learns_while_a_model_keeps_failing(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    import duckdb

    shop = make_project(
        {
            "sources/raw/events.sql": "CREATE TABLE raw.events (amount INTEGER)\n",
            "models/marts/events.sql": "SELECT amount FROM raw.events\n-- @assert amount < 0\n",
        }
    )
    con = duckdb.connect(str(shop.db))
    con.execute("CREATE SCHEMA raw; CREATE TABLE raw.events (amount INTEGER)")
    con.close()
    for day in range(6):
        con = duckdb.connect(str(shop.db))
        con.execute("INSERT INTO raw.events VALUES (?)", [day + 1])
        con.close()
        failed = build(shop, T0 + timedelta(days=day))
        assert failed.code == 1  # every build fails on marts.events
    volume = checks(failed, "raw.events")["volume"]
    assert volume["message"] is None  # not training: 5 earlier counts were learnt from
    assert volume["measured"]["anomaly(row_count())"]["values"] == 5
    series = shop.query(
        "SELECT value FROM sqlops_meta.measurements WHERE env = 'prod' AND node = 'raw.events' "
        "ORDER BY recorded_at"
    )
    assert [v for (v,) in series] == [1, 2, 3, 4, 5, 6]


def test_every_source_is_observed_whatever_the_selection(shop: Shop) -> None:
    shop.ok("build")
    shop.ok("build", "marts.revenue_daily")
    shop.ok("test", "staging.customers")
    seen = shop.query(
        "SELECT run_id, count(*), count(row_count) FROM sqlops_meta.source_observations "
        "GROUP BY run_id ORDER BY run_id"
    )
    assert seen == [(1, 3, 3), (2, 3, 3), (3, 3, 3)]  # raw.customers, raw.orders, raw.payments


def test_a_standalone_test_keeps_one_value_per_version_of_what_it_reads(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    shop = make_project(
        {
            "sources/raw/events.sql": SOURCE,
            "models/marts/events.sql": "SELECT * FROM raw.events\n",
            "tests/volume.sql": "-- @warn anomaly((SELECT count(*) FROM marts.events))\n",
        }
    )
    load(shop, [1, 2, 3])
    for hour in range(3):
        assert build(shop, T0 + timedelta(hours=hour)).code == 0
        tested = shop.sqlops("test", env={"SQLOPS_NOW": (T0 + timedelta(hours=hour)).isoformat()})
        assert tested.code == 0, tested.output
    load(shop, [1, 2, 3, 4])
    assert build(shop, T0 + timedelta(hours=4)).code == 0
    series = shop.query(
        "SELECT value FROM sqlops_meta.measurements WHERE node = 'test:volume' ORDER BY recorded_at"
    )
    assert series == [(3.0,), (4.0,)]


def test_prev_of_a_date_is_an_error_that_says_why(events: Shop) -> None:
    events.write(
        "models/marts/days.sql",
        "SELECT DATE '2026-01-01' AS day\n-- @assert max(day) >= prev(max(day))\n",
    )
    load(events, [1])
    result = build(events, T0)
    assert result.code == 1
    check = checks(result, "marts.days")["max(day) >= prev(max(day))"]
    assert check["outcome"] == "error"
    assert check["message"].startswith(
        "prev() and anomaly() compare numbers, and max(day) is date 2026-01-01"
    )


def test_undoing_a_failed_change_closes_its_incident(events: Shop) -> None:
    load(events, [1, 2])
    assert build(events, T0).code == 0
    events.edit("models/marts/events.sql", "SELECT id, amount", "SELECT id, amount - 5 AS amount")
    events.write(
        "models/marts/events.sql",
        (events.root / "models/marts/events.sql").read_text() + "-- @assert amount > 0\n",
    )
    assert build(events, T0 + timedelta(hours=1)).code == 1  # opens incident 1
    events.write("models/marts/events.sql", MODEL)  # back to what prod serves
    undone = build(events, T0 + timedelta(hours=2))
    assert undone.code == 0, undone.output
    assert json.loads(undone.stdout)["recovered"] == ["marts.events"]
    assert events.query("SELECT id, opened_run, closed_run FROM sqlops_meta.incidents") == [
        (1, 2, 3)
    ]


def test_what_monitoring_found_broken_stays_an_incident_until_checked_green(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    import duckdb

    shop = make_project(
        {
            "sqlops.toml": config('\n[monitor]\nsource_volume = "off"\n'),
            "sources/raw/events.sql": "CREATE TABLE raw.events (amount INTEGER)\n",
            "models/marts/events.sql": "-- @materialized view\nSELECT amount FROM raw.events\n"
            "-- @assert amount > 0\n",
        }
    )
    con = duckdb.connect(str(shop.db))
    con.execute("CREATE SCHEMA raw; CREATE TABLE raw.events AS SELECT 5 AS amount")
    con.close()
    assert build(shop, T0).code == 0
    con = duckdb.connect(str(shop.db))
    con.execute("INSERT INTO raw.events VALUES (-1)")
    con.close()
    tested = shop.sqlops("test", env={"SQLOPS_NOW": (T0 + timedelta(hours=1)).isoformat()})
    assert tested.code == 1  # opens incident 1: prod serves bad rows
    con = duckdb.connect(str(shop.db))
    con.execute("DELETE FROM raw.events WHERE amount < 0")
    con.close()
    tested = shop.sqlops(
        "test", "--json", env={"SQLOPS_NOW": (T0 + timedelta(hours=2)).isoformat()}
    )
    assert tested.code == 0
    assert json.loads(tested.stdout)["recovered"] == ["marts.events"]
    assert shop.query("SELECT opened_run, closed_run FROM sqlops_meta.incidents") == [(2, 3)]

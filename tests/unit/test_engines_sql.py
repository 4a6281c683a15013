"""What sqlops hands each engine: placeholders for psycopg, and the rewrites a target needs."""

from __future__ import annotations

import pytest
import sqlglot

from sqlops.engines.rewrite import for_target

psycopg = pytest.importorskip("psycopg")

from sqlops.engines.postgres import _placeholders  # noqa: E402


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        ("SELECT '?', \"a?b\" FROM t WHERE c = ?", "SELECT '?', \"a?b\" FROM t WHERE c = %s"),
        ("SELECT '50%' LIKE ?", "SELECT '50%%' LIKE %s"),
        ("SELECT 'it''s ?' || ?", "SELECT 'it''s ?' || %s"),
        ("SELECT 5 % ?", "SELECT 5 %% %s"),
    ],
)
def test_placeholders_outside_quotes_become_psycopgs(written: str, sent: str) -> None:
    assert _placeholders(written) == sent


@pytest.mark.parametrize(
    ("written", "postgres"),
    [
        (
            "SELECT a, b + 1 AS c, sum(d) AS s FROM t GROUP BY ALL",
            "SELECT a, b + 1 AS c, SUM(d) AS s FROM t GROUP BY 1, 2",
        ),
        (
            # an aggregate inside an expression, FILTER, a window over an aggregate, a literal
            "SELECT k, 'x' AS tag, count(*) FILTER (WHERE f) AS n, avg(v) + 1 AS m, "
            "sum(sum(v)) OVER () AS total, lower(k) AS l FROM t GROUP BY ALL",
            "SELECT k, 'x' AS tag, COUNT(*) FILTER(WHERE f) AS n, AVG(v) + 1 AS m, "
            "SUM(SUM(v)) OVER () AS total, LOWER(k) AS l FROM t GROUP BY 1, 6",
        ),
        ("SELECT count(*) AS n FROM t GROUP BY ALL", "SELECT COUNT(*) AS n FROM t"),
        (
            "WITH d AS (SELECT day, sum(x) AS x FROM t GROUP BY ALL) SELECT * FROM d",
            "WITH d AS (SELECT day, SUM(x) AS x FROM t GROUP BY 1) SELECT * FROM d",
        ),
        ("SELECT a FROM t GROUP BY a", "SELECT a FROM t GROUP BY a"),
    ],
)
def test_group_by_all_is_spelt_out_for_postgres(written: str, postgres: str) -> None:
    query = sqlglot.parse_one(written, read="duckdb")
    assert for_target(query, "postgres").sql("postgres") == postgres


@pytest.mark.parametrize(
    ("written", "construct"),
    [
        ("SELECT * FROM t PIVOT (sum(x) FOR y IN (1, 2))", "PIVOT"),
        ("SELECT * FROM t UNPIVOT (v FOR k IN (a, b))", "UNPIVOT"),
        ("SELECT list_transform([1, 2], x -> x + 1) AS l", "a lambda (x -> ...)"),
        ("SELECT a FROM t ASOF JOIN u USING (a)", "ASOF JOIN"),
        (
            "SELECT * EXCLUDE (a) FROM t",
            "SELECT * EXCLUDE / REPLACE of a relation whose columns sqlops does not know",
        ),
        ("SELECT {'a': 1} AS s", "a STRUCT value"),
        ("SELECT a FROM t GROUP BY ALL", None),
        ("SELECT a FROM t QUALIFY row_number() OVER (PARTITION BY a) = 1", None),
    ],
)
def test_what_postgres_cannot_run_is_named(written: str, construct: str | None) -> None:
    from sqlops.engines.rewrite import unsupported

    assert unsupported(sqlglot.parse_one(written, read="duckdb"), "postgres") == construct


@pytest.mark.parametrize(
    ("written", "construct"),
    [
        ("SELECT * FROM t PIVOT (sum(x) FOR y IN (1, 2))", "PIVOT"),
        ("SELECT a FROM t ASOF JOIN u USING (a)", "ASOF JOIN"),
        ("SELECT a FROM t POSITIONAL JOIN u", "POSITIONAL JOIN"),
        (
            "SELECT * EXCLUDE (a) FROM t",
            "SELECT * EXCLUDE / REPLACE of a relation whose columns sqlops does not know",
        ),
        # Spark has these of its own
        ("SELECT list_transform([1, 2], x -> x + 1) AS l", None),
        ("SELECT {'a': 1} AS s", None),
        ("SELECT a FROM t GROUP BY ALL", None),
        ("SELECT a FROM t QUALIFY row_number() OVER (PARTITION BY a) = 1", None),
    ],
)
def test_what_spark_cannot_run_is_named(written: str, construct: str | None) -> None:
    from sqlops.engines.rewrite import unsupported

    assert unsupported(sqlglot.parse_one(written, read="duckdb"), "spark") == construct


def test_a_switch_journal_reads_back_as_written() -> None:
    from datetime import datetime

    from sqlops.engines.base import Relation
    from sqlops.gitinfo import Commit
    from sqlops.run.switch import ViewSwitch
    from sqlops.state.store import Deployed

    version = Deployed("marts.a", "f" * 12, Relation("sqlops__marts", "a__" + "f" * 12), "table")
    change = ViewSwitch(
        "prod",
        [version],
        ["marts.gone"],
        {"marts.a": '{"columns": []}'},
        ["marts.gone"],
        promoted=[],
        run_id=7,
        commit=Commit("abc", datetime(2026, 1, 2, 3, 4, 5), "Ann <ann@example.com>"),
        restores=3,
    )
    back = ViewSwitch.from_json(change.to_json(), "prod")
    assert back == ViewSwitch(
        "prod",
        [version],
        ["marts.gone"],
        {"marts.a": '{"columns": []}'},
        ["marts.gone"],
        [],
        7,
        change.commit,
        3,
    )

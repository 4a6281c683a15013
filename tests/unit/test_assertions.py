"""The assertion language: parse a check, compile it to one query, run it on real DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlglot import exp

from sqlops.assertions.compile import compile_assertion
from sqlops.assertions.definition import CheckKind, Tolerance
from sqlops.assertions.parse import ParsedAssertion, parse_assertion
from sqlops.engines.base import Relation
from sqlops.engines.duckdb import DuckDBEngine
from sqlops.errors import ProjectError, SqlopsError
from sqlops.plan.relations import Relations
from sqlops.project.loader import load_project
from sqlops.run.assertions import run_assertions
from sqlops.run.results import Outcome
from sqlops.syntax import TableRef

PATH = Path("models/orders.sql")

# id 2 appears twice, id NULL twice (NULLs are not duplicates); customer 99 has no customer row;
# status 'refunded' is not accepted; amount -5 is negative; row 6 is NULL in most columns.
ORDERS = """
CREATE TABLE orders AS SELECT * FROM (VALUES
    (1,    10,   'paid',     10),
    (2,    10,   'paid',     20),
    (2,    11,   'void',     NULL),
    (NULL, 12,   'paid',     5),
    (NULL, 99,   'refunded', -5),
    (3,    NULL, NULL,       0)
) AS v(id, customer_id, status, amount);
CREATE TABLE customers AS SELECT * FROM (VALUES (10), (11), (12)) AS v(customer_id);
CREATE TABLE empty_orders AS SELECT * FROM orders WHERE FALSE;
"""


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute(ORDERS)
    yield connection
    connection.close()


def parse(text: str, *, standalone: bool = False, blocking: bool = True) -> ParsedAssertion:
    return parse_assertion(
        text,
        blocking=blocking,
        path=PATH,
        relpath=str(PATH),
        line=7,
        file_text="\n" * 6 + text,
        dialect="duckdb",
        standalone=standalone,
    )


def relate(table: exp.Table) -> exp.Expr:
    return exp.table_(table.name, db=table.db or None)


@dataclass
class Checked:
    failing: int
    total: int | None
    columns: list[str]  # of the samples or measured values
    rows: list[tuple[Any, ...]]  # samples (failing rows) or the one row of measured values
    measured: dict[str, Any]


def check(
    con: duckdb.DuckDBPyConnection, text: str, this: str | None = "orders", **kw: Any
) -> Checked:
    compiled = compile_assertion(
        parse(text, **kw).assertion, exp.to_table(this) if this else None, relate, "duckdb"
    )
    cursor = con.execute(compiled.sql)
    columns = [d[0] for d in cursor.description or ()]
    rows = cursor.fetchall()
    assert rows, "an assertion query always returns at least one row"
    assert columns[:2] == ["__failing", "__total"]
    failing, total = rows[0][0], rows[0][1]
    if compiled.returns_measures:
        assert len(rows) == 1, "a table-level check measures the table once"
        return Checked(
            failing, total, columns[2:], [], dict(zip(compiled.measures, rows[0][2:], strict=True))
        )
    samples = [r[2:] for r in rows] if failing else []
    return Checked(failing, total, columns[2:], samples, {})


def parse_error(text: str, **kw: Any) -> SqlopsError:
    with pytest.raises(ProjectError) as info:
        parse(text, **kw)
    err = info.value
    assert (err.path, err.line) == (PATH, 7)
    assert err.hint
    return err


# -- the usual four -------------------------------------------------------------------------------


def test_unique_counts_every_duplicate_row(con: duckdb.DuckDBPyConnection) -> None:
    result = check(con, "unique(id)")
    assert (result.failing, result.total) == (2, 6)
    assert result.columns[:4] == ["id", "customer_id", "status", "amount"]
    assert sorted(r[:3] for r in result.rows) == [(2, 10, "paid"), (2, 11, "void")]


def test_unique_ignores_null_keys(con: duckdb.DuckDBPyConnection) -> None:
    assert check(con, "unique(id) where id IS NULL").failing == 0


def test_unique_on_several_columns(con: duckdb.DuckDBPyConnection) -> None:
    assert check(con, "unique(id, customer_id)").failing == 0
    con.execute("INSERT INTO orders VALUES (1, 10, 'paid', 1)")
    assert check(con, "unique(id, customer_id)").failing == 2


def test_not_null_checks_every_column(con: duckdb.DuckDBPyConnection) -> None:
    assert check(con, "not_null(id)").failing == 2
    result = check(con, "not_null(id, customer_id, amount)")
    assert (result.failing, result.total) == (4, 6)
    assert {r[:2] for r in result.rows} == {(2, 11), (None, 12), (None, 99), (3, None)}


def test_accepted_values_lets_null_pass(con: duckdb.DuckDBPyConnection) -> None:
    result = check(con, "accepted_values(status, 'paid', 'void')")
    assert result.failing == 1
    assert result.rows[0][2] == "refunded"


def test_references_finds_orphans_and_lets_null_pass(con: duckdb.DuckDBPyConnection) -> None:
    parsed = parse("references(customer_id, main.customers.customer_id)")
    assert parsed.assertion.kind is CheckKind.REFERENCES
    assert (parsed.assertion.target, parsed.assertion.target_column) == (
        "main.customers",
        "customer_id",
    )
    assert parsed.refs == (TableRef("main", "customers", 7, 1),)
    result = check(con, "references(customer_id, main.customers.customer_id)")
    assert result.failing == 1
    assert result.rows[0][:2] == (None, 99)


def test_references_to_a_two_part_name(con: duckdb.DuckDBPyConnection) -> None:
    assert check(con, "references(customer_id, customers.customer_id)").failing == 1


def test_passing_check_has_no_samples(con: duckdb.DuckDBPyConnection) -> None:
    result = check(con, "unique(customer_id) where status = 'void'")
    assert (result.failing, result.total, result.rows) == (0, 1, [])


# -- boolean expressions --------------------------------------------------------------------------


def test_row_level_check_lets_null_pass(con: duckdb.DuckDBPyConnection) -> None:
    parsed = parse("amount >= 0")
    assert parsed.assertion.kind is CheckKind.ROW
    assert parsed.checked_columns == ("amount",)
    result = check(con, "amount >= 0")
    assert (result.failing, result.total) == (1, 6)  # -5 fails; NULL passes
    assert result.rows[0][3] == -5


def test_row_level_check_with_a_window_function(con: duckdb.DuckDBPyConnection) -> None:
    assert parse("amount <= max(amount) OVER ()").assertion.kind is CheckKind.ROW
    assert check(con, "amount <= max(amount) OVER ()").failing == 0
    assert check(con, "amount < max(amount) OVER ()").failing == 1


@pytest.mark.parametrize(
    ("text", "failing"),
    [
        ("customer_id IN (SELECT customer_id FROM customers)", 1),
        ("amount <= (SELECT max(customer_id) FROM customers) - 2", 1),
    ],
)
def test_row_level_check_comparing_each_row_to_a_subquery(
    con: duckdb.DuckDBPyConnection, text: str, failing: int
) -> None:
    parsed = parse(text)
    assert parsed.assertion.kind is CheckKind.ROW
    assert parsed.refs[0].name == "customers"
    assert check(con, text).failing == failing


@pytest.mark.parametrize(
    "text",
    ["selected_at IS NOT NULL", "with_tax >= 0", "from_date <= current_date"],
)
def test_columns_that_start_like_a_query_are_not_queries(text: str) -> None:
    assert parse(text).assertion.kind is CheckKind.ROW


def test_table_level_check_with_an_aggregate(con: duckdb.DuckDBPyConnection) -> None:
    parsed = parse("sum(amount) > 100")
    assert parsed.assertion.kind is CheckKind.TABLE
    assert parsed.checked_columns == ("amount",)
    result = check(con, "sum(amount) > 100")
    assert (result.failing, result.total) == (1, 1)
    assert list(result.measured.values()) == [30]


def test_table_level_check_with_a_scalar_subquery(con: duckdb.DuckDBPyConnection) -> None:
    text = "count(DISTINCT customer_id) = (SELECT count(*) FROM customers)"
    assert parse(text).assertion.kind is CheckKind.TABLE
    result = check(con, text)
    assert result.failing == 1
    assert list(result.measured.values()) == [4, 3]


def test_table_level_check_fails_on_null(con: duckdb.DuckDBPyConnection) -> None:
    result = check(con, "max(amount) > 0", this="empty_orders")
    assert result.failing == 1
    assert list(result.measured.values()) == [None]


@pytest.mark.parametrize("this", ["orders", "empty_orders"])
def test_subquery_only_check_returns_one_row_whatever_the_model_holds(
    con: duckdb.DuckDBPyConnection, this: str
) -> None:
    result = check(con, "(SELECT count(*) FROM customers) = 99", this=this)
    assert (result.failing, list(result.measured.values())) == (1, [3])


def test_row_count(con: duckdb.DuckDBPyConnection) -> None:
    parsed = parse("row_count() > 0")
    assert parsed.assertion.kind is CheckKind.TABLE
    assert check(con, "row_count() > 0").failing == 0
    assert list(check(con, "row_count() = 6").measured.values()) == [6]
    assert check(con, "row_count() > 0", this="empty_orders").failing == 1


def test_where_narrows_a_row_level_check(con: duckdb.DuckDBPyConnection) -> None:
    parsed = parse("amount >= 0 where status <> 'refunded'")
    assert parsed.assertion.where == "status <> 'refunded'"
    assert parsed.checked_columns == ("status", "amount")
    result = check(con, "amount >= 0 where status <> 'refunded'")
    assert (result.failing, result.total) == (0, 4)  # NULL status is not <> 'refunded'


def test_where_narrows_a_table_level_check(con: duckdb.DuckDBPyConnection) -> None:
    result = check(con, "row_count() = 3 where status = 'paid'")
    assert (result.failing, list(result.measured.values())) == (0, [3])


def test_where_inside_a_subquery_does_not_split_the_check(
    con: duckdb.DuckDBPyConnection,
) -> None:
    text = "count(*) < (SELECT count(*) FROM customers WHERE customer_id > 10) where amount > 0"
    parsed = parse(text)
    assert parsed.assertion.expression.endswith("WHERE customer_id > 10)")
    assert parsed.assertion.where == "amount > 0"
    result = check(con, text)
    assert (result.failing, list(result.measured.values())) == (1, [3, 2])


# -- names, tolerance, query blocks ---------------------------------------------------------------


def test_name_prefix() -> None:
    assertion = parse("no_refunds: status <> 'refunded'").assertion
    assert (assertion.name, assertion.expression) == ("no_refunds", "status <> 'refunded'")
    assert assertion.text == "status <> 'refunded'"  # the check, without its name


def test_unnamed_check_is_named_by_its_text() -> None:
    assert parse("  amount >= 0  ").assertion.name == "amount >= 0"


def test_a_cast_is_not_a_name(con: duckdb.DuckDBPyConnection) -> None:
    assertion = parse("amount::int >= 0").assertion
    assert (assertion.name, assertion.kind) == ("amount::int >= 0", CheckKind.ROW)
    assert check(con, "amount::int >= 0").failing == 1


def test_named_check_with_a_cast() -> None:
    assertion = parse("positive: amount::int >= 0").assertion
    assert assertion.name == "positive"


@pytest.mark.parametrize(
    ("text", "tolerance"),
    [
        ("amount >= 0 tolerate 2", Tolerance(count=2)),
        ("amount >= 0 TOLERATE 0", Tolerance(count=0)),
        ("amount >= 0 tolerate 10%", Tolerance(percent=10.0)),
        ("amount >= 0 where id > 1 tolerate 2.5%", Tolerance(percent=2.5)),
        ("unique(id) tolerate 3", Tolerance(count=3)),
    ],
)
def test_tolerate_is_parsed(text: str, tolerance: Tolerance) -> None:
    assert parse(text).assertion.tolerate == tolerance


@pytest.mark.parametrize(
    ("tolerance", "failing", "total", "allowed"),
    [
        (Tolerance(count=2), 2, 100, True),
        (Tolerance(count=2), 3, 100, False),
        (Tolerance(percent=10), 10, 100, True),
        (Tolerance(percent=10), 11, 100, False),
        (Tolerance(percent=10), 0, 0, True),
        (Tolerance(), 0, 5, True),
        (Tolerance(), 1, 5, False),
    ],
)
def test_tolerance_allows(tolerance: Tolerance, failing: int, total: int, allowed: bool) -> None:
    assert tolerance.allows(failing, total) is allowed


def test_query_block(con: duckdb.DuckDBPyConnection) -> None:
    text = "void_has_no_amount:\nSELECT * FROM orders WHERE status = 'void' AND amount IS NULL"
    parsed = parse(text)
    assert (parsed.assertion.kind, parsed.assertion.name) == (CheckKind.QUERY, "void_has_no_amount")
    assert parsed.refs == (TableRef(None, "orders", 8, 15),)
    result = check(con, text)
    assert (result.failing, result.total) == (1, 6)
    assert result.rows[0][:3] == (2, 11, "void")


def test_query_block_with_no_failing_rows(con: duckdb.DuckDBPyConnection) -> None:
    result = check(con, "none: SELECT * FROM orders WHERE amount > 1000")
    assert (result.failing, result.rows) == (0, [])


def test_standalone_query_block(con: duckdb.DuckDBPyConnection) -> None:
    text = "orphans: SELECT * FROM customers WHERE customer_id > 11"
    result = check(con, text, this=None, standalone=True)
    assert (result.failing, result.total) == (1, None)


def test_standalone_subquery_check(con: duckdb.DuckDBPyConnection) -> None:
    text = "(SELECT count(*) FROM orders) = (SELECT count(*) FROM customers)"
    result = check(con, text, this=None, standalone=True)
    assert (result.failing, list(result.measured.values())) == (1, [6, 3])


def test_warn_is_not_blocking() -> None:
    assertion = parse("amount >= 0", blocking=False).assertion
    assert (assertion.blocking, assertion.severity) == (False, "warn")


# -- run_assertions reads the one-row shape ------------------------------------------------------

TOML = '[project]\nname = "t"\ndialect = "duckdb"\n[targets.local]\nengine = "duckdb"\npath = "t.duckdb"\n'
SOURCE = """\
CREATE TABLE raw.orders (id INTEGER, amount INTEGER)
-- @assert amount >= 0 tolerate 2
-- @assert amount >= 0 tolerate 1
-- @assert amount >= 0 tolerate 40%
-- @assert amount >= 0 tolerate 10%
-- @warn   amount >= 0
-- @assert row_count() = 5
-- @assert unique(id)
"""


def test_run_assertions_applies_tolerance_and_severity(tmp_path: Path) -> None:
    (tmp_path / "sqlops.toml").write_text(TOML)
    (tmp_path / "sources" / "raw").mkdir(parents=True)
    (tmp_path / "sources" / "raw" / "orders.sql").write_text(SOURCE)
    project = load_project(tmp_path, use_cache=False)
    con = duckdb.connect()
    con.execute(
        "CREATE SCHEMA raw; CREATE TABLE raw.orders AS "
        "SELECT * FROM (VALUES (1, 1), (2, -1), (3, -2), (4, 0), (5, NULL)) AS v(id, amount)"
    )
    relations = Relations(project, lambda n: Relation(n.schema, n.name), "duckdb")
    results = run_assertions(DuckDBEngine(con, ":memory:"), relations, project.nodes["raw.orders"])
    assert [r.outcome for r in results] == [
        Outcome.PASS,
        Outcome.FAIL,
        Outcome.PASS,
        Outcome.FAIL,
        Outcome.WARN,
        Outcome.PASS,
        Outcome.PASS,
    ]
    assert (results[0].failing, results[0].total) == (2, 5)
    assert sorted(results[0].samples) == [(2, -1), (3, -2)]
    assert results[0].sample_columns == ("id", "amount")
    assert list(results[5].measured.values()) == [5]


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["lots", "-1", "150%", "1.5", "%"])
def test_bad_tolerate(raw: str) -> None:
    err = parse_error(f"amount >= 0 tolerate {raw}")
    assert f"`tolerate {raw}` is not a row count or a percentage" in err.message
    assert "tolerate 10" in (err.hint or "")


def test_tolerate_on_a_table_level_check() -> None:
    err = parse_error("row_count() > 100 tolerate 5")
    assert "holds for the table as a whole" in err.message


def test_query_block_needs_a_name() -> None:
    err = parse_error("SELECT * FROM orders WHERE amount < 0")
    assert "needs a name" in err.message
    assert "@assert my_check_name: SELECT" in (err.hint or "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("unique(lower(email))", "`lower(email)` is not a column name"),
        ("unique(id, 1)", "`1` is not a column name"),
        ("not_null(o.id)", "`o.id` is not a column name"),
        ("unique()", "unique() needs at least one column"),
        ("accepted_values(status)", "needs a column and at least one value"),
        ("accepted_values(status, paid)", "`paid` is not a literal value"),
        ("references(customer_id, customers)", "`customers` is not `schema.model.column`"),
        ("references(customer_id)", "takes a column and a target column"),
    ],
)
def test_builtin_with_bad_arguments(text: str, message: str) -> None:
    err = parse_error(text)
    assert message in err.message
    assert (err.hint or "").startswith("write ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prev(row_count())", "is a value, not a condition"),
        ("anomaly(amount)", "anomaly() needs a value of the whole table, not `amount`"),
        ("prev(amount) > 0", "prev() needs a value of the whole table"),
        ("anomaly(sum(amount) + amount)", "needs a value of the whole table"),
        ("anomaly()", "anomaly() takes anomaly(EXPR [, Z])"),
        ("prev(row_count(), 2) > 0", "prev() takes prev(EXPR)"),
        ("anomaly(row_count(), 0)", "Z, a positive number"),
        ("anomaly(row_count(), 'x')", "Z, a positive number"),
        ("anomaly(prev(row_count()))", "prev() inside anomaly() is not supported"),
        ("row_count() > (SELECT prev(count(*)) FROM x)", "cannot be used inside a subquery"),
        ("amount > prev(max(amount))", "mixes aggregates"),
        ("row_count() > 0 where amount > prev(avg(amount))", "prev() cannot be used in `where`"),
    ],
)
def test_history_functions_are_checked(text: str, message: str) -> None:
    assert message in parse_error(text).message


def history_check(
    con: duckdb.DuckDBPyConnection, text: str, recorded: dict[str, list[float]]
) -> tuple[Checked, Any]:
    compiled = compile_assertion(
        parse(text).assertion, exp.to_table("orders"), relate, "duckdb", recorded=recorded
    )
    row = con.execute(compiled.sql).fetchone()
    assert row is not None
    return Checked(row[0], row[1], [], [], dict(zip(compiled.measures, row[2:], strict=True))), (
        compiled
    )


def test_prev_is_the_last_recorded_value(con: duckdb.DuckDBPyConnection) -> None:
    # orders has 6 rows; the last build had 7, the one before 100
    text = "row_count() >= 0.8 * prev(row_count())"
    ok, compiled = history_check(con, text, {"row_count()": [7, 100]})
    assert ok.failing == 0  # 6 >= 5.6
    assert compiled.expected == {"prev(row_count())": 7}
    assert compiled.tracked == {"row_count()": "row_count()"}
    assert ok.measured["row_count()"] == 6
    bad, _ = history_check(con, text, {"row_count()": [10]})
    assert bad.failing == 1  # 6 < 8


def test_prev_without_a_baseline_passes_and_says_so(con: duckdb.DuckDBPyConnection) -> None:
    # the whole check passes, whatever holds prev(): under NOT, assuming the comparison would fail
    for text in (
        "row_count() > 100 AND sum(amount) >= prev(sum(amount))",
        "NOT (sum(amount) < prev(sum(amount)))",
    ):
        checked, compiled = history_check(con, text, {})
        assert checked.failing == 0
        assert compiled.notes == ("no baseline yet for prev(sum(amount)): passes this time",)
        assert checked.measured["sum(amount)"] == 30  # measured, to become the baseline


def test_a_series_is_named_by_its_where(con: duckdb.DuckDBPyConnection) -> None:
    text = "row_count() >= prev(row_count()) where status = 'paid'"
    recorded = {"row_count()": [100.0], "row_count() where status = 'paid'": [3.0]}
    checked, compiled = history_check(con, text, recorded)
    assert compiled.tracked == {"row_count()": "row_count() where status = 'paid'"}
    assert compiled.expected == {"prev(row_count())": 3.0}
    assert checked.failing == 0  # 3 paid rows, as before; all rows (6) would be less than 100


def test_prev_of_an_expression_is_measured_whole(con: duckdb.DuckDBPyConnection) -> None:
    checked, compiled = history_check(
        con, "sum(amount) / row_count() <= 2 * prev(sum(amount) / row_count())", {}
    )
    assert checked.measured["sum(amount) / row_count()"] == 5  # 30 / 6
    assert list(compiled.tracked) == ["sum(amount) / row_count()"]


def test_anomaly_learns_from_the_recorded_values(con: duckdb.DuckDBPyConnection) -> None:
    series = [6.0, 7.0, 5.0, 6.0, 6.0, 7.0, 5.0]  # mean 6, sample stddev sqrt(4/6) = 0.8165
    checked, compiled = history_check(con, "anomaly(row_count())", {"row_count()": series})
    assert checked.failing == 0
    expected = compiled.expected["anomaly(row_count())"]
    assert expected["mean"] == 6.0
    assert expected["stddev"] == pytest.approx(0.816497, abs=1e-6)
    assert (expected["low"], expected["high"]) == pytest.approx((3.550510, 8.449490), abs=1e-6)
    # a planted outlier: 6 rows against a history of about 20
    outlier = [20.0, 21.0, 19.0, 20.0, 20.0, 21.0, 19.0]
    flagged, _ = history_check(con, "anomaly(row_count())", {"row_count()": outlier})
    assert flagged.failing == 1
    # Z widens the band: 20 ± 10·0.8165 still excludes 6, ± 20·0.8165 includes it
    assert history_check(con, "anomaly(row_count(), 10)", {"row_count()": outlier})[0].failing
    assert not history_check(con, "anomaly(row_count(), 20)", {"row_count()": outlier})[0].failing


def test_anomaly_is_training_on_a_short_series(con: duckdb.DuckDBPyConnection) -> None:
    checked, compiled = history_check(
        con, "anomaly(avg(amount))", {"avg(amount)": [100.0, 100.0, 100.0, 100.0]}
    )
    assert checked.failing == 0  # avg 6 is far from 100, but 4 values teach nothing yet
    assert compiled.notes == ("training: 4 of 5 values of avg(amount) recorded",)
    assert checked.measured["avg(amount)"] == 6


def test_anomaly_of_a_constant_series_flags_any_change(con: duckdb.DuckDBPyConnection) -> None:
    assert not history_check(con, "anomaly(row_count())", {"row_count()": [6.0] * 5})[0].failing
    assert history_check(con, "anomaly(row_count())", {"row_count()": [7.0] * 5})[0].failing


@pytest.mark.parametrize("text", ["amount >= 0", "count(*) > 0", "row_count() > 0"])
def test_standalone_test_needs_subqueries(text: str) -> None:
    err = parse_error(text, standalone=True)
    assert "a check in tests/ has no model" in err.message
    assert "(SELECT count(*) FROM a) = (SELECT count(*) FROM b)" in (err.hint or "")


def test_mixing_aggregates_and_row_values() -> None:
    err = parse_error("sum(amount) > amount")
    assert "mixes aggregates" in err.message


def test_where_on_a_check_that_reads_no_rows() -> None:
    err = parse_error("(SELECT count(*) FROM customers) > 0 where amount > 0")
    assert "reads none of them" in err.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty assertion"),
        ("name:", "has no check after the colon"),
        ("amount > 0 where", "`where` needs a condition"),
        ("where amount > 0", "nothing to check before `where`"),
        ("bad: DELETE FROM orders", "`DELETE FROM orders` is not a condition"),
        ("(SELECT true)", "not a query"),
    ],
)
def test_malformed_checks(text: str, message: str) -> None:
    assert message in parse_error(text).message


def test_syntax_error_in_a_check_points_at_it() -> None:
    err = parse_error("amount >= (0")
    assert err.message.startswith("SQL syntax error")
    assert err.snippet is not None and "amount >= (0" in err.snippet


# -- the one scan: checks screened together give what their own queries give -------------------

SCREENED = [
    "unique(id)",
    "unique(customer_id)",
    "unique(status) where amount > 0",
    "not_null(id)",
    "not_null(id, status) where customer_id < 50",
    "accepted_values(status, 'paid', 'void')",
    "accepted_values(status, 'paid', 'void', 'refunded')",
    "amount >= 0",
    "amount >= 0 where status = 'paid'",
    "amount >= -10",
    "row_count() > 3",
    "row_count() > 100",
    "sum(amount) between 0 and 100",
    "count(DISTINCT status) = 3 and max(amount) < 50",
    "avg(amount) > 1000",
    "amount >= 0 tolerate 1",
]
ALONE = [
    "unique(id, customer_id)",  # more than one key: counted by its own query
    "references(customer_id, customers.customer_id)",
    "amount <= sum(amount) over ()",
    "amount in (SELECT amount FROM orders)",
    "row_count() > 0 where status = 'paid'",
    "(SELECT count(*) FROM customers) > 0",
]


@pytest.mark.parametrize("table", ["orders", "empty_orders"])
def test_screen_gives_what_each_check_gives_alone(
    con: duckdb.DuckDBPyConnection, table: str
) -> None:
    from sqlops.assertions.compile import screen_query, screened

    compiled = [
        compile_assertion(parse(t).assertion, exp.to_table(table), relate, "duckdb")
        for t in SCREENED
    ]
    assert all(c.screen is not None for c in compiled), [
        t for t, c in zip(SCREENED, compiled, strict=True) if c.screen is None
    ]
    cursor = con.execute(screen_query(exp.to_table(table), compiled, "duckdb", "duckdb"))
    row = dict(zip([d[0] for d in cursor.description or ()], cursor.fetchone() or (), strict=True))
    answers = screened(compiled, row)
    for text, one, answer in zip(SCREENED, compiled, answers, strict=True):
        own = con.execute(one.sql).fetchall()[0]
        if answer is None:
            # only a row-level check with failing rows runs alone, for its samples
            assert not one.returns_measures and own[0] > 0, text
            continue
        width = len(answer)
        assert tuple(answer) == tuple(own[:width]), text
    if table == "orders":  # every kind fails somewhere: the screen says so for each
        failing = {t for t, a in zip(SCREENED, answers, strict=True) if a is None or a[0]}
        assert failing >= {"unique(id)", "not_null(id)", "amount >= 0", "row_count() > 100"}
        assert (
            "unique(customer_id)" in failing
            and "accepted_values(status, 'paid', 'void', 'refunded')" not in failing
        )


def test_checks_the_screen_cannot_count_are_left_to_their_own_query() -> None:
    for text in ALONE:
        compiled = compile_assertion(
            parse(text).assertion, exp.to_table("orders"), relate, "duckdb"
        )
        assert compiled.screen is None, text


def test_a_model_runs_one_query_for_passing_checks_and_its_own_for_a_failing_one(
    tmp_path: Path,
) -> None:
    """End to end through run_assertions on real DuckDB: the results are those of the checks
    run one by one, samples included, and passing screenable checks cost one query."""
    root = tmp_path / "p"
    (root / "models").mkdir(parents=True)
    (root / "sqlops.toml").write_text(
        '[project]\nname = "p"\n\n[targets.dev]\nengine = "duckdb"\npath = "p.duckdb"\n'
    )
    (root / "models" / "orders.sql").write_text(
        "SELECT * FROM (VALUES (1, 10, 'paid'), (2, 20, 'paid'), (2, -5, 'void')) "
        "AS v(id, amount, status)\n"
        "-- @assert not_null(id)\n"
        "-- @assert accepted_values(status, 'paid', 'void')\n"
        "-- @assert row_count() > 0\n"
        "-- @assert unique(id)\n"
        "-- @assert amount >= 0\n"
        "-- @assert references(id, main.orders.id)\n"
    )
    project = load_project(root)
    node = project.nodes["main.orders"]
    engine = DuckDBEngine(duckdb.connect(), ":memory:")
    engine.execute(f"CREATE TABLE orders AS {project.ast(node.id).sql('duckdb')}")
    relations = Relations(project, lambda n: Relation("main", n.name), "duckdb")
    statements: list[str] = []
    query = engine.query

    def counting(sql: str, params: Any = ()) -> Any:
        statements.append(sql)
        return query(sql, params)

    engine.query = counting  # type: ignore[method-assign]
    results = {r.assertion.text: r for r in run_assertions(engine, relations, node)}
    # one screen, then unique(id) and amount >= 0 for their samples, then references alone
    assert len(statements) == 4, statements
    assert results["not_null(id)"].outcome is Outcome.PASS
    assert results["not_null(id)"].total == 3
    assert results["row_count() > 0"].outcome is Outcome.PASS
    assert results["row_count() > 0"].measured == {"row_count()": 3}
    assert results["unique(id)"].outcome is Outcome.FAIL
    assert results["unique(id)"].failing == 2 and len(results["unique(id)"].samples) == 2
    assert results["amount >= 0"].failing == 1
    assert results["amount >= 0"].samples == ((2, -5, "void"),)
    assert results["references(id, main.orders.id)"].outcome is Outcome.PASS

"""Compile every assertion to one query, whatever its kind.

Each query returns at least one row: `__failing` (rows, or 1 for a failed table-level check),
`__total` (rows checked), then either up to 5 sample failing rows or the measured values.

The checks of one relation that can be computed as aggregates are also screened together, in one
scan (`screen_query`): a table-level check gets its whole answer there, a row-level check the
count of its failing rows, and only a check that fails runs its own query, for its sample rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from sqlops.assertions.definition import Assertion, CheckKind
from sqlops.assertions.history import ANOMALY, DEFAULT_Z, MIN_VALUES, PREV, expect
from sqlops.assertions.parse import ROW_COUNT, is_aggregate

SAMPLE_ROWS = 5
# maps a table as written in the check to the relation (or inlined query) it means here
Relate = Callable[[exp.Table], exp.Expr]


# expression (as prev()/anomaly() name it) -> its recorded values, most recent first
Recorded = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Screen:
    """A check as aggregates over the relation, in the project's dialect, to be computed with
    others in one scan. `rows`: `condition` is true on a failing row; `unique`: `condition` is
    the key, failing when it has fewer distinct values than rows; `table`: the check's measures
    and its `verdict` over them."""

    kind: str  # "rows", "unique" or "table"
    condition: str = ""
    where: str | None = None
    measures: tuple[str, ...] = ()
    verdict: str = ""  # over the measures' columns, `__m0`, `__m1`, ...


@dataclass(frozen=True)
class CompiledAssertion:
    assertion: Assertion
    sql: str
    measures: tuple[str, ...] = ()  # names of the measured values, for table-level checks
    # measures prev() and anomaly() keep a series of -> the name of that series
    tracked: dict[str, str] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)  # what each of them compared with
    notes: tuple[str, ...] = ()  # e.g. "no baseline yet"
    screen: Screen | None = None  # how it joins the one scan of its relation, when it can

    @property
    def returns_measures(self) -> bool:
        return self.assertion.kind is CheckKind.TABLE


def compile_assertion(
    assertion: Assertion,
    this: exp.Expr | None,
    relate: Relate,
    dialect: str,
    target_dialect: str | None = None,
    recorded: Recorded | None = None,
) -> CompiledAssertion:
    """`this` is the relation under test (a table, or a subquery for ephemeral models);
    `recorded` holds the series prev() and anomaly() compare with."""
    target_dialect = target_dialect or dialect
    this_sql = _from(this, dialect) if this is not None else None
    measures: tuple[str, ...] = ()
    kind = assertion.kind
    if kind is CheckKind.TABLE:
        written = sqlglot.parse_one(assertion.expression, dialect=dialect)
        history = _HistoryCalls(written, recorded or {}, dialect, assertion.where)
        sql, measures, screen = _table_level(assertion, history, this_sql, relate, dialect)
        final = _for_target(sql, dialect, target_dialect)
        return CompiledAssertion(
            assertion,
            final,
            measures,
            history.series,
            history.expected,
            tuple(history.notes),
            screen,
        )
    elif kind is CheckKind.QUERY:
        query = _with_relations(sqlglot.parse_one(assertion.expression, dialect=dialect), relate)
        checked = f"SELECT * FROM {this_sql}" if this_sql else "SELECT 1 WHERE FALSE"
        sql = _counted(checked, query.sql(dialect), total=this_sql is not None)
    else:
        checked = f"SELECT * FROM {this_sql}"
        where_sql = None
        if assertion.where:
            where = _with_relations(sqlglot.parse_one(assertion.where, dialect=dialect), relate)
            where_sql = where.sql(dialect)
            checked += f" WHERE {where_sql}"
        sql = _counted(checked, _failing_rows(assertion, relate, dialect))
        screen = _row_screen(assertion, where_sql, dialect)
        final = _for_target(sql, dialect, target_dialect)
        return CompiledAssertion(assertion, final, measures, screen=screen)
    final = _for_target(sql, dialect, target_dialect)
    return CompiledAssertion(assertion, final, measures)


def _row_screen(assertion: Assertion, where: str | None, dialect: str) -> Screen | None:
    """A row-level check as a count of failing rows, when an aggregate can count them: not for
    references (another relation), window functions, or subqueries (which some engines refuse
    inside an aggregate)."""
    if where is not None and _reads_more(sqlglot.parse_one(where, dialect=dialect)):
        return None
    cols = [exp.column(c).sql(dialect) for c in assertion.columns]
    kind = assertion.kind
    if kind is CheckKind.NOT_NULL:
        return Screen("rows", " OR ".join(f"{c} IS NULL" for c in cols), where)
    if kind is CheckKind.ACCEPTED_VALUES:
        return Screen("rows", f"{cols[0]} NOT IN ({', '.join(assertion.values)})", where)
    if kind is CheckKind.UNIQUE:
        return Screen("unique", cols[0], where) if len(cols) == 1 else None
    if kind is CheckKind.ROW:
        expression = sqlglot.parse_one(assertion.expression, dialect=dialect)
        if _reads_more(expression) or expression.find(exp.Window):
            return None
        return Screen("rows", f"NOT ({expression.sql(dialect)})", where)
    return None


def _reads_more(expression: exp.Expr) -> bool:
    """Whether an expression holds a query of its own (a subquery, EXISTS, IN (SELECT ...))."""
    return expression.find(exp.Query) is not None


def screen_query(
    this: exp.Expr, checks: Sequence[CompiledAssertion], dialect: str, target_dialect: str
) -> str:
    """One query that screens every check of `checks` (each with a `screen`) in one scan of
    `this`. Its one row holds, for check i: `__s{i}_total` and `__s{i}_failing` (rows), also
    `__s{i}_distinct` (unique: distinct keys; failing then counts the present keys), or
    `__s{i}_failing` and the measures `__s{i}_m0`, ... (table); read it with `screened`."""

    def renamed(verdict: str, prefix: str) -> str:
        """The verdict over this check's measure columns: `__m0` becomes `{prefix}0`."""

        def rename(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and not node.table and node.name.startswith("__m"):
                return exp.column(prefix + node.name[3:])
            return node

        parsed = sqlglot.parse_one(verdict, dialect=dialect)
        return parsed.transform(rename, copy=False).sql(dialect)

    inner: list[str] = []
    outer: list[str] = []
    for i, check in enumerate(checks):
        screen = check.screen
        assert screen is not None
        name = f"__s{i}"
        if screen.kind == "table":
            columns = [f"{name}_m{j}" for j in range(len(screen.measures))]
            inner += [f"{m} AS {c}" for m, c in zip(screen.measures, columns, strict=True)]
            verdict = renamed(screen.verdict, f"{name}_m")
            outer.append(f"CASE WHEN {verdict} THEN 0 ELSE 1 END AS {name}_failing")
            outer += columns
            continue

        def counted(condition: str, where: str | None = screen.where) -> str:
            cond = condition if where is None else f"({where}) AND ({condition})"
            return f"coalesce(sum(CASE WHEN {cond} THEN 1 ELSE 0 END), 0)"

        parts = {
            f"{name}_total": "count(*)" if screen.where is None else counted("TRUE"),
        }
        if screen.kind == "rows":
            parts[f"{name}_failing"] = counted(screen.condition)
        else:
            key = screen.condition
            parts[f"{name}_failing"] = counted(f"{key} IS NOT NULL")
            kept = key if screen.where is None else f"CASE WHEN {screen.where} THEN {key} END"
            parts[f"{name}_distinct"] = f"count(DISTINCT {kept})"
        inner += [f"{sql} AS {alias}" for alias, sql in parts.items()]
        outer += parts
    sql = (
        f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} "
        f"FROM {_from(this, dialect)}) AS __sqlops_screen"
    )
    return _for_target(sql, dialect, target_dialect)


def screened(
    checks: Sequence[CompiledAssertion], row: Mapping[str, Any]
) -> list[tuple[Any, ...] | None]:
    """Each check's answer from the screen's row, shaped as its own query's first row
    (`__failing`, `__total`, measures...), or None when it must run its own query: a row-level
    check with failing rows, whose samples only its own query gives."""
    answers: list[tuple[Any, ...] | None] = []
    for i, check in enumerate(checks):
        screen = check.screen
        assert screen is not None
        name = f"__s{i}"
        if screen.kind == "table":
            measured = tuple(row[f"{name}_m{j}"] for j in range(len(screen.measures)))
            answers.append((row[f"{name}_failing"], 1, *measured))
            continue
        total, failing = int(row[f"{name}_total"] or 0), int(row[f"{name}_failing"] or 0)
        if screen.kind == "unique":
            failing = failing - int(row[f"{name}_distinct"] or 0)  # keys seen more than once
        answers.append((0, total) if failing == 0 else None)
    return answers


def _for_target(sql: str, dialect: str, target_dialect: str) -> str:
    """SQL written in the project's dialect, as the target's engine reads it."""
    if target_dialect == dialect:
        return sql  # parsing it again to print it the same would cost, and change nothing
    return sqlglot.parse_one(sql, dialect=dialect).sql(target_dialect)


def _counted(checked: str, failing: str, total: bool = True) -> str:
    total_sql = "(SELECT count(*) FROM __sqlops_checked)" if total else "NULL"
    return (
        f"WITH __sqlops_checked AS ({checked}), __sqlops_failing AS ({failing}) "
        f"SELECT __c.__failing, __c.__total, __s.* FROM ("
        f"SELECT (SELECT count(*) FROM __sqlops_failing) AS __failing, {total_sql} AS __total"
        f") AS __c LEFT JOIN (SELECT * FROM __sqlops_failing LIMIT {SAMPLE_ROWS}) AS __s ON TRUE"
    )


def _failing_rows(assertion: Assertion, relate: Relate, dialect: str) -> str:
    cols = [exp.column(c).sql(dialect) for c in assertion.columns]
    kind = assertion.kind
    if kind is CheckKind.NOT_NULL:
        return "SELECT * FROM __sqlops_checked WHERE " + " OR ".join(f"{c} IS NULL" for c in cols)
    if kind is CheckKind.ACCEPTED_VALUES:
        return (
            f"SELECT * FROM __sqlops_checked WHERE {cols[0]} NOT IN ({', '.join(assertion.values)})"
        )
    if kind is CheckKind.UNIQUE:
        keys = ", ".join(cols)
        present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        return (
            f"SELECT * FROM (SELECT *, count(*) OVER (PARTITION BY {keys}) AS __sqlops_copies "
            f"FROM __sqlops_checked WHERE {present}) AS __d WHERE __sqlops_copies > 1"
        )
    if kind is CheckKind.REFERENCES:
        assert assertion.target and assertion.target_column
        schema, _, name = assertion.target.rpartition(".")
        target = relate(exp.table_(name, db=schema or None))
        other = exp.column(assertion.target_column, table="__sqlops_ref").sql(dialect)
        mine = exp.column(assertion.columns[0], table="__sqlops_checked").sql(dialect)
        return (
            f"SELECT * FROM __sqlops_checked WHERE {mine} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {_from(target, dialect, '__sqlops_ref')} WHERE {other} = {mine})"
        )
    expression = _with_relations(sqlglot.parse_one(assertion.expression, dialect=dialect), relate)
    # NOT(NULL) is NULL, so a row where the check is NULL is not failing: NULL passes
    if expression.find(exp.Window):
        # WHERE cannot hold a window function: compute the check as a column first
        return (
            f"SELECT * FROM (SELECT *, {expression.sql(dialect)} AS __sqlops_holds "
            f"FROM __sqlops_checked) AS __w WHERE NOT __sqlops_holds"
        )
    return f"SELECT * FROM __sqlops_checked WHERE NOT ({expression.sql(dialect)})"


class _HistoryCalls:
    """prev(X) becomes X's last recorded value; anomaly(X [, Z]) becomes `X BETWEEN low AND
    high`. Until every call has enough history (a baseline for prev(), 5 values for anomaly()),
    the check passes and says why. Each X is measured, to be recorded.

    A series is named by X and the check's `where`: `row_count() where country = 'US'` is another
    series than `row_count()`."""

    def __init__(
        self, written: exp.Expr, recorded: Recorded, dialect: str, where: str | None
    ) -> None:
        self.root = written
        self.tracked: dict[str, exp.Expr] = {}  # measure name -> X
        self.series: dict[str, str] = {}  # measure name -> the series it is recorded in
        self.expected: dict[str, Any] = {}
        self.notes: list[str] = []
        calls = [c for c in written.find_all(exp.Anonymous) if c.name.lower() in (PREV, ANOMALY)]
        for call in calls:
            value = call.expressions[0]
            key = value.sql(dialect, normalize_functions="lower")
            self.tracked.setdefault(key, value.copy())
            self.series[key] = f"{key} where {where}" if where else key
            values = recorded.get(self.series[key], ())
            label = call.sql(dialect, normalize_functions="lower")
            if call.name.lower() == PREV:
                if values:
                    self.expected[label] = values[0]
                    self._swap(call, _number(values[0]))
                else:
                    self.notes.append(f"no baseline yet for {label}: passes this time")
                continue
            z = float(call.expressions[1].name) if len(call.expressions) > 1 else DEFAULT_Z
            expectation = expect(values, z)
            if expectation is None:
                self.notes.append(
                    f"training: {len(values)} of {MIN_VALUES} values of {key} recorded"
                )
            else:
                self.expected[label] = expectation.to_json()
                between = exp.Between(
                    this=value.copy(),
                    low=_number(expectation.low),
                    high=_number(expectation.high),
                )
                self._swap(call, exp.paren(between, copy=False))
        if self.notes:  # not enough history yet: only the measuring is done
            self.root = exp.true()
            self.expected = {}

    def _swap(self, node: exp.Expr, replacement: exp.Expr) -> None:
        if node is self.root:
            self.root = replacement
        else:
            node.replace(replacement)


def _number(value: float) -> exp.Expr:
    return exp.cast(exp.Literal.string(repr(float(value))), exp.DataType.Type.DOUBLE)


def _table_level(
    assertion: Assertion,
    history: _HistoryCalls,
    this_sql: str | None,
    relate: Relate,
    dialect: str,
) -> tuple[str, tuple[str, ...], Screen | None]:
    written = history.root
    # measured values are labelled as the user wrote them, before tables are pointed anywhere
    names: list[str] = []

    def label(node: exp.Expr) -> exp.Expr:
        if _is_measure(node):
            names.append(node.sql(dialect, normalize_functions="lower"))
            return exp.column("__m")
        return node

    written.copy().transform(label, copy=False)
    check = _with_relations(written, relate)
    measures: list[exp.Expr] = []

    def lift(node: exp.Expr) -> exp.Expr:
        if not _is_measure(node):
            return node
        measures.append(_count_rows(node.copy()))
        return exp.column(f"__m{len(measures) - 1}")

    lifted = check.transform(lift, copy=True)
    # what prev() and anomaly() keep a series of is measured whole
    for key, value in history.tracked.items():
        if key not in names:
            names.append(key)
            measures.append(_with_relations(value.transform(_count_rows), relate))
    select_list = ", ".join(f"{m.sql(dialect)} AS __m{i}" for i, m in enumerate(measures))
    # without an aggregate, reading the model would give one row per row, or none when it is empty
    reads_rows = any(not isinstance(m, exp.Subquery) for m in measures)
    source = f" FROM {this_sql}" if this_sql and reads_rows else ""
    where = ""
    if assertion.where and source:
        where_expr = _with_relations(sqlglot.parse_one(assertion.where, dialect=dialect), relate)
        where = f" WHERE {where_expr.sql(dialect)}"
    measured = "".join(f", __m{i}" for i in range(len(measures)))
    sql = (
        f"WITH __sqlops_measures AS (SELECT {select_list or '1 AS __m'}{source}{where}) "
        f"SELECT CASE WHEN {lifted.sql(dialect)} THEN 0 ELSE 1 END AS __failing, "
        f"1 AS __total{measured} FROM __sqlops_measures"
    )
    screen = None
    # measures of the relation's own rows only: a subquery or a window is measured alone
    alone = any(_reads_more(m) or m.find(exp.Window) for m in measures)
    if measures and source and not where and not alone:
        screen = Screen(
            "table", measures=tuple(m.sql(dialect) for m in measures), verdict=lifted.sql(dialect)
        )
    return sql, tuple(names), screen


def _count_rows(node: exp.Expr) -> exp.Expr:
    """row_count() is count(*)."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == ROW_COUNT:
        return exp.Count(this=exp.Star())
    return node


def _is_measure(node: exp.Expr) -> bool:
    """A value of the whole table: an aggregate, row_count(), or a scalar subquery of the check."""
    if isinstance(node, exp.Subquery):
        return not node.find_ancestor(exp.Query)
    return is_aggregate(node)


def _with_relations(expression: exp.Expr, relate: Relate) -> exp.Expr:
    """Point every real table in a check at the relation it means in this build."""
    from sqlops.syntax import table_refs

    for table, _ in table_refs(expression):
        replacement = relate(table)
        alias = table.alias or table.name
        if isinstance(replacement, exp.Table):
            replacement = replacement.copy()
            replacement.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        else:
            replacement = exp.Subquery(
                this=replacement.copy(), alias=exp.TableAlias(this=exp.to_identifier(alias))
            )
        table.replace(replacement)
    return expression


def _from(relation: exp.Expr, dialect: str, alias: str | None = None) -> str:
    if isinstance(relation, exp.Table):
        text = relation.sql(dialect)
    else:
        text = f"({relation.sql(dialect)})"
        alias = alias or "__sqlops_this"
    return f"{text} AS {alias}" if alias else text

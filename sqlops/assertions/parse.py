"""Parse the text of an `@assert` / `@warn` directive into an Assertion."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType  # type: ignore[attr-defined]

from sqlops.assertions.definition import Assertion, CheckKind, Tolerance
from sqlops.errors import ProjectError, snippet_at
from sqlops.syntax import (
    TableRef,
    is_query_text,
    normalize_name,
    parse_expression,
    quoted_text,
    sqlglot_dialect,
    table_refs,
    top_level_tokens,
)

_NAME = re.compile(r"^\s*([A-Za-z_]\w*)\s*:(?!:)\s*", re.DOTALL)
_BUILTIN = re.compile(
    r"^(unique|not_null|accepted_values|references)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL
)
ROW_COUNT = "row_count"
HISTORY_FUNCTIONS = ("prev", "anomaly")
BUILTIN_CHECKS = ("unique", "not_null", "accepted_values", "references")
OWN_FUNCTIONS = (*BUILTIN_CHECKS, ROW_COUNT, *HISTORY_FUNCTIONS)
Fail = Callable[..., ProjectError]
_EXAMPLES = (
    "examples: `unique(id)`, `not_null(a, b)`, `amount >= 0 where status <> 'void'`, "
    "`row_count() > 0`, `email LIKE '%@%' tolerate 5%`; see docs/assertions.md"
)


@dataclass(frozen=True)
class ParsedAssertion:
    assertion: Assertion
    refs: tuple[TableRef, ...]  # tables the check reads besides the model itself
    checked_columns: tuple[str, ...]  # columns of the model under test that the check names


def parse_assertion(
    text: str,
    *,
    blocking: bool,
    path: Path,
    relpath: str,
    line: int,
    file_text: str,
    dialect: str,
    standalone: bool = False,
) -> ParsedAssertion:
    """Parse `[name:] CHECK [where COND] [tolerate N | tolerate P%]` or `name: SELECT ...`."""

    def fail(message: str, hint: str = _EXAMPLES) -> ProjectError:
        return ProjectError(
            message, path=path, line=line, snippet=snippet_at(file_text, line), hint=hint
        )

    body = text.strip()
    if not body:
        raise fail("empty assertion")
    body_at = len(text) - len(text.lstrip())  # where `body` starts in `text`
    name = None
    match = _NAME.match(body)
    if match and not body[match.end() :].startswith(":"):
        name, body = match.group(1), body[match.end() :].strip()
        body_at += match.end()
    if not body:
        raise fail(f"assertion `{name}` has no check after the colon")
    display = " ".join(body.split())  # the check as written, without its name, on one line
    at = _positions(text, body_at, file_text, line)
    # where the check starts, for errors inside a multi-line block or a long line
    check_line, check_col = at(0)

    def make(name: str, kind: CheckKind, **fields: Any) -> Assertion:
        return Assertion(name, kind, blocking=blocking, path=relpath, line=line, **fields)

    if is_query_text(body):
        if not name:
            raise fail(
                "a query assertion needs a name",
                "write it as /* @assert my_check_name: SELECT ... */ returning the failing rows",
            )
        query = parse_expression(body, dialect, path, file_text, check_line, check_col)
        if not isinstance(query, exp.Query):
            raise fail("a query assertion must be one SELECT returning the failing rows")
        query_refs = tuple(ref for _, ref in table_refs(query, check_line - 1, dialect))
        return ParsedAssertion(
            make(name, CheckKind.QUERY, text=body, expression=body), query_refs, ()
        )

    tolerate = None
    cut = _tolerate_start(body, dialect)
    if cut is not None:
        raw = " ".join(body[cut:].split()[1:]).replace(" %", "%")
        if " " in raw:
            raise fail(
                f"`tolerate {quoted_text(raw)}`: tolerate comes last",
                "write CHECK [where CONDITION] [tolerate N | tolerate P%]",
            )
        if not raw:
            raise fail(
                "`tolerate` needs a row count or a percentage",
                "write `tolerate 10` (rows) or `tolerate 2.5%` (of the rows checked)",
            )
        tolerate = _tolerance(raw, fail)
        body = body[:cut].strip()
    check, where = _split_where(body, dialect)
    if not check:
        raise fail("nothing to check before `where`")

    refs: list[TableRef] = []
    columns: list[str] = []
    where_sql = None
    if where is not None:
        if not where:
            raise fail("`where` needs a condition")
        where_expr = parse_expression(where, dialect, path, file_text, *at(len(body) - len(where)))
        if isinstance(where_expr, exp.Query):
            raise fail(
                "`where` needs a condition, not a query",
                "write CHECK where CONDITION, e.g. `amount >= 0 where status <> 'void'`",
            )
        for call in where_expr.find_all(exp.Anonymous):
            if call.name.lower() in HISTORY_FUNCTIONS:
                raise fail(
                    f"{call.name.lower()}() cannot be used in `where`",
                    "compare with history in the check itself, e.g. "
                    "`sum(amount) >= 0.9 * prev(sum(amount)) where status = 'paid'`",
                )
        where_sql = where_expr.sql(sqlglot_dialect(dialect))
        columns += _own_columns(where_expr)
        refs += [ref for _, ref in table_refs(where_expr, check_line - 1, dialect)]
    builtin = _BUILTIN.match(check)
    if builtin and standalone:
        raise fail(
            f"{builtin.group(1)}() checks a model's rows, and a file in tests/ has no model",
            "move it to the model's file, or write a query block returning the failing rows",
        )
    if builtin:
        kind = CheckKind(builtin.group(1).lower())
        args = _split_args(builtin.group(2), dialect)
        assertion = _builtin(kind, args, name, display, where_sql, tolerate, make, fail, dialect)
        columns += list(assertion.columns)
        if assertion.target:
            schema, _, model = assertion.target.rpartition(".")
            refs.append(TableRef(schema or None, model, line, 1))
        return ParsedAssertion(assertion, tuple(refs), tuple(columns))

    expression = parse_expression(check, dialect, path, file_text, check_line, check_col)
    if isinstance(expression, exp.Query):
        raise fail("a check must be a boolean expression, not a query")
    if not isinstance(expression, exp.Condition) or isinstance(expression, exp.Alias):
        raise fail(f"`{quoted_text(check)}` is not a condition")
    if not _may_be_boolean(expression):
        raise fail(
            f"`{quoted_text(check)}` is a value, not a condition",
            "compare it with something, e.g. `amount > 0`, `row_count() > 0`, `flag IS TRUE`",
        )
    _check_history_calls(expression, check, fail, dialect)
    _check_own_calls(expression, fail)
    aggregates, row_values = _aggregates(expression), _row_values(expression)
    if aggregates and row_values:
        raise fail(
            f"`{quoted_text(check)}` mixes aggregates ({aggregates[0].sql(dialect)}) "
            f"with values of each row ({row_values[0].sql(dialect)})",
            "a check holds for every row (`amount >= 0`) or for the table as a whole "
            "(`sum(amount) >= 0`); aggregate every column, or compare each row to a subquery",
        )
    level = CheckKind.TABLE if is_table_level(expression) else CheckKind.ROW
    if standalone and (level is CheckKind.ROW or aggregates):
        raise fail(
            "a check in tests/ has no model to check row by row or to aggregate",
            "compare subqueries, e.g. (SELECT count(*) FROM a) = (SELECT count(*) FROM b), "
            "or write a query block returning failing rows",
        )
    if tolerate is not None and level is CheckKind.TABLE:
        raise fail(
            f"`tolerate {tolerate}` allows failing rows, but `{quoted_text(check)}` holds for "
            "the table as a whole and has none",
            "remove `tolerate`, or loosen the comparison, e.g. `row_count() >= 90`",
        )
    if where_sql is not None and level is CheckKind.TABLE and not aggregates:
        raise fail(
            "`where` narrows the rows of the model, but this check reads none of them",
            "put the condition inside the subquery, or aggregate the model's rows, "
            "e.g. `count(*) > 0 where status = 'paid'`",
        )
    columns += _own_columns(expression)
    refs += [ref for _, ref in table_refs(expression, check_line - 1, dialect)]
    assertion = make(
        name or display,
        level,
        text=display,
        expression=expression.sql(sqlglot_dialect(dialect)),
        where=where_sql,
        tolerate=tolerate,
    )
    return ParsedAssertion(assertion, tuple(refs), tuple(dict.fromkeys(columns)))


def _positions(
    text: str, body_at: int, file_text: str, line: int
) -> Callable[[int], tuple[int, int | None]]:
    """The file line and column of a character of the check, by its offset from where the check
    starts (`body_at` in `text`, the directive's text, which starts on `line`). The column is
    None where `text` is not the file's (Jinja rendered it, or the check came from elsewhere)."""
    lines = file_text.split("\n")
    first = text.split("\n")[0]
    # the text runs to the end of its first line (or to the `*/` closing a block)
    found = lines[line - 1].rfind(first) if first and 1 <= line <= len(lines) else -1

    def at(offset: int) -> tuple[int, int | None]:
        k = body_at + offset
        newlines = text.count("\n", 0, k)
        if newlines:
            return line + newlines, k - text.rfind("\n", 0, k)
        return line, found + k + 1 if found >= 0 else None

    return at


def _check_own_calls(expression: exp.Expr, fail: Fail) -> None:
    """The four checks stand alone, and a call the database does not know whose name is close to
    one of sqlops's is a typo: both are found now rather than when the query runs."""
    for call in expression.find_all(exp.Anonymous):
        name = call.name.lower()
        if name in BUILTIN_CHECKS:
            raise fail(
                f"{name}() is a check of its own, not part of an expression",
                f"write it alone: -- @assert {name}(...), and the rest as another assertion",
            )
        close = difflib.get_close_matches(name, OWN_FUNCTIONS, n=1, cutoff=0.85)
        if close and name not in OWN_FUNCTIONS:
            raise fail(f"unknown function `{call.name}()` (did you mean `{close[0]}()`?)")


def _check_history_calls(expression: exp.Expr, check: str, fail: Fail, dialect: str) -> None:
    """prev(X) and anomaly(X [, Z]) take a value of the whole table: an aggregate, row_count()
    or a scalar subquery."""
    bare = expression.unnest() if isinstance(expression, exp.Paren) else expression
    if isinstance(bare, exp.Anonymous) and bare.name.lower() == "prev":
        raise fail(
            f"`{quoted_text(check)}` is a value, not a condition",
            "compare it, e.g. `row_count() >= 0.9 * prev(row_count())`",
        )
    for call in expression.find_all(exp.Anonymous):
        name = call.name.lower()
        if name not in HISTORY_FUNCTIONS:
            continue
        usage = "prev(EXPR)" if name == "prev" else "anomaly(EXPR [, Z])"
        args = call.expressions
        if not args or len(args) > (1 if name == "prev" else 2):
            raise fail(f"{name}() takes {usage}", f"e.g. {name}(row_count()), {name}(avg(amount))")
        outer = call.find_ancestor(exp.Anonymous)
        while outer is not None and outer.name.lower() not in HISTORY_FUNCTIONS:
            outer = outer.find_ancestor(exp.Anonymous)
        if outer is not None:
            raise fail(
                f"{name}() inside {outer.name.lower()}() is not supported",
                f"write {usage} around a value of the table, e.g. {name}(row_count())",
            )
        if call.find_ancestor(exp.Query):
            raise fail(f"{name}() cannot be used inside a subquery", f"write {usage} in the check")
        value = args[0]
        if _row_values(value) or not (_aggregates(value) or value.find(exp.Query)):
            raise fail(
                f"{name}() needs a value of the whole table, not `{value.sql(dialect)}`",
                f"aggregate it, e.g. {name}(row_count()), {name}(sum(amount)), {name}(avg(price))",
            )
        if len(args) == 2:
            z = args[1]
            if not (isinstance(z, exp.Literal) and z.is_number and float(z.name) > 0):
                raise fail(
                    f"anomaly()'s second argument is Z, a positive number, not `{z.sql(dialect)}`",
                    "e.g. anomaly(row_count(), 4) allows mean ± 4 standard deviations",
                )


def is_table_level(expression: exp.Expr) -> bool:
    """Aggregates (outside window functions) or row_count() make a check table-level; so does a
    subquery, unless the check also names a value of the row (`amount <= (SELECT max(x) FROM y)`
    and `id IN (SELECT ...)` hold for every row)."""
    if _aggregates(expression):
        return True
    if _row_values(expression):
        return False
    return expression.find(exp.Query) is not None


def is_aggregate(node: exp.Expr) -> bool:
    """An aggregate over the model's rows, or row_count(): not windowed, not inside a subquery.

    `count(*) FILTER (WHERE ...)` is one aggregate: the FILTER node, not the count inside it.
    """
    if isinstance(node, exp.Filter):
        if not isinstance(node.this, exp.AggFunc):
            return False
    elif isinstance(node, exp.AggFunc):
        if isinstance(node.parent, exp.Filter):
            return False
    elif not (isinstance(node, exp.Anonymous) and node.name.lower() == ROW_COUNT):
        return False
    return not node.find_ancestor(exp.Window) and not node.find_ancestor(exp.Query)


def _aggregates(expression: exp.Expr) -> list[exp.Expr]:
    return [node for node in expression.walk() if is_aggregate(node)]


def _row_values(expression: exp.Expr) -> list[exp.Column]:
    """Columns read from each row: not inside an aggregate or a subquery."""
    return [
        col
        for col in expression.find_all(exp.Column)
        if not col.find_ancestor(exp.Query) and not any(is_aggregate(a) for a in _ancestors(col))
    ]


def _ancestors(node: exp.Expr) -> list[exp.Expr]:
    found = []
    parent = node.parent
    while parent is not None:
        found.append(parent)
        parent = parent.parent
    return found


def _may_be_boolean(expression: exp.Expr) -> bool:
    """False for what is surely not a condition: a bare column, literal, sum or arithmetic.

    Functions may return booleans, so they pass; the database has the last word.
    """
    while isinstance(expression, exp.Paren):
        expression = expression.this
    if isinstance(expression, exp.Predicate | exp.Connector | exp.Not | exp.Boolean):
        return True
    if isinstance(expression, exp.Binary):  # arithmetic, concatenation
        return False
    if isinstance(expression, exp.Anonymous) and expression.name.lower() == ROW_COUNT:
        return False
    return not isinstance(
        expression, exp.Column | exp.Literal | exp.Null | exp.AggFunc | exp.Subquery | exp.Star
    )


def _own_columns(expression: exp.Expr) -> list[str]:
    """Columns of the model under test: those not inside a subquery."""
    # `st.a` on a model is field `a` of struct column `st`: no table is in scope
    return [
        col.parts[0].name
        for col in expression.find_all(exp.Column)
        if not col.find_ancestor(exp.Query) and isinstance(col.this, exp.Identifier)
    ]


def _tolerance(raw: str, fail: Fail) -> Tolerance:
    try:
        if raw.endswith("%"):
            percent = float(raw[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return Tolerance(percent=percent)
        count = int(raw)
        if count < 0:
            raise ValueError
        return Tolerance(count=count)
    except ValueError:
        raise fail(
            f"`tolerate {quoted_text(raw)}` is not a row count or a percentage",
            "write `tolerate 10` (rows) or `tolerate 2.5%` (of the rows checked)",
        ) from None


def _tolerate_start(body: str, dialect: str) -> int | None:
    """Where a trailing `tolerate ...` clause starts: a bare word, outside strings and brackets."""
    found = None
    for token in top_level_tokens(body, dialect) or ():
        word = body[token.start : token.end + 1]
        if token.token_type == TokenType.VAR and word.lower() == "tolerate":
            found = token.start
    return found


def _split_where(body: str, dialect: str) -> tuple[str, str | None]:
    """Split at the first WHERE outside brackets and subqueries."""
    for token in top_level_tokens(body, dialect) or ():
        if token.token_type == TokenType.WHERE:
            return body[: token.start].strip(), body[token.end + 1 :].strip()
    return body, None


def _split_args(inner: str, dialect: str) -> list[str]:
    tokens = top_level_tokens(inner, dialect)
    if tokens is None:
        return [a.strip() for a in inner.split(",") if a.strip()]
    args, start = [], 0
    for token in tokens:
        if token.token_type == TokenType.COMMA:
            args.append(inner[start : token.start].strip())
            start = token.end + 1
    args.append(inner[start:].strip())
    return [a for a in args if a]


def _column_name(arg: str, dialect: str) -> str | None:
    try:
        parsed = sqlglot.parse_one(arg, dialect=sqlglot_dialect(dialect))
    except (SqlglotError, RecursionError):  # nested too deeply is not a column name either
        return None
    if isinstance(parsed, exp.Column) and not parsed.table:
        return parsed.name
    return None


def _builtin(
    kind: CheckKind,
    args: list[str],
    name: str | None,
    display: str,
    where: str | None,
    tolerate: Tolerance | None,
    make: Callable[..., Assertion],
    fail: Fail,
    dialect: str,
) -> Assertion:
    usage = {
        CheckKind.UNIQUE: "unique(col, ...)",
        CheckKind.NOT_NULL: "not_null(col, ...)",
        CheckKind.ACCEPTED_VALUES: "accepted_values(col, 'a', 'b', ...)",
        CheckKind.REFERENCES: "references(col, schema.model.col)",
    }[kind]
    if not args:
        raise fail(f"{kind.value}() needs at least one column", f"write {usage}")
    first = _column_name(args[0], dialect)
    if first is None:
        raise fail(f"`{quoted_text(args[0])}` is not a column name", f"write {usage}")
    columns: list[str] = [first]
    values: tuple[str, ...] = ()
    target = target_column = None
    if kind in (CheckKind.UNIQUE, CheckKind.NOT_NULL):
        for arg in args[1:]:
            col = _column_name(arg, dialect)
            if col is None:
                raise fail(f"`{quoted_text(arg)}` is not a column name", f"write {usage}")
            columns.append(col)
    elif kind is CheckKind.ACCEPTED_VALUES:
        if len(args) < 2:
            raise fail("accepted_values() needs a column and at least one value", f"write {usage}")
        literals = []
        for arg in args[1:]:
            try:
                value = sqlglot.parse_one(arg, dialect=sqlglot_dialect(dialect))
            except (SqlglotError, RecursionError):
                value = None
            if isinstance(value, exp.Null):
                raise fail(
                    "NULL in accepted_values() matches nothing: NULL values pass this check anyway",
                    "leave NULL out; to forbid NULLs add not_null(...)",
                )
            if not isinstance(value, exp.Literal | exp.Boolean | exp.Neg | exp.Cast):
                raise fail(f"`{quoted_text(arg)}` is not a literal value", f"write {usage}")
            literals.append(value.sql(sqlglot_dialect(dialect)))
        values = tuple(literals)
    else:
        if len(args) != 2:
            raise fail("references() takes a column and a target column", f"write {usage}")
        quoted = [p.strip() for p in args[1].split(".")]
        parts = [p.strip('"') if p.startswith('"') else normalize_name(p, dialect) for p in quoted]
        if len(parts) not in (2, 3) or not all(parts):
            raise fail(f"`{quoted_text(args[1])}` is not `schema.model.column`", f"write {usage}")
        target = ".".join(parts[:-1])
        target_column = parts[-1]
    return make(
        name or display,
        kind,
        text=display,
        columns=tuple(columns),
        values=values,
        target=target,
        target_column=target_column,
        where=where,
        tolerate=tolerate,
    )

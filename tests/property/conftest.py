"""Generated input for every kind of file sqlops reads, and the one property they all share.

The property: loading a project with the input either works or raises an SqlopsError that names
the file at fault, says what is wrong, and points inside that file. Anything else (a KeyError, a
RecursionError, an error with no path) is a bug, shrunk by hypothesis to a small reproduction.

`HYPOTHESIS_PROFILE=campaign` runs many more examples than the test suite's `ci` profile, with a
fresh random seed each time (4,000 a property, or `SQLOPS_CAMPAIGN_EXAMPLES`); `ci` is
derandomized, so a test run is reproducible.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, redirect_stderr
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st

from sqlops.errors import SqlopsError
from sqlops.project.directives import KEYWORDS
from sqlops.project.loader import Project, load_project

_SLOW_IS_FINE = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
    HealthCheck.filter_too_much,
]
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_SLOW_IS_FINE,
)
settings.register_profile(
    "campaign",
    max_examples=int(os.environ.get("SQLOPS_CAMPAIGN_EXAMPLES", "4000")),
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_SLOW_IS_FINE,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def fewer(divisor: int) -> settings:
    """The profile's settings with 1/divisor of its examples: for properties that run a build."""
    return settings(max_examples=max(5, settings().max_examples // divisor))


# -- the project every generated file is dropped into -----------------------------------------

SET_VAR, UNSET_VAR = "SQLOPS_FUZZ_SET", "SQLOPS_FUZZ_UNSET"
TOML = """\
[project]
name = "fuzz"
dialect = "duckdb"
default_schema = "main"
default_target = "local"

[targets.local]
engine = "duckdb"
path = "fuzz.duckdb"

[vars]
start_date = "2024-01-01"
"""
BASE: dict[str, str | bytes] = {
    "sqlops.toml": TOML,
    "sources/raw/x.sql": "CREATE TABLE raw.x (id INTEGER, name VARCHAR, amount DECIMAL(10, 2))\n",
    "seeds/ref/codes.csv": "code,label\na,Alpha\nb,Beta\n",
    "models/staging/orders.sql": "-- @assert unique(id)\nSELECT id, name, amount FROM raw.x\n",
    "macros/money.sql": "{% macro double(x) %}({{ x }}) * 2{% endmacro %}\n",
}
MODEL = "models/marts/m.sql"  # where a generated model goes
COLUMNS = ("id", "name", "amount")  # what a model reading raw.x has
VALID_MODEL = "SELECT id, name, amount FROM raw.x\n"


@contextmanager
def project(files: Mapping[str, str | bytes]) -> Iterator[Path]:
    """The base project with `files` added or replaced, in a folder of its own."""
    with tempfile.TemporaryDirectory(prefix="sqlops-fuzz-") as tmp:
        root = Path(tmp) / "proj"
        for relpath, content in {**BASE, **files}.items():
            path = root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_bytes(content.encode("utf-8", "surrogatepass"))
        yield root


def load_or_user_error(
    files: Mapping[str, str | bytes],
    blamed: Collection[str],
    *,
    target: str | None = None,
    then: Callable[[Project], object] | None = None,
) -> Project | None:
    """The property: the project loads, or an SqlopsError names one of `blamed` (paths relative
    to the project) and says what is wrong. `then` runs on a loaded project, under the same rule."""
    with project(files) as root:
        try:
            loaded = load_project(root, target, use_cache=False)
            if then is not None:
                then(loaded)
        except SqlopsError as err:
            check_user_error(err, root, blamed)
            return None
        count("loads")
        return loaded


def check_user_error(err: SqlopsError, root: Path | None, blamed: Collection[str]) -> None:
    """An error a user can act on: a message, the file at fault, a line inside it, and the CLI
    can print it."""
    assert err.message.strip(), f"an error with no message: {err!r}"
    if root is not None:
        assert err.path is not None, f"an error with no path: {err.message}"
        relpath = os.path.relpath(err.path, root)
        assert relpath in blamed, f"blames {relpath}, not one of {sorted(blamed)}: {err}"
        if err.line is not None:
            text = _text_as_loaded(err.path)
            assert 1 <= err.line <= text.count("\n") + 1, f"line {err.line} is past the end: {err}"
            if err.snippet and " | " in err.snippet:
                shown = err.snippet.split("\n")[0].split(" | ", 1)[1]
                assert shown == text.split("\n")[err.line - 1], (
                    f"the snippet shows another line: {err}"
                )
        if err.column is not None:
            assert err.column >= 1, f"column {err.column}: {err}"
    printed = rendered(err)
    assert printed.startswith("error: "), printed
    assert "Traceback" not in printed
    count(f"error: {summary(err.message)}")


def count(outcome: str) -> None:
    """Tally an outcome for --hypothesis-show-statistics (also called from plain tests)."""
    if currently_in_test_context():
        event(outcome)


def _text_as_loaded(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError):
        return ""


def rendered(err: SqlopsError) -> str:
    """The error as the CLI prints it."""
    from sqlops.cli import render

    stream = io.StringIO()
    with redirect_stderr(stream):
        render.error(err)
    return stream.getvalue()


def summary(message: str) -> str:
    """A message with its particulars left out: how `--hypothesis-show-statistics` counts them."""
    message = re.sub(r"`[^`]*`|'[^']*'|\"[^\"]*\"|\(.*", "…", message.split("\n")[0])
    return " ".join(re.sub(r"\d+", "N", message).split()[:7])


# -- text of any kind: what users paste, and what breaks parsers ------------------------------

NASTY = (
    "\x00",
    "'",
    '"',
    "`",
    "(",
    ")",
    "[",
    ";",
    "--",
    "/*",
    "*/",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "$$",
    "@",
    "\\",
    "\r",
    "\x0c",
    "\u2028",
    "\ufeff",
    "é",
    "\U0001d518",
    "\u202e",
    "::",
    "${",
)
nasty = st.sampled_from(NASTY)
# any character but NUL, which would end most examples at the first check (NASTY has it)
NOT_NUL = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
noise = st.one_of(st.text(NOT_NUL, max_size=12), nasty, st.lists(nasty, max_size=4).map("".join))
huge = st.sampled_from(
    [
        "x" * 100_000,
        "'" + "é" * 60_000 + "'",
        "-- " + "y" * 100_000,
        "/* " + "z" * 100_000 + " */",
        "\n" * 20_000,
        "a" * 70_000 + " AS " + "b" * 40_000,
        " ".join(["id"] * 300),
        ", ".join(f"c{i}" for i in range(2_000)),
    ]
)


@st.composite
def mutated(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> str:
    """A text made almost right: cut short, with a span gone, doubled or swapped, or with
    nasty characters, a huge line or deep brackets put in."""
    text = draw(texts)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        to = draw(st.integers(at, min(len(text), at + 40)))
        how = draw(st.sampled_from(("cut", "drop", "double", "swap", "insert", "huge", "nest")))
        if how == "cut":
            text = text[:at]
        elif how == "drop":
            text = text[:at] + text[to:]
        elif how == "double":
            text = text[:to] + text[at:to] + text[to:]
        elif how == "swap":
            words = text.split(" ")
            i, j = draw(st.integers(0, len(words) - 1)), draw(st.integers(0, len(words) - 1))
            words[i], words[j] = words[j], words[i]
            text = " ".join(words)
        elif how == "insert":
            text = text[:at] + draw(noise) + text[at:]
        elif how == "huge":
            text = text[:at] + draw(huge) + text[at:]
        else:
            depth = draw(st.integers(1, 600))
            text = text[:at] + "(" * depth + text[at:to] + ")" * draw(st.sampled_from([depth, 0]))
    return text


# -- SQL: a small grammar of queries over the base project ------------------------------------

identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
literals = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(NOT_NUL, max_size=8).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.sampled_from(["NULL", "TRUE", "FALSE", "DATE '2024-01-01'", "INTERVAL 1 DAY", "'a''b'"]),
)
JINJA = (
    "{{ var('start_date') }}",
    "{{ var('nope') }}",
    "{{ var('nope', 3) }}",
    "{{ env_var('" + SET_VAR + "') }}",
    "{{ env_var('" + UNSET_VAR + "') }}",
    "{{ double(2) }}",
    "{{ double() }}",
    "{{ nope() }}",
    "{{ target.name }}",
    "{{ target.nope }}",
    "{{ this }}",
    "{{ 1 / 0 }}",
    "{{ ''.__class__ }}",
    "{% if target.name == 'local' %}1{% else %}2{% endif %}",
    "{% for i in range(3) %}{{ i }}{% if not loop.last %} + {% endif %}{% endfor %}",
    "{% if %}",
    "{{ ",
    "{% endif %}",
    "{# comment #}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{{ ref('orders') }}",
    "{{ ref('staging', 'orders') }}",
    "{{ source('raw', 'x') }}",
    "{{ is_incremental() }}",
)
jinja = st.sampled_from(JINJA)
FUNCTIONS = ("sum", "count", "min", "max", "avg", "lower", "abs", "coalesce", "length", "nope_fn")
OPERATORS = ("+", "-", "*", "/", "||", "=", "<>", "<", ">=", "AND", "OR", "LIKE", "IS")


def _expressions(columns: Collection[str]) -> st.SearchStrategy[str]:
    leaves = st.one_of(st.sampled_from(sorted(columns)), literals, identifiers, jinja)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(OPERATORS), inner).map(" ".join),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"NOT {e}"),
            st.tuples(st.sampled_from(FUNCTIONS), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(inner, inner, inner).map(
                lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE {t[2]} END"
            ),
            inner.map(lambda e: f"CAST({e} AS INTEGER)"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]} IN ({t[1]})"),
        ),
        max_leaves=8,
    )


# built once: hypothesis spends more time building a strategy than drawing from it
expressions = _expressions(COLUMNS)


TABLES = (
    "raw.x",
    "x",
    "staging.orders",
    "orders",
    "ref.codes",
    "codes",
    "marts.m",
    "nowhere",
    "raw.nope",
    '"raw"."x"',
    "RAW.X",
    "db.raw.x",
    "main.orders",
    "read_csv('data/x.csv')",
    "{{ ref('orders') }}",
)


@st.composite
def selects(draw: st.DrawFn, depth: int = 2) -> str:
    items = draw(
        st.lists(
            st.one_of(
                st.sampled_from(["*", "id", "x.id", "amount", "name"]),
                st.tuples(expressions, identifiers).map(lambda t: f"{t[0]} AS {t[1]}"),
            ),
            min_size=1,
            max_size=4,
        )
    )
    source = draw(
        st.sampled_from(TABLES)
        | (queries(depth - 1).map(lambda q: f"({q}) AS s") if depth > 0 else st.nothing())
    )
    text = f"SELECT {draw(st.sampled_from(['', 'DISTINCT ']))}{', '.join(items)} FROM {source}"
    if draw(st.booleans()):
        text += f" JOIN {draw(st.sampled_from(TABLES))} AS j USING (id)"
    if draw(st.booleans()):
        text += f"\nWHERE {draw(expressions)}"
    text += draw(
        st.sampled_from(["", "\nGROUP BY ALL", "\nGROUP BY 1", "\nORDER BY 1", " LIMIT 5"])
    )
    return text


@cache
def queries(depth: int = 2) -> st.SearchStrategy[str]:
    plain = selects(depth)
    return st.one_of(
        plain,
        st.tuples(identifiers, plain, plain).map(
            lambda t: f"WITH {t[0]} AS (\n  {t[1]}\n)\n{t[2]}"
        ),
        st.tuples(plain, st.sampled_from(["UNION ALL", "UNION", "EXCEPT"]), plain).map("\n".join),
    )


DEEP_SHAPES = ("parentheses", "cases", "functions", "subqueries", "in_subqueries", "ctes", "unions")


@st.composite
def nested_queries(draw: st.DrawFn) -> str:
    """Brackets, subqueries, CTE chains and unions, as deep as lineage can follow (see
    test_fuzz_models.py for deeper ones)."""
    return deep_query(draw(st.sampled_from(DEEP_SHAPES)), draw(st.integers(1, 100)))


def deep_query(shape: str, depth: int) -> str:
    """A model `depth` levels deep."""
    if shape == "parentheses":
        return "SELECT " + "(" * depth + "id" + ")" * depth + " AS a FROM raw.x"
    if shape == "cases":
        return (
            "SELECT " + "CASE WHEN id > 0 THEN " * depth + "1" + " END" * depth + " AS a FROM raw.x"
        )
    if shape == "functions":
        return "SELECT " + "abs(" * depth + "id" + ")" * depth + " AS a FROM raw.x"
    if shape == "subqueries":
        return "SELECT * FROM " + "(SELECT * FROM " * depth + "raw.x" + ") AS s" * depth
    if shape == "in_subqueries":
        inner = "(SELECT id FROM raw.x WHERE id IN " * depth + "(1)" + ")" * depth
        return f"SELECT id FROM raw.x WHERE id IN {inner}"
    if shape == "ctes":
        ctes = [f"c{i} AS (SELECT id FROM {f'c{i - 1}' if i else 'raw.x'})" for i in range(depth)]
        return f"WITH {', '.join(ctes)} SELECT id FROM c{depth - 1}"
    if shape == "unions":
        return " UNION ALL ".join(["SELECT id FROM raw.x"] * depth)
    raise ValueError(shape)


# -- directives and the assertion language -----------------------------------------------------

CHECKED_COLUMNS = (*COLUMNS, "nope", "ID", '"id"', "x.id", "id.x")
check_expressions = _expressions(CHECKED_COLUMNS)
columns_or_worse = st.one_of(st.sampled_from(CHECKED_COLUMNS), literals, identifiers, noise)


@st.composite
def builtin_checks(draw: st.DrawFn) -> str:
    function = draw(
        st.sampled_from(
            ["unique", "not_null", "accepted_values", "references", "UNIQUE", "Not_Null", "uniq"]
        )
    )
    args = draw(st.lists(columns_or_worse, max_size=4))
    if function.lower() == "references" and draw(st.booleans()):
        target = draw(
            st.sampled_from(
                ["raw.x.id", "staging.orders.id", "orders.id", "raw.x", "a.b.c.d", "raw..id"]
            )
        )
        args = [draw(st.sampled_from(CHECKED_COLUMNS)), target]
    return f"{function}({', '.join(args)})"


TABLE_CHECKS = (
    "row_count() > 0",
    "row_count()",
    "sum(amount) >= 0",
    "count(*) FILTER (WHERE id > 0) > 1",
    "row_count() >= 0.9 * prev(row_count())",
    "prev(row_count())",
    "prev(id) > 0",
    "prev() > 0",
    "prev(prev(row_count())) > 0",
    "anomaly(avg(amount))",
    "anomaly(avg(amount), 4)",
    "anomaly(row_count(), -1)",
    "anomaly(row_count(), 'x')",
    "(SELECT count(*) FROM raw.x) = row_count()",
    "sum(amount) = (SELECT sum(amount) FROM staging.orders)",
    "id <= (SELECT max(id) FROM raw.nope)",
    "id IN (SELECT id FROM orders)",
    "sum(amount) > 0 AND id > 0",
    "max(id) OVER () > 0",
    "(SELECT prev(row_count()) FROM raw.x) > 0",
    "id::INTEGER >= 0",
    "amount >= 0 where",
    "where id > 0",
)


@st.composite
def assertion_texts(draw: st.DrawFn) -> str:
    """`[name:] CHECK [where COND] [tolerate N | P%]`, right or wrong in any part."""
    check = draw(
        st.one_of(
            builtin_checks(),
            st.sampled_from(TABLE_CHECKS),
            st.tuples(check_expressions, st.sampled_from(["=", ">=", "<>", "IS NOT"])).map(
                lambda t: f"{t[0]} {t[1]} 0"
            ),
            check_expressions,
            noise,
        )
    )
    text = check
    if draw(st.booleans()):
        name = draw(st.one_of(identifiers, st.sampled_from(["", "1x", "a b", "::"]), noise))
        text = f"{name}: {text}"
    if draw(st.booleans()):
        text += f" where {draw(st.one_of(check_expressions, st.just('')))}"
    if draw(st.booleans()):
        amount = draw(
            st.one_of(
                st.integers(-5, 10**12).map(str),
                st.floats(-10, 200).map(lambda f: f"{f}%"),
                st.sampled_from(["", "lots", "5 %", "10 rows", "1e3", "nan%", "inf"]),
            )
        )
        text += f" tolerate {amount}"
    return text


query_assertions = st.tuples(
    st.one_of(identifiers, st.just("")),
    st.one_of(queries(1), st.just("SELECT * FROM {{ this }} WHERE id < 0"), noise),
).map(lambda t: f"/* @assert {t[0]}: {t[1]}\n*/")

MATERIALIZATIONS = ("view", "table", "ephemeral", "incremental", "VIEW", "tabel", "", "view table")
KEYWORD_LIKE = (*KEYWORDS, "materialised", "Assert", "DESCRIPTION", "tag", "config", "ref", "x")
_DIRECTIVE_TEXTS: dict[str, st.SearchStrategy[str]] = {
    "assert": assertion_texts(),
    "warn": assertion_texts(),
    "materialized": st.sampled_from(MATERIALIZATIONS),
    "tags": st.lists(st.one_of(identifiers, noise), max_size=4).map(", ".join),
    "owner": st.sampled_from(["a@example.com", "", "team"]),
    "location": st.sampled_from(["data/x.csv", "data/none.csv", "../etc/passwd", ""]),
}


VALID_DIRECTIVES = (
    "-- @description One row per order.",
    "-- @materialized view",
    "-- @materialized ephemeral",
    "-- @tags finance, daily",
    "-- @owner data@example.com",
    "-- @assert unique(id)",
    "-- @assert not_null(id, name)",
    "-- @assert amount >= 0 where name <> 'x' tolerate 1%",
    "-- @warn row_count() >= 0.9 * prev(row_count())",
    "/* @assert no_negative:\nSELECT * FROM {{ this }} WHERE amount < 0\n*/",
)
valid_directives = st.sampled_from(VALID_DIRECTIVES)


@st.composite
def directive_lines(draw: st.DrawFn) -> str:
    """One directive in any of its forms, with a keyword and text right or wrong."""
    keyword = draw(st.one_of(st.sampled_from(KEYWORD_LIKE), identifiers, noise))
    text = draw(
        st.one_of(_DIRECTIVE_TEXTS.get(keyword.lower(), st.text(NOT_NUL, max_size=30)), noise)
    )
    form = draw(
        st.sampled_from(
            (
                "-- @{k} {t}",
                "--@{k}{t}",
                "/* @{k} {t} */",
                "/* @{k}\n{t}\n*/",
                "-- @ {k} {t}",
                "-- @{k}: {t}",
                "-- @{k}::{t}",
                "-- @@{k} {t}",
                "/* @{k} {t}",
            )
        )
    )
    return form.replace("{k}", keyword).replace("{t}", text)


# -- sqlops.toml -------------------------------------------------------------------------------

VALID_SETTINGS: dict[str, dict[str, Any]] = {
    "project": {
        "name": "fuzz",
        "dialect": "duckdb",
        "default_schema": "main",
        "default_target": "local",
    },
    "targets": {"local": {"engine": "duckdb", "path": "fuzz.duckdb"}},
    "vars": {"start_date": "2024-01-01"},
}
SETTING_KEYS = {
    "project": ("name", "dialect", "default_schema", "default_target", "nmae"),
    "vars": ("start_date", "n"),
    "monitor": ("source_volume", "source_freshness", "source_volumes"),
    "notify": ("webhooks", "events", "environments", "timeout", "email", "hooks"),
    "targets.local": ("engine", "path", "threads", "dsn", "master", "remote", "state", "pth"),
}
TOML_STRINGS = (
    "duckdb",
    "postgres",
    "spark",
    "sqlite",
    "tsql",
    "",
    ":memory:",
    "x.duckdb",
    "sqlops__x.duckdb",
    "raw.duckdb",
    "local",
    "prod",
    "local[2]",
    "sc://h:15002",
    "warn",
    "error",
    "off",
    "failure",
    "https://example.com/hook",
    "not a url",
    "${" + SET_VAR + "}",
    "${" + UNSET_VAR + "}",
    "${" + UNSET_VAR + ":-fallback}",
    "${",
    "${1X}",
    "$${X}",
    "${" + UNSET_VAR + ":-${" + SET_VAR + "}}",
    "main",
    "ref",
    "memory",
    "a__b",
)
scalars = st.one_of(
    st.sampled_from(TOML_STRINGS),
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.just("v" * 100_000),
)
toml_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(("smtp_host", "from", "to", "a")), scalars, max_size=3),
)


@st.composite
def settings_tables(draw: st.DrawFn) -> dict[str, Any]:
    """The valid settings with a few edits: a value of the wrong type or range, a key renamed
    or removed, a section added."""
    data = json.loads(json.dumps(VALID_SETTINGS))
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from([*SETTING_KEYS, "targets.other", "var", "Project"]))
        table = data
        for part in section.split("."):
            if not isinstance(table.get(part), dict):
                table[part] = {}
            table = table[part]
        key = draw(st.sampled_from(SETTING_KEYS.get(section, ("engine", "a"))) | identifiers)
        if draw(st.integers(0, 4)) == 0:
            table.pop(key, None)
        else:
            table[key] = draw(toml_values)
    if draw(st.integers(0, 6)) == 0:  # a section that is not a table
        data[draw(st.sampled_from(["project", "targets", "vars", "monitor", "notify"]))] = draw(
            scalars
        )
    return data


def toml_text(data: Mapping[str, Any]) -> str:
    """TOML for a dict: plain values first, then tables, then tables of tables."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if not isinstance(table, dict):
            continue
        lines.append(f"[{_key(name)}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for sub, inner in table.items():
            if isinstance(inner, dict):
                lines.append(f"[{_key(name)}.{_key(sub)}]")
                lines += [f"{_key(k)} = {_value(v)}" for k, v in inner.items()]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)


def _string(text: str) -> str:
    # TOML's basic strings take JSON's escapes, but not a raw DEL
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return _string(str(value))


settings_files = st.one_of(
    settings_tables().map(toml_text),
    mutated(settings_tables().map(toml_text)),
    st.text(max_size=200),
)


def encoded(texts: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Text as bytes, sometimes with a byte-order mark, bytes that are not UTF-8, or a NUL."""
    return st.tuples(texts, _spoilers).map(lambda t: _spoil(t[0].encode("utf-8"), *t[1]))


_spoilers = st.tuples(
    st.floats(0, 1),
    st.sampled_from([b"", b"", b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x00", b"\xed\xa0\x80"]),
    st.booleans(),
)


def _spoil(raw: bytes, where: float, extra: bytes, bom: bool) -> bytes:
    at = int(len(raw) * where)
    return (b"\xef\xbb\xbf" if bom else b"") + raw[:at] + extra + raw[at:]


# -- CSV seeds ---------------------------------------------------------------------------------

header_names = st.one_of(
    st.sampled_from(["id", "code", "label", "amount", "", " ", "id", "ID", "select", "a b"]),
    st.sampled_from(
        ['"quoted, name"', '"unclosed', "é", "\U0001d518nicode", "1st", "a.b", "x" * 5_000]
    ),
    identifiers,
    st.text(max_size=8),
)


@st.composite
def csv_seeds(draw: st.DrawFn) -> bytes:
    """A seed: a header, ragged rows, any line ending; then perhaps not UTF-8, or with a NUL."""
    delimiter = draw(st.sampled_from([",", ",", ";", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    header = delimiter.join(draw(st.lists(header_names, max_size=5)))
    width = header.count(delimiter) + 1
    rows = draw(
        st.lists(
            st.lists(
                st.one_of(literals, st.text(max_size=6), nasty), min_size=0, max_size=width + 1
            ),
            max_size=6,
        )
    )
    text = newline.join([header, *(delimiter.join(r) for r in rows)])
    if draw(st.integers(0, 9)) == 0:
        text += newline + "," * 50_000
    return _spoil(text.encode("utf-8"), *draw(_spoilers))

"""Hand-written broken projects, each with the exact first line `sqlops` prints for it.

Exact strings make the messages a contract: rewording one is a change users see, so it shows up
here for review. Each case is a small project (a dict of files over BASE), the command, and the
first line of stderr; the exit code is always 2 and nothing goes to stdout. tests/e2e/
test_errors.py checks the rest of a message (snippet, hint) for other cases.
"""

from __future__ import annotations

import csv
import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from sqlops.cli.app import main
from tests.conftest import run_sqlops

Files = dict[str, str | bytes]
TOML = '[project]\nname = "proj"\n\n[targets.local]\nengine = "duckdb"\npath = "proj.duckdb"\n'
BASE: Files = {
    "sqlops.toml": TOML,
    "sources/raw/orders.sql": "CREATE TABLE raw.orders "
    "(order_id INTEGER, customer_id INTEGER, amount DECIMAL(10, 2))\n",
    "models/staging/orders.sql": "SELECT order_id, customer_id, amount FROM raw.orders\n",
}
MODEL = "models/marts/x.sql"
READS = "SELECT order_id FROM staging.orders\n"
UNSET = "SQLOPS_CORPUS_UNSET"  # never set: the cases that read it say so

CASES: dict[str, tuple[Files, tuple[str, ...], str]] = {
    # -- sqlops.toml
    "toml: a table header never closed": (
        {"sqlops.toml": '[project\nname = "x"\n'},
        ("ls",),
        "error: sqlops.toml:1:9: is not valid TOML: Expected ']' at the end of a table declaration",
    ),
    "toml: a key given twice": (
        {"sqlops.toml": '[project]\nname = "x"\nname = "y"\n'},
        ("ls",),
        "error: sqlops.toml:3:11: is not valid TOML: Cannot overwrite a value",
    ),
    "toml: not UTF-8": (
        {"sqlops.toml": b'[project]\nname = "caf\xe9"\n'},
        ("ls",),
        "error: sqlops.toml: is not valid UTF-8 text",
    ),
    "setting: unknown, close to a known one": (
        {"sqlops.toml": '[project]\nnmae = "x"\n'},
        ("ls",),
        "error: sqlops.toml:2: unknown setting `nmae` in [project] (did you mean `name`?)",
    ),
    "setting: a number where a string goes": (
        {"sqlops.toml": "[project]\nname = 5\n"},
        ("ls",),
        "error: sqlops.toml:2: [project] name must be a non-empty string",
    ),
    "setting: threads as a string": (
        {"sqlops.toml": TOML + 'threads = "4"\n'},
        ("ls",),
        "error: sqlops.toml:7: [targets.local] threads must be a whole number from 1 to 64",
    ),
    "setting: [vars] not a table": (
        {"sqlops.toml": 'vars = 3\n[project]\nname = "x"\n'},
        ("ls",),
        "error: sqlops.toml:1: [vars] must be a table",
    ),
    "setting: a monitor level that does not exist": (
        {"sqlops.toml": TOML + '\n[monitor]\nsource_freshness = "loud"\n'},
        ("ls",),
        'error: sqlops.toml:9: [monitor] source_freshness must be one of warn, error, off, not "loud"',
    ),
    "setting: unknown SQL dialect": (
        {"sqlops.toml": '[project]\nname = "x"\ndialect = "duckbd"\n'},
        ("ls",),
        "error: sqlops.toml:3: unknown SQL dialect `duckbd`",
    ),
    "setting: a ${ that is not a variable": (
        {"sqlops.toml": TOML.replace('"proj.duckdb"', '"${1X}.duckdb"')},
        ("ls",),
        "error: sqlops.toml:6: `${1X}.duckdb` has a `${` that is not a ${VAR} reference",
    ),
    "setting: an environment variable not set": (
        {"sqlops.toml": TOML + '\n[notify]\nwebhooks = ["${SQLOPS_CORPUS_UNSET}"]\n'},
        ("build",),
        "error: sqlops.toml:9: environment variable SQLOPS_CORPUS_UNSET is not set",
    ),
    "target: default_target not defined": (
        {
            "sqlops.toml": '[project]\nname = "x"\ndefault_target = "prod"\n\n[targets.local]\nengine = "duckdb"\n'
        },
        ("ls",),
        "error: sqlops.toml:3: default_target `prod` is not defined",
    ),
    "target: --target names none": (
        {},
        ("ls", "--target", "lcoal"),
        "error: sqlops.toml:4: no target named `lcoal` (did you mean `local`?)",
    ),
    "target: unknown engine": (
        {"sqlops.toml": '[project]\nname = "x"\n\n[targets.local]\nengine = "sqlite"\n'},
        ("ls",),
        "error: sqlops.toml:4: [targets.local] has unknown engine `sqlite`",
    ),
    # -- model files
    "model: two statements": (
        {MODEL: "SELECT 1 AS a;\nDROP TABLE raw.orders\n"},
        ("ls",),
        "error: models/marts/x.sql:2: a model is exactly one SELECT; this file holds 2 statement(s), the second of them DROP",
    ),
    "model: DDL instead of a SELECT": (
        {MODEL: "CREATE TABLE marts.x (a INT)\n"},
        ("ls",),
        "error: models/marts/x.sql:1: a model is exactly one SELECT; this file holds 1 statement(s), the first of them CREATE",
    ),
    "model: only a comment": (
        {MODEL: "-- nothing here yet\n"},
        ("ls",),
        "error: models/marts/x.sql: the model has no SQL",
    ),
    "model: unknown table": (
        {MODEL: "SELECT order_id\nFROM staging.ordres\n"},
        ("ls",),
        "error: models/marts/x.sql:2:6: unknown table `staging.ordres` (did you mean `staging.orders`?)",
    ),
    "model: unknown column upstream": (
        {MODEL: "SELECT order_id,\n       amout\nFROM staging.orders\n"},
        ("ls",),
        "error: models/marts/x.sql:2:12: `amout`: staging.orders has no column `amout` (did you mean `amount`?)",
    ),
    "model: a cycle of two": (
        {
            "models/marts/a.sql": "SELECT * FROM marts.b\n",
            "models/marts/b.sql": "SELECT * FROM marts.a\n",
        },
        ("ls",),
        "error: models/marts/a.sql:1: the models form a cycle (each reads the next): marts.a -> marts.b -> marts.a",
    ),
    "model: a seed with the same relation": (
        {"seeds/staging/orders.csv": "order_id\n1\n"},
        ("ls",),
        "error: seeds/staging/orders.csv: seed `staging.orders` is also defined by models/staging/orders.sql",
    ),
    "model: a name three relations have": (
        {"seeds/ref/orders.csv": "order_id\n1\n", MODEL: "SELECT * FROM orders\n"},
        ("ls",),
        "error: models/marts/x.sql:1:15: `orders` is ambiguous: it could be raw.orders, ref.orders, staging.orders",
    ),
    "model: a database-qualified name": (
        {MODEL: "SELECT * FROM db.raw.orders\n"},
        ("ls",),
        "error: models/marts/x.sql:1:18: `db.raw.orders` names a database; sqlops builds in the target's one database",
    ),
    "model: a block comment never closed": (
        {MODEL: "SELECT order_id /* the key\nFROM staging.orders\n"},
        ("ls",),
        "error: models/marts/x.sql:1:17: block comment is never closed",
    ),
    "model: a string never closed": (
        {MODEL: "SELECT 'abc AS a\n"},
        ("ls",),
        "error: models/marts/x.sql:1: SQL syntax error: Error tokenizing 'SELECT 'abc AS a'",
    ),
    "model: a query cut off after FROM (": (
        {MODEL: "SELECT 1 AS a FROM (\n"},
        ("ls",),
        "error: models/marts/x.sql:1:20: SQL syntax error: Expected table name but the statement ends there",
    ),
    "model: a parse error sqlglot places past the last line": (
        {MODEL: "$\n0{"},
        ("ls",),
        "error: models/marts/x.sql:2:2: SQL syntax error: Expected }",
    ),
    "model: a parse error sqlglot places past the last line, a newline after it": (
        {MODEL: "$\n0{\n\n"},
        ("ls",),
        "error: models/marts/x.sql:2:2: SQL syntax error: Expected }",
    ),
    "model: a set operation with a value": (
        {MODEL: READS + "WHERE order_id IN (1 EXCEPT SELECT 2)\n"},
        ("ls",),
        "error: models/marts/x.sql:2:20: SQL syntax error: EXCEPT joins two queries, and `1` is not a query",
    ),
    "model: a NUL byte": (
        {MODEL: "SELECT 1 AS a,\n  2\x00 AS b\n"},
        ("ls",),
        "error: models/marts/x.sql:2:4: the file has a NUL byte, which SQL text never has",
    ),
    "model: saved as UTF-16 without a BOM": (
        {MODEL: "SELECT 1 AS a\n".encode("utf-16-le")},
        ("ls",),
        "error: models/marts/x.sql:1:2: the file has a NUL byte, which SQL text never has",
    ),
    "model: saved as UTF-16 with a BOM": (
        {MODEL: "SELECT 1 AS a\n".encode("utf-16")},
        ("ls",),
        "error: models/marts/x.sql: is not UTF-8 text (byte 0)",
    ),
    "model: saved as Latin-1": (
        {MODEL: "SELECT 'caf\xe9' AS a\n".encode("latin-1")},
        ("ls",),
        "error: models/marts/x.sql: is not UTF-8 text (byte 11)",
    ),
    "model: a dot in the file name": (
        {"models/marts/x.v2.sql": "SELECT 1 AS a\n"},
        ("ls",),
        "error: models/marts/x.v2.sql: `x.v2.sql`: a dot in a file name would make `marts.x.v2` look like a longer name",
    ),
    "model: a schema named like the database file": (
        {"models/proj/x.sql": "SELECT 1 AS a\n"},
        ("ls",),
        "error: models/proj/x.sql: schema `proj` has the name of a database of target `local`, and the database cannot tell the two apart",
    ),
    "model: a schema sqlops keeps for itself": (
        {"models/sqlops_meta/x.sql": "SELECT 1 AS a\n"},
        ("ls",),
        "error: models/sqlops_meta/x.sql: schema `sqlops_meta` is reserved: sqlops names its own schemas with `__` (environments `<schema>__<env>`, the sandbox `sqlops__<schema>`) and keeps its state in `sqlops_meta`",
    ),
    # -- directives
    "directive: misspelt": (
        {MODEL: READS + "-- @asert unique(order_id)\n"},
        ("ls",),
        "error: models/marts/x.sql:2:1: unknown directive @asert (did you mean `assert`?)",
    ),
    "directive: incremental": (
        {MODEL: "-- @materialized incremental\n" + READS},
        ("ls",),
        "error: models/marts/x.sql:1:1: @materialized incremental is not supported yet",
    ),
    "directive: given twice": (
        {MODEL: "-- @materialized view\n-- @materialized table\n" + READS},
        ("ls",),
        "error: models/marts/x.sql:2:1: @materialized is given twice",
    ),
    "directive: @location in a model": (
        {MODEL: "-- @location data/x.csv\n" + READS},
        ("ls",),
        "error: models/marts/x.sql:1:1: only sources have @location",
    ),
    "directive: @location with no path": (
        {"sources/raw/customers.sql": "-- @location\nCREATE TABLE raw.customers (id INTEGER)\n"},
        ("ls",),
        "error: sources/raw/customers.sql:1:1: @location needs a file path",
    ),
    "directive: @tags in a test file": (
        {"tests/t.sql": "-- @tags x\nSELECT 1 AS a WHERE FALSE\n"},
        ("ls",),
        "error: tests/t.sql:1:1: @tags has no meaning in a test file",
    ),
    # -- assertions
    "assertion: a misspelt check": (
        {MODEL: READS + "-- @assert uniqe(order_id)\n"},
        ("ls",),
        "error: models/marts/x.sql:2: unknown function `uniqe()` (did you mean `unique()`?)",
    ),
    "assertion: a misspelt function": (
        {MODEL: READS + "-- @assert rowcount() > 0\n"},
        ("ls",),
        "error: models/marts/x.sql:2: unknown function `rowcount()` (did you mean `row_count()`?)",
    ),
    "assertion: a check inside an expression": (
        {MODEL: READS + "-- @assert not_null(order_id) OR order_id > 0\n"},
        ("ls",),
        "error: models/marts/x.sql:2: not_null() is a check of its own, not part of an expression",
    ),
    "assertion: unknown column": (
        {MODEL: "SELECT order_id, amount FROM staging.orders\n-- @assert not_null(amout)\n"},
        ("ls",),
        "error: models/marts/x.sql:2: unknown column `amout` in assertion on marts.x (did you mean `amount`?)",
    ),
    "assertion: references an unknown column": (
        {MODEL: READS + "-- @assert references(order_id, staging.orders.id)\n"},
        ("ls",),
        "error: models/marts/x.sql:2: unknown column `id` in assertion on staging.orders",
    ),
    "assertion: references without a schema": (
        {MODEL: READS + "-- @assert references(order_id, orders)\n"},
        ("ls",),
        "error: models/marts/x.sql:2: `orders` is not `schema.model.column`",
    ),
    "assertion: accepted_values with no value": (
        {MODEL: READS + "-- @assert accepted_values(order_id)\n"},
        ("ls",),
        "error: models/marts/x.sql:2: accepted_values() needs a column and at least one value",
    ),
    "assertion: tolerate on a table-level check": (
        {MODEL: READS + "-- @assert row_count() > 0 tolerate 5\n"},
        ("ls",),
        "error: models/marts/x.sql:2: `tolerate 5` allows failing rows, but `row_count() > 0` holds for the table as a whole and has none",
    ),
    "assertion: a query with no name": (
        {MODEL: READS + "/* @assert SELECT * FROM {{ this }} WHERE order_id < 0 */\n"},
        ("ls",),
        "error: models/marts/x.sql:2: a query assertion needs a name",
    ),
    "assertion: a syntax error": (
        {MODEL: READS + "-- @assert order_id > (\n"},
        ("ls",),
        "error: models/marts/x.sql:2:23: SQL syntax error: Required keyword: 'this' missing for Paren",
    ),
    "assertion: a query after where": (
        {MODEL: READS + "-- @assert order_id > 0 where SELECT 1\n"},
        ("ls",),
        "error: models/marts/x.sql:2: `where` needs a condition, not a query",
    ),
    "assertion: anomaly with Z = 0": (
        {MODEL: READS + "-- @warn anomaly(row_count(), 0)\n"},
        ("ls",),
        "error: models/marts/x.sql:2: anomaly()'s second argument is Z, a positive number, not `0`",
    ),
    "assertion: a model's check in tests/": (
        {"tests/t.sql": "-- @assert not_null(order_id)\n"},
        ("ls",),
        "error: tests/t.sql:1: not_null() checks a model's rows, and a file in tests/ has no model",
    ),
    "assertion: a test file with none": (
        {"tests/t.sql": "-- checks go here\n"},
        ("ls",),
        "error: tests/t.sql: the test file has no assertions",
    ),
    # -- seeds
    "seed: a header with an empty name": (
        {"seeds/ref/codes.csv": "code,,label\na,b,c\n"},
        ("ls",),
        "error: seeds/ref/codes.csv:1: the seed's first line must name every column",
    ),
    "seed: a column named twice": (
        {"seeds/ref/codes.csv": "code,label,Code\na,b,c\n"},
        ("ls",),
        "error: seeds/ref/codes.csv:1: column `Code` appears twice in the header",
    ),
    "seed: not UTF-8": (
        {"seeds/ref/codes.csv": b"code,label\na,caf\xe9\n"},
        ("ls",),
        "error: seeds/ref/codes.csv:1: cannot read the seed as CSV: 'utf-8' codec can't decode byte 0xe9 in position 16: invalid continuation byte",
    ),
    "seed: an empty file": (
        {"seeds/ref/codes.csv": b""},
        ("ls",),
        "error: seeds/ref/codes.csv:1: the seed's first line must name every column",
    ),
    # -- Jinja
    "jinja: an error while rendering": (
        {MODEL: "SELECT order_id,\n  {{ 1 / 0 }} AS a\nFROM staging.orders\n"},
        ("ls",),
        "error: models/marts/x.sql:2: Jinja: ZeroDivisionError: division by zero",
    ),
    "jinja: an undefined variable": (
        {MODEL: READS + "WHERE amount > {{ min_amount }}\n"},
        ("ls",),
        "error: models/marts/x.sql:2: Jinja: 'min_amount' is undefined",
    ),
    "jinja: env_var() not set": (
        {MODEL: READS + "WHERE amount > {{ env_var('SQLOPS_CORPUS_UNSET') }}\n"},
        ("ls",),
        "error: models/marts/x.sql:2: env_var('SQLOPS_CORPUS_UNSET') is not set",
    ),
    "jinja: a syntax error in a macro": (
        {"macros/m.sql": "{% macro cents(x) %}\n{{ x / 100 }\n{% endmacro %}\n"},
        ("ls",),
        "error: macros/m.sql:2: unexpected '}'",
    ),
    "jinja: what the sandbox refuses": (
        {MODEL: "SELECT {{ ''.__class__.__mro__ }} AS a\n"},
        ("ls",),
        "error: models/marts/x.sql:1: Jinja sandbox refused: access to attribute '__class__' of 'str' object is unsafe.",
    ),
    # -- sources
    "source: no CREATE TABLE": (
        {"sources/raw/customers.sql": "SELECT 1 AS id\n"},
        ("ls",),
        "error: sources/raw/customers.sql: a source declares its table with one CREATE TABLE statement",
    ),
    "source: a name other than its path": (
        {"sources/raw/customers.sql": "CREATE TABLE raw.customer (id INTEGER)\n"},
        ("ls",),
        "error: sources/raw/customers.sql: declares `raw.customer` but its path makes it `raw.customers`",
    ),
    # -- selectors
    "selector: matches nothing": (
        {},
        ("ls", "marts.orders"),
        "error: selector `marts.orders` matches nothing (did you mean `raw.orders`?)",
    ),
    "selector: compile names nothing": (
        {},
        ("compile", "staging.ordrs"),
        "error: selector `staging.ordrs` matches nothing (did you mean `staging.orders`?)",
    ),
    "selector: an empty tag": ({}, ("ls", "tag:"), "error: selector `tag:` names no tag"),
    "selector: changed without an environment": (
        {},
        ("compile", "changed"),
        "error: the `changed` selector needs the environment to compare with",
    ),
}


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def write(root: Path, files: Files) -> Path:
    for relpath, content in {**BASE, **files}.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def sqlops(root: Path, command: tuple[str, ...]) -> Run:
    """`sqlops COMMAND` run in `root` by the command's own entry point, in this process."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    cwd = Path.cwd()
    os.chdir(root)  # paths in messages are relative to where sqlops runs
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main(list(command))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(cwd)
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def no_corpus_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_project_prints_its_exact_error(tmp_path: Path, case: str) -> None:
    files, command, expected = CASES[case]
    run = sqlops(write(tmp_path / "proj", files), command)
    assert run.stderr.split("\n")[0] == expected, run.stderr
    assert run.code == 2
    assert run.stdout == ""
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "case", ["toml: a key given twice", "model: unknown table", "assertion: a syntax error"]
)
def test_the_installed_command_prints_the_same(tmp_path: Path, case: str) -> None:
    files, command, expected = CASES[case]
    run = run_sqlops(list(command), write(tmp_path / "proj", files))
    assert run.stderr.split("\n")[0] == expected, run.stderr
    assert run.code == 2


# -- once bugs, each a strict xfail until it was fixed ---------------------------------------------


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(
            {"seeds/ref/codes.csv": "code;label\na;b\n", MODEL: "SELECT * FROM ref.codes\n"},
            id="a semicolon-separated seed read by a model",
        ),
        pytest.param(
            {
                "sources/raw/customers.sql": 'CREATE TABLE raw.customers ("a;b" INTEGER)\n',
                MODEL: "SELECT * FROM raw.customers\n",
            },
            id="a quoted source column with a semicolon",
        ),
    ],
)
def test_column_names_with_a_semicolon_load(tmp_path: Path, files: Files) -> None:
    run = sqlops(write(tmp_path / "proj", files), ("ls",))
    assert "internal error" not in run.stderr, run.stderr
    assert run.code == 0, run.stderr


def built_columns(root: Path, relation: str) -> list[str]:
    con = duckdb.connect(str(root / "proj.duckdb"), read_only=True)
    try:
        return [d[0] for d in con.execute(f"SELECT * FROM {relation}").description]
    finally:
        con.close()


def seed_and_readers(header: str) -> Files:
    width = len(next(csv.reader([header])))
    return {
        "seeds/ref/codes.csv": f"{header}\n{','.join(['1'] * width)}\n",
        MODEL: "SELECT * FROM ref.codes\n",
        "models/marts/y.sql": "SELECT c.* FROM ref.codes AS c\n",
    }


@pytest.mark.parametrize(
    "header",
    ["id,a;b", "id,?", "id,:a", "id,a--b", "id,a/*b,a'b,é", 'id,"a""b",x y,SELECT'],
)
def test_column_names_that_sql_reads_otherwise_build(tmp_path: Path, header: str) -> None:
    root = write(tmp_path / "proj", seed_and_readers(header))
    run = sqlops(root, ("build", "+marts.x", "+marts.y"))
    assert run.code == 0, run.stderr
    names = [n.strip() for n in next(csv.reader([header]))]
    for relation in ("ref.codes", "marts.x", "marts.y"):
        assert built_columns(root, relation) == names, relation


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param("id;name;amount\n1;2;3\n", id="semicolons in header and rows"),
        pytest.param("id,'x'\n1,2\n", id="single quotes around a name"),
    ],
)
def test_a_seed_builds_with_the_columns_its_header_names(tmp_path: Path, seed: str) -> None:
    root = write(tmp_path / "proj", {"seeds/ref/codes.csv": seed})
    run = sqlops(root, ("build", "ref.codes"))
    assert run.code == 0, run.stderr
    header = seed.split("\n")[0]
    assert built_columns(root, "ref.codes") == next(csv.reader([header]))


def test_a_dot_in_a_schema_folder_is_an_error(tmp_path: Path) -> None:
    run = sqlops(write(tmp_path / "proj", {"models/a.b/x.sql": "SELECT 1 AS a\n"}), ("ls",))
    assert run.code == 2, run.stdout
    assert run.stderr.startswith(
        "error: models/a.b/x.sql: `models/a.b`: a dot in a schema folder would make `a.b.x` name "
        "a table of database `a`"
    ), run.stderr
    assert "to fix this: use letters, digits and _ in folder names" in run.stderr


def test_a_location_path_too_long_for_the_system_is_an_error(tmp_path: Path) -> None:
    source = "-- @location data/" + "x" * 5000 + ".csv\nCREATE TABLE raw.customers (id INTEGER)\n"
    run = sqlops(write(tmp_path / "proj", {"sources/raw/customers.sql": source}), ("ls",))
    assert "internal error" not in run.stderr, run.stderr[:300]
    assert run.stderr.startswith("error: sources/raw/customers.sql:1: @location `data/xxx"), (
        run.stderr[:300]
    )
    assert "cannot be read: File name too long" in run.stderr, run.stderr[:300]
    assert run.code == 2

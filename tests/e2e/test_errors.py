"""Broken projects: one-screen messages with path:line, exit code 2, never a traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Shop

SOURCE = """-- @location data/orders.csv
CREATE TABLE raw.orders (order_id INTEGER, amount INTEGER)
"""
DATA = "order_id,amount\n1,10\n2,20\n"


def base(extra: dict[str, str]) -> dict[str, str]:
    return {"sources/raw/orders.sql": SOURCE, "data/orders.csv": DATA, **extra}


def assert_user_error(result_output: str, code: int, *expected: str) -> None:
    assert code == 2, result_output
    assert "Traceback" not in result_output
    assert len(result_output.splitlines()) <= 25, result_output
    for text in expected:
        assert text in result_output, result_output


CASES = {
    "cycle": (
        {
            "models/a.sql": "SELECT * FROM main.b",
            "models/b.sql": "SELECT * FROM main.c",
            "models/c.sql": "SELECT * FROM main.a",
        },
        ["cycle", "main.a -> main.b -> main.c -> main.a", "models/a.sql", "models/c.sql"],
    ),
    "syntax error": (
        {"models/staging/orders.sql": "SELECT order_id,\n  amount +\nFROM raw.orders WHERE ("},
        ["models/staging/orders.sql:3", "syntax error"],
    ),
    "unknown table": (
        {"models/staging/orders.sql": "SELECT *\nFROM raw.order"},
        ["models/staging/orders.sql:2:6", "unknown table `raw.order`", "did you mean `raw.orders`"],
    ),
    "unknown column in assertion": (
        {
            "models/staging/orders.sql": "SELECT order_id, amount FROM raw.orders\n\n"
            "-- @assert unique(order_id)\n-- @assert amout >= 0\n"
        },
        ["models/staging/orders.sql:4", "unknown column `amout`", "did you mean `amount`"],
    ),
    "bad directive": (
        {"models/staging/orders.sql": "-- @materialised table\nSELECT * FROM raw.orders"},
        ["models/staging/orders.sql:1:1", "unknown directive @materialised"],
    ),
    "bad materialization": (
        {"models/staging/orders.sql": "-- @materialized tabel\nSELECT * FROM raw.orders"},
        ["models/staging/orders.sql:1", "unknown materialization `tabel`", "did you mean `table`"],
    ),
    "jinja error": (
        {"models/staging/orders.sql": "SELECT *\nFROM raw.orders\nWHERE amount > {{ var('min') }}"},
        ["models/staging/orders.sql:3", "var('min') is not defined", "[vars]"],
    ),
    "jinja syntax error": (
        {"models/staging/orders.sql": "SELECT *\nFROM raw.orders {% if %}"},
        ["models/staging/orders.sql:2"],
    ),
    "ambiguous name": (
        {
            "models/staging/orders.sql": "SELECT * FROM raw.orders",
            "models/marts/report.sql": "SELECT * FROM orders",
        },
        ["models/marts/report.sql:1", "ambiguous", "raw.orders", "staging.orders"],
    ),
    "two statements": (
        {"models/staging/orders.sql": "SELECT 1 AS a; SELECT 2 AS b"},
        ["models/staging/orders.sql", "exactly one SELECT"],
    ),
    "bad tolerate": (
        {"models/x.sql": "SELECT 1 AS a\n-- @assert a > 0 tolerate lots"},
        ["models/x.sql:2", "tolerate lots"],
    ),
    "missing location file": (
        {"sources/raw/orders.sql": "-- @location data/nope.csv\nCREATE TABLE raw.orders (a INT)"},
        ["sources/raw/orders.sql:1", "does not exist"],
    ),
    "model reads itself": (
        {"models/staging/orders.sql": "SELECT * FROM staging.orders"},
        ["models/staging/orders.sql:1", "reads itself"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_project_gives_path_line_and_exit_2(
    make_project: Callable[[dict[str, str]], Shop], case: str
) -> None:
    files, expected = CASES[case]
    project = make_project(base(files))
    for command in (["build"], ["ls"]):
        result = project.sqlops(*command)
        assert_user_error(result.output, result.code, *expected)
    assert not project.db.exists() or project.query(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'sqlops_meta'"
    ) == [(0,)]


def test_debug_shows_the_traceback(make_project: Callable[[dict[str, str]], Shop]) -> None:
    project = make_project(base({"models/x.sql": "SELECT * FROM nowhere"}))
    result = project.sqlops("build", "--debug")
    assert result.code == 2
    assert "Traceback" in result.stderr


def test_bad_config(make_project: Callable[[dict[str, str]], Shop]) -> None:
    project = make_project({"sqlops.toml": "[project]\nname = 'x'\ndialect = \n"})
    result = project.sqlops("build")
    assert_user_error(result.output, result.code, "sqlops.toml:3", "not valid TOML")
    project = make_project(
        {
            "sqlops.toml": "[project]\nname = 'x'\n[targets.local]\nengine = 'duckdb'\npath = '${NOPE_DB}'\n"
        }
    )
    result = project.sqlops("ls")
    assert_user_error(result.output, result.code, "sqlops.toml:5", "NOPE_DB is not set")


def test_env_variables_in_config(make_project: Callable[[dict[str, str]], Shop]) -> None:
    project = make_project(
        base(
            {
                "sqlops.toml": "[project]\nname = 'x'\n[targets.local]\nengine = 'duckdb'\n"
                "path = '${SHOP_DB_DIR:-.}/from_env.duckdb'\n",
                "models/x.sql": "SELECT * FROM raw.orders",
            }
        )
    )
    result = project.sqlops("build", env={"SHOP_DB_DIR": "db"})
    assert result.code == 0, result.output
    assert (project.root / "db" / "from_env.duckdb").exists()


def test_unknown_selector_and_env(built_shop: Shop) -> None:
    result = built_shop.sqlops("build", "marts.custmers")
    assert_user_error(result.output, result.code, "matches nothing", "marts.customers")
    result = built_shop.sqlops("build", "--env", "Dev-1")
    assert_user_error(result.output, result.code, "not a valid environment name")
    result = built_shop.sqlops("build", "tag:nope")
    assert_user_error(result.output, result.code, "no node has tag `nope`")


def test_not_a_project(tmp_path: object) -> None:
    from pathlib import Path

    from tests.conftest import run_sqlops

    assert isinstance(tmp_path, Path)
    result = run_sqlops(["build"], tmp_path)
    assert_user_error(result.output, result.code, "no sqlops.toml", "sqlops init")


def test_model_sql_error_at_build_is_reported_with_its_file(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    project = make_project(
        base({"models/x.sql": "SELECT order_id, no_such_function(amount) AS a FROM raw.orders"})
    )
    result = project.sqlops("build")
    assert result.code == 1, result.output
    assert "models/x.sql" in result.stdout
    assert "no_such_function" in result.stdout
    assert "Traceback" not in result.output


MORE_CASES = {
    "reserved schema": (
        {"models/staging__dev/orders.sql": "SELECT 42 AS hijack"},
        ["models/staging__dev/orders.sql", "reserved"],
    ),
    "accepted_values with NULL": (
        {"models/x.sql": "SELECT 1 AS a\n-- @assert accepted_values(a, 1, NULL)"},
        ["models/x.sql:2", "NULL in accepted_values()"],
    ),
    "builtin check in tests": (
        {
            "models/x.sql": "SELECT 1 AS a",
            "tests/t.sql": "-- @assert unique(a)\n",
        },
        ["tests/t.sql:1", "has no model"],
    ),
    "space after @": (
        {"models/x.sql": "SELECT 1 AS a\n-- @ assert a > 0"},
        ["models/x.sql:2", "space after @"],
    ),
    "colon after keyword": (
        {"models/x.sql": "SELECT 1 AS a\n-- @assert: a > 0"},
        ["models/x.sql:2", "followed by a colon"],
    ),
    "duplicate macro": (
        {
            "macros/a.sql": "{% macro double(x) %}{{ x }} * 2{% endmacro %}",
            "macros/b.sql": "\n{% macro double(x) %}{{ x }} + {{ x }}{% endmacro %}",
            "models/x.sql": "SELECT {{ double(1) }} AS a",
        },
        ["macros/b.sql:2", "also defined in a.sql"],
    ),
    "macro replacing a builtin": (
        {
            "macros/a.sql": "{% macro ref(x) %}{{ x }}{% endmacro %}",
            "models/x.sql": "SELECT 1 AS a",
        },
        ["macros/a.sql:1", "replace sqlops's own `ref()`"],
    ),
    "duplicate source column": (
        {"sources/raw/orders.sql": "CREATE TABLE raw.orders (a INT, a INT)"},
        ["sources/raw/orders.sql", "declared twice"],
    ),
    "value instead of a condition": (
        {"models/x.sql": "SELECT 1 AS a\n-- @assert a"},
        ["models/x.sql:2", "is a value, not a condition"],
    ),
    "unknown target setting": (
        {
            "sqlops.toml": "[project]\nname = 'x'\n[targets.local]\nengine = 'duckdb'\n"
            "pth = 'x.duckdb'\n",
        },
        ["sqlops.toml:5", "unknown setting `pth`", "did you mean `path`"],
    ),
    "not a spark master": (
        {
            "sqlops.toml": "[project]\nname = 'x'\n[targets.local]\nengine = 'spark'\n"
            "master = 'banana'\n",
        },
        ["sqlops.toml:5", 'master = "banana" is not a Spark master URL', "local[4]"],
    ),
    "spark master and remote": (
        {
            "sqlops.toml": "[project]\nname = 'x'\n[targets.local]\nengine = 'spark'\n"
            "master = 'local[2]'\nremote = 'sc://h:15002'\n",
        },
        ["sqlops.toml:6", "has both master and remote"],
    ),
    "spark settings without engine": (
        {"sqlops.toml": "[project]\nname = 'x'\n[targets.local]\nmaster = 'local[2]'\n"},
        ["sqlops.toml:4", "has no `engine`, so it is a DuckDB target", 'add engine = "spark"'],
    ),
    "unknown section": (
        {"sqlops.toml": "[project]\nname = 'x'\n[var]\na = 1\n"},
        ["sqlops.toml:3", "unknown section [var]", "did you mean `vars`"],
    ),
    "monitor level": (
        {"sqlops.toml": "[project]\nname = 'x'\n[monitor]\nsource_volume = true\n"},
        ["sqlops.toml:4", "[monitor] source_volume must be one of warn, error, off, not true"],
    ),
    "monitor setting": (
        {"sqlops.toml": "[project]\nname = 'x'\n[monitor]\nsource_volumes = 'off'\n"},
        ["sqlops.toml:4", "unknown setting `source_volumes` in [monitor]", "`source_volume`"],
    ),
    "prev of a row value": (
        {"models/x.sql": "SELECT 1 AS a\n-- @assert prev(a) > 0"},
        ["models/x.sql:2", "prev() needs a value of the whole table, not `a`"],
    ),
    "changed selector": ({}, []),
}


@pytest.mark.parametrize("case", sorted(k for k in MORE_CASES if k != "changed selector"))
def test_more_broken_projects(make_project: Callable[[dict[str, str]], Shop], case: str) -> None:
    files, expected = MORE_CASES[case]
    project = make_project(base(files))
    result = project.sqlops("ls")
    assert_user_error(result.output, result.code, *expected)


def test_dbt_state_selector_points_to_changed(built_shop: Shop) -> None:
    result = built_shop.sqlops("build", "state:modified+")
    assert_user_error(result.output, result.code, "use changed")


def test_a_construct_the_target_cannot_run_is_an_error_before_anything_runs(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    project = make_project(
        {
            "sqlops.toml": "[project]\nname = 'x'\n[targets.pg]\nengine = 'postgres'\n"
            "dsn = 'postgresql://nobody@127.0.0.1:1/none'\n",
            "models/wide.sql": "SELECT * FROM (SELECT 1 AS k, 'a' AS y, 2 AS x) "
            "PIVOT (sum(x) FOR y IN ('a', 'b'))\n",
        }
    )
    result = project.sqlops("build")
    assert_user_error(
        result.output,
        result.code,
        "models/wide.sql",
        "main.wide uses PIVOT, which target `pg` (postgres) cannot run",
    )


def test_a_project_that_does_not_load_creates_no_database(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    """The connection opens while the project loads (cli/app.py's _Connection), but a DuckDB
    file that is not there yet is created only for a project that loads."""
    project = make_project(base({"models/bad.sql": "SELECT order_id FROM raw.orders WHERE ("}))
    for command in (["build"], ["build", "--dry-run"], ["test"]):
        result = project.sqlops(*command)
        assert_user_error(result.output, result.code, "models/bad.sql:1")
        assert not project.db.exists(), command


def test_a_project_error_is_told_before_a_database_in_use(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    import subprocess
    import sys

    project = make_project(base({"models/m.sql": "SELECT order_id FROM raw.orders\n"}))
    project.ok("build")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('ready', "
            "flush=True); time.sleep(60)",
            str(project.db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        busy = project.sqlops("build")
        assert busy.code == 1 and "is in use by another process" in busy.output, busy.output
        project.write("models/m.sql", "SELECT order_id FROM raw.orders WHERE (\n")
        for command in (["build"], ["test"]):
            result = project.sqlops(*command)
            assert_user_error(result.output, result.code, "models/m.sql:1")
            assert "in use" not in result.output
    finally:
        holder.kill()
        holder.wait()
    project.write("models/m.sql", "SELECT order_id FROM raw.orders\n")
    project.ok("build")


def test_a_spark_project_that_does_not_load_creates_no_state_file(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    project = make_project(
        base(
            {
                "sqlops.toml": "[project]\nname = 'x'\n[targets.sp]\nengine = 'spark'\n"
                "master = 'local[1]'\n",
                "models/bad.sql": "SELECT order_id FROM raw.orders WHERE (",
            }
        )
    )
    result = project.sqlops("build")
    assert_user_error(result.output, result.code, "models/bad.sql:1")
    assert not (project.root / "sqlops_state.duckdb").exists()
    assert not (project.root / "metastore_db").exists()


def test_a_project_error_is_not_held_up_by_a_server_that_does_not_answer(
    make_project: Callable[[dict[str, str]], Shop],
) -> None:
    """The connection opening beside the load is given up on, not waited for (psycopg would
    wait 10 s for this server)."""
    import socket
    import time

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()  # accepts, and never answers
        port = server.getsockname()[1]
        project = make_project(
            {
                "sqlops.toml": "[project]\nname = 'x'\n[targets.pg]\nengine = 'postgres'\n"
                f"dsn = 'postgresql://nobody@127.0.0.1:{port}/none'\n",
                "models/bad.sql": "SELECT 1 AS x WHERE (",
            }
        )
        started = time.monotonic()
        result = project.sqlops("build")
        waited = time.monotonic() - started
    assert_user_error(result.output, result.code, "models/bad.sql:1")
    assert waited < 8, f"the error took {waited:.1f} s"

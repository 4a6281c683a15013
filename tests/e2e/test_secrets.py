"""The values `${VAR}` brings into sqlops.toml never appear in what sqlops prints (errors,
`--debug` tracebacks, JSON, compiled SQL), in the run history it keeps, or in its HTML report
(sqlops/secrets.py)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.conftest import Run, Shop, write_project

SECRET = "Sup3r-Secret-Value"
ENV = {"API_KEY": SECRET, "NO_COLOR": "1"}

TOML = """[project]
name = "proj"

[targets.local]
engine = "duckdb"
path = "proj.duckdb"

[vars]
api_key = "${API_KEY}"
"""


def assert_hidden(run: Run) -> None:
    assert SECRET not in run.output, run.output
    assert "Traceback" not in run.output or "--debug" in run.output or "***" in run.output


def everything_stored(db: Path) -> str:
    """Every value of every table of the state, as text."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sqlops_meta'"
        ).fetchall()
        return "\n".join(
            str(con.execute(f'SELECT * FROM sqlops_meta."{name}"').fetchall()) for (name,) in tables
        )
    finally:
        con.close()


@pytest.fixture
def leaky(tmp_path: Path) -> Shop:
    """A project whose models put the secret in an error message and in a failing check's
    sampled rows."""
    return write_project(
        tmp_path / "proj",
        {
            "sqlops.toml": TOML,
            "models/main/ok.sql": "SELECT 1 AS n\n",
            "models/main/cast.sql": "SELECT CAST('{{ var(\"api_key\") }}' AS INTEGER) AS n\n",
            "models/main/sampled.sql": (
                "-- @assert accepted_values(k, 'a')\nSELECT '{{ var(\"api_key\") }}' AS k\n"
            ),
        },
    )


def test_a_failing_build_shows_and_stores_no_secret(leaky: Shop, tmp_path: Path) -> None:
    build = leaky.sqlops("build", env=ENV)
    assert build.code == 1, build.output
    assert "***" in build.output  # the cast's error quotes the value: masked
    assert_hidden(build)
    as_json = leaky.sqlops("build", "--json", env=ENV)
    assert as_json.code == 1 and "***" in as_json.stdout
    assert_hidden(as_json)
    stored = everything_stored(leaky.db)
    assert "Conversion Error" in stored and "***" in stored
    assert SECRET not in stored
    for command in (["history"], ["history", "--json"], ["report", "--json"]):
        shown = leaky.sqlops(*command, env=ENV)
        assert shown.code == 0, shown.output
        assert_hidden(shown)
    html = tmp_path / "report.html"
    assert leaky.sqlops("report", "--html", str(html), env=ENV).code == 0
    assert SECRET not in html.read_text()


def test_compiled_sql_and_debug_tracebacks_show_no_secret(leaky: Shop) -> None:
    compiled = leaky.sqlops("compile", "main.cast", env=ENV)
    assert compiled.code == 0 and "CAST('***' AS INT)" in compiled.stdout, compiled.output
    assert_hidden(compiled)
    (leaky.root / "models/main/broken.sql").write_text(
        "SELECT '{{ var(\"api_key\") }}' AS k FROM nowhere\n"
    )
    debug = leaky.sqlops("build", "--debug", env=ENV)
    assert debug.code == 2 and "Traceback" in debug.output, debug.output
    assert SECRET not in debug.output


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ('[monitor]\nsource_volume = "${API_KEY}"\n', "source_volume must be one of"),
        (
            '[targets.pg]\nengine = "postgres"\ndsn = "host=127.0.0.1 password=x ${API_KEY}"\n',
            "cannot connect to PostgreSQL",
        ),
        ('[targets.pg]\nengine = "duckdb"\npath = "/proc/${API_KEY}/x.duckdb"\n', "x.duckdb"),
    ],
    ids=["a-setting's-error", "a-dsn", "a-path"],
)
def test_errors_about_a_setting_show_no_secret(tmp_path: Path, setting: str, shown: str) -> None:
    project = write_project(
        tmp_path / "proj",
        {"sqlops.toml": TOML + setting, "models/main/ok.sql": "SELECT 1 AS n\n"},
    )
    args = ["build", "--target", "pg"] if "targets.pg" in setting else ["build"]
    for extra in ([], ["--debug"]):
        run = project.sqlops(*args, *extra, env=ENV)
        assert run.code == 2, run.output
        assert shown in run.stderr, run.stderr
        assert SECRET not in run.output, run.output


def test_short_values_are_not_masked(tmp_path: Path) -> None:
    """A `${VAR}` of a few characters (a region, a thread count) would mask every such word."""
    project = write_project(
        tmp_path / "proj",
        {
            "sqlops.toml": TOML + 'region = "${REGION}"\n',
            "models/main/ok.sql": "SELECT '{{ var(\"region\") }}' AS region\n",
        },
    )
    run = project.sqlops("compile", "main.ok", env={**ENV, "REGION": "eu"})
    assert run.code == 0 and "'eu'" in run.stdout, run.output

"""Hostile names cannot inject SQL: models, schema folders, seeds, tests and columns named with
quotes, semicolons, comment markers, newlines and unicode are built, promoted to two
environments, rebuilt, rolled back and collected, and the warehouse then holds exactly the
relations and rows it should, on DuckDB and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import Run, run_sqlops

# model names; each also names a column (its alias in the model) and, but for the first, a test
# file. A name may not hold `.` or `/` (a file name cannot) or `__` (sqlops's own separator), so
# what they would drop is `victim`, a table of the database's default schema made by the test
HOSTILE = [
    'x"; drop table victim; --',
    "x'); drop table victim; --",
    "x`; drop table victim; --",
    "x]; drop table victim; --",
    "x$$; drop table victim; $$",
    "x\\",
    "--x",
    "ünï😀 名前",
    "select",
]
# column aliases may also hold what a file name cannot
COLUMNS = [
    *HOSTILE,
    "a\ndrop table victim",
    "x\ty",
    "c/* x */",
    "c */ drop table staging.victim; /*",
    "c.d",
    "c__d",
]
SCHEMA = "s'; drop table victim cascade; --"  # a schema folder
SEED_SCHEMA = 'r"; drop table victim; --'
SEED_COLUMN = "v'); drop table staging.victim; --"
SEED = f'id,"{SEED_COLUMN}"\n1,10\n2,20\n3,30\n'
# a view and an ephemeral model with hostile names, read by hostile models
VIEW = "v'; drop table victim; --"
# an ephemeral model's name ends up in a CTE name; those with `"`, `'`, `--` or `/*` are in
# test_ephemeral_names_are_only_names below
EPHEMERAL = "e; drop table victim ünï"
DEFAULT_SCHEMA = {"duckdb": "main", "postgres": "public"}


def q(name: str) -> str:
    """A quoted identifier, as both engines read it."""
    return '"' + name.replace('"', '""') + '"'


def files() -> dict[str, str]:
    seed = f"{q(SEED_SCHEMA)}.orders"
    out = {
        f"seeds/{SEED_SCHEMA}/orders.csv": SEED,
        "models/staging/victim.sql": f"SELECT id, {q(SEED_COLUMN)} AS v FROM {seed}\n",
        f"models/staging/{VIEW}.sql": "-- @materialized view\nSELECT id, v FROM staging.victim\n",
        f"models/staging/{EPHEMERAL}.sql": "-- @materialized ephemeral\n"
        f"SELECT id, v FROM staging.{q(VIEW)}\n",
        f"models/{SCHEMA}/readers.sql": f"SELECT count(*) AS n, sum(h.{q(COLUMNS[0])}) AS total\n"
        f"FROM staging.{q(HOSTILE[0])} AS h JOIN staging.{q(HOSTILE[1])} USING (id)\n"
        "\n-- @assert n = 3\n",
    }
    for i, name in enumerate(HOSTILE):
        alias = COLUMNS[i]
        # a check on a name with a newline needs the block form of a directive
        line, end = ("/* ", " */") if "\n" in alias + name else ("-- ", "")
        out[f"models/staging/{name}.sql"] = (
            f"-- @description the model {name!r}\n"
            f"SELECT id, v, v * {i + 1} AS {q(alias)}, {i + 1} AS {q(COLUMNS[-1 - i % 4])}\n"
            f"FROM staging.{q(EPHEMERAL)}\n\n"
            f"{line}@assert not_null({q(alias)}){end}\n"
            "-- @assert unique(id)\n"
            f"{line}@assert {q(alias)} >= 0{end}\n"
            f"{line}@warn {q(alias)} < 1000000{end}\n"
        )
        if i:
            out[f"tests/{name}.sql"] = (
                f"{line}@assert (SELECT count(*) FROM staging.{q(name)}) = 3{end}\n"
                f"SELECT * FROM staging.{q(name)} WHERE {q(alias)} IS NULL\n"
            )
    return out


class Warehouse:
    def __init__(self, root: Path, engine: str, dsn: str | None) -> None:
        self.root, self.engine, self.dsn = root, engine, dsn
        target = (
            'engine = "duckdb"\npath = "w.duckdb"'
            if engine == "duckdb"
            else 'engine = "postgres"\ndsn = "${SQLOPS_TEST_SERVER}"'
        )
        root.mkdir(parents=True)
        if engine == "duckdb":
            with duckdb.connect(str(root / "w.duckdb")) as con:
                con.execute("CREATE TABLE victim AS SELECT 42 AS answer")
        else:
            import psycopg

            assert dsn is not None
            with psycopg.connect(dsn) as con:
                con.execute("CREATE TABLE victim AS SELECT 42 AS answer")
        for relpath, text in {
            "sqlops.toml": f'[project]\nname = "w"\n[targets.local]\n{target}\n',
            **files(),
        }.items():
            path = root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def ok(self, *args: str) -> Run:
        result = run_sqlops(list(args), self.root, {"SQLOPS_TEST_SERVER": self.dsn or ""})
        assert result.code == 0, result.output
        return result

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.engine == "postgres":
            import psycopg

            assert self.dsn is not None
            with psycopg.connect(self.dsn) as con:
                return con.execute(sql.encode()).fetchall()
        con = duckdb.connect(str(self.root / "w.duckdb"), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def relations(self) -> set[tuple[str, str]]:
        """(schema, name) of every table and view but sqlops_meta's and the catalog's."""
        rows = self.query(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('sqlops_meta', 'pg_catalog', 'information_schema')"
        )
        return {(str(s), str(n)) for s, n in rows}


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    yield Warehouse(tmp_path / "w", request.param, dsn)


def served(env: str = "") -> set[tuple[str, str]]:
    """The views an environment serves: every model but the ephemeral one, and the seed."""
    suffix = f"__{env}" if env else ""
    names = {("staging", n) for n in [*HOSTILE, "victim", VIEW]}
    names |= {(SCHEMA, "readers"), (SEED_SCHEMA, "orders")}
    return {(schema + suffix, name) for schema, name in names}


def check(warehouse: Warehouse, envs: dict[str, int]) -> None:
    """Each environment ("" is prod) serves what it should, the first hostile model multiplied by
    its factor; the sandbox holds only versions of nodes; the test's own table is untouched."""
    found = warehouse.relations()
    wanted = set().union(*(served(env) for env in envs))
    wanted.add((DEFAULT_SCHEMA[warehouse.engine], "victim"))
    assert warehouse.query("SELECT answer FROM victim") == [(42,)]
    physical = {(s, n) for s, n in found if s.startswith("sqlops__")}
    assert found - physical == wanted
    nodes = {f"sqlops__{s}": set() for s, _ in served()}
    for schema, name in served():
        nodes[f"sqlops__{schema}"].add(name)
    for schema, name in physical:
        assert name.rpartition("__")[0] in nodes.get(schema, set()), (schema, name)
    for env, factor in envs.items():
        suffix = f"__{env}" if env else ""
        assert warehouse.query(f"SELECT id, v FROM {q('staging' + suffix)}.victim ORDER BY id") == [
            (1, 10),
            (2, 20),
            (3, 30),
        ]
        for i, name in enumerate(HOSTILE):
            rows = warehouse.query(
                f"SELECT {q(COLUMNS[i])} FROM {q('staging' + suffix)}.{q(name)} ORDER BY id"
            )
            scale = (i + 1) * (factor if i == 0 else 1)
            assert rows == [(10 * scale,), (20 * scale,), (30 * scale,)], name
        assert warehouse.query(
            f"SELECT n, CAST(total AS INTEGER) FROM {q(SCHEMA + suffix)}.readers"
        ) == [(3, 60 * factor)]


def test_hostile_names_are_only_names(warehouse: Warehouse) -> None:
    first = HOSTILE[0]
    build = warehouse.ok("build")
    assert "0 failed" in build.output
    check(warehouse, {"": 1})

    warehouse.ok("build", "--env", "dev")
    check(warehouse, {"": 1, "dev": 1})

    # a new version of a hostile model, in prod only
    model = warehouse.root / "models" / "staging" / f"{first}.sql"
    model.write_text(model.read_text().replace("v * 1 AS", "v * 2 AS"))
    warehouse.ok("build")
    check(warehouse, {"": 2, "dev": 1})

    warehouse.ok("test")
    warehouse.ok("rollback")
    check(warehouse, {"": 1, "dev": 1})

    # the dev environment still serves the first version: gc keeps it; it may drop the second
    warehouse.ok("gc")
    check(warehouse, {"": 1, "dev": 1})
    history = warehouse.query("SELECT count(*) FROM sqlops_meta.assertion_results")
    assert history[0][0] > 0


def test_ephemeral_names_are_only_names(tmp_path: Path) -> None:
    root = tmp_path / "e"
    project = {
        "sqlops.toml": '[project]\nname = "e"\n[targets.local]\nengine = "duckdb"\n'
        'path = "e.duckdb"\n',
        "models/staging/e.sql": "-- @materialized ephemeral\nSELECT 1 AS v\n",
        "models/staging/e-- x.sql": "-- @materialized ephemeral\nSELECT 2 AS v\n",
        'models/staging/q"; x.sql': "-- @materialized ephemeral\nSELECT 3 AS v\n",
        "models/staging/reader.sql": "SELECT a.v AS a, b.v AS b, c.v AS c\n"
        'FROM staging.e AS a, staging."e-- x" AS b, staging."q""; x" AS c\n',
    }
    write(root, project)
    result = run_sqlops(["build"], root)
    assert result.code == 0, result.output
    with duckdb.connect(str(root / "e.duckdb"), read_only=True) as con:
        assert con.execute("SELECT a, b, c FROM staging.reader").fetchall() == [(1, 2, 3)]


def write(root: Path, files: dict[str, str]) -> None:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_declared_column_type_cannot_inject_sql(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("outside-secret\n")
    root = tmp_path / "t"
    hostile_type = (
        f"varint) AS a FROM (SELECT size AS a FROM read_text('{outside}')) "
        "UNION ALL SELECT CAST(a AS varint"
    )
    write(
        root,
        {
            "sqlops.toml": '[project]\nname = "t"\n[targets.local]\nengine = "duckdb"\n'
            'path = "t.duckdb"\n',
            "data/x.csv": "a\n1\n",
            "sources/raw/x.sql": f"-- @location data/x.csv\nCREATE TABLE raw.x (a {q(hostile_type)})\n",
        },
    )
    result = run_sqlops(["build"], root)
    if result.code == 0:
        with duckdb.connect(str(root / "t.duckdb"), read_only=True) as con:
            assert con.execute("SELECT CAST(a AS VARCHAR) FROM raw.x").fetchall() == [("1",)]
    else:
        assert "error" in result.output and "internal error" not in result.output


def test_names_longer_than_postgres_allows(pg_dsn: str, tmp_path: Path) -> None:
    long = "n" * 70
    root = tmp_path / "p"
    write(
        root,
        {
            "sqlops.toml": '[project]\nname = "p"\n[targets.local]\nengine = "postgres"\n'
            'dsn = "${SQLOPS_TEST_SERVER}"\n',
            f"models/staging/{long}.sql": "SELECT 1 AS id\n",
            f"models/staging/{long}x.sql": "SELECT 2 AS id\n",
        },
    )
    env = {"SQLOPS_TEST_SERVER": pg_dsn}
    first = run_sqlops(["build"], root, env)
    refused = first.code == 2 and "63" in first.output  # refused when the project loads: fine
    if not refused:
        assert first.code == 0, first.output
        (root / "models" / "staging" / f"{long}.sql").write_text("SELECT 3 AS id\n")
        second = run_sqlops(["build"], root, env)
        assert second.code == 0, second.output
        import psycopg

        with psycopg.connect(pg_dsn) as con:
            for name, value in ((long, 3), (long + "x", 2)):
                assert con.execute(f"SELECT id FROM staging.{q(name)}").fetchall() == [(value,)]


def test_this_is_a_quoted_name(tmp_path: Path) -> None:
    root = tmp_path / "t"
    write(
        root,
        {
            "sqlops.toml": '[project]\nname = "t"\n[targets.local]\nengine = "duckdb"\n'
            'path = "t.duckdb"\n',
            "models/staging/t.sql": "SELECT 1 AS id\n",
            "models/staging/t where false.sql": "SELECT 2 AS id\n\n"
            "/* @assert is_empty: SELECT * FROM {{ this }} */\n",
        },
    )
    result = run_sqlops(["build"], root)
    assert result.code == 1, result.output
    assert "is_empty" in result.output


def test_names_cannot_drive_the_terminal(tmp_path: Path) -> None:
    root = tmp_path / "t"
    write(
        root,
        {
            "sqlops.toml": '[project]\nname = "t"\n[targets.local]\nengine = "duckdb"\n'
            'path = "t.duckdb"\n',
            "models/staging/x\x1b]0;owned\x07\x1b[2Jy.sql": "SELECT 1 AS id\n",
        },
    )
    for command in (["build"], ["ls"]):
        result = run_sqlops(command, root)
        # refused, and the refusal shows the name's control characters as escapes
        assert result.code == 2, result.output
        assert "\x1b" not in result.output and "\x07" not in result.output
        assert "control character" in result.output and "\\x1b" in result.output

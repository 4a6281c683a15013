"""Two commands that change one database at once: the second fails fast, naming the first (its
command, pid, host and start); neither changes anything the other did; and a first one killed
with SIGKILL leaves no lock behind. On DuckDB (the database file admits one writing process) and
on PostgreSQL (an advisory lock of the command's connection, sqlops/state/lock.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tests.conftest import Run, run_sqlops, write_project

# a model that takes long enough to be caught running: PostgreSQL sleeps, DuckDB counts
SLOW = {
    "duckdb": "SELECT sum(hash(i)) AS n FROM range(4000000000) AS t(i)\n",
    "postgres": "SELECT 1 AS n FROM pg_sleep(60)\n",
}
FAST = "SELECT 2 AS n\n"


@dataclass
class Project:
    root: Path
    engine: str
    dsn: str

    def sqlops(self, *args: str) -> Run:
        return run_sqlops(list(args), self.root, {"SQLOPS_TEST_PG_DSN": self.dsn})

    def ok(self, *args: str) -> Run:
        result = self.sqlops(*args)
        assert result.code == 0, result.output
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        """A command in the background, returned once it holds the lock and runs the slow
        model's statement."""
        log = self.root / f"statements-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "NO_COLOR": "1",
            "SQLOPS_TEST_PG_DSN": self.dsn,
            "SQLOPS_TEST_STATEMENT_LOG": str(log),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "sqlops", *args],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not self._running_slow(log):
            assert proc.poll() is None, proc.communicate()[0]
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"it never reached the model: {proc.communicate()[0]}")
            time.sleep(0.05)
        return proc

    def _running_slow(self, log: Path) -> bool:
        if self.engine == "postgres":
            return bool(
                self.rows(
                    "SELECT 1 FROM pg_stat_activity WHERE query ILIKE '%pg_sleep(60)%' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        # statements are logged once done: the sandbox's schema comes right before the model
        return log.exists() and 'CREATE SCHEMA IF NOT EXISTS "sqlops__main"' in log.read_text()

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        if self.engine == "postgres":
            import psycopg

            with psycopg.connect(self.dsn, autocommit=True) as con:
                return list(con.execute(sql).fetchall())
        con = duckdb.connect(str(self.root / "proj.duckdb"), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def make(request: pytest.FixtureRequest, tmp_path: Path, engine: str) -> Project:
    """A built project of two models on an engine (a fresh PostgreSQL database)."""
    dsn = request.getfixturevalue("pg_dsn") if engine == "postgres" else ""
    target = (
        'engine = "postgres"\ndsn = "${SQLOPS_TEST_PG_DSN}"'
        if engine == "postgres"
        else 'engine = "duckdb"\npath = "proj.duckdb"'
    )
    write_project(
        tmp_path / "proj",
        {
            "sqlops.toml": f'[project]\nname = "proj"\n\n[targets.local]\n{target}\n',
            "models/main/base.sql": "SELECT 1 AS n\n",
            "models/main/slow.sql": FAST,
        },
    )
    made = Project(tmp_path / "proj", engine, dsn)
    made.ok("build")
    return made


@pytest.fixture(params=["duckdb", "postgres"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return make(request, tmp_path, request.param)


def test_a_second_build_fails_fast_naming_the_first(project: Project) -> None:
    (project.root / "models/main/slow.sql").write_text(SLOW[project.engine])
    first = project.start("build", "--env", "dev")
    try:
        started = time.monotonic()
        second = project.sqlops("build")
        assert time.monotonic() - started < 30  # it did not wait for the first
        assert second.code == 1, second.output
        message = second.stderr
        assert f"pid {first.pid}" in message, message
        assert f"on host {socket.gethostname()}" in message, message
        assert "build --env dev" in message, message
        assert " UTC" in message and "started 20" in message, message
        assert "Traceback" not in second.output
        # gc and rollback too: nothing is dropped under a running build
        for command in (["gc", "--keep", "0"], ["rollback"]):
            refused = project.sqlops(*command)
            assert refused.code == 1 and f"pid {first.pid}" in refused.stderr, refused.output
    finally:
        first.kill()
        first.wait()
    # the killed build let go: the next build runs, and prod still serves the first build
    (project.root / "models/main/slow.sql").write_text(FAST)
    project.ok("build")
    assert project.rows("SELECT n FROM main.slow") == [(2,)]
    assert project.rows("SELECT n FROM main.base") == [(1,)]
    runs = json.loads(project.ok("history", "--json").stdout)
    outcomes = {r["id"]: r["outcome"] for r in runs}
    assert list(outcomes.values()).count("interrupted") == 1, runs  # the killed one
    assert "running" not in outcomes.values(), runs


def test_a_lock_left_by_a_killed_build_is_taken_over(project: Project) -> None:
    """SIGKILL while the slow statement runs. DuckDB's file lock goes with the process; a
    PostgreSQL session runs on until its statement ends, so the next build ends it."""
    (project.root / "models/main/slow.sql").write_text(SLOW[project.engine])
    first = project.start("build")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    (project.root / "models/main/slow.sql").write_text(FAST)
    started = time.monotonic()
    project.ok("build")
    assert time.monotonic() - started < 30  # not after the 60 s statement
    assert project.rows("SELECT n FROM main.slow") == [(2,)]


def test_reading_commands_are_told_who_holds_a_duckdb_file(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    project = make(request, tmp_path, "duckdb")
    (project.root / "models/main/slow.sql").write_text(SLOW["duckdb"])
    first = project.start("build")
    try:
        history = project.sqlops("history")
        assert history.code == 1, history.output
        assert "proj.duckdb is in use by another process" in history.stderr
        assert f"`sqlops build`, pid {first.pid}" in history.stderr, history.stderr
    finally:
        first.kill()
        first.wait()


def test_postgres_serves_readers_while_a_build_runs(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    project = make(request, tmp_path, "postgres")
    (project.root / "models/main/slow.sql").write_text(SLOW["postgres"])
    first = project.start("build")
    try:
        runs = json.loads(project.ok("history", "--json").stdout)
        assert [r["outcome"] for r in runs].count("running") == 1, runs
        assert project.rows("SELECT n FROM main.slow") == [(2,)]  # prod as it was
    finally:
        first.kill()
        first.wait()

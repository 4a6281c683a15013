"""Shared fixtures: run the real `sqlops` command in a subprocess, read the DuckDB file it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.pg_server import PostgresServer, find_bin
from tests.spark_server import SparkServer, spark_home

# the tests' parse caches and project snapshots go to a folder of their own, not the user's
os.environ["SQLOPS_CACHE_DIR"] = tempfile.mkdtemp(prefix="sqlops-test-cache-")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_sqlops(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "sqlops", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


class Shop:
    """A project made by `sqlops init` in a temp folder, with helpers to run and inspect it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / f"{root.name}.duckdb"

    def sqlops(self, *args: str, env: dict[str, str] | None = None) -> Run:
        return run_sqlops(list(args), self.root, env)

    def ok(self, *args: str) -> Run:
        result = self.sqlops(*args)
        assert result.code == 0, result.output
        return result

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.root / relpath
        text = path.read_text()
        assert old in text, f"{old!r} not in {relpath}"
        path.write_text(text.replace(old, new, 1))

    def write(self, relpath: str, text: str) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    result = run_sqlops(["init", "shop"], tmp_path)
    assert result.code == 0, result.output
    return Shop(tmp_path / "shop")


@pytest.fixture
def built_shop(shop: Shop) -> Shop:
    shop.ok("build")
    return shop


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[[dict[str, str]], Shop]:
    """A project from a dict of relative path -> file text; sqlops.toml is added if missing."""

    return lambda files: write_project(tmp_path / "proj", files)


def write_project(root: Path, files: dict[str, str]) -> Shop:
    """Write a project's files (relative path -> text); sqlops.toml is added if missing."""
    files = {
        "sqlops.toml": '[project]\nname = "proj"\n\n[targets.local]\nengine = "duckdb"\n'
        'path = "proj.duckdb"\n',
        **files,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Shop(root)


# -- PostgreSQL: a throwaway server per test session, a fresh database per test -------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if find_bin() is None:
        if os.environ.get("SQLOPS_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries are missing, and CI requires them")
        pytest.skip("no PostgreSQL server binaries on this machine")
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(pg_server: PostgresServer) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return pg_server.dsn(name)


# -- Spark: a throwaway Spark Connect server per test session, emptied for each test --------------


@pytest.fixture(scope="session")
def spark_server() -> Iterator[SparkServer]:
    if spark_home() is None:
        if os.environ.get("SQLOPS_REQUIRE_SPARK") == "1":
            pytest.fail("pyspark or java is missing, and CI requires them")
        pytest.skip("no pyspark (pip install -e '.[dev]') or no java on this machine")
    server = SparkServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def spark_remote(spark_server: SparkServer) -> str:
    """The server's sc:// address, its catalog empty."""
    spark_server.reset()
    return spark_server.url

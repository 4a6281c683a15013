"""Local Spark (`master = "local[2]"`), as `sqlops init --engine spark` makes it: the catalog
(an embedded Hive metastore in the project folder) outlives the process, so a second build in
a new process finds every version it needs, and a third process reads the views."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import run_sqlops
from tests.spark_server import spark_home

pytestmark = pytest.mark.spark


@pytest.fixture(autouse=True)
def _needs_spark() -> None:
    import os

    if spark_home() is None:
        if os.environ.get("SQLOPS_REQUIRE_SPARK") == "1":
            pytest.fail("pyspark or java is missing, and CI requires them")
        pytest.skip("no pyspark or no java on this machine")


def _rows(output: str) -> list[tuple[Any, ...]]:
    return sorted(
        tuple(round(float(v), 6) if isinstance(v, float | Decimal) else v for v in row.values())
        for row in json.loads(output)
    )


def test_local_spark_keeps_its_catalog_between_processes(tmp_path: Path) -> None:
    created = run_sqlops(["init", "shop", "--engine", "spark"], tmp_path)
    assert created.code == 0, created.output
    root = tmp_path / "shop"
    assert 'master = "local[2]"' in (root / "sqlops.toml").read_text()
    assert "metastore_db/" in (root / ".gitignore").read_text()

    first = run_sqlops(["build", "--json"], root)  # process 1: cold
    assert first.code == 0, first.output
    built = json.loads(first.stdout)
    assert {n["status"] for n in built["nodes"]} == {"built", "passed"}
    assert (root / "metastore_db").is_dir()
    assert list((root / "spark-warehouse").glob("sqlops__marts.db/customers__*/*.parquet"))
    # Spark's own log went to its file, not to the terminal
    assert "WARN" not in first.stderr and "log4j" not in first.stderr
    assert (root / ".sqlops" / "spark.log").is_file()

    second = run_sqlops(["build", "--json"], root)  # process 2: finds every table it made
    assert second.code == 0, second.output
    again = json.loads(second.stdout)
    assert {n["status"] for n in again["nodes"] if not n["id"].startswith("test:")} == {"reused"}
    assert again["promoted"] is False

    # the state is in the project's state database; the environment's views in Spark's catalog
    state = duckdb.connect(str(root / "sqlops_state.duckdb"), read_only=True)
    try:
        assert state.execute("SELECT count(*) FROM sqlops_meta.deployments").fetchall() == [(1,)]
        assert state.execute("SELECT outcome FROM sqlops_meta.runs ORDER BY id").fetchall() == [
            ("success",),
            ("success",),
        ]
    finally:
        state.close()
    shown = run_sqlops(["show", "marts.revenue_daily", "-n", "1000", "--json"], root)  # process 3
    assert shown.code == 0, shown.output

    # the same rows as the template gives on DuckDB
    (tmp_path / "duck").mkdir()
    assert run_sqlops(["init", "shop"], tmp_path / "duck").code == 0
    assert run_sqlops(["build"], tmp_path / "duck" / "shop").code == 0
    expected = run_sqlops(
        ["show", "marts.revenue_daily", "-n", "1000", "--json"], tmp_path / "duck" / "shop"
    )
    assert _rows(shown.stdout) == _rows(expected.stdout)
    assert len(_rows(shown.stdout)) == 56


def test_an_unreachable_spark_connect_server_is_named_at_once(tmp_path: Path) -> None:
    assert run_sqlops(["init", "shop", "--engine", "spark"], tmp_path).code == 0
    config = tmp_path / "shop" / "sqlops.toml"
    text = config.read_text()
    config.write_text(text.replace('master = "local[2]"', 'remote = "sc://127.0.0.1:1"'))
    result = run_sqlops(["build"], tmp_path / "shop")
    assert result.code == 2, result.output
    assert "cannot reach the Spark Connect server 127.0.0.1:1 of target `local`" in result.stderr
    assert "Traceback" not in result.output

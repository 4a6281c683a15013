"""A cold load shared among processes (project/parallel.py) gives what a load alone gives:
the same nodes, lineage, queries and errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlglot import serde

from sqlops.errors import ConfigError, SqlopsError
from sqlops.project.cache import ParseCache
from sqlops.project.loader import PARALLEL_MODELS, Project, load_processes, load_project
from sqlops.project.scaffold import scaffold

# models of many shapes, repeated so that each process gets a share of every one
SHAPES = {
    "joined": """
        -- @assert not_null(order_id)
        SELECT o.order_id, o.customer_id, c.first_name AS name, p.amount * 2 AS doubled
        FROM staging.orders AS o JOIN staging.customers AS c USING (customer_id)
        JOIN staging.payments AS p ON p.order_id = o.order_id
        WHERE p.amount > 0
    """,
    "windowed": """
        WITH ranked AS (
            SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY order_id) AS n
            FROM staging.orders
        )
        SELECT order_id, customer_id, CASE WHEN n = 1 THEN 'first' ELSE 'later' END AS kind
        FROM ranked QUALIFY n <= 5
    """,
    "grouped": """
        -- @assert unique(customer_id)
        SELECT customer_id, count(*) AS orders, sum(doubled) AS total
        FROM {upstream} GROUP BY ALL HAVING count(*) > 0
    """,
    "unioned": """
        SELECT order_id AS id FROM staging.orders
        UNION ALL
        SELECT customer_id FROM (SELECT customer_id FROM staging.customers) AS sub
    """,
    "starred": "SELECT *, 1 AS one FROM {upstream} ORDER BY 1 LIMIT 10",
    # a column named with its table's schema, which pointing the table drops
    "schema_named": """
        SELECT staging.orders.order_id, Staging.Orders.customer_id AS customer
        FROM staging.orders WHERE staging.orders.order_id > 0
    """,
}


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """The sample project, and 40 models over it, some reading each other."""
    root = scaffold(tmp_path / "mixed", "duckdb")
    _write_models(root, 8)
    return root


def _write_models(root: Path, copies: int) -> None:
    marts = root / "models" / "extra"
    marts.mkdir(exist_ok=True)
    for i in range(copies):
        for shape, sql in SHAPES.items():
            upstream = f"extra.joined_{i}" if shape == "grouped" else f"extra.grouped_{i}"
            (marts / f"{shape}_{i}.sql").write_text(sql.replace("{upstream}", upstream))


def _load(root: Path, processes: int, monkeypatch: pytest.MonkeyPatch, **kw: object) -> Project:
    monkeypatch.setenv("SQLOPS_LOAD_PROCESSES", str(processes))
    return load_project(root, use_cache=False, **kw)  # type: ignore[arg-type]


def test_the_same_project_as_a_load_alone(mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alone = _load(mixed, 1, monkeypatch)
    shared = _load(mixed, 3, monkeypatch)
    assert (alone.processes, shared.processes) == (1, 3)
    assert len(shared.nodes) == len(alone.nodes) > 40
    assert shared.nodes == alone.nodes  # columns, canonical SQL, assertions, dependencies
    assert shared.graph.topological() == alone.graph.topological()
    assert set(shared.lineage) == set(alone.lineage) and len(alone.lineage) > 40
    assert all(shared.lineage[k] == alone.lineage[k] for k in alone.lineage)
    assert set(shared.asts) == set(alone.asts)
    # each query kept as its parse and its tables, named again when read: the same tree, the
    # positions of its names included
    assert all(serde.dump(shared.asts[k]) == serde.dump(alone.asts[k]) for k in alone.asts)
    assert "staging.orders.order_id" not in shared.asts["extra.schema_named_2"].sql()
    star = shared.nodes["extra.starred_3"]
    assert star.column_names == ("customer_id", "orders", "total", "one")


def test_its_parse_cache_and_snapshot_serve_the_next_load(
    mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SQLOPS_LOAD_PROCESSES", "2")
    first = load_project(mixed)
    assert first.processes == 2 and not first.from_snapshot and first.cache_misses > 0
    again = load_project(mixed)
    assert again.from_snapshot
    assert again.nodes == first.nodes
    assert again.ast("extra.joined_5").sql() == first.ast("extra.joined_5").sql()
    # without the snapshot, every entry the processes made is a hit
    (first.cache_folder / "project.pickle").unlink()  # type: ignore[operator]
    monkeypatch.setenv("SQLOPS_LOAD_PROCESSES", "1")
    third = load_project(mixed)
    assert third.cache_misses == 0 and third.cache_hits > 100
    assert third.nodes == first.nodes


def test_a_share_of_many_models_sends_its_entries_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of two processes parses 300 of 600 models, more than it sends in one message of
    parse-cache entries (`_Worker.ENTRIES`): what it sent first is in the cache all the same."""
    root = scaffold(tmp_path / "many", "duckdb")
    _write_models(root, 120)
    monkeypatch.setenv("SQLOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SQLOPS_LOAD_PROCESSES", "2")
    first = load_project(root)
    assert first.processes == 2 and len(first.nodes) > 600
    (first.cache_folder / "project.pickle").unlink()  # type: ignore[operator]
    monkeypatch.setenv("SQLOPS_LOAD_PROCESSES", "1")
    again = load_project(root)
    assert again.cache_misses == 0 and again.cache_hits > 1200
    assert again.nodes == first.nodes
    assert all(again.lineage[k] == first.lineage[k] for k in first.lineage)


def _error(root: Path, processes: int, monkeypatch: pytest.MonkeyPatch) -> SqlopsError:
    with pytest.raises(SqlopsError) as info:
        _load(root, processes, monkeypatch)
    return info.value


@pytest.mark.parametrize(
    ("broken", "text"),
    [
        # a syntax error in files of both shares: the first file's is told
        ({"grouped_1": "SELECT FROM WHERE", "grouped_6": "SELECT (1"}, "grouped_1.sql"),
        # a model reading a relation that is not there (resolved by the coordinator)
        ({"starred_4": "SELECT * FROM extra.nowhere"}, "starred_4.sql"),
        # an assertion on a column the model lacks (found while settling)
        ({"joined_7": "-- @assert not_null(nope)\nSELECT 1 AS id"}, "joined_7.sql"),
        # a model after a source with an error: the model's comes first, as alone
        ({"joined_0": "SELECT 1 +", "../../sources/raw/orders.sql": "SELECT 1"}, "joined_0.sql"),
    ],
)
def test_errors_are_those_of_a_load_alone(
    mixed: Path, monkeypatch: pytest.MonkeyPatch, broken: dict[str, str], text: str
) -> None:
    for name, sql in broken.items():
        (mixed / "models" / "extra" / f"{name}.sql").write_text(sql)
    alone = _error(mixed, 1, monkeypatch)
    shared = _error(mixed, 2, monkeypatch)
    assert str(shared) == str(alone)
    assert (shared.path, shared.line, shared.column) == (alone.path, alone.line, alone.column)
    assert shared.path is not None and shared.path.name == text


def test_models_reading_missing_columns_are_listed_in_order(
    mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in (2, 5):
        (mixed / "models" / "extra" / f"starred_{i}.sql").write_text(
            f"SELECT g.nope FROM extra.grouped_{i} AS g"
        )
    alone = _load(mixed, 1, monkeypatch, strict=False)
    shared = _load(mixed, 2, monkeypatch, strict=False)
    assert shared.processes == 2
    assert [b[:3] for b in shared.broken] == [b[:3] for b in alone.broken]
    assert [b[0] for b in shared.broken] == ["extra.starred_2", "extra.starred_5"]
    assert str(shared.broken[0][3]) == str(alone.broken[0][3])


def test_environment_read_by_templates_in_other_processes_keeps_the_snapshot_honest(
    mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (mixed / "models" / "extra" / "region.sql").write_text(
        'SELECT \'{{ env_var("SHOP_REGION", "eu") }}\' AS region\n'
    )
    monkeypatch.setenv("SQLOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SQLOPS_LOAD_PROCESSES", "2")
    monkeypatch.setenv("SHOP_REGION", "us")
    first = load_project(mixed)
    assert first.processes == 2
    assert "'us'" in (first.nodes["extra.region"].canonical or "")
    monkeypatch.setenv("SHOP_REGION", "apac")
    again = load_project(mixed)
    assert not again.from_snapshot
    assert "'apac'" in (again.nodes["extra.region"].canonical or "")


def test_the_processes_see_the_environment_unchanged(
    mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What they need to import sqlops is not passed in the environment templates read."""
    (mixed / "models" / "extra" / "path.sql").write_text(
        'SELECT \'{{ env_var("PYTHONPATH", "unset") }}\' AS path\n'
    )
    monkeypatch.delenv("PYTHONPATH", raising=False)
    shared = _load(mixed, 2, monkeypatch)
    assert shared.processes == 2
    assert "'unset'" in (shared.nodes["extra.path"].canonical or "")


def test_a_script_without_a_main_guard_runs_once(mixed: Path, tmp_path: Path) -> None:
    """The processes are new interpreters that import sqlops, not the script that loads."""
    marker = tmp_path / "runs.txt"
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\n"
        "from sqlops.project.loader import load_project\n"
        f"with open({str(marker)!r}, 'a') as f: f.write('run\\n')\n"
        f"project = load_project(Path({str(mixed)!r}), use_cache=False)\n"
        "print(project.processes, len(project.nodes))\n"
    )
    env = os.environ | {"SQLOPS_LOAD_PROCESSES": "2"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    processes, nodes = map(int, done.stdout.split())
    assert processes == 2 and nodes > 40 and done.stderr == ""
    assert marker.read_text() == "run\n"


def test_how_many_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SQLOPS_LOAD_PROCESSES", raising=False)
    empty = ParseCache(None)
    assert load_processes(PARALLEL_MODELS - 1, empty) == 1
    cores = len(os.sched_getaffinity(0))
    assert load_processes(PARALLEL_MODELS, empty) == (1 if cores < 2 else min(cores, 4))
    monkeypatch.setenv("SQLOPS_LOAD_PROCESSES", "3")
    assert load_processes(5, empty) == 3
    for bad in ("0", "two", "-1", "\u00b2", "65"):
        monkeypatch.setenv("SQLOPS_LOAD_PROCESSES", bad)
        with pytest.raises(ConfigError, match="SQLOPS_LOAD_PROCESSES"):
            load_processes(5, empty)

"""Change scenarios from change_scenarios.toml: old SQL, new SQL, the expected class, and the
downstream columns, row sets and rebuilds the change reaches.

Each scenario starts from the same small project (BASE below), replaces or adds models, then
changes one model (or one of BASE's sources). Both versions are loaded for real and compared the
way `sqlops impact --against REF` compares them. A scenario with `xfail` states what sqlops should
say, and why it does not yet.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from sqlops.impact.against import compare_projects
from sqlops.project.loader import load_project

SCENARIOS = tomllib.loads((Path(__file__).parent / "change_scenarios.toml").read_text())["scenario"]

BASE: dict[str, str] = {
    "sqlops.toml": '[project]\nname = "s"\n\n[targets.local]\nengine = "duckdb"\n'
    'path = "s.duckdb"\n',
    "sources/raw/orders.sql": "CREATE TABLE raw.orders (order_id INTEGER, customer_id INTEGER, "
    "amount DECIMAL(10, 2), status VARCHAR, ordered_at DATE)",
    "sources/raw/customers.sql": "CREATE TABLE raw.customers (customer_id INTEGER, name VARCHAR, "
    "country VARCHAR, signed_up DATE)",
    "models/staging/orders.sql": "SELECT order_id, customer_id, amount, status, ordered_at "
    "FROM raw.orders",
    "models/staging/customers.sql": "SELECT customer_id, name, country FROM raw.customers",
}


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _path(node: str) -> str:
    schema, name = node.split(".")
    source = f"sources/{schema}/{name}.sql"
    return source if source in BASE else f"models/{schema}/{name}.sql"


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(
            s,
            id=s["name"],
            marks=pytest.mark.xfail(reason=s["xfail"], strict=True) if "xfail" in s else (),
        )
        for s in SCENARIOS
    ],
)
def test_scenario(scenario: dict[str, Any], tmp_path: Path) -> None:
    files = dict(BASE)
    files.update({_path(m): sql for m, sql in scenario.get("models", {}).items()})
    changed = _path(scenario["model"])
    old_root, new_root = tmp_path / "old", tmp_path / "new"
    _write(old_root, {**files, changed: scenario["old"]})
    _write(new_root, {**files, changed: scenario["new"]})
    old = load_project(old_root, use_cache=False)
    new = load_project(new_root, use_cache=False, strict=False)

    report = compare_projects(old, new, "old")

    [change] = [c for c in report.changes if c.node == scenario["model"]]
    assert change.change.label == scenario["class"], change.reasons
    for reason in scenario.get("reasons", []):
        assert any(reason in r for r in change.reasons), (reason, change.reasons)
    reached = report.downstream.get(change.node, ())[1:]
    columns = {f"{i.node_id}.{c}" for i in reached if not i.rows for c in i.columns}
    rows = {i.node_id for i in reached if i.rows}
    depths = {i.node_id: i.depth for i in reached}
    assert {n: depths.get(n) for n in scenario.get("depth", {})} == scenario.get("depth", {})
    assert columns == set(scenario.get("columns", [])), columns
    assert rows == set(scenario.get("rows", [])), rows
    assert set(report.rebuild) == set(scenario["rebuilt"]), report.rebuild
    broken = {f"{b.reader}:{b.upstream}.{b.column}" for b in report.broken}
    assert broken == set(scenario.get("errors", [])), broken

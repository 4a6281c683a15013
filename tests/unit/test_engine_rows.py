"""The fast paths of the engine layer and the graph give what the plain ones gave."""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb
import networkx as nx
import pytest

from sqlops.engines.base import Engine
from sqlops.engines.duckdb import DuckDBEngine
from sqlops.graph.dag import Graph

ROWS = [
    (1, "a", None, 1.5, datetime.datetime(2026, 1, 2, 3, 4, 5), '{"x": 1}'),
    (2, None, None, 2, None, None),
    (3, "it's \t\n", None, None, datetime.datetime(2026, 1, 3), "[]"),
]


@pytest.mark.parametrize("way", ["unnested", "values"])
def test_insert_rows_writes_every_row_as_given(tmp_path: Path, way: str) -> None:
    engine = DuckDBEngine(duckdb.connect(str(tmp_path / "x.duckdb")), str(tmp_path / "x.duckdb"))
    engine.execute(
        "CREATE TABLE t (id INTEGER, name VARCHAR, missing BIGINT, value DOUBLE, "
        "seen TIMESTAMP, doc JSON)"
    )
    insert = engine.insert_rows if way == "unnested" else Engine.insert_rows.__get__(engine)
    insert('"t"', [])  # nothing to write is no statement's error
    insert('"t"', ROWS)
    insert('"t"', [(4, "b", 7, Decimal("0.25"), None, None)])
    got = engine.query("SELECT * FROM t ORDER BY id").rows
    assert got == [
        (1, "a", None, 1.5, datetime.datetime(2026, 1, 2, 3, 4, 5), '{"x": 1}'),
        (2, None, None, 2.0, None, None),
        (3, "it's \t\n", None, None, datetime.datetime(2026, 1, 3), "[]"),
        (4, "b", 7, 0.25, None, None),
    ]
    engine.close()


@dataclass
class _Node:
    id: str
    all_deps: tuple[str, ...]
    relpath: str = ""
    ref_lines: dict[str, int] = field(default_factory=dict)


def test_the_graph_walks_as_networkx_does() -> None:
    rng = random.Random(7)
    names = [f"m{i:03d}" for i in range(300)]
    nodes = {
        n: _Node(
            n,
            tuple(rng.sample(names[:i], min(i, rng.randint(0, 4)))) + ("outside",) * (i % 50 == 0),
        )
        for i, n in enumerate(names)
    }
    reference = nx.DiGraph()
    reference.add_nodes_from(nodes)
    reference.add_edges_from((d, n.id) for n in nodes.values() for d in n.all_deps)
    graph = Graph(nodes)  # type: ignore[arg-type]
    again = Graph(nodes, graph.topological())  # type: ignore[arg-type]
    assert graph.topological() == list(nx.lexicographical_topological_sort(reference))
    for g in (graph, again):
        assert g.edges() == sorted(reference.edges())
        for name in [*rng.sample(names, 40), "outside"]:
            assert g.descendants(name) == nx.descendants(reference, name)
            assert g.ancestors(name) == nx.ancestors(reference, name)
            assert g.downstream(name) == g.topological(reference.successors(name))
        assert g.ancestors_of(names[-5:]) == set().union(
            *(nx.ancestors(reference, n) for n in names[-5:])
        )

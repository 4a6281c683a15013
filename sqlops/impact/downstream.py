"""Downstream walks, by model and by column, the upstream walk of a column, and their forms."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlops.assertions.definition import Assertion, CheckKind
from sqlops.project.definition import Kind
from sqlops.syntax import normalize_name

if TYPE_CHECKING:
    from sqlops.project.loader import Project


@dataclass(frozen=True)
class Affected:
    node_id: str
    kind: str
    depth: int  # shortest number of edges from the changed node
    path: str
    reads: tuple[str, ...]  # the nodes in this report it reads directly
    assertions: tuple[Assertion, ...]


@dataclass(frozen=True)
class ImpactReport:
    root: str
    affected: tuple[Affected, ...]  # the root first, then by depth and name
    edges: tuple[tuple[str, str], ...]

    def children(self, node_id: str) -> list[str]:
        return [b for a, b in self.edges if a == node_id]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.root,
            "downstream": [
                {
                    "id": a.node_id,
                    "kind": a.kind,
                    "depth": a.depth,
                    "path": a.path,
                    "reads": list(a.reads),
                    "assertions": [x.to_json() for x in a.assertions],
                }
                for a in self.affected
                if a.node_id != self.root
            ],
            "assertions": [x.to_json() for x in self.affected[0].assertions],
            "edges": [list(e) for e in self.edges],
        }

    def to_mermaid(self) -> str:
        labels = {}
        for a in self.affected:
            count = len(a.assertions)
            suffix = f"<br/>{count} assertion{'s' if count != 1 else ''}" if count else ""
            labels[a.node_id] = a.node_id + suffix
        return mermaid(labels, self.edges, highlight=self.root)


def mermaid(
    labels: dict[str, str], edges: Iterable[tuple[str, str]], highlight: str | None = None
) -> str:
    """A Mermaid flowchart of nodes (id -> label) and edges, left to right."""
    ids = {node_id: f"n{i}" for i, node_id in enumerate(labels)}
    lines = ["graph LR"]
    lines += [f'    {ids[n]}["{label.replace(chr(34), chr(39))}"]' for n, label in labels.items()]
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in edges]
    if highlight is not None:
        lines.append(f"    style {ids[highlight]} stroke-width:3px")
    return "\n".join(lines)


def downstream_of(project: Project, node_id: str) -> ImpactReport:
    depth = {node_id: 0}
    queue = deque([node_id])
    while queue:
        current = queue.popleft()
        for child in project.graph.downstream(current):
            if child not in depth:
                depth[child] = depth[current] + 1
                queue.append(child)
    ordered = sorted(depth, key=lambda n: (depth[n], n))
    members = set(ordered)
    affected = []
    for n in ordered:
        node = project.nodes[n]
        affected.append(
            Affected(
                n,
                node.kind.value,
                depth[n],
                node.relpath,
                tuple(d for d in node.all_deps if d in members),
                node.assertions,
            )
        )
    edges = tuple(
        (a, b) for a, b in project.graph.edges() if a in members and b in members and b != node_id
    )
    return ImpactReport(node_id, tuple(affected), edges)


@dataclass(frozen=True)
class ColumnImpact:
    """A node reached from changed columns: which of its columns, and whether its rows, may
    change, and the assertions that check them."""

    node_id: str
    kind: str
    path: str
    depth: int
    columns: tuple[str, ...]
    rows: bool  # its row set may change: every column with it
    assertions: tuple[Assertion, ...]
    reads_data: bool = True  # False: only its assertions read what changed

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "kind": self.kind,
            "path": self.path,
            "depth": self.depth,
            "columns": list(self.columns),
            "rows": self.rows,
            "data": self.reads_data,
            "assertions": [a.to_json() for a in self.assertions],
        }


def column_impact(
    project: Project, start: str, columns: Iterable[str], rows: bool
) -> tuple[ColumnImpact, ...]:
    """Everything downstream of some columns (and perhaps the rows) of one node, by column
    lineage: the start node first, then by depth and name.

    A reader whose lineage is unknown is assumed to read every column of what it reads.
    """
    dialect = project.dialect
    lineage = project.lineage
    hit: dict[str, set[str]] = {start: {normalize_name(c, dialect) for c in columns}}
    rows_hit: dict[str, bool] = {start: rows}
    depth = {start: 0}
    checks_only: set[str] = set()
    for node_id in project.graph.topological(project.graph.descendants(start) | {start}):
        if node_id == start:
            continue
        node = project.nodes[node_id]
        parents = [p for p in node.all_deps if p in hit and p not in checks_only]
        if not parents:
            continue
        data_parents = [p for p in parents if p in node.depends_on]
        if not data_parents or node.kind is Kind.TEST:
            # its data does not change: it is reached only if one of its checks reads what did
            upstream_hit = {p: hit[p] for p in parents}
            upstream_rows = {p for p in parents if rows_hit[p]}
            if any(_reads_other(a, upstream_hit, upstream_rows) for a in node.assertions):
                depth[node_id] = 1 + min(depth[p] for p in parents)
                hit[node_id], rows_hit[node_id] = set(), False
                checks_only.add(node_id)
            continue
        depth[node_id] = 1 + min(depth[p] for p in parents)
        mine = lineage.get(node_id)
        everything = {normalize_name(c, dialect) for c in node.column_names or ()}
        if mine is None:
            hit[node_id], rows_hit[node_id] = everything, True
            continue
        changed = {(p, c) for p in data_parents for c in hit[p]}
        row_set = any(rows_hit[p] for p in data_parents) or bool(changed & set(mine.row_reads))
        hit[node_id] = (
            {c.name for c in mine.columns}
            if row_set
            else {c.name for c in mine.columns if changed.intersection(c.reads)}
        )
        rows_hit[node_id] = row_set
        if not hit[node_id] and not row_set:
            del hit[node_id], rows_hit[node_id], depth[node_id]
    result = []
    for node_id in sorted(depth, key=lambda n: (depth[n], n)):
        node = project.nodes[node_id]
        upstream_hit = {p: hit[p] for p in node.all_deps if p in hit and p not in checks_only}
        upstream_rows = {p for p in upstream_hit if rows_hit[p]}
        result.append(
            ColumnImpact(
                node_id,
                node.kind.value,
                node.relpath,
                depth[node_id],
                tuple(sorted(hit[node_id])),
                rows_hit[node_id],
                tuple(
                    a
                    for a in node.assertions
                    if covers(
                        a, hit[node_id], rows_hit[node_id], upstream_hit, upstream_rows, dialect
                    )
                ),
                node_id not in checks_only,
            )
        )
    return tuple(result)


def covers(
    assertion: Assertion,
    columns: set[str],
    rows: bool,
    upstream: dict[str, set[str]],
    upstream_rows: set[str],
    dialect: str,
) -> bool:
    """Whether an assertion checks any of these columns (or the rows) of its node, or reads what
    changed upstream (a test, a `references` or a subquery)."""
    if upstream and _reads_other(assertion, upstream, upstream_rows):
        return True
    if assertion.owner.startswith("test:"):
        return False
    if rows:
        return True
    if assertion.kind is CheckKind.QUERY:
        return _mentions(assertion, columns)
    named = assertion_columns(assertion, dialect)
    return named is None or bool(named & columns)


def assertion_columns(assertion: Assertion, dialect: str) -> set[str] | None:
    """The columns of its own node an assertion names; None when it cannot be told."""
    names = set(assertion.columns)
    for text in (assertion.expression, assertion.where):
        if not text:
            continue
        try:
            parsed = sqlglot.parse_one(text, dialect=dialect)
        except SqlglotError:
            return None
        names |= {c.name for c in parsed.find_all(exp.Column) if not c.table}
    return {normalize_name(n, dialect) for n in names}


def _reads_other(
    assertion: Assertion, upstream: dict[str, set[str]], upstream_rows: set[str]
) -> bool:
    """Whether an assertion reads changed columns (or changed rows) of another node."""
    if assertion.kind is CheckKind.REFERENCES and assertion.target and assertion.target_column:
        target = assertion.target.lower()
        return any(
            (node_id == target or node_id.endswith("." + target))
            and (assertion.target_column.lower() in cols or node_id in upstream_rows)
            for node_id, cols in upstream.items()
        )
    if assertion.kind is not CheckKind.TABLE and assertion.kind is not CheckKind.QUERY:
        return False
    # A subquery names the nodes it reads, and their columns. Read by name, which can only
    # err on the side of reporting a check.
    text = f"{assertion.expression} {assertion.where or ''}"
    return any(
        _word(node_id.rpartition(".")[2], text)
        and (node_id in upstream_rows or _mentions(assertion, cols))
        for node_id, cols in upstream.items()
    )


def _mentions(assertion: Assertion, columns: set[str]) -> bool:
    text = f"{assertion.expression} {assertion.where or ''}"
    return "*" in text or any(_word(c, text) for c in columns)


def _word(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w$]){re.escape(word)}(?![\w$])", text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Origin:
    node_id: str
    column: str
    kind: str
    path: str
    depth: int
    filters: bool = False  # it decides the rows of the column's model, not its value


def upstream_of(project: Project, node_id: str, column: str) -> tuple[Origin, ...]:
    """Where a column comes from: every upstream (node, column) its value is computed from,
    with depth, down to sources and seeds; and, marked, what decides which rows its model has
    (and where those come from)."""
    start = (node_id, normalize_name(column, project.dialect))
    mine = project.lineage.get(node_id)
    own = mine.column(start[1]) if mine is not None else None
    values = _closure(project, set(own.reads) if own is not None else set())
    filters = _closure(project, set(mine.row_reads) if mine is not None else set())
    depth = {**filters, **values}
    return tuple(
        Origin(
            n,
            c,
            project.nodes[n].kind.value,
            project.nodes[n].relpath,
            d,
            (n, c) not in values,
        )
        for (n, c), d in sorted(depth.items(), key=lambda kv: (kv[1], kv[0]))
    )


def _closure(project: Project, first: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """These columns and everything their values are computed from, with depth."""
    depth = {read: 1 for read in first}
    queue = deque(sorted(first))
    while queue:
        current = queue.popleft()
        lineage = project.lineage.get(current[0])
        own = lineage.column(current[1]) if lineage is not None else None
        for read in sorted(own.reads if own is not None else ()):
            if read not in depth:
                depth[read] = depth[current] + 1
                queue.append(read)
    return depth

"""The model-level downstream walk, and its JSON and Mermaid forms."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlops.assertions.definition import Assertion

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

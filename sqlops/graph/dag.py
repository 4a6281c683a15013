"""The project's graph: topological order, ancestors, descendants, cycles.

networkx sorts a graph met for the first time and finds its cycles; the walks are plain dicts,
so a command that loads a known graph (the snapshot's order) never imports networkx, a tenth of
a second of its start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from sqlops.errors import ProjectError

if TYPE_CHECKING:
    from sqlops.project.definition import Node


class Graph:
    """Edges point from an upstream node to the nodes that read it."""

    def __init__(self, nodes: Mapping[str, Node], order: list[str] | None = None) -> None:
        """`order`: the topological order of these very nodes, known from an earlier load (the
        snapshot's): not worked out again, and no cycle looked for."""
        self._succ: dict[str, list[str]] = {n: [] for n in nodes}
        self._pred: dict[str, list[str]] = {n: [] for n in nodes}
        for node in nodes.values():
            for dep in dict.fromkeys(node.all_deps):
                if dep not in self._succ:  # as networkx would: an edge adds its node
                    self._succ[dep], self._pred[dep] = [], []
                self._succ[dep].append(node.id)
                self._pred[node.id].append(dep)
        if order is not None and len(order) == len(self._succ):
            self._order = order
            self._rank = {n: i for i, n in enumerate(order)}
            return
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self._succ)
        graph.add_edges_from(self.edges())
        try:
            # lexicographic tie-break: the same project always runs in the same order
            self._order = list(nx.lexicographical_topological_sort(graph))
            cycle = None
        except nx.NetworkXUnfeasible:  # only then look for the cycle: finding it costs more
            cycle = nx.find_cycle(graph)
        if cycle:
            # edges point from what is read to its reader; show "a -> b" as "a reads b"
            path = [edge[0] for edge in reversed(cycle)]
            start = path.index(min(path))
            path = path[start:] + path[:start]
            path.append(path[0])
            files = "\n".join(f"  {n}  ({nodes[n].relpath})" for n in path[:-1])
            raise ProjectError(
                f"the models form a cycle (each reads the next): {' -> '.join(path)}\n{files}",
                path=nodes[path[0]].path,
                line=nodes[path[0]].ref_lines.get(path[1]),
                hint="a model cannot read itself through other models; break one of these "
                "references (an assertion's references() counts as one too)",
            )
        self._rank = {n: i for i, n in enumerate(self._order)}

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._succ

    def topological(self, subset: Iterable[str] | None = None) -> list[str]:
        if subset is None:
            return list(self._order)
        return sorted(set(subset), key=self._rank.__getitem__)

    def upstream(self, node_id: str) -> list[str]:
        """The nodes it reads directly, each once."""
        return list(self._pred[node_id])

    def downstream(self, node_id: str) -> list[str]:
        return self.topological(self._succ[node_id])

    def ancestors(self, node_id: str) -> set[str]:
        return self.ancestors_of([node_id]) - {node_id} if node_id in self else set()

    def ancestors_of(self, node_ids: Iterable[str]) -> set[str]:
        """Everything upstream of any of the nodes, in one walk."""
        seen: set[str] = set()
        stack = list(node_ids)
        while stack:
            for parent in self._pred[stack.pop()]:
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    def descendants(self, node_id: str) -> set[str]:
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            for child in self._succ[stack.pop()]:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        seen.discard(node_id)
        return seen

    def edges(self) -> list[tuple[str, str]]:
        return sorted((a, b) for a, children in self._succ.items() for b in children)

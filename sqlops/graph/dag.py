"""A thin wrapper over networkx: topological order, ancestors, descendants, cycles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import networkx as nx

from sqlops.errors import ProjectError

if TYPE_CHECKING:
    from sqlops.project.definition import Node


class Graph:
    """Edges point from an upstream node to the nodes that read it."""

    def __init__(self, nodes: Mapping[str, Node], order: list[str] | None = None) -> None:
        """`order`: the topological order of these very nodes, known from an earlier load (the
        snapshot's): not worked out again, and no cycle looked for."""
        self._g = nx.DiGraph()
        self._g.add_nodes_from(nodes)
        for node in nodes.values():
            for dep in node.all_deps:
                self._g.add_edge(dep, node.id)
        if order is not None and len(order) == len(nodes):
            self._order = order
            self._rank = {n: i for i, n in enumerate(order)}
            return
        try:
            # lexicographic tie-break: the same project always runs in the same order
            self._order = list(nx.lexicographical_topological_sort(self._g))
            cycle = None
        except nx.NetworkXUnfeasible:  # only then look for the cycle: finding it costs more
            cycle = nx.find_cycle(self._g)
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
        return node_id in self._g

    def topological(self, subset: Iterable[str] | None = None) -> list[str]:
        if subset is None:
            return list(self._order)
        return sorted(set(subset), key=self._rank.__getitem__)

    def downstream(self, node_id: str) -> list[str]:
        return self.topological(self._g.successors(node_id))

    def ancestors(self, node_id: str) -> set[str]:
        return set(nx.ancestors(self._g, node_id))

    def ancestors_of(self, node_ids: Iterable[str]) -> set[str]:
        """Everything upstream of any of the nodes, in one walk."""
        seen: set[str] = set()
        stack = list(node_ids)
        while stack:
            for parent in self._g.predecessors(stack.pop()):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    def descendants(self, node_id: str) -> set[str]:
        return set(nx.descendants(self._g, node_id))

    def edges(self) -> list[tuple[str, str]]:
        return sorted(self._g.edges())

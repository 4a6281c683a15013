"""Name resolution: which node a table name in SQL refers to."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlops.errors import ProjectError, did_you_mean, snippet_at
from sqlops.project.definition import Kind, Node
from sqlops.syntax import TableRef


class Resolver:
    """`schema.name` is that relation; a bare `name` is the model of that name in the referring
    node's schema, else the one model, source or seed of that name in the project."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.by_relation: dict[tuple[str, str], str] = {}
        self.by_name: dict[str, list[str]] = defaultdict(list)
        for node in nodes:
            if node.kind is Kind.TEST:
                continue
            self.by_relation[(node.schema, node.name)] = node.id
            self.by_name[node.name].append(node.id)

    def find(self, ref: TableRef, from_schema: str | None) -> str | list[str]:
        """The node id, or the candidates (empty when nothing matches)."""
        if ref.schema is not None:
            found = self.by_relation.get((ref.schema, ref.name))
            return found if found else []
        if from_schema is not None and (from_schema, ref.name) in self.by_relation:
            return self.by_relation[(from_schema, ref.name)]
        candidates = self.by_name.get(ref.name, [])
        return candidates[0] if len(candidates) == 1 else sorted(candidates)

    def resolve(self, ref: TableRef, node: Node, file_text: str) -> str:
        where = {
            "path": node.path,
            "line": ref.line,
            "column": ref.column,
            "snippet": snippet_at(file_text, ref.line, ref.column),
        }
        if ref.catalog:
            raise ProjectError(
                f"`{ref.written}` names a database; sqlops builds in the target's one database",
                hint=f"drop the `{ref.catalog}.` part, or declare the table as a source",
                **where,  # type: ignore[arg-type]
            )
        found = self.find(ref, node.schema if node.kind is Kind.MODEL else None)
        if isinstance(found, str):
            return found
        if found:
            raise ProjectError(
                f"`{ref.written}` is ambiguous: it could be {', '.join(found)}",
                hint=f"qualify it with its schema, e.g. {found[0]}",
                **where,  # type: ignore[arg-type]
            )
        known = [f"{s}.{n}" for s, n in self.by_relation]
        raise ProjectError(
            f"unknown table `{ref.written}`{did_you_mean(ref.written, known)}",
            hint="name a model, seed or source of this project; declare a raw table in "
            f"sources/<schema>/<name>.sql (e.g. sources/{ref.schema or 'raw'}/{ref.name}.sql)",
            **where,  # type: ignore[arg-type]
        )

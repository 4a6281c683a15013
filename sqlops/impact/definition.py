"""What a node is, as far as a change to it matters: kept per environment, compared with the code.

A `Definition` is small, plain data: hashes of the SQL of each column and of the row set (from
column lineage), column names and types, and the metadata a user edits. An environment records
the definition of every node it serves, so `sqlops impact` can tell what changed without the old
files; `--against REF` builds the same definitions from a git ref.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types

from sqlops.graph.lineage import short_hash
from sqlops.project.cache import ParseCache, content_key
from sqlops.project.columns import qualified_copy
from sqlops.project.definition import Kind, Node
from sqlops.syntax import normalize_name, outer_select, schema_for_sqlglot

if TYPE_CHECKING:
    from sqlops.project.loader import Project


@dataclass(frozen=True)
class ColumnDefinition:
    name: str  # as the dialect folds it
    type: str | None  # as sqlglot infers it; None when it cannot
    code: str | None  # hash of the SQL computing it; None when lineage is unknown
    body: str | None  # the same without its name
    description: str | None = None


@dataclass(frozen=True)
class Definition:
    node: str
    kind: str
    path: str
    text: str  # hash of the file: any edit at all
    sql: str  # hash of the canonical SQL: formatting and comments do not count
    rows: str | None  # hash of what decides the rows; None when lineage is unknown
    columns: tuple[ColumnDefinition, ...] | None
    materialized: str = ""
    description: str | None = None
    tags: tuple[str, ...] = ()
    owner: str | None = None
    assertions: tuple[str, ...] = ()  # each assertion as written, with its severity

    def column(self, name: str) -> ColumnDefinition | None:
        return next((c for c in self.columns or () if c.name == name), None)

    def without_types(self) -> Definition:
        if self.columns is None or all(c.type is None for c in self.columns):
            return self
        # built anew, not with replace(): a build compares a definition for each node
        untyped = tuple(
            ColumnDefinition(c.name, None, c.code, c.body, c.description) for c in self.columns
        )
        return replace(self, columns=untyped)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "v": 1,
            "node": self.node,
            "kind": self.kind,
            "path": self.path,
            "text": self.text,
            "sql": self.sql,
            "rows": self.rows,
            "columns": None
            if self.columns is None
            else [[c.name, c.type, c.code, c.body, c.description] for c in self.columns],
            "materialized": self.materialized,
            "description": self.description,
            "tags": list(self.tags),
            "owner": self.owner,
            "assertions": list(self.assertions),
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Definition | None:
        """None for what this sqlops cannot read: the node then counts as changed."""
        try:
            data = json.loads(text)
            if data.get("v") != 1:
                return None
            columns = data["columns"]
            return cls(
                node=data["node"],
                kind=data["kind"],
                path=data["path"],
                text=data["text"],
                sql=data["sql"],
                rows=data["rows"],
                columns=None if columns is None else tuple(ColumnDefinition(*c) for c in columns),
                materialized=data["materialized"],
                description=data["description"],
                tags=tuple(data["tags"]),
                owner=data["owner"],
                assertions=tuple(data["assertions"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def definitions(
    project: Project, node_ids: list[str] | None = None, *, types: bool = True
) -> dict[str, Definition]:
    """The definitions of these nodes (default: every node but tests).

    Inferring types costs; `types=False` leaves them out, to find what changed cheaply first.
    """
    wanted = [
        n
        for n in (project.nodes if node_ids is None else node_ids)
        if project.nodes[n].kind is not Kind.TEST
    ]
    inferred = _Types(project, types)
    found = {n: _definition(project, project.nodes[n], inferred) for n in wanted}
    inferred.save()
    return found


def _definition(project: Project, node: Node, types: _Types) -> Definition:
    dialect = project.dialect
    lineage = project.lineage.get(node.id)
    column_types = types.of(node.id)
    columns: tuple[ColumnDefinition, ...] | None = None
    rows: str | None = None
    if node.kind is Kind.MODEL:
        if lineage is not None:
            rows = lineage.row_code
            descriptions = {
                normalize_name(c.name, dialect): c.description for c in node.columns or ()
            }
            columns = tuple(
                ColumnDefinition(
                    c.name, column_types.get(c.name), c.code, c.body, descriptions.get(c.name)
                )
                for c in lineage.columns
            )
        elif node.columns is not None:
            columns = tuple(
                ColumnDefinition(
                    normalize_name(c.name, dialect),
                    column_types.get(normalize_name(c.name, dialect)),
                    None,
                    None,
                    c.description,
                )
                for c in node.columns
            )
    else:
        # a seed's bytes decide its rows; a source's are where it reads them (its columns are
        # compared one by one)
        rows = short_hash(node.canonical if node.kind is Kind.SEED else node.location or "")
        columns = tuple(
            ColumnDefinition(
                normalize_name(c.name, dialect),
                c.type,
                short_hash(c.name, c.type or ""),
                short_hash(c.type or ""),
                c.description,
            )
            for c in node.columns or ()
        )
    return Definition(
        node=node.id,
        kind=node.kind.value,
        path=node.relpath,
        text=node.content_hash,
        sql=short_hash(node.canonical),
        rows=rows,
        columns=columns,
        materialized=node.materialized.value if node.kind is Kind.MODEL else "",
        description=node.description,
        tags=node.tags,
        owner=node.owner,
        assertions=tuple(
            f"{a.severity} {a.name}" + (f": {a.text}" if a.name != a.text else "")
            for a in node.assertions
        ),
    )


TYPES_VERSION = "types-1"  # how types are inferred: a change to _Types._infer bumps it


class _Types:
    """Column types as sqlglot infers them from the declared types of sources, lazily: only the
    nodes whose definitions are asked for, and what they read (a few milliseconds a model).

    What a model's types were inferred from (its SQL and, recursively, its upstream's; never
    data) keys them in a cache beside the parse cache, so a model is inferred once."""

    def __init__(self, project: Project, enabled: bool = True) -> None:
        self.project = project
        self.enabled = enabled
        self.known: dict[str, dict[str, str]] = {}
        self.keys: dict[str, str] = {}
        self.cache = ParseCache(
            project.cache_folder if enabled else None, "types.jsonl", keep_unused=True
        )

    def save(self) -> None:
        self.cache.save()

    def _key(self, node_id: str) -> str:
        """A hash of everything a node's inferred types depend on."""
        key = self.keys.get(node_id)
        if key is None:
            node = self.project.nodes[node_id]
            columns = [(c.name, c.type or "") for c in node.columns or ()]
            upstream = [f"{d}={self._key(d)}" for d in sorted(node.depends_on)]
            key = self.keys[node_id] = content_key(
                TYPES_VERSION,
                self.project.dialect,
                node.kind.value,
                node.canonical,
                repr(columns),
                *upstream,
            )
        return key

    def of(self, node_id: str) -> dict[str, str]:
        if not self.enabled:
            return {}
        if node_id in self.known:
            return self.known[node_id]
        project = self.project
        node = project.nodes[node_id]
        dialect = project.dialect
        found: dict[str, str] = {}
        if node.kind is not Kind.MODEL:
            found = {normalize_name(c.name, dialect): c.type for c in node.columns or () if c.type}
        elif node.columns is not None and node_id in project.asts:
            key = self._key(node_id)
            cached = self.cache.get(key)
            if isinstance(cached, dict):
                found = cached
            else:
                found = self._infer(node)
                self.cache.put(key, found)
        self.known[node_id] = found
        return found

    def _infer(self, node: Node) -> dict[str, str]:
        project = self.project
        tables: dict[str, dict[str, dict[str, str]]] = {}
        for dep in node.depends_on:
            upstream = project.nodes[dep]
            known = self.of(dep)
            tables.setdefault(upstream.schema, {})[upstream.name] = {
                normalize_name(c.name, project.dialect): known.get(
                    normalize_name(c.name, project.dialect), "UNKNOWN"
                )
                for c in upstream.columns or ()
            }
        schema: dict[str, object] = dict(tables)
        ast = project.asts[node.id]
        try:
            qualified = qualified_copy(ast, schema, project.dialect)
            typed = annotate_types(
                qualified,
                schema=schema_for_sqlglot(schema, project.dialect),
                dialect=project.dialect,
            )
        except (SqlglotError, KeyError, ValueError, AssertionError, RecursionError):
            return {}  # the types are unknown (see analyze_model)
        outer = outer_select(typed)
        found: dict[str, str] = {}
        if outer is not None:
            for selected in outer.expressions:
                kind = selected.type
                if kind is not None and not kind.is_type(exp.DataType.Type.UNKNOWN):
                    found[normalize_name(selected.alias_or_name, project.dialect)] = kind.sql(
                        project.dialect
                    )
        return found

"""Column lineage: what each output column of a model reads, and what decides its rows.

One walk over the scopes of a model's qualified SQL (sqlglot's `build_scope`) gives, for every
output column, the upstream `(node, column)` pairs it reads and a hash of exactly the SQL that
computes it, through CTEs, subqueries, joins, unions, windows and CASE; and the same for the row set
(filters, join keys, grouping, DISTINCT, QUALIFY, HAVING, LIMIT, set operations). Fingerprints and
change classification are built from these hashes, so a change to a column's SQL is a change to
that column only.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

from sqlops.project.cache import content_key
from sqlops.project.definition import Node
from sqlops.syntax import (
    normalize_name,
    outer_select,
    release,
    selects_star,
    sqlglot_dialect,
    without_positions,
)

Read = tuple[str, str]  # (node id, column name as the dialect folds it)

# Part of the parse cache's keys: change it whenever the walk gives other results for the same SQL
LINEAGE_VERSION = "3"


@dataclass(frozen=True)
class ColumnLineage:
    name: str
    reads: tuple[Read, ...]  # the upstream columns its value is computed from
    code: str  # a hash of the SQL that computes it, its name included
    body: str  # the same without its name: a renamed column keeps its body


@dataclass(frozen=True)
class Lineage:
    columns: tuple[ColumnLineage, ...]  # in output order
    row_reads: tuple[Read, ...]  # the upstream columns that decide which rows there are
    row_code: str  # a hash of the SQL that decides the rows

    def column(self, name: str) -> ColumnLineage | None:
        return next((c for c in self.columns if c.name == name), None)

    def reads(self) -> set[Read]:
        return {r for c in self.columns for r in c.reads} | set(self.row_reads)

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [[c.name, [list(r) for r in c.reads], c.code, c.body] for c in self.columns],
            "row_reads": [list(r) for r in self.row_reads],
            "row_code": self.row_code,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lineage:
        return cls(
            tuple(
                ColumnLineage(name, tuple((a, b) for a, b in reads), code, body)
                for name, reads, code, body in data["columns"]
            ),
            tuple((a, b) for a, b in data["row_reads"]),
            data["row_code"],
        )


@dataclass
class MissingColumn(Exception):
    """A reference to a column its upstream does not have: the user's mistake, not ours."""

    node_id: str  # the upstream node; "" for a CTE or subquery of the same model
    column: str
    written: str  # the reference as written, e.g. `o.amount`
    line: int | None
    col: int | None
    known: tuple[str, ...] = ()  # a CTE's or subquery's columns


class Unknowable(Exception):
    """A construct whose lineage this walk does not follow; callers fall back to the whole model."""


@dataclass(frozen=True)
class _Part:
    code: str
    reads: frozenset[Read]


_Demand = tuple[Scope, str]  # a scope and "rows" or "col" with an index: what it reads
_Work = Generator[_Demand, _Part, _Part]  # yields the demands it needs, returns its part


def column_lineage(
    qualified: exp.Query, output_names: list[str], nodes: dict[str, Node], dialect: str
) -> Lineage:
    """Lineage of a model whose SQL was qualified against its upstream columns.

    Raises `MissingColumn` for a reference to a column an upstream lacks, `Unknowable` otherwise.
    """
    # positions out of the tree, for the errors that name one: the walk prints (and so copies)
    # every column's SQL, and sqlglot deep-copies each node's metadata dict with it (what else
    # is there stays: a dialect's generator may print from it)
    positions: dict[int, dict[str, Any]] = {}
    for node in qualified.walk():
        meta = node._meta
        if meta:
            positions[id(node)] = meta
            node._meta = without_positions(meta)
    root = build_scope(qualified)
    if root is None:
        raise Unknowable("no scope")
    walker = _Walker(root, nodes, dialect, positions)
    columns = []
    for index, name in enumerate(output_names):
        part = walker.column_at(root, index)
        code = short_hash("output", normalize_name(name, dialect), part.code)
        columns.append(
            ColumnLineage(normalize_name(name, dialect), tuple(sorted(part.reads)), code, part.code)
        )
    rows = walker.rows(root)
    return Lineage(tuple(columns), tuple(sorted(rows.reads)), rows.code)


def find_missing_column(
    ast: exp.Expr, nodes: dict[str, Node], dialect: str
) -> MissingColumn | None:
    """The first `alias.column` naming a column its table lacks (qualify stops at these)."""
    root = build_scope(ast.copy())
    if root is None:
        return None
    for scope in root.traverse():
        for column in scope.columns:
            if column.table:
                source = _source(scope, column.table)
            else:  # unqualified: only when there is one table it can come from
                sources = [s for _, s in scope.selected_sources.values()]
                source = sources[0] if len(sources) == 1 else None
                query = scope.expression
                names = query.named_selects if isinstance(query, exp.Query) else []
                own = column.find_ancestor(exp.Alias)
                if column.name in names and not (own is not None and own.alias == column.name):
                    continue  # an alias of the select list, not the one it is computing
            if isinstance(source, exp.Table):
                missing = _missing(source, column, nodes, dialect)
                if missing is not None:
                    return missing
            elif isinstance(source, Scope) and column.table:
                returned = _all_names(source)
                if returned is not None and normalize_name(column.name, dialect) not in {
                    normalize_name(n, dialect) for n in returned
                }:
                    meta = column.this.meta
                    written = column.sql(dialect)
                    return MissingColumn(
                        "", column.name, written, meta.get("line"), meta.get("col"), tuple(returned)
                    )
    return None


def _all_names(scope: Scope) -> list[str] | None:
    """The columns a CTE or subquery returns; None when a `*` leaves them open."""
    query = outer_select(scope.expression)
    if query is None or selects_star(query):
        return None
    return list(query.named_selects)


class _Walker:
    def __init__(
        self,
        root: Scope,
        nodes: dict[str, Node],
        dialect: str,
        positions: dict[int, dict[str, Any]],
    ) -> None:
        self.nodes = nodes
        self.dialect = dialect
        self.positions = positions  # id of a node -> the metadata taken out of it
        self.printer = sqlglot_dialect(dialect)
        self.scopes = list(root.traverse())
        self.owner = {id(c): s for s in self.scopes for c in s.columns}
        self.by_query = {id(s.expression): s for s in self.scopes}
        self.memo: dict[tuple[int, str], _Part] = {}
        self.known: dict[str, frozenset[str]] = {}  # each upstream's folded column names
        self.busy: set[tuple[int, str]] = set()
        # Aliases and CTE names are the user's to choose: SQL is hashed with each source of a
        # scope named by its position instead (s0, s1, ...), so renaming one changes nothing.
        self.source_name: dict[int, str] = {}  # id of a FROM/JOIN table or subquery -> name
        self.cte_refs: set[int] = set()  # the tables among them that name a CTE
        for scope in self.scopes:
            for i, (_, (node, source)) in enumerate(scope.selected_sources.items()):
                self.source_name[id(node)] = f"s{i}"
                if isinstance(node, exp.Table) and isinstance(source, Scope):
                    self.cte_refs.add(id(node))
        # Resolve every column's table first; then rename in place (copying costs more).
        self.source_of = {
            id(c): _source(s, c.table) for s in self.scopes for c in s.columns if c.table
        }
        self._rename()

    def _rename(self) -> None:
        renames = []
        for scope in self.scopes:
            for column in scope.columns:
                if column.table:
                    name = self._column_source(scope, column.table)
                    if name is not None:
                        renames.append((column, name))
        for column, name in renames:
            column.set("table", exp.to_identifier(name))
        for scope in self.scopes:
            for node, _ in scope.selected_sources.values():
                name = self.source_name[id(node)]
                if id(node) in self.cte_refs:
                    node.set("this", exp.to_identifier(name))  # its body is hashed apart
                node.set("alias", exp.TableAlias(this=exp.to_identifier(name)))

    def _demand(self, scope: Scope, key: str) -> _Part:
        """What `key` ("rows", or "col" and an index) of a scope reads, worked out with a stack of
        its own rather than Python's: a chain of hundreds of CTEs, subqueries or unions is a
        chain of demands, and each would otherwise be a few levels of recursion."""
        done = self.memo.get((id(scope), key))
        if done is not None:
            return done
        stack = [self._start(scope, key)]
        answer: _Part | None = None
        while True:
            k, work = stack[-1]
            try:
                # a new one starts with next(); None is no part, so never an answer
                wanted = next(work) if answer is None else work.send(answer)
            except StopIteration as finished:
                stack.pop()
                self.busy.discard(k)
                self.memo[k] = answer = finished.value
                if not stack:
                    return answer
                continue
            answer = self.memo.get((id(wanted[0]), wanted[1]))
            if answer is None:
                stack.append(self._start(*wanted))

    def _start(self, scope: Scope, key: str) -> tuple[tuple[int, str], _Work]:
        k = (id(scope), key)
        if k in self.busy:  # a recursive CTE, or an alias that reads itself
            raise Unknowable("recursion")
        self.busy.add(k)
        work = self._rows(scope) if key == "rows" else self._column_at(scope, int(key[3:]))
        return k, work

    # -- demands: each a generator that yields the demands it needs and returns its part ----------

    def column_at(self, scope: Scope, index: int) -> _Part:
        return self._demand(scope, f"col{index}")

    def rows(self, scope: Scope) -> _Part:
        return self._demand(scope, "rows")

    def _column_at(self, scope: Scope, index: int) -> _Work:
        query = scope.expression
        if isinstance(query, exp.SetOperation):
            if query.args.get("by_name"):
                raise Unknowable("set operation by name")
            parts = yield from self._all([(b, f"col{index}") for b in _branches(scope)])
            return _combine("union column", parts)
        if not isinstance(query, exp.Select) or index >= len(query.expressions):
            raise Unknowable("not a select")
        selected = query.expressions[index]
        if isinstance(selected, exp.Star) or (
            isinstance(selected, exp.Column) and selected.is_star
        ):
            raise Unknowable("unexpanded star")
        body = selected.this if isinstance(selected, exp.Alias) else selected
        return _combine("column", (yield from self._refs(scope, body)), self._sql(body))

    def _column(self, scope: Scope, name: str) -> Generator[_Demand, _Part, _Part]:
        names = self._names(scope)
        folded = normalize_name(name, self.dialect)
        if folded not in names:
            raise Unknowable(f"no column {name}")
        return (yield (scope, f"col{names.index(folded)}"))

    def _names(self, scope: Scope) -> list[str]:
        query = scope.expression
        if not isinstance(query, exp.Query):
            raise Unknowable("not a query")
        return [normalize_name(n, self.dialect) for n in query.named_selects]

    def _rows(self, scope: Scope) -> _Work:
        query = scope.expression
        width = len(self._names(scope))
        if isinstance(query, exp.SetOperation):
            parts = yield from self._all([(b, "rows") for b in _branches(scope)])
            # UNION (distinct), INTERSECT and EXCEPT compare whole rows
            if not isinstance(query, exp.Union) or query.args.get("distinct"):
                parts += yield from self._columns(scope, range(width))
            if _order_decides_rows(query):
                parts += yield from self._columns(scope, self._ordered_outputs(scope))
            return _combine("set rows", parts, type(query).__name__, self._set_shape(query))
        if not isinstance(query, exp.Select):
            raise Unknowable("not a select")
        parts = yield from self._all([(s, "rows") for s in _selected_scopes(scope)])
        skipped = {"expressions", "with", "with_", "from_", "joins"}
        if not _order_decides_rows(query):
            skipped.add("order")  # the order of a table's rows is not part of its data
        for key, value in query.args.items():
            if key in skipped or value is None:
                continue
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, exp.Expr):
                    parts += yield from self._refs(scope, item)
        for join in query.args.get("joins") or []:
            parts += yield from self._refs(scope, join, skip_sources=True)
        from_ = query.args.get("from_")
        if from_ is not None:
            parts += yield from self._refs(scope, from_, skip_sources=True)
        distinct = query.args.get("distinct")
        group = query.args.get("group")
        if distinct is not None and distinct.args.get("on") is None:
            parts += yield from self._columns(scope, range(width))
        elif group is not None and group.args.get("all"):
            grouped = [i for i, s in enumerate(query.expressions) if not _aggregates(s, query)]
            parts += yield from self._columns(scope, grouped)
        # select items named by alias or position in ORDER BY (with a limit) and DISTINCT ON
        if _order_decides_rows(query):
            parts += yield from self._select_refs(scope, query.args["order"])
        if distinct is not None and distinct.args.get("on") is not None:
            parts += yield from self._select_refs(scope, distinct.args["on"])
        # a set-returning function in the select list (unnest) makes rows
        parts += yield from self._columns(
            scope,
            [
                i
                for i, s in enumerate(query.expressions)
                if any(_in_scope(f, query) for f in s.find_all(*_ROW_MAKERS))
            ],
        )
        return _combine("rows", parts, self._row_shape(query))

    def _all(self, demands: Iterable[_Demand]) -> Generator[_Demand, _Part, list[_Part]]:
        parts = []
        for demand in demands:
            parts.append((yield demand))
        return parts

    def _columns(
        self, scope: Scope, indexes: Iterable[int]
    ) -> Generator[_Demand, _Part, list[_Part]]:
        return (yield from self._all([(scope, f"col{i}") for i in indexes]))

    def _select_refs(self, scope: Scope, expr: exp.Expr) -> Generator[_Demand, _Part, list[_Part]]:
        """Select items an ORDER BY or DISTINCT ON names by alias or position: the scope's
        columns do not list those."""
        names = self._names(scope)
        found = []
        keys = expr.expressions if isinstance(expr, exp.Tuple | exp.Order) else [expr]
        for key in keys:
            key = key.this if isinstance(key, exp.Ordered) else key
            if isinstance(key, exp.Literal) and key.is_int and 0 < int(key.this) <= len(names):
                found.append((yield (scope, f"col{int(key.this) - 1}")))
                continue
            for column in key.find_all(exp.Column):
                folded = normalize_name(column.name, self.dialect)
                if not column.table and id(column) not in self.owner and folded in names:
                    found.append((yield (scope, f"col{names.index(folded)}")))
        return found

    # -- references ------------------------------------------------------------------------------

    def _refs(
        self, scope: Scope, expr: exp.Expr, *, skip_sources: bool = False
    ) -> Generator[_Demand, _Part, list[_Part]]:
        """What an expression of this scope reads: its columns, and the subqueries in it."""
        found: list[_Part] = []
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, exp.Query) and node is not scope.expression:
                inner = self.by_query.get(id(node))
                if inner is not None and inner.is_subquery:
                    found.append((yield (inner, "rows")))
                    found += yield from self._columns(inner, range(len(node.named_selects)))
                    continue
                if inner is not None and skip_sources:
                    continue  # a derived table: read through the columns that name it
                if inner is not None:
                    raise Unknowable(f"a {inner.scope_type} scope inside an expression")
            if isinstance(node, exp.Column) and id(node) in self.owner:
                found.append((yield from self._resolve(self.owner[id(node)], node)))
                continue
            stack.extend(node.iter_expressions())
        return found

    def _resolve(self, scope: Scope, column: exp.Column) -> Generator[_Demand, _Part, _Part]:
        name = column.name
        if not column.table:
            names = self._names(scope)
            folded = normalize_name(name, self.dialect)
            if folded in names and (id(scope), f"col{names.index(folded)}") not in self.busy:
                # an alias used in ORDER BY, QUALIFY, ...
                return (yield from self._column(scope, name))
            sources = list(scope.selected_sources.values())
            if len(sources) == 1 and isinstance(sources[0][1], exp.Table):
                missing = _missing(
                    sources[0][1], column, self.nodes, self.dialect, self.positions, self.known
                )
                if missing is not None:
                    raise missing
            raise Unknowable(f"unqualified column {name}")
        source = self.source_of.get(id(column))
        if isinstance(source, Scope):
            return (yield from self._column(source, name))
        if not isinstance(source, exp.Table):
            raise Unknowable(f"unknown table {column.table}")
        node_id = _node_id(source, self.dialect)
        if node_id not in self.nodes:  # a table function or a file read in place
            return _Part(short_hash("table", self._sql(source), name), frozenset())
        missing = _missing(source, column, self.nodes, self.dialect, self.positions, self.known)
        if missing is not None:
            raise missing
        folded = normalize_name(name, self.dialect, column.this.quoted)
        return _Part(short_hash("read", node_id, folded), frozenset({(node_id, folded)}))

    def _sql(self, expr: exp.Expr) -> str:
        # the generator may change what it prints: it prints a copy, freed here at once
        copy = expr.copy()
        try:
            return self.printer.generate(copy, copy=False, comments=False)
        finally:
            release(copy)

    def _ordered_outputs(self, scope: Scope) -> list[int]:
        """The output columns a set operation's ORDER BY sorts on (by name or position)."""
        query = scope.expression
        names = self._names(scope)
        found = []
        for ordered in query.args["order"].expressions:
            key = ordered.this
            if isinstance(key, exp.Literal) and key.is_int and 0 < int(key.this) <= len(names):
                found.append(int(key.this) - 1)
                continue
            for column in key.find_all(exp.Column):
                folded = normalize_name(column.name, self.dialect)
                if folded not in names:
                    raise Unknowable(f"ORDER BY {column.name} of a set operation")
                found.append(names.index(folded))
        return found

    def _column_source(self, scope: Scope, table: str) -> str | None:
        hops = 0
        current: Scope | None = scope
        while current is not None:
            if table in current.selected_sources:
                node = current.selected_sources[table][0]
                name = self.source_name.get(id(node))
                return None if name is None else (f"p{hops}_{name}" if hops else name)
            if table in current.sources:
                return None
            current, hops = current.parent, hops + 1
        return None

    def _set_shape(self, query: exp.SetOperation) -> str:
        """A set operation without its branches: its kind, DISTINCT, ORDER BY with a limit.

        Cut in place and put back, the arguments in their order: copying the query at each of
        its branches would copy a chain of unions over and over.
        """
        saved = dict(query.args)
        query.set("this", None)
        query.set("expression", None)
        if not _order_decides_rows(query):
            query.set("order", None)
        try:
            return self._sql(query)
        finally:
            query.args.clear()
            query.args.update(saved)

    def _row_shape(self, query: exp.Select) -> str:
        """The query without its select list, CTEs and derived tables' bodies: what decides rows.

        Cut in place and put back: copying the query would cost more than printing it.
        """
        saved: list[tuple[exp.Expr, str, Any]] = []

        def cut(node: exp.Expr, key: str, value: Any) -> None:
            saved.append((node, key, node.args.get(key)))
            node.set(key, value)

        distinct = query.args.get("distinct")
        if distinct is None or distinct.args.get("on") is not None:
            cut(query, "expressions", [])
        for key in ("with_", "with"):
            if query.args.get(key) is not None:
                cut(query, key, None)
        if not _order_decides_rows(query):
            cut(query, "order", None)
        for holder in [query.args.get("from_"), *(query.args.get("joins") or [])]:
            sub = holder.this if holder is not None else None
            if isinstance(sub, exp.Subquery):
                cut(holder, "this", exp.to_table(sub.alias_or_name or "_"))
        try:
            return self._sql(query)
        finally:
            for node, key, value in reversed(saved):
                node.set(key, value)


def _branches(scope: Scope) -> list[Scope]:
    branches: list[Scope] = list(getattr(scope, "set_operation_scopes", None) or [])
    if len(branches) != 2:
        raise Unknowable("set operation without two branches")
    return branches


def _selected_scopes(scope: Scope) -> Iterator[Scope]:
    for _, source in scope.selected_sources.values():
        if isinstance(source, Scope):
            yield source


def _source(scope: Scope, table: str) -> exp.Table | Scope | None:
    """A table alias, looked up from the scope outwards (a correlated subquery reads its parent)."""
    current: Scope | None = scope
    while current is not None:
        if table in current.sources:
            found = current.sources[table]
            return found if isinstance(found, (exp.Table, Scope)) else None
        current = current.parent
    return None


def _node_id(table: exp.Table, dialect: str) -> str:
    return f"{normalize_name(table.db, dialect)}.{normalize_name(table.name, dialect)}"


def _missing(
    table: exp.Table,
    column: exp.Column,
    nodes: dict[str, Node],
    dialect: str,
    positions: dict[int, dict[str, Any]] | None = None,
    known: dict[str, frozenset[str]] | None = None,
) -> MissingColumn | None:
    """`known`: each upstream's folded column names, kept by a caller that asks many times."""
    node_id = _node_id(table, dialect)
    node = nodes.get(node_id)
    if node is None or node.columns is None:
        return None
    names = None if known is None else known.get(node_id)
    if names is None:
        names = frozenset(normalize_name(c.name, dialect) for c in node.columns)
        if known is not None:
            known[node_id] = names
    if normalize_name(column.name, dialect, column.this.quoted) in names:
        return None
    meta = column.this.meta if positions is None else positions.get(id(column.this), {})
    return MissingColumn(
        node.id, column.name, column.sql(dialect), meta.get("line"), meta.get("col")
    )


def _aggregates(selected: exp.Expr, query: exp.Select) -> bool:
    """Whether a select item aggregates (GROUP BY ALL groups by the others): an aggregate of
    this query, not of a window or a subquery."""
    return any(
        agg.find_ancestor(exp.Window, exp.Query) is query for agg in selected.find_all(exp.AggFunc)
    )


# functions that return several rows for one when they stand in a select list
_ROW_MAKERS: tuple[type[exp.Expr], ...] = tuple(
    getattr(exp, name)
    for name in ("Unnest", "Explode", "ExplodeOuter", "Posexplode", "PosexplodeOuter", "Inline")
    if hasattr(exp, name)
)


def _in_scope(node: exp.Expr, query: exp.Expr) -> bool:
    """Whether a node belongs to this query, not to a subquery inside it."""
    return node.find_ancestor(exp.Query) is query


def _order_decides_rows(query: exp.Expr) -> bool:
    """ORDER BY decides which rows there are only with LIMIT, OFFSET, FETCH or DISTINCT ON."""
    if query.args.get("order") is None:
        return False
    distinct = query.args.get("distinct")
    on = isinstance(distinct, exp.Distinct) and distinct.args.get("on") is not None
    return on or any(query.args.get(k) for k in ("limit", "offset", "fetch"))


def _combine(kind: str, parts: Iterable[_Part], *texts: str) -> _Part:
    parts = list(parts)
    reads: frozenset[Read] = frozenset().union(*(p.reads for p in parts))
    return _Part(short_hash(kind, *texts, *(p.code for p in parts)), reads)


def short_hash(*parts: str) -> str:
    return content_key(*parts)[:32]  # 128 bits name a piece of SQL well enough

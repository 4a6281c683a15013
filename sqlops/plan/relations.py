"""Which relation each node means in a given build or environment, and SQL compiled against it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from sqlglot import exp

from sqlops.assertions.compile import (
    CompiledAssertion,
    Recorded,
    compile_assertion,
    screen_query,
)
from sqlops.assertions.definition import Assertion
from sqlops.engines.base import Relation
from sqlops.engines.rewrite import expand_stars, for_target
from sqlops.errors import SqlopsError
from sqlops.project.definition import Kind, Node
from sqlops.syntax import table_ref

if TYPE_CHECKING:
    from sqlops.project.loader import Project

PROD = "prod"
SANDBOX_PREFIX = "sqlops__"
_ENV_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_env_name(env: str) -> str:
    if not _ENV_NAME.match(env) or "__" in env:
        raise SqlopsError(
            f"`{env}` is not a valid environment name",
            hint="use lowercase letters, digits and single underscores, starting with a letter "
            "(e.g. dev, ci, alice)",
        )
    return env


def physical_relation(node: Node, fingerprint: str) -> Relation:
    return Relation(f"{SANDBOX_PREFIX}{node.schema}", f"{node.name}__{fingerprint[:12]}")


def env_relation(node: Node, env: str) -> Relation:
    if node.reads_in_place:
        return Relation(node.schema, node.name)
    return env_relation_of(node.id, env)


def env_relation_of(node_id: str, env: str) -> Relation:
    """The view an environment serves a node `schema.name` through."""
    schema, _, name = node_id.partition(".")
    return Relation(schema if env == PROD else f"{schema}__{env}", name)


def versions_read(project: Project, node_ids: Iterable[str]) -> list[str]:
    """The versioned nodes whose relations these nodes' rows come from, through ephemerals."""
    found: list[str] = []
    for node_id in node_ids:
        node = project.nodes[node_id]
        if node.is_versioned:
            found.append(node_id)
        elif node.is_ephemeral:
            found += versions_read(project, node.depends_on)
    return list(dict.fromkeys(found))


class Relations:
    """Compiles models and assertions with every node pointed at its relation here.

    `relation_of` gives the relation of a versioned node (a physical table in a build, a view of
    an environment in `test`); sources are always themselves, ephemeral models are inlined.
    """

    def __init__(
        self,
        project: Project,
        relation_of: Callable[[Node], Relation],
        target_dialect: str,
    ) -> None:
        self.project = project
        self.relation_of = relation_of
        self.target_dialect = target_dialect
        self._inlined: dict[str, exp.Expr] = {}

    def of(self, node: Node) -> exp.Expr:
        if node.reads_in_place:
            return Relation(node.schema, node.name).table()
        if node.is_ephemeral:
            if node.id not in self._inlined:
                self._inlined[node.id] = self.query(node)
            return self._inlined[node.id]
        return self.relation_of(node).table()

    def query(self, node: Node) -> exp.Query:
        """The model's SELECT, reading each upstream node from its relation here.

        Ephemeral upstream models become CTEs at the top of the query, named after the model.
        """
        ast = self.project.ast(node.id)
        if self.target_dialect != self.project.dialect:
            ast = expand_stars(ast, self.project, node)
        assert isinstance(ast, exp.Query)
        inlined: dict[str, exp.Query] = {}
        for table in list(ast.find_all(exp.Table)):
            if not table.args.get("db"):
                continue  # a CTE name: every real table was rewritten to schema.name on load
            upstream = self.project.nodes.get(f"{table.db}.{table.name}")
            if upstream is None:
                continue
            if upstream.is_ephemeral:
                cte = f"__ephemeral__{upstream.schema}__{upstream.name}"
                if cte not in inlined:
                    inlined[cte] = self.query(upstream)
                # a name, never parsed: a model's name may hold any character
                _swap(table, exp.Table(this=exp.to_identifier(cte, quoted=True)))
            else:
                _swap(table, self.of(upstream))
        if inlined:
            ctes = [
                exp.CTE(this=body, alias=exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
                for name, body in inlined.items()
            ]
            existing = ast.args.get("with_")
            if existing is None:
                ast.set("with_", exp.With(expressions=ctes))
            else:
                existing.set("expressions", ctes + list(existing.expressions))
        if self.target_dialect != self.project.dialect:
            for_target(ast, self.target_dialect)
        return ast

    def sql(self, node: Node) -> str:
        return self.query(node).sql(self.target_dialect, pretty=True)

    def relate(self, owner: Node) -> Callable[[exp.Table], exp.Expr]:
        dialect = self.project.dialect

        def relate(table: exp.Table) -> exp.Expr:
            ref = table_ref(table, dialect)
            found = self.project.resolver.find(
                ref, owner.schema if owner.kind is Kind.MODEL else None
            )
            if not isinstance(found, str):  # validated on load; only reachable for odd input
                raise SqlopsError(f"cannot resolve `{ref.written}` in an assertion on {owner.id}")
            return self.of(self.project.nodes[found])

        return relate

    def assertion(
        self, owner: Node, assertion: Assertion, recorded: Recorded | None = None
    ) -> CompiledAssertion:
        """`recorded`: the series prev() and anomaly() of this node compare with."""
        this = None if owner.kind is Kind.TEST else self.of(owner)
        return compile_assertion(
            assertion,
            this,
            self.relate(owner),
            self.project.dialect,
            self.target_dialect,
            recorded,
        )

    def screen(self, owner: Node, checks: Sequence[CompiledAssertion]) -> str:
        """The one query that screens `checks` of `owner` together (compile.screen_query)."""
        return screen_query(self.of(owner), checks, self.project.dialect, self.target_dialect)


def _swap(table: exp.Table, relation: exp.Expr) -> None:
    alias = exp.TableAlias(this=exp.to_identifier(table.alias or table.name))
    if isinstance(relation, exp.Table):
        replacement: exp.Expr = relation.copy()
        replacement.set("alias", alias)
    else:
        replacement = exp.Subquery(this=relation.copy(), alias=alias)
    table.replace(replacement)

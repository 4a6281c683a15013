"""Rewrites a target needs before sqlglot writes a query in its dialect: constructs of the
project's dialect that the target lacks but that mean the same in other words."""

from __future__ import annotations

from sqlglot import exp

# targets without GROUP BY ALL
_NO_GROUP_BY_ALL = frozenset({"postgres"})


def for_target(query: exp.Expr, dialect: str) -> exp.Expr:
    """The query, rewritten in place where `dialect` needs it."""
    if dialect in _NO_GROUP_BY_ALL:
        for select in query.find_all(exp.Select):
            group = select.args.get("group")
            if isinstance(group, exp.Group) and group.args.get("all"):
                _expand_group_by_all(select)
    return query


def _expand_group_by_all(select: exp.Select) -> None:
    """GROUP BY ALL groups by every select item that is not an aggregate: name them by position."""
    positions = [
        exp.Literal.number(i)
        for i, item in enumerate(select.expressions, start=1)
        if not any(_aggregate_of(select, node) for node in item.walk())
        and not isinstance(item.unalias(), exp.Literal)
    ]
    select.set("group", exp.Group(expressions=positions) if positions else None)


def _aggregate_of(select: exp.Select, node: exp.Expr) -> bool:
    """An aggregate of this SELECT: not the function of a window (`sum(x) OVER ()`), and not in
    a subquery. `sum(sum(x)) OVER ()` holds one: the inner sum."""
    if not isinstance(node, exp.AggFunc):
        return False
    outer = node.parent if isinstance(node.parent, exp.Filter) else node
    if isinstance(outer.parent, exp.Window) and outer.parent.this is outer:
        return False
    return node.find_ancestor(exp.Select) is select

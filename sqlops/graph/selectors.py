"""Selectors: `name`, `schema.name`, `+name`, `name+`, `tag:x`, `path:models/marts`, `changed`."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlops.errors import SelectorError, did_you_mean
from sqlops.project.definition import Kind

if TYPE_CHECKING:
    from sqlops.project.loader import Project


def select(
    project: Project,
    include: Sequence[str],
    exclude: Sequence[str] = (),
    changed: set[str] | None = None,
) -> list[str]:
    """Node ids chosen by the selectors, in topological order. No selector means everything.

    `changed` is what the `changed` selector means: the nodes whose code differs from what the
    environment serves (see `impact.against.changed_in_environment`).
    """
    chosen: set[str] = set()
    if include:
        for selector in include:
            chosen |= _one(project, selector, changed)
    else:
        chosen = set(project.nodes)
    for selector in exclude:
        chosen -= _one(project, selector, changed)
    return project.graph.topological(chosen)


def uses_changed(selectors: Sequence[str]) -> bool:
    return any(s.strip().strip("+").strip() == "changed" for s in selectors)


def _one(project: Project, selector: str, changed: set[str] | None) -> set[str]:
    text = selector.strip()
    if not text:
        raise SelectorError("empty selector", hint="e.g. staging.orders, +marts.revenue, tag:daily")
    up = text.startswith("+")
    down = text.endswith("+") and len(text) > 1
    core = text[1 if up else 0 : -1 if down else None].strip()
    if not core:
        raise SelectorError(f"selector `{selector}` names nothing", hint="e.g. +marts.revenue")
    if core == "changed":
        if changed is None:
            raise SelectorError(
                "the `changed` selector needs the environment to compare with",
                hint="use it with build, test or ls",
            )
        base = set(changed)
    else:
        base = _match(project, core, selector)
    found = set(base)
    for node_id in base:
        if up:
            found |= project.graph.ancestors(node_id)
        if down:
            found |= project.graph.descendants(node_id)
    return found


def _match(project: Project, core: str, selector: str) -> set[str]:
    nodes = project.nodes
    if core == "state:modified":
        raise SelectorError(
            "`state:modified` is dbt's name for what sqlops calls `changed`",
            hint="use changed (or changed+ for what is downstream)",
        )
    if core in ("tag:", "path:"):
        raise SelectorError(
            f"selector `{selector}` names no {core[:-1]}", hint="e.g. tag:daily, path:models/marts"
        )
    if core.startswith("tag:"):
        tag = core[4:]
        found = {n.id for n in nodes.values() if tag in n.tags}
        if not found:
            tags = sorted({t for n in nodes.values() for t in n.tags})
            raise SelectorError(
                f"no node has tag `{tag}`{did_you_mean(tag, tags)}",
                hint=f"tags in this project: {', '.join(tags) or '(none)'}",
            )
        return found
    if core.startswith("path:"):
        pattern = core[5:].rstrip("/")
        found = {
            n.id
            for n in nodes.values()
            if n.relpath == pattern
            or n.relpath.startswith(pattern + "/")
            or fnmatch.fnmatch(n.relpath, pattern)
        }
        if not found:
            raise SelectorError(
                f"no file matches `path:{pattern}`",
                hint="paths are relative to the project folder, e.g. path:models/marts",
            )
        return found
    if core.startswith("test:") and core in nodes:
        return {core}
    lowered = core.lower()
    if "." in core:
        schema, _, name = lowered.rpartition(".")
        if "*" in core:
            found = {n.id for n in nodes.values() if fnmatch.fnmatch(n.id, lowered)}
        else:
            found = {n.id for n in nodes.values() if n.schema == schema and n.name == name}
    elif "*" in core:
        found = {n.id for n in nodes.values() if fnmatch.fnmatch(n.name, lowered)}
    else:
        found = {n.id for n in nodes.values() if n.name == lowered and n.kind is not Kind.TEST}
    if not found:
        raise SelectorError(
            f"selector `{selector}` matches nothing{did_you_mean(core, nodes)}",
            hint="use schema.name, a name, +name, name+, tag:x or path:models/...; "
            "`sqlops ls` lists every node",
        )
    return found

"""Change detection and classification: what changed in each node, and how badly.

| class    | what changed                                   | what is rebuilt                        |
| cosmetic | formatting, comments (or SQL that computes the same data) | nothing              |
| metadata | description, tags, owner, assertions           | nothing; changed assertions re-run     |
| additive | only new output columns                        | the model only                         |
| modified | expressions of existing columns                | the model, and readers of those columns|
| breaking | removed, renamed or retyped columns; the rows  | the model and everything downstream    |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlops.impact.definition import ColumnDefinition, Definition


class ChangeClass(Enum):
    COSMETIC = 0
    METADATA = 1
    ADDITIVE = 2
    MODIFIED = 3
    BREAKING = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> ChangeClass:
        return cls[text.strip().upper()]


@dataclass(frozen=True)
class Change:
    node: str
    kind: str
    path: str
    change: ChangeClass
    reasons: tuple[str, ...]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()  # (column, old type, new type)
    modified: tuple[str, ...] = ()
    rows_changed: bool = False
    new: bool = False  # not in the environment (or the ref) yet
    deleted: bool = False  # in the environment (or the ref), no longer in the project
    # the node's columns whose data may differ downstream: what impact walks from
    changed_columns: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.node,
            "kind": self.kind,
            "path": self.path,
            "class": self.change.label,
            "reasons": list(self.reasons),
            "columns": {
                "added": list(self.added),
                "removed": list(self.removed),
                "renamed": [list(r) for r in self.renamed],
                "retyped": [list(r) for r in self.retyped],
                "modified": list(self.modified),
            },
            "rows_changed": self.rows_changed,
            "new": self.new,
            "deleted": self.deleted,
        }


def classify(old: Definition | None, new: Definition | None) -> Change | None:
    """How `new` differs from `old`; None when it does not differ at all."""
    if new is None:
        assert old is not None
        return Change(
            old.node,
            old.kind,
            old.path,
            ChangeClass.BREAKING,
            (f"{old.kind} removed: the environment stops serving it",),
            removed=tuple(c.name for c in old.columns or ()),
            deleted=True,
        )
    if old is None:
        return Change(
            new.node,
            new.kind,
            new.path,
            ChangeClass.ADDITIVE,
            (f"new {new.kind}",),
            added=tuple(c.name for c in new.columns or ()),
            new=True,
        )
    if old == new or (old.text == new.text and old.sql == new.sql):
        return None  # the same file and SQL: what differs comes from upstream, not from here
    if new.materialized == "ephemeral" and old.materialized not in ("", "ephemeral"):
        return Change(
            new.node,
            new.kind,
            new.path,
            ChangeClass.BREAKING,
            (f"materialized {old.materialized} -> ephemeral: the environment stops serving it",),
            removed=tuple(c.name for c in old.columns or ()),
        )
    reasons: list[str] = []
    meta = _metadata_changes(old, new)
    if old.sql == new.sql and old.rows == new.rows and _same_data(old, new):
        if meta:
            return Change(new.node, new.kind, new.path, ChangeClass.METADATA, tuple(meta))
        if old.materialized != new.materialized:
            reason = f"materialized {old.materialized} -> {new.materialized}"
            return Change(new.node, new.kind, new.path, ChangeClass.MODIFIED, (reason,))
        return Change(
            new.node, new.kind, new.path, ChangeClass.COSMETIC, ("formatting or comments only",)
        )

    old_cols = {c.name: c for c in old.columns or ()}
    new_cols = {c.name: c for c in new.columns or ()}
    unknown = old.columns is None or new.columns is None
    removed = [n for n in old_cols if n not in new_cols]
    added = [n for n in new_cols if n not in old_cols]
    renamed: list[tuple[str, str]] = []
    for gone in list(removed):
        body = old_cols[gone].body
        twin = next((a for a in added if body and new_cols[a].body == body), None)
        if twin is not None:
            renamed.append((gone, twin))
            removed.remove(gone)
            added.remove(twin)
    retyped: list[tuple[str, str, str]] = []
    modified: list[str] = []
    for name in new_cols:
        if name not in old_cols:
            continue
        before, after = old_cols[name], new_cols[name]
        same_code = before.code is not None and before.code == after.code
        if same_code:
            continue
        if before.type and after.type and before.type != after.type:
            retyped.append((name, before.type, after.type))
        else:
            modified.append(name)
    rows_changed = old.rows != new.rows or old.rows is None
    if old.kind != "model" and old.columns is not None and new.columns is not None:
        # a source's declaration or a seed's bytes: its data, not a query, changed
        rows_changed = old.rows != new.rows
    if unknown and old.sql != new.sql:
        reasons.append("its lineage is not known: every column counts as changed")
        modified = [n for n in new_cols if n in old_cols and n not in {r[0] for r in retyped}]
    reorder = [n for n in old_cols if n in new_cols] != [n for n in new_cols if n in old_cols]

    for name in removed:
        reasons.append(f"column `{name}` removed")
    for before_name, after_name in renamed:
        reasons.append(f"column `{before_name}` renamed to `{after_name}`")
    for name, before_type, after_type in retyped:
        reasons.append(f"column `{name}` retyped {before_type} -> {after_type}")
    if rows_changed:
        if old.kind == "seed":
            reasons.append("its rows changed")
        elif old.kind == "source":
            reasons.append("its declaration changed")
        else:
            reasons.append(
                "the rows it returns changed (filters, joins, grouping, distinct, limit)"
            )
    for name in modified:
        reasons.append(f"column `{name}` changed")
    for name in added:
        reasons.append(f"column `{name}` added")
    if reorder:
        reasons.append("columns reordered")
    if old.materialized != new.materialized:
        reasons.append(f"materialized {old.materialized} -> {new.materialized}")
    reasons += meta

    if removed or renamed or retyped or (rows_changed and old.kind == "model"):
        change = ChangeClass.BREAKING
    elif modified or rows_changed or reorder or old.materialized != new.materialized:
        change = ChangeClass.MODIFIED
    elif added:
        change = ChangeClass.ADDITIVE
    elif meta:
        change = ChangeClass.METADATA
    else:
        change = ChangeClass.COSMETIC
        reasons.insert(0, "the SQL changed but computes the same columns and rows")
    changed_columns = (
        list(new_cols) if rows_changed else modified + [r[0] for r in retyped] + added
    ) + [r[1] for r in renamed]
    return Change(
        new.node,
        new.kind,
        new.path,
        change,
        tuple(reasons),
        added=tuple(added),
        removed=tuple(removed),
        renamed=tuple(renamed),
        retyped=tuple(retyped),
        modified=tuple(modified),
        rows_changed=rows_changed,
        changed_columns=tuple(dict.fromkeys(changed_columns)),
    )


def detect_changes(old: dict[str, Definition | None], new: dict[str, Definition]) -> list[Change]:
    """Changes of every node in either; `old[n]` is None when its recorded definition is
    unreadable (then the node counts as changed)."""
    changes = []
    for node_id in sorted(set(old) | set(new)):
        before = old.get(node_id)
        after = new.get(node_id)
        if before is None and after is None:  # removed, and never recorded
            changes.append(
                Change(node_id, "node", "", ChangeClass.BREAKING, ("removed",), deleted=True)
            )
            continue
        if node_id in old and before is None and after is not None:
            change: Change | None = Change(
                after.node,
                after.kind,
                after.path,
                ChangeClass.MODIFIED,
                ("the environment has no record of its definition; rebuild to record it",),
                modified=tuple(c.name for c in after.columns or ()),
                changed_columns=tuple(c.name for c in after.columns or ()),
            )
        else:
            change = classify(before, after)
        if change is not None:
            changes.append(change)
    return changes


def _same_data(old: Definition, new: Definition) -> bool:
    def data(columns: tuple[ColumnDefinition, ...] | None) -> object:
        if columns is None:
            return None
        return [(c.name, c.code) for c in columns]

    return data(old.columns) == data(new.columns)


def _metadata_changes(old: Definition, new: Definition) -> list[str]:
    reasons = []
    if old.description != new.description:
        reasons.append("description changed")
    if old.tags != new.tags:
        reasons.append("tags changed")
    if old.owner != new.owner:
        reasons.append("owner changed")
    before, after = set(old.assertions), set(new.assertions)
    for text in sorted(after - before):
        reasons.append(f"assertion added: {text}")
    for text in sorted(before - after):
        reasons.append(f"assertion removed: {text}")
    old_docs = {c.name: c.description for c in old.columns or ()}
    for c in new.columns or ():
        if c.name in old_docs and old_docs[c.name] != c.description:
            reasons.append(f"description of column `{c.name}` changed")
    return reasons

"""A change report: what changed against an environment or a git ref, what that reaches
downstream column by column, and what a build would rebuild; as JSON, Markdown and Mermaid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlops.impact.changes import Change, ChangeClass
from sqlops.impact.downstream import ColumnImpact, column_impact, mermaid

if TYPE_CHECKING:
    from sqlops.project.loader import Project


@dataclass(frozen=True)
class BrokenRead:
    """A model reading a column its upstream no longer has: an error before anything runs."""

    reader: str
    upstream: str
    column: str
    message: str  # `path:line:col: ...`, as the error would print


@dataclass(frozen=True)
class ChangeReport:
    against: str  # "prod", "env dev" or "git main"
    changes: tuple[Change, ...]
    downstream: dict[str, tuple[ColumnImpact, ...]]  # per changed node, the nodes it reaches
    rebuild: tuple[str, ...]  # versions a build would compute
    reuse: tuple[str, ...]  # downstream of a change, yet reused: their inputs did not change
    broken: tuple[BrokenRead, ...] = ()
    edges: tuple[tuple[str, str], ...] = ()

    @property
    def worst(self) -> ChangeClass | None:
        return max((c.change for c in self.changes), key=lambda c: c.value, default=None)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.change.label] = counts.get(change.change.label, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "summary": self.counts(),
            "changes": [
                {
                    **c.to_json(),
                    "downstream": [i.to_json() for i in self.downstream.get(c.node, ())[1:]],
                    "assertions": [
                        a.to_json()
                        for i in self.downstream.get(c.node, ())[:1]
                        for a in i.assertions
                    ],
                }
                for c in self.changes
            ],
            "rebuild": list(self.rebuild),
            "reuse": list(self.reuse),
            "errors": [
                {"model": b.reader, "reads": f"{b.upstream}.{b.column}", "message": b.message}
                for b in self.broken
            ],
        }

    def to_markdown(self) -> str:
        """Fit for a pull-request comment."""
        lines = [f"### sqlops impact against `{self.against}`", ""]
        if not self.changes:
            lines.append("No model changed.")
            if self.rebuild:
                lines += [
                    "",
                    f"**Rebuilt by a build ({len(self.rebuild)}):** " + _names(self.rebuild),
                ]
            return "\n".join(lines) + "\n"
        summary = ", ".join(f"{n} {label}" for label, n in sorted(self.counts().items()))
        lines += [f"{len(self.changes)} changed ({summary}).", ""]
        if self.broken:
            lines += ["**Errors: these models read columns that do not exist**", ""]
            lines += [f"- `{b.reader}` reads `{b.upstream}.{b.column}`" for b in self.broken]
            lines.append("")
        lines += ["| model | change | what changed |", "| --- | --- | --- |"]
        for c in self.changes:
            reasons = "<br>".join(_md(r) for r in c.reasons)
            lines.append(f"| `{c.node}` | **{c.change.label}** | {reasons} |")
        for c in self.changes:
            reached = self.downstream.get(c.node, ())[1:]
            if not reached:
                continue
            lines += [
                "",
                f"<details><summary>Downstream of <code>{c.node}</code>: "
                f"{len(reached)} node(s)</summary>",
                "",
            ]
            lines += [
                "| node | depth | columns | rows | assertions |",
                "| --- | --- | --- | --- | --- |",
            ]
            for i in reached:
                columns = ", ".join(f"`{x}`" for x in i.columns) or "—"
                checks = ", ".join(f"`{_md(_short(a.name))}`" for a in i.assertions) or "—"
                rows = "yes" if i.rows else ""
                lines.append(f"| `{i.node_id}` | {i.depth} | {columns} | {rows} | {checks} |")
            lines += ["", "</details>"]
        lines.append("")
        lines.append(f"**Rebuilt by a build ({len(self.rebuild)}):** " + _names(self.rebuild))
        lines.append("")
        lines.append(f"**Downstream but not rebuilt ({len(self.reuse)}):** " + _names(self.reuse))
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        labels: dict[str, str] = {}
        for c in self.changes:
            labels[c.node] = f"{c.node}<br/>{c.change.label}"
        for impacts in self.downstream.values():
            for i in impacts[1:]:
                columns = ", ".join(i.columns[:4]) + (" ..." if len(i.columns) > 4 else "")
                labels.setdefault(i.node_id, f"{i.node_id}<br/>{columns}" if columns else i.node_id)
        return mermaid(labels, [e for e in self.edges if e[0] in labels and e[1] in labels])


def build_report(
    project: Project,
    against: str,
    changes: list[Change],
    rebuild: list[str],
    broken: tuple[BrokenRead, ...] = (),
) -> ChangeReport:
    """Walk downstream of each change by column lineage, and split what it reaches into what a
    build rebuilds and what it reuses."""
    downstream: dict[str, tuple[ColumnImpact, ...]] = {}
    for change in changes:
        if change.deleted or change.node not in project.nodes:
            continue
        if change.change in (ChangeClass.COSMETIC, ChangeClass.METADATA):
            columns: tuple[str, ...] = ()
            rows = False
        else:
            columns, rows = change.changed_columns, change.rows_changed
        downstream[change.node] = column_impact(project, change.node, columns, rows)
    reached = {i.node_id for impacts in downstream.values() for i in impacts}
    building = set(rebuild)
    reuse = sorted(
        n
        for n in set().union(*(project.graph.descendants(c) for c in downstream))
        if n not in building and project.nodes[n].is_versioned
    )
    return ChangeReport(
        against,
        tuple(changes),
        downstream,
        tuple(project.graph.topological(building & set(project.nodes))),
        tuple(reuse),
        broken,
        tuple((a, b) for a, b in project.graph.edges() if a in reached and b in reached),
    )


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short(text: str, width: int = 50) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _names(ids: tuple[str, ...]) -> str:
    return ", ".join(f"`{n}`" for n in ids) if ids else "none"

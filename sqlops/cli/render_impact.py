"""Terminal, Markdown and JSON views of impact reports: downstream of a model or a column, where a
column comes from, and what the working tree changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.tree import Tree

from sqlops.cli.render import out

if TYPE_CHECKING:
    from sqlops.impact.downstream import ColumnImpact, ImpactReport, Origin
    from sqlops.impact.report import ChangeReport


def impact_tree(report: ImpactReport) -> None:
    root = report.affected[0]
    tree = Tree(_impact_label(root))
    shown: set[str] = {root.node_id}
    by_id = {a.node_id: a for a in report.affected}

    def add(branch: Tree, node_id: str) -> None:
        for child in sorted(report.children(node_id)):
            if child in shown:
                branch.add(f"[dim]{escape(child)} (shown above)[/]")
                continue
            shown.add(child)
            add(branch.add(_impact_label(by_id[child])), child)

    add(tree, root.node_id)
    out.print(tree)
    n = len(report.affected) - 1
    out.print(f"{n} downstream node{'s' if n != 1 else ''} of {escape(report.root)}")


def _impact_label(a: Any) -> str:
    head = f"[bold]{escape(a.node_id)}[/] [dim]{a.kind}, depth {a.depth}, {escape(a.path)}[/]"
    if not a.assertions:
        return head + "  [yellow]no assertions[/]"
    return head + "".join(
        f"\n  • {escape(x.name)}{'' if x.blocking else ' [yellow](warn)[/]'} [dim]{escape(x.location)}[/]"
        for x in a.assertions
    )


def impact_markdown(report: ImpactReport) -> str:
    lines = [f"### Downstream of `{report.root}`", "", "| node | kind | depth | assertions |"]
    lines.append("| --- | --- | --- | --- |")
    for a in report.affected[1:]:
        lines.append(f"| `{a.node_id}` | {a.kind} | {a.depth} | {len(a.assertions)} |")
    return "\n".join(lines) + "\n"


_CLASS_STYLE = {
    "cosmetic": "dim",
    "metadata": "cyan",
    "additive": "green",
    "modified": "yellow",
    "breaking": "bold red",
}


def change_report(report: ChangeReport) -> None:
    if not report.changes:
        out.print(f"No changes against {escape(report.against)}.")
        if report.rebuild:  # new source data, or a partial build that left readers behind
            out.print(
                f"a build rebuilds {len(report.rebuild)}: {escape(', '.join(report.rebuild))}"
            )
        return
    counts = ", ".join(f"{n} {label}" for label, n in sorted(report.counts().items()))
    tree = Tree(f"[bold]Changes against {escape(report.against)}[/]: {counts}")
    for change in report.changes:
        style = _CLASS_STYLE[change.change.label]
        branch = tree.add(
            f"[bold]{escape(change.node)}[/] [{style}]{change.change.label}[/] "
            f"[dim]{escape(change.path)}[/]"
        )
        for reason in change.reasons:
            branch.add(escape(reason))
        reached = report.downstream.get(change.node, ())
        if reached and reached[0].assertions and change.change.value >= 2:
            branch.add(f"[dim]its own checks:[/] {_checks(reached[0].assertions)}")
        for item in reached[1:]:
            branch.add(_column_impact_label(item))
    out.print(tree)
    for broken in report.broken:
        out.print(f"[bold red]error[/] {escape(broken.message)}")
    out.print(
        f"a build rebuilds {len(report.rebuild)}: {escape(', '.join(report.rebuild)) or 'nothing'}"
    )
    if report.reuse:
        out.print(f"downstream but reused (inputs unchanged): {escape(', '.join(report.reuse))}")


def _column_impact_label(item: ColumnImpact) -> str:
    indent = "  " * max(0, item.depth - 1)
    if not item.reads_data:
        what = "its assertions read it"
    elif item.rows:
        what = "rows and every column"
    else:
        what = ", ".join(item.columns)
    text = f"{indent}→ [bold]{escape(item.node_id)}[/] [dim]depth {item.depth}[/] {escape(what)}"
    if item.assertions:
        text += f"\n{indent}  checked by {_checks(item.assertions)}"
    elif item.reads_data:
        text += "  [yellow]no assertion checks it[/]"
    return text


def _checks(assertions: tuple[Any, ...]) -> str:
    return ", ".join(
        f"{escape(short(a.name))}{'' if a.blocking else ' (warn)'} [dim]{escape(a.location)}[/]"
        for a in assertions
    )


def short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def column_impact_tree(node_id: str, column: str, impacts: tuple[ColumnImpact, ...]) -> None:
    root = impacts[0]
    tree = Tree(
        f"[bold]{escape(node_id)}.{escape(column)}[/] [dim]{escape(root.path)}[/]"
        + (f"\n  checked by {_checks(root.assertions)}" if root.assertions else "")
    )
    for item in impacts[1:]:
        tree.add(_column_impact_label(item))
    out.print(tree)
    columns = sum(len(i.columns) for i in impacts[1:])
    out.print(
        f"{len(impacts) - 1} downstream node(s), {columns} column(s) read "
        f"{escape(node_id)}.{escape(column)}"
    )


def column_impact_json(
    node_id: str, column: str, impacts: tuple[ColumnImpact, ...]
) -> dict[str, Any]:
    return {
        "model": node_id,
        "column": column,
        "assertions": [a.to_json() for a in impacts[0].assertions],
        "downstream": [i.to_json() for i in impacts[1:]],
    }


def column_impact_markdown(node_id: str, column: str, impacts: tuple[ColumnImpact, ...]) -> str:
    lines = [f"### Downstream of `{node_id}.{column}`", ""]
    lines += ["| node | depth | columns | rows | assertions |", "| --- | --- | --- | --- | --- |"]
    for i in impacts[1:]:
        cols = ", ".join(f"`{c}`" for c in i.columns) or "—"
        lines.append(
            f"| `{i.node_id}` | {i.depth} | {cols} | {'yes' if i.rows else ''} | "
            f"{len(i.assertions)} |"
        )
    return "\n".join(lines) + "\n"


def column_impact_mermaid(project: Any, impacts: tuple[ColumnImpact, ...]) -> str:
    from sqlops.impact.downstream import mermaid

    labels = {
        i.node_id: i.node_id + (f"<br/>{', '.join(i.columns[:4])}" if i.columns else "")
        for i in impacts
    }
    edges = [(a, b) for a, b in project.graph.edges() if a in labels and b in labels]
    return mermaid(labels, edges, highlight=impacts[0].node_id)


def upstream_tree(project: Any, node_id: str, column: str, origins: tuple[Origin, ...]) -> None:
    tree = Tree(f"[bold]{escape(node_id)}.{escape(column)}[/] comes from")
    for o in origins:
        indent = "  " * max(0, o.depth - 1)
        note = " [dim](decides its rows)[/]" if o.filters else ""
        tree.add(
            f"{indent}← [bold]{escape(o.node_id)}.{escape(o.column)}[/] "
            f"[dim]{o.kind}, depth {o.depth}, {escape(o.path)}[/]{note}"
        )
    if node_id not in project.lineage:
        tree.add("[yellow]its lineage is not known: sqlops cannot follow this SQL[/]")
    out.print(tree)


def upstream_json(
    project: Any, node_id: str, column: str, origins: tuple[Origin, ...]
) -> dict[str, Any]:
    return {
        "model": node_id,
        "column": column,
        "known": node_id in project.lineage,
        "upstream": [
            {
                "id": o.node_id,
                "column": o.column,
                "kind": o.kind,
                "path": o.path,
                "depth": o.depth,
                "decides_rows": o.filters,
            }
            for o in origins
        ],
    }

"""`sqlops impact`: downstream of a model or a column, where a column comes from, and what the
working tree changes. The command's options are parsed in app.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sqlops.errors import SqlopsError

if TYPE_CHECKING:
    from sqlops.project.loader import Project


def run_impact(
    what: str | None,
    changed: bool,
    env: str,
    against: str | None,
    upstream: bool,
    fmt: str,
    fail_on: str | None,
    target: str | None,
    project_dir: Path | None,
    json_out: bool,
) -> None:
    from sqlops.cli import render, render_impact
    from sqlops.cli.app import _load
    from sqlops.impact.changes import ChangeClass
    from sqlops.plan.relations import check_env_name

    if json_out:
        fmt = "json"
    if fmt not in ("tree", "json", "markdown", "mermaid"):
        raise SqlopsError(
            f"unknown format `{fmt}`", hint="use --format tree, json, markdown or mermaid"
        )
    threshold = None
    if fail_on is not None:
        try:
            threshold = ChangeClass.parse(fail_on)
        except KeyError:
            threshold = ChangeClass.COSMETIC
        if threshold is ChangeClass.COSMETIC:
            raise SqlopsError(
                f"--fail-on takes breaking, modified, additive or metadata, not `{fail_on}`",
                hint="e.g. --fail-on breaking",
            )
    check_env_name(env)
    if what is None or changed:
        if what is not None:
            raise SqlopsError(
                "--changed compares the whole working tree; it takes no MODEL",
                hint="leave out MODEL, or leave out --changed",
            )
        if upstream:
            raise SqlopsError("--upstream needs MODEL.COLUMN", hint="e.g. marts.orders.amount")
        _impact_of_changes(project_dir, target, env, against, fmt, threshold)
        return
    for given, option in ((fail_on, "--fail-on"), (against, "--against")):
        if given is not None:
            raise SqlopsError(
                f"{option} applies to the working tree's changes, not to one model",
                hint="leave out MODEL to see what the working tree changes",
            )
    project = _load(project_dir, target)
    node_id, column = _model_column(project, what)
    if upstream:
        from sqlops.impact.downstream import upstream_of

        if column is None:
            raise SqlopsError(
                "--upstream needs a column: MODEL.COLUMN", hint=f"e.g. {node_id}.<column>"
            )
        if fmt not in ("tree", "json"):
            raise SqlopsError(
                f"--upstream prints a tree or JSON, not {fmt}", hint="use --format tree or json"
            )
        origins = upstream_of(project, node_id, column)
        if fmt == "json":
            render.print_json(render_impact.upstream_json(project, node_id, column, origins))
        else:
            render_impact.upstream_tree(project, node_id, column, origins)
        return
    if column is None:
        from sqlops.impact.downstream import downstream_of

        report = downstream_of(project, node_id)
        if fmt == "json":
            render.print_json(report.to_json())
        elif fmt == "mermaid":
            print(report.to_mermaid())
        elif fmt == "markdown":
            print(render_impact.impact_markdown(report))
        else:
            render_impact.impact_tree(report)
        return
    from sqlops.impact.downstream import column_impact

    impacts = column_impact(project, node_id, [column], rows=False)
    if fmt == "json":
        render.print_json(render_impact.column_impact_json(node_id, column, impacts))
    elif fmt == "mermaid":
        print(render_impact.column_impact_mermaid(project, impacts))
    elif fmt == "markdown":
        print(render_impact.column_impact_markdown(node_id, column, impacts))
    else:
        render_impact.column_impact_tree(node_id, column, impacts)


def _impact_of_changes(
    project_dir: Path | None,
    target: str | None,
    env: str,
    against: str | None,
    fmt: str,
    threshold: Any,
) -> None:
    from sqlops.cli import render, render_impact
    from sqlops.cli.app import _engine
    from sqlops.impact.against import against_environment, against_ref
    from sqlops.project.loader import load_project

    project = load_project(project_dir or Path.cwd(), target, strict=False)
    if against is not None:
        report = against_ref(project, against)
    else:
        engine = _engine(project)
        try:
            report = against_environment(project, engine, env)
        finally:
            engine.close()
    if fmt == "json":
        render.print_json(report.to_json())
    elif fmt == "markdown":
        print(report.to_markdown(), end="")
    elif fmt == "mermaid":
        print(report.to_mermaid())
    else:
        render_impact.change_report(report)
    if report.broken:
        raise SqlopsError(
            f"{len(report.broken)} model(s) read columns that do not exist",
            hint="fix the readers listed above, or keep the columns",
        )
    worst = report.worst
    if threshold is not None and worst is not None and worst.value >= threshold.value:
        raise typer.Exit(1)


def _model_column(project: Project, text: str) -> tuple[str, str | None]:
    """`schema.model`, `model`, `schema.model.column` or `model.column`."""
    from sqlops.cli.app import _one_node
    from sqlops.errors import SelectorError, did_you_mean
    from sqlops.syntax import normalize_name

    model, _, column = text.rpartition(".")
    names_a_node = text.lower() in project.nodes or any(
        n.name == text.lower() for n in project.nodes.values()
    )
    model_names = model.lower() in project.nodes or any(
        n.name == model.lower() for n in project.nodes.values()
    )
    if names_a_node or not model or not model_names:
        return _one_node(project, text), None  # a node, or an error that names what was given
    node_id = _one_node(project, model)
    node = project.nodes[node_id]
    names = node.column_names
    if names is None:
        raise SqlopsError(
            f"the columns of {node_id} are not known before it is built",
            hint="give its select items names, or ask about the model: sqlops impact " + node_id,
        )
    folded = {normalize_name(n, project.dialect): n for n in names}
    if normalize_name(column, project.dialect) not in folded:
        raise SelectorError(
            f"{node_id} has no column `{column}`{did_you_mean(column, names)}",
            hint=f"its columns: {', '.join(names)}",
        )
    return node_id, normalize_name(column, project.dialect)

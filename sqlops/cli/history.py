"""`sqlops history` and `sqlops report`: recent runs, one run's results, and DataOps metrics.
The commands' options are parsed in app.py."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from sqlops.errors import SqlopsError
from sqlops.run.results import show_measured, show_value

if TYPE_CHECKING:
    from datetime import datetime

    from sqlops.report.metrics import Failures, Report
    from sqlops.report.runs import CheckRow, Notice, RunDetail, RunRow

_OUTCOME_STYLE = {
    "success": "green",
    "failed": "bold red",
    "error": "bold red",
    "interrupted": "yellow",
    "running": "cyan",
}
_STATUS_STYLE = {
    "built": "green",
    "reused": "cyan",
    "retested": "green",
    "passed": "green",
    "failed": "bold red",
    "error": "bold red",
    "skipped": "yellow",
}
_STATUSES = tuple(_STATUS_STYLE)  # the order counts are listed in
SHOWN = 10  # rows of each table of the terminal report


def show_history(
    run: int | None,
    model: str | None,
    env: str | None,
    status: str | None,
    limit: int,
    target: str | None,
    project_dir: Path | None,
    json_out: bool,
) -> None:
    from sqlops.cli import render
    from sqlops.cli.app import _engine, _load
    from sqlops.plan.relations import check_env_name
    from sqlops.report.runs import HistoryReader, check_status, missing_history, resolve_node

    check_status(status)
    if env is not None:
        check_env_name(env)
    if run is not None and (model or env or status):
        raise SqlopsError(
            "RUN shows one run; --model, --env and --status filter the list of runs",
            hint=f"run `sqlops history {run}` alone, or leave out RUN",
        )
    project = _load(project_dir, target)
    engine = _engine(project)
    try:
        notice = missing_history(engine, project.target.name)
        if notice is None:
            reader = HistoryReader(engine)
            if run is not None:
                detail = reader.run(run)
            else:
                node = resolve_node(model, project.nodes, reader.nodes()) if model else None
                runs = reader.runs(model=node, env=env, status=status, limit=limit)
                known = reader.environments()
    finally:
        engine.close()
    if notice is not None:
        _notice(notice, json_out)
        if json_out:
            render.print_json(None if run is not None else [])
        return
    if run is not None:
        if json_out:
            render.print_json(detail.to_json())
        else:
            _run_detail(detail)
    elif json_out:
        render.print_json([r.to_json() for r in runs])
    else:
        _run_list(runs, node, env, status)
    if run is None and env is not None and env not in known:
        _unknown_env(env, known)


def show_report(
    since: str,
    env: str,
    html: Path | None,
    target: str | None,
    project_dir: Path | None,
    json_out: bool,
) -> None:
    from sqlops.cli import render
    from sqlops.cli.app import _engine, _load
    from sqlops.clock import now
    from sqlops.plan.relations import check_env_name
    from sqlops.report.metrics import build_report
    from sqlops.report.period import parse_since
    from sqlops.report.runs import HistoryReader, missing_history

    check_env_name(env)
    period = parse_since(since, now())
    project = _load(project_dir, target)
    engine = _engine(project)
    try:
        notice = missing_history(engine, project.target.name)
        report = build_report(project, engine, env, period, notice)
        known = [] if notice else HistoryReader(engine).environments()
    finally:
        engine.close()
    if html is not None:
        from sqlops.report.html import write_html

        try:
            write_html(report, project.config.name, html)
        except OSError as exc:
            raise SqlopsError(
                f"cannot write {html}: {exc.strerror or exc}",
                hint="give --html a path in a folder you can write to",
            ) from None
    if notice is not None:
        _notice(notice, json_out)
    if json_out:
        render.print_json(report.to_json())
    else:
        _report(report)
    if notice is None and env not in known:
        _unknown_env(env, known)
    if html is not None:
        shown = render.relative(html)
        shown = str(html.resolve()) if shown.startswith("..") else shown
        render.err.print(f"wrote {escape(shown)}")


def _notice(notice: Notice, to_stderr: bool) -> None:
    from sqlops.cli import render

    console = render.err if to_stderr else render.out
    console.print(f"[yellow]{escape(notice.message)}[/]")
    console.print(f"  [bold]to fix this:[/] {escape(notice.hint)}")


# -- formatting -----------------------------------------------------------------------------------


def _time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment is not None else ""


def _seconds(value: float | None) -> str:
    return f"{value:.2f}s" if value is not None else ""


def _percent(rate: float | None) -> str:
    return f"{rate * 100:.1f}%" if rate is not None else "n/a"


def _hours(value: float | None) -> str:
    return f"{value:.1f} h" if value is not None else "n/a"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[s]} {s}" for s in _STATUSES if counts.get(s))


def _checks(assertions: dict[str, int]) -> str:
    words = (("pass", "passed"), ("fail", "failed"), ("warn", "warned"), ("error", "errored"))
    parts = [f"{assertions.get(k, 0)} {w}" for k, w in words if assertions.get(k) or k == "pass"]
    return ", ".join(parts) if any(assertions.values()) else ""


def _styled(value: str, styles: dict[str, str]) -> str:
    style = styles.get(value)
    return f"[{style}]{escape(value)}[/]" if style else escape(value)


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    return table


# -- sqlops history -------------------------------------------------------------------------------


def _run_list(runs: list[RunRow], node: str | None, env: str | None, status: str | None) -> None:
    from sqlops.cli import render

    if not runs:
        filters = [f"{k} {v}" for k, v in (("model", node), ("env", env), ("status", status)) if v]
        render.out.print("no runs" + (f" match {escape(', '.join(filters))}" if filters else ""))
        return
    columns = ["run", "started (UTC)", "command", "env", "outcome", "nodes", "assertions"]
    if node is not None:
        columns += [escape(node), "took", "rows"]
    columns += ["duration", "user", "commit", "selection"]
    table = _table(*columns)
    for r in runs:
        cells = [
            str(r.id),
            _time(r.started_at),
            escape(r.command),
            escape(r.env),
            _styled(r.outcome, _OUTCOME_STYLE),
            _counts(r.counts),
            _checks(r.assertions),
        ]
        if node is not None:
            n = r.node
            cells += [
                _styled(n.status, _STATUS_STYLE) if n else "",
                _seconds(n.duration) if n else "",
                f"{n.rows:,}" if n and n.rows is not None else "",
            ]
        cells += [
            _seconds(r.duration),
            escape(r.user or ""),
            escape(r.short_commit),
            escape(" ".join(r.selection) or "all"),
        ]
        table.add_row(*cells)
    render.out.print(table)


def _run_detail(detail: RunDetail) -> None:
    from sqlops.cli import render

    r = detail.run
    out = render.out
    out.print(
        f"[bold]run {r.id}[/]: {escape(r.command)} of `{escape(r.env)}` on target "
        f"`{escape(r.target or '')}`: {_styled(r.outcome, _OUTCOME_STYLE)}"
    )
    who = " on ".join(x for x in (r.user, r.host) if x)
    out.print(
        f"started {_time(r.started_at)} UTC"
        + (f", took {_seconds(r.duration)}" if r.duration is not None else "")
        + (f", by {escape(who)}" if who else "")
        + (f", commit {escape(r.git_commit)}" if r.git_commit else "")
        + (f", sqlops {escape(r.sqlops_version)}" if r.sqlops_version else "")
    )
    out.print(f"selection: {escape(' '.join(r.selection) or 'all')} ({r.selected or 0} nodes)")
    if r.deployment_id is not None:
        out.print(f"deployment {r.deployment_id} of `{escape(r.env)}`")
    if r.message:
        out.print(f"[bold red]message:[/] {escape(r.message)}")
    table = _table("node", "kind", "status", "duration", "rows", "message")
    for n in detail.nodes:
        table.add_row(
            escape(n.node),
            escape(n.kind),
            _styled(n.status, _STATUS_STYLE),
            _seconds(n.duration),
            f"{n.rows:,}" if n.rows is not None else "",
            escape(n.message or ""),
        )
    out.print()
    out.print(table)
    out.print(
        f"\n{len(detail.nodes)} nodes: {_counts(r.counts) or 'none'}; "
        f"assertions: {_checks(r.assertions) or 'none'}"
    )
    for check in detail.assertions:
        if check.outcome != "pass":
            _check(check)


def _check(check: CheckRow) -> None:
    from sqlops.cli import render

    out = render.out
    label = {"fail": "[bold red]FAIL[/]", "warn": "[yellow]WARN[/]"}.get(
        check.outcome, "[bold red]ERROR[/]"
    )
    out.print(
        f"\n{label} {escape(check.node)}: {escape(check.name)}  [dim]{escape(check.location)}[/]"
    )
    if check.name != check.check:
        out.print(f"  check: {escape(check.check)}")
    if check.message:
        out.print(f"  {escape(check.message)}")
    if check.measured:  # a table-level check: what it measured says more than "1 of 1"
        measured = show_measured(check.measured)
        out.print(f"  measured: {escape(measured)}")
    elif check.failing is not None and check.outcome != "error":
        of = f" of {check.total:,}" if check.total is not None else ""
        out.print(f"  {check.failing:,}{of} failing")
    if check.samples:
        table = Table(
            *(escape(c) for c in check.sample_columns),
            box=None,
            pad_edge=False,
            header_style="dim",
        )
        for row in check.samples:
            table.add_row(*(escape(show_value(v)) for v in row))
        out.print(table)


# -- sqlops report --------------------------------------------------------------------------------


def _report(report: Report) -> None:
    from sqlops.cli import render

    out = render.out
    p = report.period
    out.print(
        f"[bold]DataOps report[/] of environment `{escape(report.env)}`: "
        f"{p.since:%Y-%m-%d %H:%M} to {p.until:%Y-%m-%d %H:%M} UTC ({p.days:g} days)"
    )
    runs = report.runs.to_json()
    by = runs["by_command"]
    a = report.assertions
    lead = report.lead_time
    dirty = sum(1 for d in report.lead_times if d.dirty)
    cf = report.change_failures
    ttr = report.time_to_restore
    cov = report.coverage
    summary = _table("metric", "value")
    summary.add_row(
        "run success rate",
        f"{_percent(runs['rate'])} ({runs['success']} of {runs['finished']} finished runs); "
        + "; ".join(
            f"{c} {_percent(by[c]['rate'])} ({by[c]['success']} of {by[c]['finished']})"
            for c in ("build", "test")
        ),
    )
    summary.add_row(
        "assertion failure rate",
        f"{_percent(a.rate)} ({a.failed} of {a.results} results: {a.outcomes['fail']} failed, "
        f"{a.outcomes['warn']} warned, {a.outcomes['error']} errored)",
    )
    summary.add_row(
        "production incidents" if report.env == "prod" else "incidents",
        f"{len(report.incidents)} open during the period, {report.incidents_opened} opened in "
        f"it, {len(report.open_incidents)} still open",
    )
    summary.add_row(
        "change failure rate",
        f"{_percent(cf.rate)} ({cf.failed} of {len(cf.attempts)} change attempts)",
    )
    summary.add_row(
        "deployment frequency",
        f"{report.deployments_per_day:.2f} per day, {report.deployments_per_day * 7:.2f} per "
        f"week ({_count(len(report.deployments), 'deployment')})",
    )
    summary.add_row(
        "lead time for changes",
        f"median {_hours(lead.median)}, mean {_hours(lead.mean)} "
        f"({len(lead.values)} deployments"
        + (f", {dirty} from a working tree with uncommitted changes" if dirty else "")
        + ")",
    )
    summary.add_row(
        "time to restore",
        f"median {_hours(ttr.median)}, mean {_hours(ttr.mean)} ({len(ttr.values)} restored, "
        f"{len(report.open_incidents)} still open)",
    )
    summary.add_row("flaky assertions", str(len(report.flaky)))
    summary.add_row(
        "assertion coverage",
        f"models {_percent(cov.model_rate)} ({cov.covered_models} of {len(cov.models)}), "
        f"columns {_percent(cov.column_rate)} ({cov.covered_columns} of {cov.columns})",
    )
    out.print(summary)
    _failures("assertion failures by model", report.by_model, by_check=False)
    _failures("assertion failures by check", report.by_check, by_check=True)
    if report.incidents:
        table = _table("incident", "node", "opened (UTC)", "closed (UTC)", "hours", "reason")
        for i in report.incidents:
            table.add_row(
                str(i.id),
                escape(i.node),
                _time(i.opened_at),
                _time(i.closed_at) if not i.open_at(p.until) else "[bold red]open[/]",
                f"{i.hours(p.until):.1f}",
                escape(i.reason or ""),
            )
        _section("incidents", table, len(report.incidents))
    if report.flaky:
        table = _table("node", "assertion", "flips", "results", "last outcome")
        for f in report.flaky[:SHOWN]:
            table.add_row(
                escape(f.node), escape(f.name), str(f.flips), str(f.runs), escape(f.last_outcome)
            )
        _section("flaky assertions", table, len(report.flaky))
    if report.slowest:
        table = _table("node", "kind", "builds", "p50", "p95")
        for t in report.slowest:
            table.add_row(
                escape(t.node),
                escape(t.kind),
                str(len(t.durations)),
                _seconds(t.p50),
                _seconds(t.p95),
            )
        _section("slowest models (build time)", table, len(report.slowest))
    if cov.without_assertions:
        out.print(f"\n[bold]models without assertions[/] ({len(cov.without_assertions)})")
        out.print("  " + escape(", ".join(cov.without_assertions)))


def _failures(title: str, rows: Iterable[Failures], *, by_check: bool) -> None:
    failing = [f for f in rows if f.failed]
    if not failing:
        return
    table = _table(*(("node", "assertion") if by_check else ("node",)), "rate", "not passed", "of")
    for f in failing[:SHOWN]:
        names = [escape(f.node or "")] + ([escape(f.name or "")] if by_check else [])
        table.add_row(*names, _percent(f.rate), str(f.failed), str(f.results))
    _section(title, table, len(failing))


def _section(title: str, table: Table, total: int) -> None:
    from sqlops.cli import render

    shown = table.row_count
    more = f", {shown} shown" if shown < total else ""
    render.out.print(f"\n[bold]{escape(title)}[/] ({total}{more})")
    render.out.print(table)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _unknown_env(env: str, known: list[str]) -> None:
    """On stderr, so --json stays JSON."""
    from sqlops.cli import render

    render.err.print(
        f"[yellow]note:[/] environment `{escape(env)}` has no runs; environments with runs: "
        f"{escape(', '.join(known)) or 'none'}"
    )

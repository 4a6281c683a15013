"""The report as one self-contained HTML page: inline CSS and SVG charts, no script, no link to
anything outside it. Every name, check, reason and value from the history is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from sqlops import __version__
from sqlops.report import charts

if TYPE_CHECKING:
    from datetime import datetime

    from sqlops.report.metrics import Failures, Report

ROWS = 50  # rows of a long table; the rest are in `sqlops report --json`
OUTCOME_COLORS = {
    "success": "#2e7d32",
    "failed": "#c62828",
    "error": "#6a1b9a",
    "interrupted": "#f9a825",
    "running": "#1565c0",
}
RATE_COLOR = "#d84315"
DEPLOY_COLOR = "#1565c0"
LEAD_COLOR = "#6a1b9a"
INCIDENT_COLORS = ("#c62828", "#ef9a9a")  # still open, closed

Cell = str | tuple[str, str]  # text, or (text, css class)

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 24px auto; max-width: 980px; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 19px; border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; margin: 20px 0 4px; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; width: 100%; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.success, td.pass { color: #2e7d32; font-weight: 600; }
td.failed, td.fail, td.error, td.open { color: #c62828; font-weight: 600; }
td.warn, td.interrupted { color: #a66a00; font-weight: 600; }
.notice { border: 1px solid #f9a825; background: #fff8e1; padding: 8px 12px; }
.note { color: #555; font-size: 13px; }
figure { margin: 8px 0 20px; }
figcaption { color: #555; font-size: 13px; }
svg.chart { max-width: 100%; height: auto; font-family: inherit; }
code { font-size: 13px; }
@media print {
  body { margin: 0; max-width: none; }
  section, figure, table { break-inside: avoid; }
}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _percent(rate: float | None) -> str:
    return f"{rate * 100:.1f}%" if rate is not None else "n/a"


def _hours(value: float | None) -> str:
    return f"{value:.1f} h" if value is not None else "n/a"


def _time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else ""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], empty: str = "none") -> str:
    if not rows:
        return f'<p class="note">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            text, css = cell if isinstance(cell, tuple) else (cell, "")
            cells.append(
                f'<td class="{_e(css)}">{_e(text)}</td>' if css else f"<td>{_e(text)}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _num(value: object) -> tuple[str, str]:
    return (str(value), "num")


def _more(total: int, shown: int, which: str = "") -> str:
    if total <= shown:
        return ""
    return (
        f'<p class="note">{shown}{_e(which)} of {total} shown; `sqlops report --json` lists '
        "all.</p>"
    )


def render_html(report: Report, project: str) -> str:
    p = report.period
    title = f"sqlops DataOps report: {project}, environment {report.env}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Period: {_e(_time(p.since))} to {_e(_time(p.until))} UTC '
        f"({p.days:g} days, <code>--since {_e(p.text)}</code>). Generated "
        f"{_e(_time(report.generated_at))} UTC by sqlops {_e(__version__)}. Times are UTC; "
        "durations of incidents and lead times in hours (h), build times in seconds (s).</p>",
    ]
    if report.notice:
        parts.append(
            f'<p class="notice">{_e(report.notice.message)}. To fix this: '
            f"{_e(report.notice.hint)}.</p>"
        )
    parts += [_summary(report), _trends(report), _details(report)]
    parts.append(
        '<p class="note">Each metric is defined in docs/metrics.md of sqlops. The same numbers: '
        f"<code>sqlops report --since {_e(p.text)} --env {_e(report.env)} --json</code>.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(report: Report, project: str, path: Path) -> None:
    path.write_text(render_html(report, project), encoding="utf-8")


def _summary(report: Report) -> str:
    runs = report.runs.to_json()
    a = report.assertions
    cf = report.change_failures
    lead, ttr = report.lead_time, report.time_to_restore
    cov = report.coverage
    dirty = sum(1 for d in report.lead_times if d.dirty)
    rows: list[Sequence[Cell]] = [
        (
            "Run success rate",
            _percent(runs["rate"]),
            f"{runs['success']} of {runs['finished']} finished runs succeeded",
        ),
        (
            "Assertion failure rate",
            _percent(a.rate),
            f"{a.failed} of {a.results} assertion results did not pass "
            f"({a.outcomes['fail']} failed, {a.outcomes['warn']} warned, "
            f"{a.outcomes['error']} errored)",
        ),
        (
            "Incidents",
            str(len(report.incidents)),
            f"open at some time in the period; {report.incidents_opened} opened in it, "
            f"{len(report.open_incidents)} still open",
        ),
        (
            "Change failure rate",
            _percent(cf.rate),
            f"{cf.failed} of {len(cf.attempts)} change attempts failed or were followed by an "
            "incident",
        ),
        (
            "Deployment frequency",
            f"{report.deployments_per_day:.2f} per day",
            f"{len(report.deployments)} deployment{'' if len(report.deployments) == 1 else 's'}, "
            f"{report.deployments_per_day * 7:.2f} per week",
        ),
        (
            "Lead time for changes",
            _hours(lead.median),
            f"median from commit to deployment; mean {_hours(lead.mean)}, "
            f"{len(lead.values)} deployments"
            + (f", {dirty} from uncommitted changes (-dirty)" if dirty else ""),
        ),
        (
            "Time to restore",
            _hours(ttr.median),
            f"median from incident opened to closed; mean {_hours(ttr.mean)}, "
            f"{len(ttr.values)} restored, {len(report.open_incidents)} still open",
        ),
        ("Flaky assertions", str(len(report.flaky)), "checks that flipped twice or more"),
        (
            "Assertion coverage",
            _percent(cov.model_rate),
            f"{cov.covered_models} of {len(cov.models)} models have an assertion; columns "
            f"{_percent(cov.column_rate)} ({cov.covered_columns} of {cov.columns})",
        ),
    ]
    return "<section><h2>Summary</h2>" + _table(("metric", "value", "what"), rows) + "</section>"


def _trends(report: Report) -> str:
    days = [d.day for d in report.days]
    p = report.period
    outcomes = [o for o in OUTCOME_COLORS if any(d.runs.get(o) for d in report.days)]
    runs = charts.bars(
        "Runs per day by outcome",
        days,
        [
            charts.Series(o, OUTCOME_COLORS[o], tuple(d.runs.get(o, 0) for d in report.days))
            for o in outcomes or ["success"]
        ],
        "runs",
    )
    rate = charts.line(
        "Assertion failure rate per day",
        days,
        charts.Series(
            "assertion results not passing", RATE_COLOR, tuple(d.failure_rate for d in report.days)
        ),
        "failure rate (%)",
    )
    deployments = charts.bars(
        "Deployments per day",
        days,
        [charts.Series("deployments", DEPLOY_COLOR, tuple(d.deployments for d in report.days))],
        "deployments",
    )
    lead = charts.points(
        "Lead time per deployment",
        p.since,
        p.until,
        [
            (d.deployed_at, d.lead_time, f"deployment {d.id}")
            for d in report.lead_times
            if d.lead_time is not None
        ],
        "lead time (hours)",
        LEAD_COLOR,
        "deployment: hours from commit to deployment",
    )
    incidents = charts.spans(
        "Incidents: open from the failing run to the run that found the node green again",
        p.since,
        p.until,
        [
            (
                f"{i.node} (#{i.id})",
                i.opened_at,
                i.closed_at if not i.open_at(p.until) and i.closed_at else p.until,
                i.open_at(p.until),
            )
            for i in report.incidents[:12]
        ],
        INCIDENT_COLORS,
    )
    figures = [
        ("Runs per day, by outcome", runs, "Build and test runs started each day."),
        (
            "Assertion failure rate per day",
            rate,
            "Share of assertion results that did not pass (fail, warn or error); no dot: no "
            "assertion ran that day.",
        ),
        ("Deployments per day", deployments, "Promotions of the environment each day."),
        (
            "Lead time for changes",
            lead,
            "Each dot is a deployment: when it happened, and hours since its commit was made.",
        ),
        (
            "Incidents",
            incidents,
            "Each bar is an incident, from the run that found the node failing to the run that "
            "found it passing again"
            + (f" (first 12 of {len(report.incidents)})." if len(report.incidents) > 12 else "."),
        ),
    ]
    body = "".join(
        f"<figure><h3>{_e(title)}</h3>{svg}<figcaption>{_e(caption)}</figcaption></figure>"
        for title, svg, caption in figures
    )
    return f"<section><h2>Trends</h2>{body}</section>"


def _failures(rows: Sequence[Failures], by_check: bool) -> str:
    failing = [f for f in rows if f.failed]
    headers = ["model", "assertion", "check"] if by_check else ["model"]
    headers += ["failure rate", "not passed", "fail", "warn", "error", "results"]
    cells: list[Sequence[Cell]] = []
    for f in failing[:ROWS]:
        names: list[Cell] = [f.node or ""]
        if by_check:
            names += [f.name or "", f.check or ""]
        cells.append(
            [
                *names,
                _num(_percent(f.rate)),
                _num(f.failed),
                _num(f.outcomes["fail"]),
                _num(f.outcomes["warn"]),
                _num(f.outcomes["error"]),
                _num(f.results),
            ]
        )
    return _table(headers, cells, "every assertion passed") + _more(len(failing), ROWS)


def _details(report: Report) -> str:
    p = report.period
    runs = report.runs.to_json()
    sections = []
    rows: list[Sequence[Cell]] = [
        (
            c,
            _num(runs["by_command"][c]["runs"]),
            _num(runs["by_command"][c]["finished"]),
            _num(runs["by_command"][c]["success"]),
            _num(_percent(runs["by_command"][c]["rate"])),
        )
        for c in ("build", "test")
    ]
    rows.append(
        (
            "all",
            _num(runs["runs"]),
            _num(runs["finished"]),
            _num(runs["success"]),
            _num(_percent(runs["rate"])),
        )
    )
    outcomes = ", ".join(f"{n} {o}" for o, n in runs["by_outcome"].items()) or "no runs"
    sections.append(
        "<h2>Run success rate</h2>"
        + _table(("command", "runs", "finished", "succeeded", "success rate"), rows)
        + f'<p class="note">Runs by outcome: {_e(outcomes)}.</p>'
    )
    sections.append(
        "<h2>Assertion failures</h2><h3>By model, worst first</h3>"
        + _failures(report.by_model, by_check=False)
        + "<h3>By check, worst first</h3>"
        + _failures(report.by_check, by_check=True)
    )
    sections.append(
        "<h2>Incidents</h2>"
        + _table(
            ("incident", "node", "opened (UTC)", "closed (UTC)", "hours", "reason"),
            [
                (
                    _num(i.id),
                    i.node,
                    _time(i.opened_at),
                    ("still open", "open") if i.open_at(p.until) else _time(i.closed_at),
                    _num(f"{i.hours(p.until):.1f}"),
                    i.reason or "",
                )
                for i in report.incidents[-ROWS:]
            ],
            "no incident was open during the period",
        )
        + _more(len(report.incidents), ROWS, " most recent")
    )
    cf = report.change_failures
    attempts = {r.id: r for r in report.runs.runs if r.id in set(cf.attempts)}
    followed = cf.failed_deployments
    rows = []
    failed = [
        r for r in cf.attempts if r in cf.failed_runs or attempts[r].deployment_id in followed
    ]
    for run_id in failed[-ROWS:]:
        run = attempts[run_id]
        why = "did not succeed" if run.outcome != "success" else ""
        if run.deployment_id in followed:
            listed = ", ".join(f"#{i}" for i in followed[run.deployment_id])
            why = f"its deployment was followed by incident {listed}"
        rows.append(
            (
                _num(run_id),
                _time(run.started_at),
                (run.outcome, run.outcome),
                _num(run.deployment_id) if run.deployment_id is not None else "",
                (why, "fail"),
            )
        )
    sections.append(
        "<h2>Change failure rate</h2>"
        f"<p>{_e(_percent(cf.rate))}: {cf.failed} of {len(cf.attempts)} change attempts (builds "
        "that built, re-tested or deployed something, or did not succeed) failed. The failed "
        "ones:</p>"
        + _table(
            ("run", "started (UTC)", "outcome", "deployment", "why it counts as failed"),
            rows,
            "none",
        )
        + _more(len(failed), ROWS, " most recent")
    )
    sections.append(
        "<h2>Deployments and lead time for changes</h2>"
        + _table(
            ("deployment", "deployed (UTC)", "commit", "committed (UTC)", "author", "lead time"),
            [
                (
                    _num(d.id),
                    _time(d.deployed_at),
                    _short_commit(d.git_commit),
                    _time(d.commit_time),
                    d.author or "",
                    _num(_hours(d.lead_time)),
                )
                for d in report.deployments[-ROWS:]
            ],
            "no deployment in the period",
        )
        + _more(len(report.deployments), ROWS, " most recent")
    )
    sections.append(
        "<h2>Time to restore</h2>"
        + _table(
            ("incident", "node", "opened (UTC)", "closed (UTC)", "hours to restore"),
            [
                (
                    _num(i.id),
                    i.node,
                    _time(i.opened_at),
                    _time(i.closed_at),
                    _num(f"{i.hours(p.until):.1f}"),
                )
                for i in report.restored[-ROWS:]
            ],
            "no incident was closed during the period",
        )
        + _more(len(report.restored), ROWS, " most recent")
    )
    sections.append(
        "<h2>Flaky assertions</h2>"
        + _table(
            ("model", "assertion", "check", "flips", "results", "last outcome"),
            [
                (
                    f.node,
                    f.name,
                    f.check,
                    _num(f.flips),
                    _num(f.runs),
                    (f.last_outcome, f.last_outcome),
                )
                for f in report.flaky[:ROWS]
            ],
            "no assertion flipped twice under the same code",
        )
        + _more(len(report.flaky), ROWS)
    )
    sections.append(_coverage(report))
    sections.append(
        "<h2>Slowest models</h2>"
        + _table(
            ("node", "kind", "builds", "p50 (s)", "p95 (s)"),
            [
                (t.node, t.kind, _num(len(t.durations)), _num(f"{t.p50:.3f}"), _num(f"{t.p95:.3f}"))
                for t in report.slowest
            ],
            "nothing was built in the period",
        )
    )
    sections.append(
        "<h2>Day by day</h2>"
        + _table(
            (
                "day (UTC)",
                "runs",
                "assertion results",
                "failure rate",
                "deployments",
                "incidents opened",
            ),
            [
                (
                    f"{d.day:%Y-%m-%d}",
                    ", ".join(f"{n} {o}" for o, n in d.runs.items()),
                    _num(d.assertions),
                    _num(_percent(d.failure_rate)),
                    _num(d.deployments),
                    _num(d.incidents_opened),
                )
                for d in report.days
            ],
        )
    )
    return "".join(f"<section>{s}</section>" for s in sections)


def _coverage(report: Report) -> str:
    cov = report.coverage
    partial = [m for m in cov.models if m.uncovered]
    return (
        "<h2>Assertion coverage</h2>"
        f"<p>Models: {_e(_percent(cov.model_rate))} ({cov.covered_models} of {len(cov.models)} "
        f"have an assertion). Columns: {_e(_percent(cov.column_rate))} ({cov.covered_columns} "
        f"of {cov.columns} known columns are named by an assertion).</p>"
        "<h3>Models without assertions</h3>"
        + (
            f"<p>{_e(', '.join(cov.without_assertions))}</p>"
            if cov.without_assertions
            else '<p class="note">none</p>'
        )
        + "<h3>Columns no assertion names</h3>"
        + _table(
            ("model", "assertions", "columns not named"),
            [(m.node, _num(m.assertions), ", ".join(m.uncovered)) for m in partial[:ROWS]],
            "every known column is named by an assertion",
        )
        + _more(len(partial), ROWS)
    )


def _short_commit(sha: str | None) -> str:
    """12 hex digits name a commit well enough; a -dirty mark stays."""
    if not sha:
        return ""
    head, dirty, _ = sha.partition("-dirty")
    return head[:12] + dirty

"""Turning results into terminal output (rich on a terminal, plain lines otherwise) and JSON."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sqlops.errors import SqlopsError
from sqlops.plan.builder import Action
from sqlops.run.results import (
    NodeResult,
    Outcome,
    RunResult,
    Status,
    show_measured,
    show_value,
)

if TYPE_CHECKING:
    from sqlops.impact.diff import ModelDiff
    from sqlops.plan.builder import Plan


def _console(stderr: bool) -> Console:
    # emoji=False: `:name:` in a check or a value is text, not a picture
    console = Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 400  # piped output: do not fold or cut lines to 80 columns
    return console


out = _console(stderr=False)
err = _console(stderr=True)

_STATUS_STYLE = {
    Status.BUILT: "green",
    Status.REUSED: "cyan",
    Status.RETESTED: "green",
    Status.PASSED: "green",
    Status.FAILED: "bold red",
    Status.ERROR: "bold red",
    Status.SKIPPED: "yellow",
}


def to_jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity: "nan", "inf", "-inf"
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    return value


def print_json(data: Any) -> None:
    print(_json_text(to_jsonable(data)))


# what json gives to `default` goes to it here too (orjson would write these itself)
_ORJSON = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _json_text(value: Any) -> str:
    """JSON indented by two, every character past ASCII (and DEL) escaped. orjson writes it
    in a twentieth of json's time (json indents in Python: a build's report of 1,000 models,
    0.24 MB, 4.8 ms against 0.2 ms); json writes what orjson would write otherwise (those
    characters raw) or not at all (an integer past 64 bits)."""
    with suppress(TypeError):
        text = orjson.dumps(value, default=str, option=_ORJSON).decode("utf-8")
        if text.isascii() and "\x7f" not in text:
            return text
    return json.dumps(value, indent=2, default=str, allow_nan=False)


def relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def error(exc: SqlopsError) -> None:
    where = ""
    if exc.path is not None:
        where = relative(exc.path)
        if exc.line is not None:
            where += f":{exc.line}"
            if exc.column is not None:
                where += f":{exc.column}"
        where += ": "
    err.print(f"[bold red]error:[/] {shown(where)}{shown(exc.message)}")
    if exc.snippet:
        err.print(shown(exc.snippet))
    if exc.hint:
        err.print(f"  [bold]to fix this:[/] {shown(exc.hint)}")


# control characters but newline and tab: what a file or a database may put in a message
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """Text from a project or a database, made safe to print: markup escaped, and control
    characters written as escapes (`\\x1b`), so that none reaches the terminal."""
    return escape(_CONTROL.sub(lambda m: repr(m.group())[1:-1], text))


# -- progress -------------------------------------------------------------------------------------


@contextmanager
def progress(total: int, verb: str) -> Iterator[Any]:
    """A listener for the executor: a live bar on a terminal, one line per node otherwise."""
    if err.is_terminal:
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        task = bar.add_task(verb, total=total)

        def on_event(event: str, node_id: str, result: NodeResult | None) -> None:
            if event == "start":
                bar.update(task, description=f"{verb} {node_id}")
            elif result is not None:
                bar.advance(task)
                _line(result, err)

        with bar:
            yield on_event
    else:
        # the lines of reused versions wait for the next line that is news, the next
        # statement or the run's next wait: a build that reuses 970 of 1,000 models writes
        # them in a few writes, not 970 (each a wait for the GIL while the engine threads work)
        reused: list[NodeResult] = []

        def write_reused() -> None:
            _lines(reused, err)
            reused.clear()

        def plain(event: str, node_id: str, result: NodeResult | None) -> None:
            if event == "done" and result is not None and result.status is Status.REUSED:
                reused.append(result)
            elif event == "done" and result is not None:
                reused.append(result)
                write_reused()
            elif event in ("start", "waiting"):
                write_reused()

        try:
            yield plain
        except BaseException:
            with suppress(Exception):  # a closed pipe must not hide what stopped the run
                write_reused()
            raise
        write_reused()


def _lines(results: Sequence[NodeResult], console: Console) -> None:
    if not results:
        return
    if console.color_system is None:  # no colours to write: rich's markup would only cost
        console.file.write("".join(_plain(result) for result in results))
    else:
        for result in results:
            _line(result, console)


def _detail(result: NodeResult) -> str:
    checks = result.assertions
    passed = sum(a.outcome is Outcome.PASS for a in checks)
    detail = f"{passed}/{len(checks)} assertions" if checks else ""
    if result.rows is not None:
        detail = f"{result.rows:,} rows" + (f", {detail}" if detail else "")
    if result.status is Status.SKIPPED and result.message:
        detail = result.message
    return detail


def _timing(result: NodeResult) -> str:
    return f"{result.duration:.2f}s" if result.duration >= 0.01 else ""


def _plain(result: NodeResult) -> str:
    status, node = result.status.value, result.node_id
    return f"  {status:<8} {node:<40} {_detail(result)}  {_timing(result)}\n"


def _line(result: NodeResult, console: Console) -> None:
    if console.color_system is None:
        console.file.write(_plain(result))
        return
    console.print(
        f"  [{_STATUS_STYLE[result.status]}]{result.status.value:<8}[/] "
        f"{escape(result.node_id):<40} [dim]{escape(_detail(result))}  {_timing(result)}[/]"
    )


# -- build and test -------------------------------------------------------------------------------


def plan(plan: Plan) -> None:
    out.print(f"[bold]Plan for environment `{escape(plan.env)}`[/]")
    if plan.added:
        out.print(
            "  changed upstream of the selection, built and promoted with it: "
            + ", ".join(plan.added)
        )
    table = Table(box=None, pad_edge=False)
    table.add_column("action")
    table.add_column("node")
    table.add_column("relation")
    table.add_column("why", style="dim")
    for step in plan.steps:
        style = "green" if step.action is Action.BUILD else "cyan"
        table.add_row(
            f"[{style}]{step.action.value}[/]",
            escape(step.node_id),
            escape(str(step.physical or "")),
            escape(step.reason),
        )
    out.print(table)
    builds = len(plan.to_build)
    out.print(
        f"{builds} to build, {len(plan.steps) - builds} other steps; nothing was run (--dry-run)"
    )


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "env": plan.env,
        "added": list(plan.added),
        "steps": [
            {
                "id": s.node_id,
                "action": s.action.value,
                "relation": str(s.physical) if s.physical else None,
                "fingerprint": s.fingerprint,
                "reason": s.reason,
            }
            for s in plan.steps
        ],
    }


def run_summary(result: RunResult) -> None:
    for node in result.nodes:
        if node.status is Status.ERROR:
            out.print(
                f"\n[bold red]error[/] in {escape(node.node_id)}"
                + (f" ({escape(node.location)})" if node.location else "")
                + f": {escape(node.message or '')}"
            )
            if node.hint:
                out.print(f"  [bold]to fix this:[/] {escape(node.hint)}")
        for warning in node.warnings:
            out.print(f"[yellow]warning[/] {escape(node.node_id)}: {escape(warning)}")
        for check in node.assertions:
            if check.outcome is Outcome.PASS:
                # "no baseline yet", "training": said once per check the user wrote
                if check.message and not check.assertion.monitor:
                    out.print(
                        f"[dim]note {escape(node.node_id)}: {escape(check.assertion.name)}: "
                        f"{escape(check.message)}[/]"
                    )
                continue
            _assertion(node, check)
    counts = result.counts
    parts = [f"{counts[s.value]} {s.value}" for s in Status if counts[s.value]]
    a = result.assertion_counts
    checks = f"assertions: {a['pass']} passed, {a['fail']} failed, {a['warn']} warned" + (
        f", {a['error']} errored" if a["error"] else ""
    )
    out.print()
    run = f", run {result.run_id}" if result.run_id is not None else ""
    out.print(
        f"[bold]{result.command}[/] {', '.join(parts) or 'nothing to do'}; {checks} "
        f"[dim]({result.duration:.2f}s{run})[/]"
    )
    if result.recovered:
        out.print(f"[green]recovered:[/] {escape(', '.join(result.recovered))}")
    if (
        result.command == "test"
        and result.nodes
        and counts[Status.SKIPPED.value] == len(result.nodes)
    ):
        out.print(
            f"[bold red]nothing was tested:[/] environment `{escape(result.env)}` serves none of "
            f"these nodes; run `sqlops build --env {escape(result.env)}` first"
        )
    if result.command == "build":
        if result.promotion_error:
            outcome = (
                "failed and was rolled back"
                if result.promotion_rolled_back
                else "stopped halfway; the next sqlops command that writes finishes it"
            )
            out.print(
                f"[bold red]not promoted:[/] switching environment `{escape(result.env)}` "
                f"{outcome}: {escape(result.promotion_error)}"
            )
        elif result.up_to_date:
            out.print(f"environment `{escape(result.env)}` already serves these versions")
        elif result.promoted:
            out.print(
                f"[bold green]promoted[/] environment `{escape(result.env)}` "
                f"(deployment {result.deployment_id})"
            )
        else:
            errors = any(n.status is Status.ERROR for n in result.nodes)
            why = "a build step failed" if errors else "a blocking assertion failed"
            out.print(
                f"[bold red]not promoted:[/] environment `{escape(result.env)}` is unchanged "
                f"because {why}"
            )


def _assertion(node: NodeResult, check: Any) -> None:
    a = check.assertion
    label = {
        Outcome.FAIL: "[bold red]FAIL[/]",
        Outcome.WARN: "[yellow]WARN[/]",
        Outcome.ERROR: "[bold red]ERROR[/]",
    }[check.outcome]
    out.print(f"\n{label} {escape(node.node_id)}: {escape(a.name)}  [dim]{escape(a.location)}[/]")
    if a.name != a.text:
        out.print(f"  check: {escape(a.text)}")
    if check.outcome is Outcome.ERROR:
        out.print(f"  the assertion could not be checked: {escape(check.message or '')}")
        return
    if check.message:
        out.print(f"  {escape(check.message)}")
    if check.measured:
        measured = show_measured(check.measured)
        out.print(f"  measured: {escape(measured)}")
    else:
        of = f" of {check.total:,}" if check.total is not None else ""
        tolerated = f" (tolerates {a.tolerate})" if a.tolerate else ""
        rows = "row fails" if check.failing == 1 and not of else "rows fail"
        out.print(f"  {check.failing:,}{of} {rows}{tolerated}")
    if check.samples:
        table = Table(*check.sample_columns, box=None, pad_edge=False, header_style="dim")
        for row in check.samples:
            table.add_row(*(escape(show_value(v)) for v in row))
        out.print(table)
        if check.failing > len(check.samples):
            out.print(f"  [dim]first {len(check.samples)} of {check.failing:,} shown[/]")


def run_json(result: RunResult) -> dict[str, Any]:
    return {
        "command": result.command,
        "env": result.env,
        "ok": result.ok,
        "promoted": result.promoted,
        "up_to_date": result.up_to_date,
        "promotion_error": result.promotion_error,
        "deployment_id": result.deployment_id,
        "run_id": result.run_id,
        "recovered": list(result.recovered),
        "duration": round(result.duration, 3),
        "counts": result.counts,
        "assertion_counts": result.assertion_counts,
        "nodes": [
            {
                "id": n.node_id,
                "action": n.action.value if n.action else None,
                "status": n.status.value,
                "duration": round(n.duration, 3),
                "rows": n.rows,
                "message": n.message,
                "warnings": list(n.warnings),
                "assertions": [
                    {
                        **c.assertion.to_json(),
                        "outcome": c.outcome.value,
                        "failing": c.failing,
                        "total": c.total,
                        "measured": c.measured,
                        "sample_columns": list(c.sample_columns),
                        "samples": [list(r) for r in c.samples],
                        "message": c.message,
                    }
                    for c in n.assertions
                ],
            }
            for n in result.nodes
        ],
    }


# -- diff -----------------------------------------------------------------------------------------


def data_diff(result: ModelDiff) -> None:
    d, s, k = result.data, result.data.schema, result.data.by_key
    env, against = escape(result.env), escape(result.against)
    out.print(
        f"[bold]{escape(result.model)}[/]: {env} [dim]({escape(str(d.env))})[/] against "
        f"{against} [dim]({escape(str(d.against))})[/]"
    )
    if d.key:
        origin = ""
        if result.key_from and result.key_from != "--key":
            origin = f" [dim](from {escape(result.key_from)})[/]"
        out.print(f"key: {escape(', '.join(d.key))}{origin}")
    else:
        out.print(
            "key: none [dim](no --key and no unique() assertion: rows are compared whole, "
            "on the columns both sides have)[/]"
        )
    if s.added or s.removed or s.retyped:
        out.print("\n[bold]columns[/]")
        table = Table(box=None, pad_edge=False, show_header=False)
        for name, type_ in s.added:
            table.add_row("[green]+[/]", escape(name), escape(type_), f"[dim]only in {env}[/]")
        for name, type_ in s.removed:
            table.add_row("[red]-[/]", escape(name), escape(type_), f"[dim]only in {against}[/]")
        for name, before, after in s.retyped:
            table.add_row("[yellow]~[/]", escape(name), escape(f"{before} -> {after}"), "")
        out.print(table)
    change = d.env_rows - d.against_rows
    out.print(
        f"\n[bold]rows[/]: {d.against_rows:,} in {against}, {d.env_rows:,} in {env} ({change:+,})"
    )
    how = "by key" if k is not None else "whole rows: a changed row is one on each side"
    out.print(
        f"  {d.only_in_env.count:,} only in {env}, {d.only_in_against.count:,} only in {against} "
        f"[dim]({how})[/]"
    )
    if k is not None:
        out.print(
            f"  {k.matched:,} matched by key: [bold]{k.changed:,} changed[/], "
            f"{k.matched - k.changed:,} unchanged"
        )
        columns = [f"{escape(c)} {n:,}" for c, n in k.by_column.items() if n]
        if columns:
            out.print(f"  changed values: {', '.join(columns)}")
        _key_warnings(result)
    if d.identical:
        out.print(f"\n[green]no differences[/]: {env} and {against} serve the same rows")
        return
    if k is not None and k.sample:
        table = _diff_table([escape(c) for c in d.key or ()] + ["column", against, env], "fold")
        for row in k.sample:
            for i, (name, before, after) in enumerate(row.changes):
                values = [escape(show_value(v)) if i == 0 else "" for v in row.key]
                table.add_row(
                    *values, escape(name), escape(show_value(before)), escape(show_value(after))
                )
        _shown(f"changed in {env}", len(k.sample), k.changed, table)
    for label, sample in ((env, d.only_in_env), (against, d.only_in_against)):
        if sample.rows:
            table = _diff_table([escape(c) for c in sample.columns], "ellipsis")
            for r in sample.rows:
                table.add_row(*(escape(show_value(v)) for v in r))
            _shown(f"only in {label}", len(sample.rows), sample.count, table)


def _key_warnings(result: ModelDiff) -> None:
    k, env, against = result.data.by_key, escape(result.env), escape(result.against)
    assert k is not None
    for side, keys, rows, nulls in (
        (env, k.duplicate_keys[0], k.duplicate_rows[0], k.null_key_rows[0]),
        (against, k.duplicate_keys[1], k.duplicate_rows[1], k.null_key_rows[1]),
    ):
        if keys:
            out.print(
                f"  [yellow]warning[/]: the key is not unique in {side}: {keys:,} key values "
                f"are held by {rows:,} rows"
            )
        if nulls:
            out.print(
                f"  [yellow]warning[/]: {nulls:,} rows in {side} have a NULL in the key and "
                "were not compared"
            )
    if k.ambiguous:
        out.print(
            f"  [yellow]warning[/]: {k.ambiguous:,} key values are on both sides but not unique, "
            "so their rows could not be paired and were not compared; pass --key with "
            "columns that are unique"
        )
    if k.duplicate_sample:
        names = ", ".join(result.data.key or ())
        shown = "; ".join(
            f"({', '.join(show_value(v) for v in key)}) {e} in {result.env}, {a} in {result.against}"
            for key, e, a in k.duplicate_sample
        )
        out.print(f"  [dim]duplicated ({escape(names)}): {escape(shown)}[/]")


def _diff_table(headers: list[str], overflow: Literal["fold", "ellipsis"]) -> Table:
    """Changed values fold rather than lose the part that changed; whole rows, like `show`, are
    cut to the terminal's width."""
    table = Table(box=None, pad_edge=False, header_style="dim")
    for header in headers:
        table.add_column(header, overflow=overflow)
    return table


def _shown(title: str, shown: int, total: int, table: Table) -> None:
    rows = f"{total:,} row{'s' if total != 1 else ''}"
    more = f", first {shown}" if total > shown else ""
    out.print(f"\n[bold]{title}[/] [dim]({rows}{more})[/]")
    out.print(table)

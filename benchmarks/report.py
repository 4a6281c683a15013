"""Benchmark results as markdown, written into a marked block of docs/benchmarks.md.

Each benchmark owns one block between `<!-- benchmark:NAME:start -->` and
`<!-- benchmark:NAME:end -->`; a run replaces its own block and leaves the rest of the file, the
hand-written text included, as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.measure import Sample, median

if TYPE_CHECKING:
    from benchmarks.run import ImpactResults
    from benchmarks.targets import TargetResults

_HEADER = """\
# Benchmarks

Run them from the repository root with `.venv/bin/python -m benchmarks.run impact --check`;
see `benchmarks/README.md`.
"""


def write_block(path: Path, name: str, block: str) -> None:
    """Put `block` between the markers of `name` in `path`, or at its end if they are not there."""
    start, end = f"<!-- benchmark:{name}:start", f"<!-- benchmark:{name}:end -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else _HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block.strip(), text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block.strip() + "\n"
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def impact_block(results: ImpactResults, impact_target: float, lineage_target: float) -> str:
    """The results of `python -m benchmarks.run impact`, as a marked markdown block."""
    r = results
    p = r.project
    m = r.machine
    off = [float(s.result["load"]) for s in r.load_off if s.result]
    on = [float(s.result["load"]) for s in r.load_on if s.result]
    pairs = [b / a - 1 for a, b in zip(off, on, strict=True)]
    lines = [
        "<!-- benchmark:impact:start (written by `python -m benchmarks.run impact`; "
        "edits inside this block are overwritten) -->",
        "### Results: `sqlops impact` and the cost of column lineage (issue 3)",
        "",
        f"Measured {r.started:%Y-%m-%d %H:%M} UTC on {m['cpu']} ({m['cores']} cores; "
        f"load average {r.load_before} at the start, {r.load_after} at the end), {m['os']}, "
        f"Python {m['python']}, sqlglot {m['sqlglot']} (sqlglotc {m['sqlglotc']}), "
        f"duckdb {m['duckdb']}, sqlops {m['sqlops']} at {r.revision} (sqlops/*.py hash "
        f"`{r.source_before}`).",
        "",
        f"Project: `python -m benchmarks.generate OUT --models {p.models} --rows {p.rows} "
        f"--seed {p.seed}`: {p.models:,} models ({p.staging:,} staging, {p.layers} layers above "
        f"them), 3 raw CSV sources of {p.rows:,} rows, {p.assertions:,} assertions on "
        f"{p.models_with_assertions:,} models. Probe: `{p.probe_model}.{p.probe_column}`, a "
        f"model in the middle layer with {p.probe_descendants} downstream models; the column "
        f"reaches {r.reached} of them, its key `{p.probe_key}` (which decides rows downstream) "
        f"{r.reached_key}.",
        "",
        "| target | measurement | median | range | runs | peak memory (median max RSS) "
        "| target | result |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
        _row(
            "1",
            f"`sqlops impact {p.probe_model}.{p.probe_column} --format json`, warm parse cache",
            r.impact_warm,
            f"< {impact_target:g} s",
            r.impact_passed,
        ),
        _row("", "the same, cold parse cache (cache folder deleted first)", r.impact_cold),
        _row(
            "",
            f"the same for the key, `{p.probe_model}.{p.probe_key}`, warm",
            r.impact_key_warm,
        ),
        _row(
            "2", "cold `load_project(use_cache=False, lineage=False)` (A)", r.load_off, key="load"
        ),
        _row("", "cold `load_project(use_cache=False, lineage=True)` (B)", r.load_on, key="load"),
        f"| | what lineage adds to a cold load: median B / median A - 1 | "
        f"**{_pct(r.lineage_overhead)}** | {_pct(min(pairs))} to {_pct(max(pairs))} per pair | "
        f"{len(pairs)} pairs | "
        f"{_pct(_rss(r.load_on) / _rss(r.load_off) - 1)} (B vs A) "
        f"| < {_pct(lineage_target)} | {_verdict(r.lineage_passed)} |",
        "",
    ]
    if r.source_after != r.source_before:
        lines += [
            f"**Warning: the sqlops code changed during this run** (hash `{r.source_before}` "
            f"at the start, `{r.source_after}` at the end), so these figures mix two versions; "
            "run the benchmark again.",
            "",
        ]
    if r.phases:
        ph = r.phases["phases"]
        if r.phases.get("from_snapshot"):
            how = "The project was loaded whole from its snapshot in the cache folder."
        else:
            how = (
                f"The load had {r.phases['cache_hits']:,} parse-cache hits and "
                f"{r.phases['cache_misses']:,} misses."
            )
        lines += [
            "Where a warm `impact` spends its time (one more process, timers inside it): "
            + ", ".join(f"{_STEPS.get(k, k)} {_secs(v)}" for k, v in ph.items())
            + f"; {_secs(r.phases['wall'])} for the whole process, interpreter start-up "
            f"included. {how}",
            "",
        ]
    walls_off = median([s.wall for s in r.load_off])
    walls_on = median([s.wall for s in r.load_on])
    last = r.load_on[-1].result or {}
    covered, models = last.get("models_with_lineage", 0), last.get("models", 0)
    coverage = (
        f"every one of the {models:,} models got column lineage"
        if covered == models
        else f"only {covered:,} of {models:,} models got column lineage (the others fall back "
        "to whole models, which makes B cheaper than it should be)"
    )
    lines += [
        f"The load processes took {_secs(walls_off)} (A) and {_secs(walls_on)} (B) from start to "
        "exit (median), interpreter start-up and imports included; the figures above are the "
        f"`load_project` call alone. In B, {coverage}.",
        "",
    ]
    if r.check is not None:
        c = r.check
        lines += [
            f"Build check (`--check`): `sqlops build` of a generated {c['models']}-model project "
            f"(same rows and seed) built {c['built']} nodes, {c['assertions_passed']} assertions "
            f"passed and {c['assertions_failed']} failed, in {_secs(c['seconds'])}.",
            "",
        ]
    lines += [
        f"Method: every run is a fresh process. `impact`: one discarded warm-up, then "
        f"{_n(r.cold_repeats, 'cold run')} (parse-cache folder deleted first) interleaved with "
        f"{_n(r.repeats, 'warm run')}, then {_n(r.cold_repeats, 'warm run')} on the key; wall "
        "time from start to exit of the `sqlops` console script. Loads: one discarded warm-up, "
        f"then {_n(r.repeats, 'pair')} interleaved A, B, A, B, ...; the time of the "
        "`load_project` call "
        "inside the process. The machine is shared and noisy, so figures are medians, with the "
        "spread beside them. Peak memory is each process's max RSS (`wait4`). Cold means no "
        "parse cache, not a cold OS file cache.",
        "",
    ]
    for name, title in (
        ("impact", "a warm `sqlops impact MODEL.COLUMN --format json`"),
        ("lineage", "a cold `load_project(use_cache=False, lineage=True)`"),
    ):
        if name in r.profiles:
            lines += _profile(title, r.profiles[name])
    lines.append("<!-- benchmark:impact:end -->")
    return "\n".join(lines) + "\n"


def _profile(title: str, prof: dict[str, Any], top: int = 15) -> list[str]:
    total = float(prof["total"])
    out = [
        f"#### Profile of {title}",
        "",
        f"cProfile, one run: {_secs(total)} under the profiler (which slows Python code down; "
        "read the shares). The sqlops functions with the most cumulative time:",
        "",
        "| function | calls | cumulative | share |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in prof["by_cumulative"][:top]:
        out.append(
            f"| `{row['function']}` | {row['calls']:,} | {_secs(row['cumulative'])} "
            f"| {row['cumulative'] / total:.0%} |"
        )
    out += [
        "",
        "Calls from sqlops into libraries (sqlglot, `copy`, `json`, ...), by call site:",
        "",
        "| sqlops function | calls | library function | cumulative | share |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for row in prof.get("library_calls", [])[:top]:
        out.append(
            f"| `{row['caller']}` | {row['calls']:,} | `{row['callee']}` "
            f"| {_secs(row['cumulative'])} | {row['cumulative'] / total:.0%} |"
        )
    out += [
        "",
        "The functions with the most time of their own (not counting what they call):",
        "",
        "| function | calls | own time | share |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in prof["by_own"][:top]:
        out.append(
            f"| `{row['function']}` | {row['calls']:,} | {_secs(row['own'])} "
            f"| {row['own'] / total:.0%} |"
        )
    out.append("")
    return out


def _row(
    target: str,
    what: str,
    samples: Sequence[Sample],
    goal: str = "",
    passed: bool | None = None,
    key: str | None = None,
) -> str:
    values = (
        [float(s.result[key]) for s in samples if s.result] if key else [s.wall for s in samples]
    )
    rss = median([s.max_rss_mb for s in samples])
    mid = _secs(median(values))
    if passed is not None:
        mid = f"**{mid}**"
    return (
        f"| {target} | {what} | {mid} | {_secs(min(values))} to {_secs(max(values))} "
        f"| {len(values)} | {rss:,.0f} MiB | {goal} | {_verdict(passed)} |"
    )


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return ""
    return "pass" if passed else "**missed**"


def _secs(value: float) -> str:
    if value < 0.001:
        return "<1 ms"
    if value < 0.1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _pct(value: float) -> str:
    return f"{value:+.0%}"


def _rss(samples: Sequence[Sample]) -> float:
    return median([s.max_rss_mb for s in samples])


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


_STEPS = {
    "import": "imports",
    "load_project": "`load_project`",
    "column_impact": "`column_impact`",
    "render_json": "JSON output",
}


def targets_block(results: TargetResults) -> str:
    """The results of `python -m benchmarks.run targets` (issue 6), as a marked markdown block."""
    r = results
    m = r.machine
    lines = [
        "<!-- benchmark:targets:start (written by `python -m benchmarks.run targets`; "
        "edits inside this block are overwritten) -->",
        "### Results: sqlops against raw DuckDB (issue 6)",
        "",
        f"Measured {r.started:%Y-%m-%d %H:%M} UTC on {m['cpu']} ({m['cores']} cores; "
        f"load average {r.load_before} at the start, {r.load_after} at the end), {m['os']}, "
        f"Python {m['python']}, sqlglot {m['sqlglot']}, duckdb {m['duckdb']}, sqlops "
        f"{m['sqlops']} at {r.revision} (sqlops/*.py hash `{r.source_before}`"
        + ("" if r.source_after in ("", r.source_before) else ", **changed during the run**")
        + ").",
        "",
        "Projects (`python -m benchmarks.generate OUT --models N --rows R --seed S`):",
        "",
    ]
    for key, p in r.projects.items():
        lines.append(
            f"- {key}: {p.models:,} models ({p.staging:,} staging, {p.layers} layers above "
            f"them), 3 raw CSV sources of {p.rows:,} rows, {p.assertions:,} assertions on "
            f"{p.models_with_assertions:,} models (seed {p.seed})"
        )
    lines += [
        "",
        "| scenario | sqlops (median) | raw DuckDB (median) | sqlops / raw | runs | "
        "peak memory, sqlops / raw | target | result |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for s in r.scenarios:
        in_mib = s.target is not None and s.target.unit == "MiB"
        values = [x.max_rss_mb if in_mib else s.figure(x) for x in s.sqlops]
        show = (lambda v: f"{v:,.0f} MiB") if in_mib else _secs
        mid = f"{show(median(values))}"
        if len(values) > 1:
            mid += f" ({show(min(values))} to {show(max(values))})"
        raw = ""
        ratio = ""
        if s.raw:
            walls = [x.wall for x in s.raw]
            raw = f"{_secs(median(walls))} ({_secs(min(walls))} to {_secs(max(walls))})"
            ratio = f"{s.sqlops_median / s.raw_median:.2f}x"
        memory = f"{max(x.max_rss_mb for x in s.sqlops):,.0f} MiB"
        if s.raw:
            memory += f" / {max(x.max_rss_mb for x in s.raw):,.0f} MiB"
        if s.target is not None and s.target.unit != "x raw":
            shown = f"{s.value:,.0f} MiB" if s.target.unit == "MiB" else f"{_secs(s.value)}"
        else:
            shown = ratio
        verdict = _verdict(s.passed)
        title = s.title + (f" — {s.note}" if s.note else "")
        lines.append(
            f"| {title} | {mid} | {raw} | {ratio} | {len(s.sqlops)}"
            f"{'+' + str(len(s.raw)) if s.raw else ''} | {memory} | "
            f"{s.target or ''} | {verdict}{' (' + shown + ')' if s.target else ''} |"
        )
    lines += [
        "",
        "Method: each run is a fresh process, timed from start to exit (interpreter start-up, "
        "imports and closing the database included); its peak memory is its max RSS "
        "(`wait4`). sqlops (A) and raw DuckDB (B) runs are interleaved A, B, A, B; figures are "
        "medians with the range beside them. The load figures are the `load_project` call "
        "inside the process (the CLI's own load: cache read and written, lineage on). The raw "
        "baseline (`benchmarks/raw.py`) runs the generated SQL with one DuckDB connection: "
        "`CREATE TABLE ... AS` (`CREATE VIEW` for views, `read_csv` for the sources) in "
        "dependency order, then each assertion as one query, fetched.",
    ]
    for key, value in r.facts.items():
        lines.append(f"\n{key}: {value}")
    for title, prof in r.profiles.items():
        lines += ["", *_profile(title, prof)]
    lines += ["", "<!-- benchmark:targets:end -->"]
    return "\n".join(lines) + "\n"

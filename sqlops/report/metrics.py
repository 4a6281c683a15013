"""DataOps metrics of one environment over a period, computed in Python from the history rows
(records.py) into plain values. Definitions: docs/metrics.md."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from sqlops.report.coverage import Coverage, coverage
from sqlops.report.records import Deployment, History, Incident, Result, Run, read_history

if TYPE_CHECKING:
    from sqlops.engines.base import Engine
    from sqlops.project.loader import Project
    from sqlops.report.period import Period
    from sqlops.report.runs import Notice

SLOWEST = 10  # models listed by p95 build time
FLAKY_FLIPS = 2  # flips of outcome under the same code that make a check flaky


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


@dataclass(frozen=True)
class Hours:
    """A set of durations in hours: how many, their median and mean."""

    values: tuple[float, ...]

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    def to_json(self) -> dict[str, Any]:
        return {"count": len(self.values), "median_hours": self.median, "mean_hours": self.mean}


# -- the metrics ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSuccess:
    """Runs that succeeded out of those that finished (outcome other than running)."""

    runs: tuple[Run, ...]

    def of(self, command: str | None = None) -> dict[str, Any]:
        runs = [r for r in self.runs if command is None or r.command == command]
        finished = [r for r in runs if r.outcome != "running"]
        success = sum(1 for r in finished if r.outcome == "success")
        return {
            "runs": len(runs),
            "finished": len(finished),
            "success": success,
            "rate": _rate(success, len(finished)),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.of(),
            "by_command": {c: self.of(c) for c in ("build", "test")},
            "by_outcome": dict(sorted(Counter(r.outcome for r in self.runs).items())),
        }


@dataclass(frozen=True)
class Failures:
    """Assertion results that did not pass, of one model, one check, or all."""

    node: str | None = None
    name: str | None = None
    check: str | None = None
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def results(self) -> int:
        return sum(self.outcomes.values())

    @property
    def failed(self) -> int:
        return self.results - self.outcomes["pass"]

    @property
    def rate(self) -> float | None:
        return _rate(self.failed, self.results)

    def to_json(self) -> dict[str, Any]:
        where = {"node": self.node, "name": self.name, "check": self.check}
        return {
            **{k: v for k, v in where.items() if v is not None},
            "results": self.results,
            "failed": self.failed,
            "fail": self.outcomes["fail"],
            "warn": self.outcomes["warn"],
            "error": self.outcomes["error"],
            "rate": self.rate,
        }


def assertion_failures(
    results: Sequence[Result],
) -> tuple[Failures, list[Failures], list[Failures]]:
    """All results, by model and by check; models and checks worst first."""
    counted = Counter((r.node, r.name, r.outcome) for r in results)
    texts = {(r.node, r.name): r.check for r in results}
    total = Failures()
    models: dict[str, Failures] = {}
    checks: dict[tuple[str, str], Failures] = {}
    for (node, name, outcome), n in counted.items():
        if node not in models:
            models[node] = Failures(node)
        if (node, name) not in checks:
            checks[node, name] = Failures(node, name, texts[node, name])
        for found in (total, models[node], checks[node, name]):
            found.outcomes[outcome] += n

    def worst(f: Failures) -> tuple[float, int, str, str]:
        return (-(f.rate or 0.0), -f.failed, f.node or "", f.name or "")

    return total, sorted(models.values(), key=worst), sorted(checks.values(), key=worst)


@dataclass(frozen=True)
class ChangeFailures:
    attempts: tuple[int, ...]  # the build runs that tried to change the environment
    failed_runs: tuple[int, ...]  # attempts that did not succeed
    # successful deployments an incident followed before the next one: deployment -> incidents
    failed_deployments: dict[int, tuple[int, ...]]

    @property
    def failed(self) -> int:
        return len(self.failed_runs) + len(self.failed_deployments)

    @property
    def rate(self) -> float | None:
        return _rate(self.failed, len(self.attempts))

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": len(self.attempts),
            "failed": self.failed,
            "rate": self.rate,
            "attempt_runs": list(self.attempts),
            "failed_runs": list(self.failed_runs),
            "failed_deployments": [
                {"deployment": d, "incidents": list(i)} for d, i in self.failed_deployments.items()
            ],
        }


def change_failures(history: History) -> ChangeFailures:
    attempts = [
        r
        for r in history.runs
        if r.command == "build" and (r.changed_something or r.outcome != "success")
    ]
    ordered = list(history.deployments)
    position = {d.id: i for i, d in enumerate(ordered)}
    # a failed build counts as a failed attempt itself: its incidents do not also count against
    # the deployment before it, which it never touched
    failed_builds = {r.id for r in attempts if r.outcome != "success"}
    failed_deployments: dict[int, tuple[int, ...]] = {}
    for run in attempts:
        if run.outcome != "success" or run.deployment_id not in position:
            continue
        i = position[run.deployment_id]
        # time first, then run id: with a fixed clock a deployment and an incident may share a
        # timestamp, and the run ids say which came first
        start = (ordered[i].deployed_at, ordered[i].run_id or 0)
        end = (
            (ordered[i + 1].deployed_at, ordered[i + 1].run_id or 0)
            if i + 1 < len(ordered)
            else None
        )
        after = tuple(
            inc.id
            for inc in history.incidents
            if inc.opened_run not in failed_builds
            and start < (inc.opened_at, inc.opened_run or 0)
            and (end is None or (inc.opened_at, inc.opened_run or 0) < end)
        )
        if after:
            failed_deployments[ordered[i].id] = after
    return ChangeFailures(
        tuple(r.id for r in attempts),
        tuple(r.id for r in attempts if r.outcome != "success"),
        failed_deployments,
    )


@dataclass(frozen=True)
class FlakyCheck:
    node: str
    name: str
    check: str
    flips: int
    runs: int
    last_outcome: str

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "name": self.name,
            "check": self.check,
            "flips": self.flips,
            "runs": self.runs,
            "last_outcome": self.last_outcome,
        }


def flaky_checks(results: Sequence[Result]) -> list[FlakyCheck]:
    """Checks whose outcome flipped between passing and not, under the same code, twice or
    more; most flips first."""
    series: dict[tuple[str, str], list[Result]] = {}
    for r in results:  # already in run order
        series.setdefault((r.node, r.name), []).append(r)
    found = []
    for (node, name), seen in series.items():
        flips = sum(
            1
            for before, after in pairwise(seen)
            if before.code_hash == after.code_hash
            and (before.outcome == "pass") != (after.outcome == "pass")
        )
        if flips >= FLAKY_FLIPS:
            found.append(FlakyCheck(node, name, seen[-1].check, flips, len(seen), seen[-1].outcome))
    return sorted(found, key=lambda f: (-f.flips, f.node, f.name))


@dataclass(frozen=True)
class Timing:
    node: str
    kind: str
    durations: tuple[float, ...]  # sorted

    @property
    def p50(self) -> float:
        return nearest_rank(self.durations, 50)

    @property
    def p95(self) -> float:
        return nearest_rank(self.durations, 95)

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "kind": self.kind,
            "n": len(self.durations),
            "p50": self.p50,
            "p95": self.p95,
        }


def nearest_rank(ordered: Sequence[float], percent: int) -> float:
    """The value at rank ceil(percent/100 * n) of sorted values (1-based)."""
    rank = -(-percent * len(ordered) // 100)
    return ordered[max(rank, 1) - 1]


def slowest(built: Sequence[tuple[str, str, float]]) -> list[Timing]:
    by_node: dict[str, list[float]] = {}
    kinds: dict[str, str] = {}
    for node, kind, seconds in built:
        by_node.setdefault(node, []).append(seconds)
        kinds[node] = kind
    timings = [Timing(n, kinds[n], tuple(sorted(v))) for n, v in by_node.items()]
    return sorted(timings, key=lambda t: (-t.p95, -t.p50, t.node))[:SLOWEST]


@dataclass(frozen=True)
class Day:
    day: date
    runs: dict[str, int]  # outcome -> runs started that day
    assertions: int
    failed_assertions: int
    deployments: int
    incidents_opened: int

    @property
    def failure_rate(self) -> float | None:
        return _rate(self.failed_assertions, self.assertions)

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.day,
            "runs": self.runs,
            "assertions": self.assertions,
            "failed_assertions": self.failed_assertions,
            "failure_rate": self.failure_rate,
            "deployments": self.deployments,
            "incidents_opened": self.incidents_opened,
        }


def days(history: History, period: Period) -> list[Day]:
    started = {r.id: r.started_at.date() for r in history.runs}
    runs: dict[date, Counter[str]] = {}
    for r in history.runs:
        runs.setdefault(r.started_at.date(), Counter())[r.outcome] += 1
    checked = Counter(started[r.run_id] for r in history.results)
    failed = Counter(started[r.run_id] for r in history.results if r.outcome != "pass")
    deployed = Counter(d.deployed_at.date() for d in history.deployments if d.deployed_at in period)
    opened = Counter(i.opened_at.date() for i in history.incidents if i.opened_at in period)
    return [
        Day(
            day,
            dict(sorted(runs.get(day, Counter()).items())),
            checked[day],
            failed[day],
            deployed[day],
            opened[day],
        )
        for day in period.dates()
    ]


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    env: str
    period: Period
    generated_at: datetime
    runs: RunSuccess
    assertions: Failures  # every result of the period
    by_model: tuple[Failures, ...]  # worst first
    by_check: tuple[Failures, ...]
    incidents: tuple[Incident, ...]  # open at some moment of the period
    deployments: tuple[Deployment, ...]  # of the period
    change_failures: ChangeFailures
    flaky: tuple[FlakyCheck, ...]
    coverage: Coverage
    slowest: tuple[Timing, ...]
    days: tuple[Day, ...]
    notice: Notice | None = None  # why there is no history

    @property
    def deployments_per_day(self) -> float:
        return len(self.deployments) / self.period.days

    @property
    def lead_times(self) -> tuple[Deployment, ...]:
        """The period's deployments whose commit time is known."""
        return tuple(d for d in self.deployments if d.commit_time is not None)

    @property
    def lead_time(self) -> Hours:
        return Hours(tuple(d.lead_time for d in self.lead_times if d.lead_time is not None))

    @property
    def incidents_opened(self) -> int:
        return sum(1 for i in self.incidents if i.opened_at in self.period)

    @property
    def open_incidents(self) -> tuple[Incident, ...]:
        return tuple(i for i in self.incidents if i.open_at(self.period.until))

    @property
    def restored(self) -> tuple[Incident, ...]:
        """Incidents closed during the period."""
        return tuple(
            i for i in self.incidents if i.closed_at is not None and i.closed_at in self.period
        )

    @property
    def time_to_restore(self) -> Hours:
        return Hours(tuple(i.hours(self.period.until) for i in self.restored))

    def to_json(self) -> dict[str, Any]:
        until = self.period.until
        lead = self.lead_times
        return {
            "env": self.env,
            "period": self.period.to_json(),
            "generated_at": self.generated_at,
            "notice": {"message": self.notice.message, "hint": self.notice.hint}
            if self.notice
            else None,
            "run_success": self.runs.to_json(),
            "assertion_failures": {
                **self.assertions.to_json(),
                "by_model": [f.to_json() for f in self.by_model],
                "by_check": [f.to_json() for f in self.by_check],
            },
            "incidents": {
                "count": len(self.incidents),
                "opened": self.incidents_opened,
                "open_now": len(self.open_incidents),
                "incidents": [i.to_json(until) for i in self.incidents],
            },
            "deployment_frequency": {
                "deployments": len(self.deployments),
                "days": self.period.days,
                "per_day": self.deployments_per_day,
                "per_week": self.deployments_per_day * 7,
            },
            "lead_time": {
                **self.lead_time.to_json(),
                "dirty": sum(1 for d in lead if d.dirty),
                "without_commit_time": len(self.deployments) - len(lead),
                "deployments": [d.to_json() for d in lead],
            },
            "change_failure_rate": self.change_failures.to_json(),
            "time_to_restore": {
                **self.time_to_restore.to_json(),
                "still_open": len(self.open_incidents),
                "incidents": [
                    {"id": i.id, "node": i.node, "hours": i.hours(until)} for i in self.restored
                ],
            },
            "flaky_assertions": [f.to_json() for f in self.flaky],
            "coverage": self.coverage.to_json(),
            "slowest_models": [t.to_json() for t in self.slowest],
            "trends": {
                "days": [d.to_json() for d in self.days],
                "lead_times": [
                    {"deployment": d.id, "deployed_at": d.deployed_at, "hours": d.lead_time}
                    for d in lead
                ],
            },
        }


def build_report(
    project: Project,
    engine: Engine,
    env: str,
    period: Period,
    notice: Notice | None = None,
) -> Report:
    """The report of `env` over `period`; with a notice (no history), coverage only."""
    history = History() if notice else read_history(engine, env, period)
    total, by_model, by_check = assertion_failures(history.results)
    return Report(
        env=env,
        period=period,
        generated_at=period.until,
        runs=RunSuccess(history.runs),
        assertions=total,
        by_model=tuple(by_model),
        by_check=tuple(by_check),
        incidents=history.incidents,
        deployments=tuple(d for d in history.deployments if d.deployed_at in period),
        change_failures=change_failures(history),
        flaky=tuple(flaky_checks(history.results)),
        coverage=coverage(project),
        slowest=tuple(slowest(history.built)),
        days=tuple(days(history, period)),
        notice=notice,
    )

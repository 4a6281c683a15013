"""The rows of one environment's history that a report reads: one query per table, for the
runs of a period and what they did, its deployments and its incidents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlops.report.runs import loads
from sqlops.state.store import StateStore

if TYPE_CHECKING:
    from sqlops.engines.base import Engine
    from sqlops.report.period import Period


def hours_between(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 3600


@dataclass(frozen=True)
class Run:
    id: int
    command: str
    started_at: datetime
    outcome: str
    deployment_id: int | None
    counts: dict[str, int]

    @property
    def changed_something(self) -> bool:
        """Built or re-tested a node, or deployed: a change attempt, if it also is a build."""
        built = self.counts.get("built", 0) + self.counts.get("retested", 0)
        return built > 0 or self.deployment_id is not None


@dataclass(frozen=True)
class Result:
    """One assertion result of a run of the period."""

    run_id: int
    node: str
    name: str
    check: str
    outcome: str  # pass, fail, warn or error
    code_hash: str | None


@dataclass(frozen=True)
class Deployment:
    id: int
    deployed_at: datetime
    git_commit: str | None
    commit_time: datetime | None
    author: str | None
    run_id: int | None

    @property
    def lead_time(self) -> float | None:
        """Hours from the commit to this deployment."""
        return hours_between(self.deployed_at, self.commit_time) if self.commit_time else None

    @property
    def dirty(self) -> bool:
        return bool(self.git_commit and self.git_commit.endswith("-dirty"))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "deployed_at": self.deployed_at,
            "git_commit": self.git_commit,
            "commit_time": self.commit_time,
            "author": self.author,
            "run_id": self.run_id,
            "lead_time_hours": self.lead_time,
            "dirty": self.dirty,
        }


@dataclass(frozen=True)
class Incident:
    id: int
    node: str
    reason: str | None
    opened_at: datetime
    opened_run: int | None
    closed_at: datetime | None
    closed_run: int | None

    def open_at(self, moment: datetime) -> bool:
        return self.closed_at is None or self.closed_at > moment

    def hours(self, until: datetime) -> float:
        """How long it was open, or has been so far."""
        closed = self.closed_at
        end = closed if closed is not None and closed <= until else until
        return hours_between(end, self.opened_at)

    def to_json(self, until: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "reason": self.reason,
            "opened_at": self.opened_at,
            "opened_run": self.opened_run,
            "closed_at": self.closed_at,
            "closed_run": self.closed_run,
            "open": self.open_at(until),
            "hours": self.hours(until),
        }


@dataclass(frozen=True)
class History:
    """The rows of one environment's history that a report of a period reads."""

    runs: tuple[Run, ...] = ()  # started in the period, in order
    results: tuple[Result, ...] = ()  # of those runs, in run order
    built: tuple[tuple[str, str, float], ...] = ()  # (node, kind, seconds) built by its builds
    deployments: tuple[Deployment, ...] = ()  # since the period started, in order
    incidents: tuple[Incident, ...] = ()  # open at some moment of the period


def read_history(engine: Engine, env: str, period: Period) -> History:
    """One query per table; timestamps are compared in the database, the rest is Python."""
    store = StateStore(engine)
    t, engine = store._t, store.engine
    during = (env, period.since, period.until)
    in_period = "r.env = ? AND r.started_at >= ? AND r.started_at <= ?"
    runs = tuple(
        Run(int(i), str(c), s, str(o), d, {str(k): int(v) for k, v in loads(n, {}).items()})
        for i, c, s, o, d, n in engine.query(
            "SELECT r.id, r.command, r.started_at, r.outcome, r.deployment_id, r.counts "
            f"FROM {t('runs')} r WHERE {in_period} ORDER BY r.started_at, r.id",
            during,
        ).rows
    )
    results = tuple(
        Result(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), row[5])
        for row in engine.query(
            "SELECT a.run_id, a.node, a.name, a.check_text, a.outcome, a.code_hash "
            f"FROM {t('assertion_results')} a JOIN {t('runs')} r ON r.id = a.run_id "
            f"WHERE {in_period} ORDER BY r.started_at, r.id, a.node, a.name",
            during,
        ).rows
    )
    built = tuple(
        (str(node), str(kind), float(seconds))
        for node, kind, seconds in engine.query(
            f"SELECT n.node, n.kind, n.duration FROM {t('node_results')} n "
            f"JOIN {t('runs')} r ON r.id = n.run_id WHERE {in_period} AND r.command = 'build' "
            "AND n.status = 'built' AND n.duration IS NOT NULL",
            during,
        ).rows
    )
    # from the period's start on, without an end: the deployment after the last one of the
    # period bounds the incidents that count against it
    deployments = tuple(
        Deployment(int(row[0]), *row[1:])
        for row in engine.query(
            "SELECT id, deployed_at, git_commit, commit_time, author, run_id "
            f"FROM {t('deployments')} WHERE env = ? AND deployed_at >= ? ORDER BY deployed_at, id",
            (env, period.since),
        ).rows
    )
    incidents = tuple(
        Incident(int(row[0]), *row[1:])
        for row in engine.query(
            "SELECT id, node, reason, opened_at, opened_run, closed_at, closed_run "
            f"FROM {t('incidents')} WHERE env = ? AND opened_at <= ? "
            "AND (closed_at IS NULL OR closed_at >= ?) ORDER BY opened_at, id",
            (env, period.until, period.since),
        ).rows
    )
    return History(runs, results, built, deployments, incidents)

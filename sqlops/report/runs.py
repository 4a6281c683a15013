"""Reading the run history for `sqlops history`: recent runs, and what one run did."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlops.errors import SqlopsError, did_you_mean
from sqlops.state.store import SCHEMA_VERSION, StateStore

if TYPE_CHECKING:
    from sqlops.engines.base import Engine

HISTORY_VERSION = SCHEMA_VERSION  # history as this sqlops reads it (see state/store.py)
OUTCOMES = ("success", "failed", "error", "interrupted", "running")

_RUN_COLUMNS = (
    "id, command, env, target, started_at, finished_at, duration, user_name, host, selection, "
    "selected, git_commit, outcome, deployment_id, counts, message, sqlops_version"
)


@dataclass(frozen=True)
class Notice:
    """Why there is no history to show, and what to do about it. Not an error."""

    message: str
    hint: str


def missing_history(engine: Engine, target: str) -> Notice | None:
    """A notice when the target holds no history (nothing built yet, or older state)."""
    store = StateStore(engine)
    if not store.exists():
        return Notice(
            f"no run history yet: nothing has been built on target `{target}`",
            "run `sqlops build`; every build and test run is recorded from then on",
        )
    if store.version < HISTORY_VERSION:
        kept = "kept no run history" if store.version < 3 else "kept it in an older layout"
        return Notice(
            f"the state on target `{target}` was written by an older sqlops (state version "
            f"{store.version}), which {kept}",
            "run `sqlops build` once: it upgrades the state, and every build and test run is "
            "recorded from then on",
        )
    return None


def check_status(status: str | None) -> None:
    if status is not None and status not in OUTCOMES:
        raise SqlopsError(
            f"unknown status `{status}`{did_you_mean(status, OUTCOMES)}",
            hint="use --status " + ", ".join(OUTCOMES[:-1]) + " or " + OUTCOMES[-1],
        )


@dataclass(frozen=True)
class NodeRow:
    """What one node did in one run."""

    run_id: int
    node: str
    kind: str
    action: str | None
    status: str
    fingerprint: str | None
    duration: float | None
    rows: int | None
    message: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "kind": self.kind,
            "action": self.action,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "duration": self.duration,
            "rows": self.rows,
            "message": self.message,
        }


@dataclass(frozen=True)
class CheckRow:
    """What one assertion found in one run."""

    node: str
    name: str
    check: str
    severity: str
    location: str
    outcome: str
    failing: int | None
    total: int | None
    measured: dict[str, Any]
    sample_columns: tuple[str, ...]
    samples: tuple[tuple[Any, ...], ...]
    message: str | None
    code_hash: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "name": self.name,
            "check": self.check,
            "severity": self.severity,
            "location": self.location,
            "outcome": self.outcome,
            "failing": self.failing,
            "total": self.total,
            "measured": self.measured,
            "sample_columns": list(self.sample_columns),
            "samples": [list(r) for r in self.samples],
            "message": self.message,
            "code_hash": self.code_hash,
        }


@dataclass(frozen=True)
class RunRow:
    id: int
    command: str
    env: str
    target: str | None
    started_at: datetime
    finished_at: datetime | None
    duration: float | None
    user: str | None
    host: str | None
    selection: tuple[str, ...]
    selected: int | None
    git_commit: str | None
    outcome: str
    deployment_id: int | None
    counts: dict[str, int]
    message: str | None
    sqlops_version: str | None
    assertions: dict[str, int] = field(default_factory=dict)  # outcome -> results
    node: NodeRow | None = None  # with --model: what that node did in this run

    @property
    def short_commit(self) -> str:
        if not self.git_commit:
            return ""
        sha, dirty, _ = self.git_commit.partition("-dirty")
        return sha[:8] + ("-dirty" if dirty else "")

    def to_json(self) -> dict[str, Any]:
        found = {
            "id": self.id,
            "command": self.command,
            "env": self.env,
            "target": self.target,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
            "user": self.user,
            "host": self.host,
            "selection": list(self.selection),
            "selected": self.selected,
            "git_commit": self.git_commit,
            "outcome": self.outcome,
            "deployment_id": self.deployment_id,
            "counts": self.counts,
            "assertions": {o: self.assertions.get(o, 0) for o in ("pass", "fail", "warn", "error")},
            "message": self.message,
            "sqlops_version": self.sqlops_version,
        }
        if self.node is not None:
            found["node"] = self.node.to_json()
        return found


@dataclass(frozen=True)
class RunDetail:
    run: RunRow
    nodes: tuple[NodeRow, ...]
    assertions: tuple[CheckRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.run.to_json(),
            "nodes": [n.to_json() for n in self.nodes],
            "assertion_results": [a.to_json() for a in self.assertions],
        }


def loads(text: str | None, default: Any) -> Any:
    """A JSON column's value; `default` when empty or unreadable."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _run(row: Sequence[Any]) -> RunRow:
    selection = loads(row[9], [])
    return RunRow(
        id=int(row[0]),
        command=str(row[1]),
        env=str(row[2]),
        target=row[3],
        started_at=row[4],
        finished_at=row[5],
        duration=row[6],
        user=row[7],
        host=row[8],
        selection=tuple(str(s) for s in selection) if isinstance(selection, list) else (),
        selected=row[10],
        git_commit=row[11],
        outcome=str(row[12]),
        deployment_id=row[13],
        counts={str(k): int(v) for k, v in loads(row[14], {}).items()},
        message=row[15],
        sqlops_version=row[16],
    )


def _node(row: Sequence[Any]) -> NodeRow:
    return NodeRow(int(row[0]), *row[1:])


class HistoryReader:
    """The queries behind `sqlops history`, one per need."""

    def __init__(self, engine: Engine) -> None:
        store = StateStore(engine)
        self.engine, self._t = store.engine, store._t

    def runs(
        self,
        *,
        model: str | None = None,
        env: str | None = None,
        status: str | None = None,
        limit: int = 20,
    ) -> list[RunRow]:
        """Runs newest first; with `model`, only those that included that node."""
        where, params = [], []
        if env is not None:
            where.append("env = ?")
            params.append(env)
        if status is not None:
            where.append("outcome = ?")
            params.append(status)
        if model is not None:
            where.append(f"id IN (SELECT run_id FROM {self._t('node_results')} WHERE node = ?)")
            params.append(model)
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.engine.query(
            f"SELECT {_RUN_COLUMNS} FROM {self._t('runs')}{condition} "
            f"ORDER BY started_at DESC, id DESC LIMIT {int(limit)}",
            params,
        ).rows
        runs = [_run(r) for r in rows]
        if not runs:
            return runs
        ids = [r.id for r in runs]
        marks = ", ".join("?" * len(ids))
        counted: dict[int, dict[str, int]] = {i: {} for i in ids}
        for run_id, outcome, n in self.engine.query(
            f"SELECT run_id, outcome, count(*) FROM {self._t('assertion_results')} "
            f"WHERE run_id IN ({marks}) GROUP BY run_id, outcome",
            ids,
        ).rows:
            counted[int(run_id)][str(outcome)] = int(n)
        nodes: dict[int, NodeRow] = {}
        if model is not None:
            for row in self.engine.query(
                "SELECT run_id, node, kind, action, status, fingerprint, duration, row_count, "
                f"message FROM {self._t('node_results')} WHERE node = ? AND run_id IN ({marks})",
                [model, *ids],
            ).rows:
                nodes[int(row[0])] = _node(row)
        return [replace(r, assertions=counted[r.id], node=nodes.get(r.id)) for r in runs]

    def run(self, run_id: int) -> RunDetail:
        """One run with every node's and assertion's result."""
        rows = self.engine.query(
            f"SELECT {_RUN_COLUMNS} FROM {self._t('runs')} WHERE id = ?", (run_id,)
        ).rows
        if not rows:
            last = self.engine.query(f"SELECT max(id) FROM {self._t('runs')}").rows[0][0]
            raise SqlopsError(
                f"there is no run {run_id} in the history",
                hint=f"the latest run is {last}; `sqlops history` lists them"
                if last is not None
                else "nothing has run yet: run `sqlops build`",
            )
        nodes = [
            _node(r)
            for r in self.engine.query(
                "SELECT run_id, node, kind, action, status, fingerprint, duration, row_count, "
                f"message FROM {self._t('node_results')} WHERE run_id = ? "
                "ORDER BY seq, finished_at, node",
                (run_id,),
            ).rows
        ]
        checks = [
            _check(r)
            for r in self.engine.query(
                "SELECT node, name, check_text, severity, location, outcome, failing, total, "
                f"measured, samples, message, code_hash FROM {self._t('assertion_results')} "
                "WHERE run_id = ? ORDER BY node, location",
                (run_id,),
            ).rows
        ]
        place = {n.node: i for i, n in enumerate(nodes)}
        checks.sort(key=lambda c: place.get(c.node, len(place)))  # in the run's order
        counted: dict[str, int] = {}
        for c in checks:
            counted[c.outcome] = counted.get(c.outcome, 0) + 1
        run = replace(_run(rows[0]), assertions=counted)
        return RunDetail(run, tuple(nodes), tuple(checks))

    def environments(self) -> list[str]:
        """The environments that have runs."""
        rows = self.engine.query(f"SELECT DISTINCT env FROM {self._t('runs')} ORDER BY env").rows
        return [str(r[0]) for r in rows]

    def nodes(self) -> set[str]:
        """Every node the history has a result for (deleted ones included)."""
        rows = self.engine.query(f"SELECT DISTINCT node FROM {self._t('node_results')}").rows
        return {str(r[0]) for r in rows}


def _check(row: Sequence[Any]) -> CheckRow:
    samples = loads(row[9], {})
    columns = samples.get("columns", []) if isinstance(samples, dict) else []
    sample_rows = samples.get("rows", []) if isinstance(samples, dict) else []
    measured = loads(row[8], {})
    return CheckRow(
        node=str(row[0]),
        name=str(row[1]),
        check=str(row[2]),
        severity=str(row[3]),
        location=str(row[4] or ""),
        outcome=str(row[5]),
        failing=row[6],
        total=row[7],
        measured=measured if isinstance(measured, dict) else {"value": measured},
        sample_columns=tuple(str(c) for c in columns),
        samples=tuple(tuple(r) for r in sample_rows),
        message=row[10],
        code_hash=row[11],
    )


def resolve_node(name: str, project_nodes: Iterable[str], history_nodes: Iterable[str]) -> str:
    """The node `--model NAME` means: an id of the project or the history, or a unique bare
    name (`orders` for `marts.orders`)."""
    known = set(project_nodes) | set(history_nodes)
    if name in known:
        return name
    lowered = name.lower()
    exact = [n for n in known if n.lower() == lowered]
    bare = [n for n in known if n.rsplit(".", 1)[-1].lower() == lowered]
    for found in (exact, bare):
        if len(found) == 1:
            return found[0]
    if len(bare) > 1:
        raise SqlopsError(
            f"`{name}` matches {len(bare)} nodes: {', '.join(sorted(bare))}",
            hint="name one with schema.name",
        )
    raise SqlopsError(
        f"unknown model `{name}`{did_you_mean(name, known)}",
        hint="name a node of the project, or one the history has results for (`sqlops ls`)",
    )

"""Run history: every build and test, what each node and assertion did, the values prev() and
anomaly() compare with, what each source held, and production incidents.

Written through the state store's engine, in the same transactions as the state it describes.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlops import __version__
from sqlops.clock import now
from sqlops.errors import EngineError
from sqlops.graph.lineage import short_hash
from sqlops.secrets import scrub

if TYPE_CHECKING:
    from sqlops.assertions.definition import Assertion
    from sqlops.gitinfo import Commit
    from sqlops.project.definition import Node
    from sqlops.run.results import NodeResult, RunResult
    from sqlops.state.store import StateStore

SERIES = 20  # values anomaly() learns from


@dataclass(frozen=True)
class RunContext:
    """Who started a run, where and on what."""

    command: str  # "build" or "test"
    env: str
    target: str
    selection: tuple[str, ...] = ()  # the selectors as typed
    commit: Commit | None = None


@dataclass(frozen=True)
class Measured:
    """A value a run measured for prev() / anomaly(), of one version of a node's data."""

    node: str
    expr: str
    version: str  # the fingerprint (or data stamp) of what was measured
    value: float


@dataclass
class Baselines:
    """The recorded series of an environment: (node, expr) -> values, most recent first."""

    series: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    latest_version: dict[tuple[str, str], str] = field(default_factory=dict)

    def of(self, node_id: str) -> dict[str, Sequence[float]]:
        return {expr: values for (node, expr), values in self.series.items() if node == node_id}


@dataclass(frozen=True)
class SourceSeen:
    """What the history knows of a source's data: its last stamp, and when its data changed."""

    stamp: str | None
    changed_at: list[datetime]  # the moments its data was first seen changed, most recent first


def number(value: Any) -> float | None:
    """A measured value as a float, or None when it is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    return None


def code_hash(node: Node, assertion: Assertion | None = None) -> str:
    """What a result's code was: the node's canonical SQL (and the check's text). A flip of
    outcome under the same code hash is a flaky check."""
    parts = [node.canonical or node.sql]
    if assertion is not None:
        parts += [assertion.text, assertion.severity]
    return short_hash(*parts)


def _json(value: Any) -> str:
    """Numbers stay numbers (DECIMAL included); dates and the rest become text."""
    return json.dumps(value, default=_plain, sort_keys=True)


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else str(value)


class History:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.engine = store.engine

    def _t(self, name: str) -> str:
        return self.store._t(name)

    # -- runs -----------------------------------------------------------------------------------

    def start(self, context: RunContext, selected: int) -> int:
        """Record a run as running; its id. A run still `running` then was killed: the
        command holds the lock that every run holds (sqlops.state.lock), so no other runs."""
        with self.engine.transaction():
            self.engine.execute(
                f"UPDATE {self._t('runs')} SET outcome = 'interrupted', message = ? "
                "WHERE outcome = 'running'",
                ("the process ended before it recorded how the run ended (killed?)",),
            )
            last = self.engine.query(f"SELECT max(id) FROM {self._t('runs')}").rows[0][0]
            run_id = int(last or 0) + 1
            self.engine.execute(
                f"INSERT INTO {self._t('runs')} (id, command, env, target, started_at, user_name, "
                "host, selection, selected, git_commit, outcome, sqlops_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                (
                    run_id,
                    context.command,
                    context.env,
                    context.target,
                    now(),
                    _user(),
                    socket.gethostname(),
                    _json(list(context.selection)),
                    selected,
                    context.commit.sha if context.commit else None,
                    __version__,
                ),
            )
        return run_id

    def promoted(self, run_id: int, deployment: int) -> None:
        """The run's deployment, recorded with it: a run killed after promoting is not left
        `running` with nothing deployed. Call inside the transaction that promotes."""
        self.engine.execute(
            f"UPDATE {self._t('runs')} SET outcome = 'success', deployment_id = ? WHERE id = ?",
            (deployment, run_id),
        )

    def interrupted(self, run_id: int) -> None:
        """Ctrl-C: say so in the run's row, if the database still listens."""
        with contextlib.suppress(EngineError):
            self.engine.execute(
                f"UPDATE {self._t('runs')} SET finished_at = ?, outcome = 'interrupted' "
                "WHERE id = ?",
                (now(), run_id),
            )

    def finish(self, run_id: int, result: RunResult) -> None:
        """Record how a run ended. Call inside a transaction."""
        if result.ok:
            outcome = "success"
        elif result.promotion_error or any(n.status.value == "error" for n in result.nodes):
            outcome = "error"
        else:
            outcome = "failed"
        self.engine.execute(
            f"UPDATE {self._t('runs')} SET finished_at = ?, duration = ?, outcome = ?, "
            "deployment_id = ?, counts = ?, message = ? WHERE id = ?",
            (
                now(),
                result.duration,
                outcome,
                result.deployment_id,
                _json(result.counts),
                scrub(result.promotion_error) if result.promotion_error else None,
                run_id,
            ),
        )

    def record_nodes(
        self,
        run_id: int,
        done: Sequence[tuple[Node, NodeResult, str | None]],
        order: Mapping[str, int],
    ) -> None:
        """Nodes' results (node, result, fingerprint) and their assertions' results, in a few
        statements; `order`: each node's place in the run. Call inside a transaction."""
        stamp = now()
        nodes: list[Any] = []
        checks: list[list[Any]] = []
        for node, result, fingerprint in done:
            nodes.append(
                [
                    run_id,
                    node.id,
                    node.kind.value,
                    result.action.value if result.action else None,
                    result.status.value,
                    fingerprint or None,
                    code_hash(node),
                    stamp,
                    round(result.duration, 6),
                    result.rows,
                    result.message,
                    order.get(node.id),
                ]
            )
            for a in result.assertions:
                samples = (
                    {"columns": list(a.sample_columns), "rows": [list(r) for r in a.samples]}
                    if a.samples
                    else None
                )
                checks.append(
                    [
                        run_id,
                        node.id,
                        a.assertion.name,
                        a.assertion.text,
                        a.assertion.severity,
                        a.assertion.location,
                        a.outcome.value,
                        a.failing,
                        a.total,
                        _json(a.measured) if a.measured else None,
                        # sampled values as the database gave them: 15.00 stays 15.00
                        json.dumps(samples, default=str) if samples else None,
                        a.message,
                        code_hash(node, a.assertion),
                        stamp,
                    ]
                )
        self._insert("node_results", nodes)
        self._insert("assertion_results", checks)

    def _insert(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        # messages, samples and measured values may quote a secret (a failed cast of one)
        self.engine.insert_rows(
            self._t(table), [[scrub(v) if isinstance(v, str) else v for v in row] for row in rows]
        )

    # -- the series of prev() and anomaly() -----------------------------------------------------

    def baselines(self, env: str) -> Baselines:
        rows = self.engine.query(
            "SELECT node, expr, version, value FROM (SELECT node, expr, version, value, "
            "row_number() OVER (PARTITION BY node, expr ORDER BY recorded_at DESC, run_id DESC) "
            f"AS n FROM {self._t('measurements')} WHERE env = ?) AS m WHERE n <= ? "
            "ORDER BY node, expr, n",
            (env, SERIES),
        ).rows
        found = Baselines()
        for node, expr, version, value in rows:
            key = (str(node), str(expr))
            if key not in found.series:
                found.series[key] = []
                found.latest_version[key] = str(version)
            found.series[key].append(float(value))
        return found

    def append(
        self, env: str, run_id: int, measured: Iterable[Measured], baselines: Baselines
    ) -> None:
        """Add each value to the environment's series; a value of the version the series ends
        with replaces that last value, so measuring the same data twice counts once.
        Call inside a transaction."""
        stamp = now()
        for m in measured:
            key = (m.node, m.expr)
            if baselines.latest_version.get(key) == m.version:
                self.engine.execute(
                    f"UPDATE {self._t('measurements')} SET value = ?, run_id = ?, "
                    "recorded_at = ? WHERE env = ? AND node = ? AND expr = ? AND version = ? "
                    f"AND recorded_at = (SELECT max(recorded_at) FROM {self._t('measurements')} "
                    "WHERE env = ? AND node = ? AND expr = ?)",
                    (m.value, run_id, stamp, env, m.node, m.expr, m.version, env, m.node, m.expr),
                )
            else:
                self.engine.execute(
                    f"INSERT INTO {self._t('measurements')} VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (env, m.node, m.expr, m.version, m.value, run_id, stamp),
                )

    def keep_aside(self, run_id: int, measured: Iterable[Measured]) -> None:
        """Values of versions a failed run built and tested: no environment's baseline, kept for
        carry() when the version is promoted later. Call inside a transaction."""
        stamp = now()
        for m in measured:
            self.engine.execute(
                f"DELETE FROM {self._t('measurements')} WHERE env = '' AND node = ? "
                "AND expr = ? AND version = ?",
                (m.node, m.expr, m.version),
            )
            self.engine.execute(
                f"INSERT INTO {self._t('measurements')} VALUES ('', ?, ?, ?, ?, ?, ?)",
                (m.node, m.expr, m.version, m.value, run_id, stamp),
            )

    def carry(self, env: str, run_id: int, node_id: str, version: str) -> None:
        """A version promoted without being measured here brings the values measured when it was
        built, in whichever environment. Call inside a transaction."""
        self.engine.execute(
            f"INSERT INTO {self._t('measurements')} SELECT ?, node, expr, version, value, ?, ? "
            "FROM (SELECT node, expr, version, value, row_number() OVER (PARTITION BY expr "
            f"ORDER BY recorded_at DESC) AS n FROM {self._t('measurements')} "
            "WHERE node = ? AND version = ?) AS m WHERE n = 1",
            (env, run_id, now(), node_id, version),
        )

    # -- sources ----------------------------------------------------------------------------------

    def sources_seen(self, env: str, node_ids: Sequence[str]) -> dict[str, SourceSeen]:
        if not node_ids:
            return {}
        marks = ", ".join("?" * len(node_ids))
        table = self._t("source_observations")
        last = self.engine.query(
            "SELECT node, data_stamp FROM (SELECT node, data_stamp, row_number() OVER "
            "(PARTITION BY node ORDER BY observed_at DESC, run_id DESC) AS n "
            f"FROM {table} WHERE env = ? AND node IN ({marks})) AS o WHERE n = 1",
            (env, *node_ids),
        ).rows
        seen = {str(node): SourceSeen(stamp, []) for node, stamp in last}
        changes = self.engine.query(
            "SELECT node, changed_at FROM (SELECT node, changed_at, row_number() OVER "
            "(PARTITION BY node ORDER BY changed_at DESC) AS n FROM (SELECT DISTINCT node, "
            f"changed_at FROM {table} WHERE env = ? AND node IN ({marks})) AS d) AS c "
            "WHERE n <= ? ORDER BY node, changed_at DESC",
            (env, *node_ids, SERIES + 1),
        ).rows
        for node, changed_at in changes:
            if node in seen and changed_at is not None:
                seen[node].changed_at.append(changed_at)
        return seen

    def observe_sources(
        self,
        env: str,
        run_id: int,
        observed: dict[str, tuple[int | None, str | None]],
        seen: dict[str, SourceSeen],
    ) -> None:
        """Record each source's row count and data stamp. Call inside a transaction."""
        stamp = now()
        values: list[list[Any]] = []
        for node_id, (rows, data_stamp) in sorted(observed.items()):
            before = seen.get(node_id)
            unchanged = before is not None and before.stamp == data_stamp and before.changed_at
            changed_at = before.changed_at[0] if unchanged and before else stamp
            values.append([run_id, env, node_id, stamp, rows, data_stamp, changed_at])
        self.engine.insert_rows(self._t("source_observations"), values)

    # -- incidents --------------------------------------------------------------------------------

    def update_incidents(
        self,
        env: str,
        run_id: int,
        failed: dict[str, str],
        green: Iterable[str],
        settled: Iterable[str] = (),
    ) -> list[str]:
        """Open an incident for each failed node (node -> what failed) that has none open, and
        close the open ones of nodes checked green. A build that failed left the environment as
        it was: the incident it opened also closes when a successful build serves a version that
        passed (`settled`: a fix that went back to what was served). The nodes recovered. Call
        inside a transaction."""
        stamp = now()
        open_rows = self.engine.query(
            f"SELECT i.node, r.command FROM {self._t('incidents')} AS i "
            f"LEFT JOIN {self._t('runs')} AS r ON r.id = i.opened_run "
            "WHERE i.env = ? AND i.closed_at IS NULL",
            (env,),
        ).rows
        open_now = {str(r[0]) for r in open_rows}
        by_build = {str(r[0]) for r in open_rows if r[1] == "build"}
        fixed = set(green) | by_build.intersection(settled)
        recovered = sorted(open_now.intersection(fixed) - set(failed))
        for node_id in recovered:
            self.engine.execute(
                f"UPDATE {self._t('incidents')} SET closed_run = ?, closed_at = ? "
                "WHERE env = ? AND node = ? AND closed_at IS NULL",
                (run_id, stamp, env, node_id),
            )
        new = sorted(n for n in failed if n not in open_now)
        if new:
            last = self.engine.query(f"SELECT max(id) FROM {self._t('incidents')}").rows[0][0]
            next_id = int(last or 0) + 1
            for offset, node_id in enumerate(new):
                self.engine.execute(
                    f"INSERT INTO {self._t('incidents')} VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                    (next_id + offset, env, node_id, run_id, stamp, scrub(failed[node_id])),
                )
        return recovered


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None

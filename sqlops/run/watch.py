"""What a run checks against history: the series prev() and anomaly() read, and the volume and
freshness monitors sqlops adds to every source."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlops.assertions.definition import Assertion, CheckKind
from sqlops.assertions.history import DEFAULT_Z, MIN_VALUES, expect
from sqlops.clock import now
from sqlops.engines.base import Engine, Relation
from sqlops.graph.lineage import short_hash
from sqlops.plan.relations import env_relation
from sqlops.project.config import MonitorSettings
from sqlops.project.definition import Kind, Node
from sqlops.run.results import AssertionResult, Outcome
from sqlops.state.history import Baselines, History, Measured, SourceSeen

if TYPE_CHECKING:
    from sqlops.assertions.compile import Recorded
    from sqlops.project.loader import Project

VOLUME = "volume"
FRESHNESS = "freshness"


@dataclass(frozen=True)
class Watch:
    """Everything a run's checks need from history, read once before the run starts."""

    at: datetime
    settings: MonitorSettings = field(default_factory=MonitorSettings)
    baselines: Baselines = field(default_factory=Baselines)
    sources: dict[str, SourceSeen] = field(default_factory=dict)

    def recorded(self, node_id: str) -> Recorded:
        return self.baselines.of(node_id)

    def monitors(self, node: Node) -> tuple[Assertion, ...]:
        """The volume check of a source: `anomaly(row_count())`, unless [monitor] turns it off."""
        level = self.settings.source_volume
        if node.kind is not Kind.SOURCE or level == "off":
            return ()
        check = "anomaly(row_count())"
        return (_monitor(node, VOLUME, level, check, expression=check),)

    def freshness(self, node: Node, stamp: str | None) -> AssertionResult | None:
        """How long a source's data has gone unchanged, against the usual time between its
        changes: late after the mean + 3 standard deviations (at least 10% of the mean) of the
        last 20 intervals."""
        level = self.settings.source_freshness
        if node.kind is not Kind.SOURCE or level == "off" or stamp is None:
            return None
        seen = self.sources.get(node.id)
        changes = list(seen.changed_at) if seen else []
        if seen is None or seen.stamp != stamp or not changes:
            changes.insert(0, self.at)  # changed now, or first seen now
        age = _hours(self.at - changes[0])
        intervals = [_hours(a - b) for a, b in itertools.pairwise(changes)]
        expectation = expect(intervals, DEFAULT_Z)
        check = _monitor(
            node, FRESHNESS, level, "hours since its data changed <= usual interval + 3 stddev"
        )
        measured: dict[str, object] = {"hours_since_change": round(age, 3)}
        if expectation is None:
            message = f"training: {len(intervals)} of {MIN_VALUES} changes of its data seen"
            return AssertionResult(check, Outcome.PASS, measured=measured, message=message)
        measured["usual_interval"] = expectation.to_json()
        # a feed that kept perfect time has no spread: allow 10% of its interval anyway
        late = expectation.mean + expectation.z * max(expectation.stddev, expectation.mean / 10)
        measured["late_after_hours"] = round(late, 3)
        if age <= late:
            return AssertionResult(check, Outcome.PASS, measured=measured)
        return AssertionResult(
            check,
            Outcome.FAIL if check.blocking else Outcome.WARN,
            failing=1,
            total=1,
            measured=measured,
            message=f"its data has not changed for {age:.1f} h; it usually changes every "
            f"{expectation.mean:.1f} h (± {expectation.stddev:.1f} h, "
            f"{expectation.count} intervals seen): late after {late:.1f} h",
        )


def _monitor(node: Node, name: str, level: str, text: str, expression: str = "") -> Assertion:
    """A check of a source that [monitor] adds: blocking at level "error", else a warning."""
    return Assertion(
        name,
        CheckKind.TABLE,
        blocking=level == "error",
        text=text,
        path=node.relpath,
        line=1,
        expression=expression,
        owner=node.id,
        monitor=True,
    )


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def read_watch(history: History, project: Project, env: str, node_ids: Sequence[str]) -> Watch:
    sources = [n for n in node_ids if project.nodes[n].kind is Kind.SOURCE]
    return Watch(
        now(),
        project.config.monitor,
        history.baselines(env),
        history.sources_seen(env, sources),
    )


def series_version(project: Project, node_id: str, versions: Mapping[str, str]) -> str:
    """What a value measured on a node is a value of: its version (a fingerprint; a source's
    includes its data stamp). A standalone test has none: the versions it reads make one."""
    node = project.nodes[node_id]
    if node.kind is not Kind.TEST:
        return versions.get(node_id, "")
    return short_hash(*sorted(f"{d} {versions.get(d, '')}" for d in node.all_deps))


def unique(measured: Iterable[Measured]) -> list[Measured]:
    """One value per series: two checks measuring the same series record it once."""
    return list({(m.node, m.expr): m for m in measured}.values())


def observe_sources(
    project: Project,
    engine: Engine,
    env: str,
    stamps: Mapping[str, str],
    rows: Mapping[str, int | None],
) -> dict[str, tuple[int | None, str | None]]:
    """Every source's row count and data stamp, counted here when the run did not count it."""
    observed: dict[str, tuple[int | None, str | None]] = {}
    for node in project.nodes.values():
        if node.kind is not Kind.SOURCE:
            continue
        count = rows.get(node.id)
        if count is None:
            where = Relation(node.schema, node.name) if node.reads_in_place else None
            where = where or env_relation(node, env)
            if engine.columns(where) is not None:  # not there (yet): nothing to count
                count = engine.row_count(where)
        observed[node.id] = (count, stamps.get(node.id))
    return observed

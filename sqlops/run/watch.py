"""What a run checks against history: the series prev() and anomaly() read, and the volume and
freshness monitors sqlops adds to every source."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlops.assertions.definition import Assertion, CheckKind
from sqlops.assertions.history import DEFAULT_Z, MIN_VALUES, expect
from sqlops.clock import now
from sqlops.project.config import MonitorSettings
from sqlops.project.definition import Kind, Node
from sqlops.run.results import AssertionResult, Outcome
from sqlops.state.history import Baselines, History, SourceSeen

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
        return (
            Assertion(
                VOLUME,
                CheckKind.TABLE,
                blocking=level == "error",
                text="anomaly(row_count())",
                path=node.relpath,
                line=1,
                expression="anomaly(row_count())",
                owner=node.id,
                monitor=True,
            ),
        )

    def freshness(self, node: Node, stamp: str | None) -> AssertionResult | None:
        """How long a source's data has gone unchanged, against the usual time between its
        changes: mean + 3 standard deviations of the last 20 intervals."""
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
        check = Assertion(
            FRESHNESS,
            CheckKind.TABLE,
            blocking=level == "error",
            text="hours since its data changed <= usual interval + 3 stddev",
            path=node.relpath,
            line=1,
            owner=node.id,
            monitor=True,
        )
        measured: dict[str, object] = {"hours_since_change": round(age, 3)}
        if expectation is None:
            message = f"training: {len(intervals)} of {MIN_VALUES} changes of its data seen"
            return AssertionResult(check, Outcome.PASS, measured=measured, message=message)
        measured["usual_interval"] = expectation.to_json()
        if age <= expectation.high:
            return AssertionResult(check, Outcome.PASS, measured=measured)
        return AssertionResult(
            check,
            Outcome.FAIL if check.blocking else Outcome.WARN,
            failing=1,
            total=1,
            measured=measured,
            message=f"its data has not changed for {age:.1f} h; it usually changes every "
            f"{expectation.mean:.1f} h (± {expectation.stddev:.1f} h, "
            f"{expectation.count} intervals seen)",
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

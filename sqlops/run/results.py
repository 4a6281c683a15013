"""What a run produced: per node and per assertion, as plain values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlops.assertions.definition import Assertion
from sqlops.plan.builder import Action, Plan


class Status(StrEnum):
    BUILT = "built"
    REUSED = "reused"
    RETESTED = "retested"
    PASSED = "passed"  # a source, test or ephemeral model whose assertions passed
    FAILED = "failed"  # a blocking assertion failed
    ERROR = "error"  # the database refused the SQL, or a source is missing or drifted
    SKIPPED = "skipped"  # an upstream node failed


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"  # blocking
    WARN = "warn"  # a failed @warn
    ERROR = "error"  # the query itself failed


@dataclass(frozen=True)
class AssertionResult:
    assertion: Assertion
    outcome: Outcome
    failing: int = 0
    total: int | None = None
    measured: dict[str, Any] = field(default_factory=dict)
    sample_columns: tuple[str, ...] = ()
    samples: tuple[tuple[Any, ...], ...] = ()
    message: str | None = None
    sql: str = ""
    tracked: dict[str, float] = field(default_factory=dict)  # values prev()/anomaly() record

    @property
    def blocks(self) -> bool:
        return self.outcome in (Outcome.FAIL, Outcome.ERROR) and self.assertion.blocking


@dataclass(frozen=True)
class NodeResult:
    node_id: str
    action: Action | None
    status: Status
    duration: float = 0.0
    rows: int | None = None
    assertions: tuple[AssertionResult, ...] = ()
    message: str | None = None
    warnings: tuple[str, ...] = ()
    location: str | None = None  # file:line of what went wrong
    hint: str | None = None  # how to fix it

    @property
    def ok(self) -> bool:
        return self.status not in (Status.FAILED, Status.ERROR, Status.SKIPPED)


@dataclass(frozen=True)
class RunResult:
    command: str
    env: str
    plan: Plan | None
    nodes: tuple[NodeResult, ...]
    promoted: bool
    deployment_id: int | None
    duration: float
    up_to_date: bool = False  # nothing to promote: the environment already serves these versions
    promotion_error: str | None = None  # everything passed, but switching the views failed
    run_id: int | None = None  # its id in the run history
    recovered: tuple[str, ...] = ()  # nodes whose open incident this run closed
    # the failed switch was undone (one transaction); False: it stopped halfway, journaled, and
    # the next command that writes finishes it (engines without transactions, run/switch.py)
    promotion_rolled_back: bool = True

    @property
    def ok(self) -> bool:
        return self.promotion_error is None and all(n.ok for n in self.nodes)

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(n.status.value for n in self.nodes)
        return {s.value: counted.get(s.value, 0) for s in Status}

    @property
    def assertion_counts(self) -> dict[str, int]:
        counted = Counter(a.outcome.value for n in self.nodes for a in n.assertions)
        return {o.value: counted.get(o.value, 0) for o in Outcome}


def show_value(value: Any) -> str:
    """A measured or sampled value as people read it: NULL, 77 (not 77.0), what anomaly()
    expected in words."""
    if isinstance(value, dict) and {"mean", "stddev", "z", "values"} <= value.keys():
        return (
            f"expected {show_value(value['mean'])} ± {value['z']:g}·"
            f"{show_value(value['stddev'])} (from {value['values']} values)"
        )
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.10g}"
    return str(value)


def show_measured(measured: dict[str, Any]) -> str:
    return ", ".join(f"{name} = {show_value(v)}" for name, v in measured.items())


# progress events: (event, node id, the result when done). "start" and "done" name a node;
# "waiting" (node id "") says the run waits for statements to end: what is shown may be flushed
Listener = Callable[[str, str, NodeResult | None], None]


def quiet(event: str, node_id: str, result: NodeResult | None) -> None:
    return None

"""What a finished run has to tell people: failures, warnings, a deploy, recoveries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlops.run.results import AssertionResult, Outcome, RunResult, Status, show_measured

if TYPE_CHECKING:
    from sqlops.project.loader import Project


@dataclass(frozen=True)
class Event:
    kind: str  # "failure" | "warning" | "deploy" | "recovered"
    env: str
    node: str | None = None
    owner: str | None = None
    assertion: str | None = None  # the assertion's name
    check: str | None = None  # the check as written
    location: str | None = None  # file:line
    failing: int | None = None  # failing rows; None for a table-level check or one that errored
    message: str | None = None
    total: int | None = None  # rows checked


def events_of(project: Project, result: RunResult, *, recovered: Sequence[str] = ()) -> list[Event]:
    """Failures first, then warnings, recoveries and the deploy. A skipped node is no event:
    it is the consequence of a failure that is one."""
    env = result.env
    failures: list[Event] = []
    warnings: list[Event] = []
    for node in result.nodes:
        owner = _owner(project, node.node_id)
        if node.status is Status.ERROR:
            failures.append(
                Event(
                    "failure",
                    env,
                    node.node_id,
                    owner,
                    location=node.location or _relpath(project, node.node_id),
                    message=node.message or "the build step failed",
                )
            )
        for check in node.assertions:
            if check.outcome is Outcome.PASS:
                continue
            event = _assertion_event(check, env, node.node_id, owner)
            (failures if check.blocks else warnings).append(event)
    if result.promotion_error:
        failures.append(
            Event(
                "failure",
                env,
                message=f"promoting {env} "
                + (
                    "failed and was rolled back"
                    if result.promotion_rolled_back
                    else "stopped halfway (the next sqlops command finishes it)"
                )
                + f": {result.promotion_error}",
            )
        )
    events = failures + warnings
    for node_id in dict.fromkeys(recovered):
        events.append(
            Event(
                "recovered",
                env,
                node_id,
                _owner(project, node_id),
                location=_relpath(project, node_id),
                message="its blocking assertions pass again",
            )
        )
    if result.promoted:
        count = len(result.plan.promoted) if result.plan else len(result.nodes)
        built = result.counts[Status.BUILT.value]
        events.append(
            Event(
                "deploy",
                env,
                message=f"deployment {result.deployment_id}: {count} nodes promoted, {built} built",
            )
        )
    return events


def _assertion_event(check: AssertionResult, env: str, node_id: str, owner: str | None) -> Event:
    assertion = check.assertion
    measured = bool(check.measured)
    if check.outcome is Outcome.ERROR:
        message = f"the assertion could not be checked: {check.message or 'unknown error'}"
    else:
        values = show_measured(check.measured)
        parts = [f"measured {values}" if values else "", check.message or ""]
        message = "; ".join(p for p in parts if p)
    counted = check.outcome is not Outcome.ERROR and not measured
    return Event(
        "failure" if check.blocks else "warning",
        env,
        node_id,
        owner,
        assertion.name,
        assertion.text,
        assertion.location,
        check.failing if counted else None,
        message or None,
        check.total if counted else None,
    )


def _owner(project: Project, node_id: str) -> str | None:
    node = project.nodes.get(node_id)
    return node.owner if node else None


def _relpath(project: Project, node_id: str) -> str | None:
    node = project.nodes.get(node_id)
    return node.relpath if node else None

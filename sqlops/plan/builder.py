"""Plan a build: for each node in the selection, build a new version, reuse one, or re-test it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlops.engines.base import Relation
from sqlops.graph.fingerprint import assertions_hash, fingerprints
from sqlops.plan.relations import physical_relation, versions_read
from sqlops.project.definition import Kind, Node

if TYPE_CHECKING:
    from sqlops.project.loader import Project
    from sqlops.state.store import Deployed, Version


class Action(StrEnum):
    CHECK_SOURCE = "check source"  # a table of the database: check drift, run its assertions
    BUILD = "build"  # a version that does not exist yet
    REUSE = "reuse"  # built and tested before, in this or another environment
    RETEST = "retest"  # built before, but its assertions changed since
    INLINE = "inline"  # an ephemeral model: nothing to build, its assertions still run
    TEST = "test"  # a file in tests/


@dataclass(frozen=True)
class Step:
    node_id: str
    action: Action
    fingerprint: str
    physical: Relation | None
    reason: str
    # a served version re-tested against what a partial build promotes: the result says nothing
    # about the version in general, so it is not recorded
    recheck: bool = False
    data_stamp: str | None = None  # a file source: the bytes its fingerprint promises
    # a version to build whose relation is there already, unrecorded (an interrupted build's)
    leftover: bool = False


@dataclass(frozen=True)
class Plan:
    env: str
    steps: tuple[Step, ...]
    selected: tuple[str, ...]
    added: tuple[str, ...]  # ancestors outside the selection that changed, promoted with it
    fingerprints: dict[str, str]
    # the relation of every versioned node once this plan is promoted: what its checks read
    serving: dict[str, Relation]
    stamps: dict[str, str] = field(default_factory=dict)  # every source's data stamp

    @property
    def to_build(self) -> list[Step]:
        return [s for s in self.steps if s.action is Action.BUILD]

    @property
    def promoted(self) -> list[Step]:
        return [s for s in self.steps if s.physical is not None]


def make_plan(
    project: Project,
    selected: list[str],
    env: str,
    versions: dict[tuple[str, str], Version],
    deployed: dict[str, Deployed],
    existing: set[tuple[str, str]],
    data_stamps: dict[str, str] | None = None,
) -> Plan:
    """`existing` holds the (schema, name) of physical relations that are really there;
    `data_stamps` identify each source's data (see fingerprints)."""
    fps = fingerprints(project, data_stamps)
    nodes = project.nodes
    chosen = set(selected)
    # An ancestor whose current version is not what the environment serves comes along, so that
    # every view of the environment points at the versions its readers were built from.
    added = {
        a
        for a in project.graph.ancestors_of(selected)
        if a not in chosen
        and nodes[a].is_versioned
        and (a not in deployed or deployed[a].fingerprint != fps[a])
    }
    chosen |= added
    # Ephemeral models the build reads through are checked: their assertions guard that data.
    chosen |= {a for a in project.graph.ancestors_of(chosen) if nodes[a].is_ephemeral}
    promoted = {n for n in chosen if nodes[n].is_versioned}

    def reads_new(node_ids: Iterable[str]) -> set[str]:
        """The promoted versions these nodes' rows come from, looking through ephemerals."""
        return promoted.intersection(versions_read(project, node_ids))

    # What the environment serves and does not rebuild is re-tested when its assertions read a
    # new version: a partial build must not promote what makes a served check fail.
    rechecked = {
        n.id
        for n in nodes.values()
        if n.id not in chosen
        and n.id in deployed
        and n.is_versioned
        and reads_new(n.assertion_reads)
    }
    for node in nodes.values():
        if node.id in chosen:
            continue
        if node.is_ephemeral and reads_new(node.depends_on):
            chosen.add(node.id)  # its assertions run on the new data it reads
        elif node.kind is Kind.TEST and reads_new(node.all_deps):
            # a test runs when it reads something new and everything it reads is served after
            reads = versions_read(project, node.all_deps)
            if all(d in promoted or d in deployed for d in reads):
                chosen.add(node.id)
    # Tables of the database that feed the build are checked first, in every build.
    chosen |= {a for a in project.graph.ancestors_of(chosen | rechecked) if nodes[a].reads_in_place}

    steps: list[Step] = []
    for node_id in project.graph.topological(chosen | rechecked):
        node = nodes[node_id]
        if node_id in rechecked:
            served_now = deployed[node_id]
            new = ", ".join(sorted(reads_new(node.assertion_reads)))
            steps.append(
                Step(
                    node_id,
                    Action.RETEST,
                    served_now.fingerprint,
                    served_now.physical,
                    f"its assertions read the new {new}",
                    recheck=True,
                )
            )
        else:
            step = _step(node, fps.get(node_id, ""), versions, existing, fps)
            if node.kind is Kind.SOURCE and data_stamps:
                step = replace(step, data_stamp=data_stamps.get(node_id))
            steps.append(step)
    serving = {d.node: d.physical for d in deployed.values()}
    serving.update({s.node_id: s.physical for s in steps if s.physical is not None})
    return Plan(
        env,
        tuple(steps),
        tuple(selected),
        tuple(project.graph.topological(added)),
        fps,
        serving,
        dict(data_stamps or {}),
    )


def _step(
    node: Node,
    fingerprint: str,
    versions: dict[tuple[str, str], Version],
    existing: set[tuple[str, str]],
    fingerprints_of: dict[str, str],
) -> Step:
    if node.reads_in_place:
        return Step(node.id, Action.CHECK_SOURCE, fingerprint, None, "sources are checked first")
    if node.kind is Kind.TEST:
        return Step(node.id, Action.TEST, "", None, "standalone assertions")
    if node.is_ephemeral:
        return Step(node.id, Action.INLINE, fingerprint, None, "inlined into its readers")
    physical = physical_relation(node, fingerprint)
    version = versions.get((node.id, fingerprint))
    there = (physical.schema, physical.name) in existing
    if version is None or not there:
        return Step(node.id, Action.BUILD, fingerprint, physical, "new version", leftover=there)
    # A version is never rebuilt in place: an environment may serve it. Same code, same upstream
    # data: the same rows. Its assertions are run again instead.
    if version.status != "passed":
        return Step(
            node.id, Action.RETEST, fingerprint, physical, "its assertions failed last time"
        )
    if version.assertions_hash != assertions_hash(node, fingerprints_of):
        return Step(
            node.id,
            Action.RETEST,
            fingerprint,
            physical,
            "its assertions, or what they read, changed",
        )
    return Step(node.id, Action.REUSE, fingerprint, physical, "built and tested before")

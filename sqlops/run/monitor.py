"""`sqlops test`: run assertions against what an environment serves now, and record them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlops.engines.base import Relation
from sqlops.errors import EngineError
from sqlops.gitinfo import head_commit
from sqlops.graph.fingerprint import fingerprints
from sqlops.plan.builder import Action
from sqlops.plan.relations import Relations, env_relation, versions_read
from sqlops.project.definition import Kind
from sqlops.run.assertions import run_assertions
from sqlops.run.executor import data_stamps, failures, green
from sqlops.run.results import Listener, NodeResult, RunResult, Status, quiet
from sqlops.run.sources import check_source_columns
from sqlops.run.watch import observe_sources, read_watch, series_version, unique
from sqlops.state.history import History, Measured, RunContext
from sqlops.state.store import StateStore

if TYPE_CHECKING:
    from sqlops.engines.base import Engine
    from sqlops.project.loader import Project


def test_environment(
    project: Project,
    engine: Engine,
    env: str,
    selected: list[str],
    listener: Listener = quiet,
    selection: Sequence[str] = (),
) -> RunResult:
    """`selection`: the selectors as the user typed them, for the run history."""
    started = time.perf_counter()
    store = StateStore(engine)
    store.ensure()
    history = History(store)
    context = RunContext(
        "test", env, project.target.name, tuple(selection), head_commit(project.root)
    )
    run_id = history.start(context, len(selected))
    watch = read_watch(history, project, env, selected)
    deployed = store.environment(env)
    nodes = [project.nodes[n] for n in selected]
    # what identifies the data each value is measured on, as a build names it: the version the
    # environment serves, else (a table read in place, an ephemeral model) what a build would
    stamps = data_stamps(project, engine)
    versions = {**fingerprints(project, stamps)}
    versions.update({node_id: d.fingerprint for node_id, d in deployed.items()})
    relations = Relations(project, lambda node: env_relation(node, env), engine.dialect)
    results: list[NodeResult] = []
    broken: set[str] = set()  # could not be checked at all: what reads them is skipped
    for node in nodes:
        node_id = node.id
        listener("start", node_id, None)
        t0 = time.perf_counter()
        missing = [
            n for n in versions_read(project, (node_id, *node.all_deps)) if n not in deployed
        ]
        if missing:
            result = NodeResult(
                node_id,
                None,
                Status.SKIPPED,
                message=f"{', '.join(missing)} not deployed in `{env}`; "
                f"run `sqlops build --env {env}` first",
            )
        elif any(dep in broken for dep in node.all_deps):
            culprit = next(dep for dep in node.all_deps if dep in broken)
            result = NodeResult(
                node_id, None, Status.SKIPPED, message=f"upstream {culprit} could not be checked"
            )
        else:
            warnings: list[str] = []
            rows = None
            try:
                if node.reads_in_place:
                    warnings = check_source_columns(project, engine, node)
                if node.kind is Kind.SOURCE:
                    where = (
                        Relation(node.schema, node.name)
                        if node.reads_in_place
                        else env_relation(node, env)
                    )
                    rows = engine.row_count(where)
            except EngineError as exc:
                result = NodeResult(
                    node_id,
                    Action.CHECK_SOURCE,
                    Status.ERROR,
                    message=exc.message,
                    location=node.relpath,
                    hint=exc.hint,
                )
            else:
                checks = tuple(
                    run_assertions(
                        engine, relations, node, watch.recorded(node_id), watch.monitors(node)
                    )
                )
                fresh = watch.freshness(node, stamps.get(node_id))
                if fresh is not None:
                    checks += (fresh,)
                status = Status.FAILED if any(a.blocks for a in checks) else Status.PASSED
                result = NodeResult(
                    node_id,
                    None,
                    status,
                    time.perf_counter() - t0,
                    rows,
                    assertions=checks,
                    warnings=tuple(warnings),
                )
        if result.status is Status.ERROR:
            broken.add(node_id)
        results.append(result)
        listener("done", node_id, result)
    run = RunResult(
        "test", env, None, tuple(results), False, None, time.perf_counter() - started, run_id=run_id
    )
    measured = [
        Measured(r.node_id, expr, series_version(project, r.node_id, versions), value)
        for r in results
        if r.status is Status.PASSED
        for a in r.assertions
        for expr, value in a.tracked.items()
    ]
    counted = {r.node_id: r.rows for r in results if r.rows is not None}
    observed = observe_sources(project, engine, env, stamps, counted)
    with store.engine.transaction():
        history.record_nodes(
            run_id,
            [(project.nodes[r.node_id], r, versions.get(r.node_id)) for r in results],
            {node_id: i for i, node_id in enumerate(selected)},
        )
        history.append(env, run_id, unique(measured), watch.baselines)
        history.observe_sources(env, run_id, observed, watch.sources)
        recovered = history.update_incidents(env, run_id, failures(results), green(results))
        history.finish(run_id, run)
    return replace(run, recovered=tuple(recovered))

"""`sqlops test`: run assertions against what an environment serves now."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlops.errors import EngineError
from sqlops.plan.builder import Action
from sqlops.plan.relations import Relations, env_relation
from sqlops.project.definition import Kind, Materialized
from sqlops.run.assertions import run_assertions
from sqlops.run.executor import Listener, _check_source_columns, _quiet
from sqlops.run.results import NodeResult, RunResult, Status
from sqlops.state.store import StateStore

if TYPE_CHECKING:
    from sqlops.engines.base import Engine
    from sqlops.project.loader import Project


def test_environment(
    project: Project,
    engine: Engine,
    env: str,
    selected: list[str],
    listener: Listener = _quiet,
) -> RunResult:
    started = time.perf_counter()
    store = StateStore(engine)
    store.ensure()
    deployed = store.environment(env)
    relations = Relations(project, lambda node: env_relation(node, env), engine.dialect)
    results: list[NodeResult] = []
    failed: set[str] = set()
    for node_id in selected:
        node = project.nodes[node_id]
        listener("start", node_id, None)
        t0 = time.perf_counter()
        missing = [
            dep
            for dep in (node_id, *node.all_deps)
            if project.nodes[dep].is_versioned and dep not in deployed
        ]
        if node.kind is Kind.MODEL and node.materialized is Materialized.EPHEMERAL:
            missing = [m for m in missing if m != node_id]
        if missing:
            result = NodeResult(
                node_id,
                None,
                Status.SKIPPED,
                message=f"{', '.join(missing)} not deployed in `{env}`; "
                f"run `sqlops build --env {env}` first",
            )
        elif any(dep in failed for dep in node.all_deps):
            result = NodeResult(node_id, None, Status.SKIPPED, message="an upstream source failed")
        else:
            warnings: list[str] = []
            try:
                if node.kind is Kind.SOURCE:
                    warnings = _check_source_columns(project, engine, node)
            except EngineError as exc:
                result = NodeResult(node_id, Action.LOAD_SOURCE, Status.ERROR, message=exc.message)
            else:
                checks = tuple(run_assertions(engine, relations, node))
                status = Status.FAILED if any(a.blocks for a in checks) else Status.PASSED
                result = NodeResult(
                    node_id,
                    None,
                    status,
                    time.perf_counter() - t0,
                    assertions=checks,
                    warnings=tuple(warnings),
                )
        if not result.ok:
            failed.add(node_id)
        results.append(result)
        listener("done", node_id, result)
    return RunResult("test", env, None, tuple(results), False, None, time.perf_counter() - started)

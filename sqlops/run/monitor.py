"""`sqlops test`: run assertions against what an environment serves now."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlops.errors import EngineError
from sqlops.plan.builder import Action
from sqlops.plan.relations import Relations, env_relation, versions_read
from sqlops.run.assertions import run_assertions
from sqlops.run.results import Listener, NodeResult, RunResult, Status, quiet
from sqlops.run.sources import check_source_columns
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
) -> RunResult:
    started = time.perf_counter()
    deployed = StateStore(engine).environment(env)
    relations = Relations(project, lambda node: env_relation(node, env), engine.dialect)
    results: list[NodeResult] = []
    broken: set[str] = set()  # could not be checked at all: what reads them is skipped
    for node_id in selected:
        node = project.nodes[node_id]
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
            try:
                if node.reads_in_place:
                    warnings = check_source_columns(project, engine, node)
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
        if result.status is Status.ERROR:
            broken.add(node_id)
        results.append(result)
        listener("done", node_id, result)
    return RunResult("test", env, None, tuple(results), False, None, time.perf_counter() - started)

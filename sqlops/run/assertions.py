"""Run compiled assertions and read their one result row shape into AssertionResults."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from sqlops.errors import EngineError
from sqlops.run.results import AssertionResult, Outcome
from sqlops.state.history import number

if TYPE_CHECKING:
    from sqlops.assertions.compile import CompiledAssertion, Recorded
    from sqlops.assertions.definition import Assertion
    from sqlops.engines.base import Engine, QueryResult
    from sqlops.plan.relations import Relations
    from sqlops.project.definition import Node


def run_assertions(
    engine: Engine,
    relations: Relations,
    node: Node,
    recorded: Recorded | None = None,
    extra: Sequence[Assertion] = (),
) -> list[AssertionResult]:
    """`recorded`: the node's series for prev() and anomaly(); `extra`: monitors sqlops adds.

    On an engine whose one session runs queries side by side (Spark, where each query's cost is
    mostly planning), the checks run at once; elsewhere one after the other."""
    checks = [relations.assertion(node, a, recorded) for a in (*node.assertions, *extra)]

    def run(compiled: CompiledAssertion) -> QueryResult | EngineError:
        try:
            return engine.query(compiled.sql)
        except EngineError as exc:
            return exc

    if engine.concurrent_queries > 1 and len(checks) > 1:
        pool = ThreadPoolExecutor(min(engine.concurrent_queries, len(checks)))
        try:
            answers = list(pool.map(run, checks))
        except BaseException:  # Ctrl-C: stop what is in flight rather than wait for it
            engine.interrupt()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    else:
        answers = [run(c) for c in checks]
    results = []
    for compiled, result in zip(checks, answers, strict=True):
        assertion = compiled.assertion
        if isinstance(result, EngineError):
            results.append(
                AssertionResult(assertion, Outcome.ERROR, message=result.message, sql=compiled.sql)
            )
            continue
        first = result.rows[0] if result.rows else (0, None)
        failing = int(first[0] or 0)
        total = None if first[1] is None else int(first[1])
        measured: dict[str, object] = {}
        samples: tuple[tuple[object, ...], ...] = ()
        sample_columns: tuple[str, ...] = ()
        tracked: dict[str, float] = {}
        if compiled.returns_measures:
            measured = dict(zip(compiled.measures, first[2:], strict=False))
            strange = [k for k in compiled.tracked if measured.get(k) is not None]
            strange = [k for k in strange if number(measured[k]) is None]
            if strange:
                results.append(
                    AssertionResult(
                        assertion,
                        Outcome.ERROR,
                        measured=measured,
                        message=f"prev() and anomaly() compare numbers, and {strange[0]} is "
                        f"{type(measured[strange[0]]).__name__} {measured[strange[0]]}; measure "
                        "a number, e.g. epoch(max(updated_at)) or count(DISTINCT x)",
                        sql=compiled.sql,
                    )
                )
                continue
            for key, series in compiled.tracked.items():
                value = number(measured.get(key))
                if value is not None:
                    tracked[series] = value
            measured.update(compiled.expected)
        elif failing:
            samples = tuple(tuple(r[2:]) for r in result.rows)
            # a helper column a check added, e.g. unique's count of copies, stays with the row
            sample_columns = tuple(c.removeprefix("__sqlops_") for c in result.columns[2:])
        tolerated = (
            assertion.tolerate.allows(failing, total or 0)
            if assertion.tolerate and not compiled.returns_measures
            else failing == 0
        )
        if tolerated:
            outcome = Outcome.PASS
        else:
            outcome = Outcome.FAIL if assertion.blocking else Outcome.WARN
        results.append(
            AssertionResult(
                assertion,
                outcome,
                failing,
                total,
                measured,
                sample_columns,
                samples,
                message="; ".join(compiled.notes) or None,
                sql=compiled.sql,
                tracked=tracked,
            )
        )
    return results

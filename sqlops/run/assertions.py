"""Run compiled assertions and read their one result row shape into AssertionResults."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from sqlops.assertions.compile import screened
from sqlops.engines.base import QueryResult
from sqlops.errors import EngineError
from sqlops.project.definition import Kind
from sqlops.run.results import AssertionResult, Outcome
from sqlops.state.history import number

if TYPE_CHECKING:
    from sqlops.assertions.compile import CompiledAssertion, Recorded
    from sqlops.assertions.definition import Assertion
    from sqlops.engines.base import Engine
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

    The checks that aggregates can compute are screened together in one scan of the relation
    (compile.screen_query); the others, and a row-level check that fails (for its sample rows),
    run their own queries. On an engine whose one session runs queries side by side (Spark,
    where each query's cost is mostly planning), those run at once; elsewhere one by one."""
    checks = [relations.assertion(node, a, recorded) for a in (*node.assertions, *extra)]
    answers: list[QueryResult | EngineError | None] = [None] * len(checks)
    screenable = [i for i, c in enumerate(checks) if c.screen is not None]
    if screenable and node.kind is not Kind.TEST:
        together = [checks[i] for i in screenable]
        try:
            screen = engine.query(relations.screen(node, together))
        except EngineError:
            pass  # each check runs its own query, and says what is wrong with it
        else:
            row = dict(zip(screen.columns, screen.rows[0], strict=True))
            for i, first in zip(screenable, screened(together, row), strict=True):
                if first is not None:
                    answers[i] = QueryResult(("__failing", "__total"), [first])

    def run(compiled: CompiledAssertion) -> QueryResult | EngineError:
        try:
            return engine.query(compiled.sql)
        except EngineError as exc:
            return exc

    alone = [i for i, answer in enumerate(answers) if answer is None]
    if engine.concurrent_queries > 1 and len(alone) > 1:
        pool = ThreadPoolExecutor(min(engine.concurrent_queries, len(alone)))
        try:
            found = list(pool.map(run, [checks[i] for i in alone]))
        except BaseException:  # Ctrl-C: stop what is in flight rather than wait for it
            engine.interrupt()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    else:
        found = [run(checks[i]) for i in alone]
    for i, own in zip(alone, found, strict=True):
        answers[i] = own
    results = []
    for compiled, result in zip(checks, answers, strict=True):
        assertion = compiled.assertion
        assert result is not None
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

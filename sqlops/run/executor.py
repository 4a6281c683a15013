"""Build a plan: sources first, then each node in DAG order (in parallel where independent),
assertions on each new version, and promotion of the environment only when nothing blocked."""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlops.aside import Aside
from sqlops.engines.base import Engine, Relation
from sqlops.errors import EngineError, SqlopsError
from sqlops.gitinfo import Commit, head_commit
from sqlops.graph.fingerprint import assertions_hash
from sqlops.impact.definition import Definition, definitions
from sqlops.plan.builder import Action, Plan, Step, make_plan
from sqlops.plan.relations import PROD, Relations, env_relation, physical_relation
from sqlops.project.definition import Kind, Materialized, Node
from sqlops.run.assertions import run_assertions
from sqlops.run.results import Listener, NodeResult, RunResult, Status, quiet
from sqlops.run.sources import check_source_columns
from sqlops.run.switch import ViewSwitch, switch, switches_atomically
from sqlops.run.watch import Watch, observe_sources, read_watch, series_version, unique
from sqlops.state.history import History, Measured, RunContext
from sqlops.state.store import Deployed, StateStore, Version

if TYPE_CHECKING:
    from sqlops.project.loader import Project


def plan_build(project: Project, engine: Engine, env: str, selected: list[str]) -> Plan:
    """Read state and the sources' data stamps, and plan. Writes nothing."""
    store = StateStore(engine)
    deployed = store.environment(env)
    _check_sources_read_in_place(project, engine, store)
    sandboxes = {physical_relation(n, "").schema for n in project.nodes.values() if n.is_versioned}
    existing = {
        (schema, name)
        for schema, relations in engine.relations_in(sandboxes).items()
        for name in relations
    }
    plan = make_plan(
        project,
        selected,
        env,
        store.versions(),
        deployed,
        existing,
        data_stamps(project, engine),
    )
    _check_views_are_ours(project, engine, plan, deployed)
    return plan


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_sources_read_in_place(project: Project, engine: Engine, store: StateStore) -> None:
    """A source without @location must be someone's table, not a view sqlops made for a file."""
    prod = store.environment(PROD)
    for node in project.nodes.values():
        if not node.reads_in_place or node.id not in prod:
            continue
        if engine.relations(node.schema).get(node.name) == "view":
            raise SqlopsError(
                f"{node.id} is a view sqlops made when {node.relpath} read a file with @location",
                path=node.path,
                hint=f"load your table at {node.id} first (DROP VIEW {node.id}), or put the "
                "@location line back",
            )


def _check_views_are_ours(
    project: Project, engine: Engine, plan: Plan, deployed: dict[str, Deployed]
) -> None:
    """Promotion replaces views sqlops made; a table or view of someone else's is refused."""
    present: dict[str, dict[str, str]] = {}
    for step in plan.promoted:
        if step.node_id in deployed:
            continue
        view = env_relation(project.nodes[step.node_id], plan.env)
        if view.schema not in present:
            present[view.schema] = engine.relations(view.schema)
        kind = present[view.schema].get(view.name)
        if kind is not None:
            raise SqlopsError(
                f"environment `{plan.env}` would replace the {kind} {view}, which sqlops did not "
                "create",
                path=project.nodes[step.node_id].path,
                hint=f"rename or move {view} out of the way, or rename the model",
            )


def data_stamps(project: Project, engine: Engine) -> dict[str, str]:
    """What identifies each source's data now: its file's bytes, or the table's contents."""
    return {
        node.id: data_stamp(project, engine, node)
        for node in project.nodes.values()
        if node.kind is Kind.SOURCE
    }


def data_stamp(project: Project, engine: Engine, node: Node) -> str:
    if node.location:
        try:
            return f"file {file_hash(project.location_path(node))}"
        except OSError as exc:
            raise SqlopsError(
                f"cannot read @location file {node.location}: {exc.strerror or exc}",
                path=node.path,
            ) from None
    return engine.data_stamp(Relation(node.schema, node.name)) or "missing"


def build(
    project: Project,
    engine: Engine,
    plan: Plan,
    threads: int = 1,
    listener: Listener = quiet,
    selection: Sequence[str] = (),
) -> RunResult:
    """`selection`: the selectors as the user typed them, for the run history."""
    started = time.perf_counter()
    store = StateStore(engine)
    store.ensure()
    history = History(store)
    commit = head_commit(project.root)
    context = RunContext("build", plan.env, project.target.name, tuple(selection), commit)
    run_id = history.start(context, len(plan.steps))
    watch = read_watch(history, project, plan.env, [s.node_id for s in plan.steps])
    fps = plan.fingerprints
    relations = Relations(
        project,
        lambda node: plan.serving.get(node.id) or physical_relation(node, fps[node.id]),
        engine.dialect,
    )
    served = store.served()  # relations some environment points at: never dropped
    # schemas are created up front: two threads creating one schema would conflict
    schemas = {s.physical.schema for s in plan.to_build if s.physical}
    for schema in sorted(schemas):
        engine.create_schema(schema)

    results: dict[str, NodeResult] = {}
    recorder = _Recorder(history, run_id, plan, fps)
    # a connection for each thread, and never more threads than steps
    engines = [engine.fork() for _ in range(max(1, min(threads, len(plan.steps))))]
    # what the environment will record for `sqlops impact` is worked out while the database
    # builds (Python beside the engine's own threads), for the promotion at the end
    covered = [s.node_id for s in plan.steps if not s.recheck and s.action is not Action.TEST]
    definitions_now = Aside(_definitions, project, covered, store.definitions(plan.env))
    try:
        with _prompt_handoffs():
            _run_steps(
                project, plan, relations, served, watch, engines, results, recorder, listener
            )
        with store.engine.transaction():
            recorder.flush()
        ordered = tuple(results[s.node_id] for s in plan.steps)
        observed = observe_sources(
            project,
            engine,
            plan.env,
            plan.stamps,
            {r.node_id: r.rows for r in ordered if r.rows is not None},
        )
        ending = _Ending(project, history, run_id, plan, ordered, watch, observed)
        deployment, up_to_date, failure = None, False, None
        if all(r.ok for r in ordered):
            try:
                deployment = _promote(
                    project, engine, store, plan, commit, ending, definitions_now.result()
                )
            except EngineError as exc:  # rolled back, or journaled (run/switch.py)
                failure = exc.message + (f"\n  to fix this: {exc.hint}" if exc.hint else "")
                ending.done = False  # what it wrote was rolled back too
            up_to_date = deployment is None and failure is None
        run = RunResult(
            "build",
            plan.env,
            plan,
            ordered,
            deployment is not None,
            deployment,
            time.perf_counter() - started,
            up_to_date,
            failure,
            run_id=run_id,
            promotion_rolled_back=switches_atomically(engine),
        )
        with store.engine.transaction():
            if not ending.done:
                ending.write(run.ok)
            history.finish(run_id, run)
    except KeyboardInterrupt:
        # stop the statements in flight; nothing has been promoted, or all of it was
        for forked in engines:
            forked.interrupt()
        # keep what was built, so that the next build reuses it
        with contextlib.suppress(EngineError, KeyboardInterrupt), store.engine.transaction():
            recorder.flush()
        history.interrupted(run_id)
        raise
    finally:
        for forked in engines:
            forked.close()
    return replace(run, recovered=tuple(ending.recovered))


@contextlib.contextmanager
def _prompt_handoffs() -> Iterator[None]:
    """While statements run, a thread whose statement ended gets the GIL back within 0.5 ms
    instead of Python's 5 ms: the main thread's Python (showing results, planning what runs
    next) and the Aside otherwise hold each engine thread up between its statements, the
    more so with two cores. Measured: a model's CREATE and its assertions' scan took 28 and
    24 ms beside a busy Python thread, 12 and 5 ms with this, 10 and 3 ms alone."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(_HANDOFF)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


_HANDOFF = 0.0005  # seconds


def _run_steps(
    project: Project,
    plan: Plan,
    relations: Relations,
    served: set[Relation],
    watch: Watch,
    engines: list[Engine],
    results: dict[str, NodeResult],
    recorder: _Recorder,
    listener: Listener,
) -> None:
    """Run every step in DAG order, as many at once as there are engines; skip what reads a
    failure. Of the steps ready to run, the first in the plan goes first."""
    order = {s.node_id: i for i, s in enumerate(plan.steps)}
    deps = {
        s.node_id: [d for d in project.nodes[s.node_id].all_deps if d in order] for s in plan.steps
    }
    waiting = {node_id: len(found) for node_id, found in deps.items()}  # deps without a result
    readers: dict[str, list[str]] = {}
    for node_id, found in deps.items():
        for dep in found:
            readers.setdefault(dep, []).append(node_id)
    ready = [order[n] for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    running: dict[Future[NodeResult], Step] = {}
    free = list(engines)
    finished: list[tuple[Step, NodeResult]] = []  # recorded once the next steps are running

    def settle(step: Step, result: NodeResult) -> None:
        results[step.node_id] = result
        for reader in readers.get(step.node_id, ()):
            waiting[reader] -= 1
            if not waiting[reader]:
                heapq.heappush(ready, order[reader])

    try:
        with ThreadPoolExecutor(max_workers=len(engines)) as pool:
            while ready or running or finished:
                while ready:
                    step = plan.steps[ready[0]]
                    # a reused version runs no statement: no thread to hand it to and wait on
                    inline = step.action is Action.REUSE
                    if not (free or inline):
                        break
                    heapq.heappop(ready)
                    culprit = next((d for d in deps[step.node_id] if not results[d].ok), None)
                    if culprit is not None:
                        skipped = NodeResult(
                            step.node_id,
                            step.action,
                            Status.SKIPPED,
                            message=f"upstream {culprit} did not pass",
                        )
                        settle(step, skipped)
                        finished.append((step, skipped))
                        continue
                    if inline:
                        reused = _run_step(project, engines[0], relations, step, served, watch)
                        settle(step, reused)
                        finished.append((step, reused))
                        continue
                    worker = free.pop()
                    listener("start", step.node_id, None)
                    future = pool.submit(_run_step, project, worker, relations, step, served, watch)
                    future.worker = worker  # type: ignore[attr-defined]
                    running[future] = step
                # what finished is recorded and shown while the engines work on the next steps
                for step, result in finished:
                    recorder.add(project.nodes[step.node_id], step, result)
                    listener("done", step.node_id, result)
                finished.clear()
                if not running:
                    continue
                listener("waiting", "", None)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    step = running.pop(future)
                    free.append(future.worker)  # type: ignore[attr-defined]
                    result = future.result()
                    settle(step, result)
                    finished.append((step, result))
    finally:  # Ctrl-C: what finished is recorded too, by the build's own last flush
        for step, result in finished:
            recorder.add(project.nodes[step.node_id], step, result, flush=False)


class _Ending:
    """What a build records about itself when it ends, in the transaction that promotes (or in
    its own when nothing is promoted): measured values, sources seen, incidents."""

    def __init__(
        self,
        project: Project,
        history: History,
        run_id: int,
        plan: Plan,
        results: tuple[NodeResult, ...],
        watch: Watch,
        observed: dict[str, tuple[int | None, str | None]],
    ) -> None:
        self.project, self.history, self.run_id = project, history, run_id
        self.plan, self.results, self.watch, self.observed = plan, results, watch, observed
        self.done = False
        self.recovered: list[str] = []

    def write(self, ok: bool, carried: Sequence[Step] = ()) -> None:
        """`ok`: the run succeeded; `carried`: versions newly served without being measured.

        A node's values join the environment's series when the run succeeded, or when the node
        is a table read in place that passed (its data is the world's, not a version to
        promote). A version that passed had its values kept aside when it was recorded
        (_Recorder), for the day it is promoted without being measured."""
        env, history = self.plan.env, self.history
        joined: list[Measured] = []
        for step, result in zip(self.plan.steps, self.results, strict=True):
            if not result.ok:
                continue
            version = step.fingerprint or series_version(
                self.project, step.node_id, self.plan.fingerprints
            )
            values = [
                Measured(step.node_id, expr, version, value)
                for a in result.assertions
                for expr, value in a.tracked.items()
            ]
            if ok or step.action is Action.CHECK_SOURCE:
                joined += values
        history.append(env, self.run_id, unique(joined), self.watch.baselines)
        for step in carried:
            history.carry(env, self.run_id, step.node_id, step.fingerprint)
        history.observe_sources(env, self.run_id, self.observed, self.watch.sources)
        # a reused version passed its checks when it was built; served again by a successful
        # build, it settles what a failed build of another version opened
        settled = [r.node_id for r in self.results if ok and r.status is Status.REUSED]
        self.recovered = history.update_incidents(
            env, self.run_id, failures(self.results), green(self.results), settled
        )
        self.done = True


def failures(results: Sequence[NodeResult]) -> dict[str, str]:
    """node -> what failed, for each node that failed or could not run."""
    found = {}
    for r in results:
        if r.status is Status.ERROR:
            found[r.node_id] = r.message or "error"
        elif r.status is Status.FAILED:
            failed = [a for a in r.assertions if a.blocks]
            found[r.node_id] = "; ".join(
                f"{a.assertion.name} ({a.assertion.location}): "
                + (a.message or f"{a.failing} failing")
                for a in failed
            )
    return found


def green(results: Sequence[NodeResult]) -> list[str]:
    """Nodes this run checked and found passing every blocking check."""
    checked = (Status.BUILT, Status.RETESTED, Status.PASSED)
    return [
        r.node_id
        for r in results
        if r.status in checked and not any(a.blocks for a in r.assertions)
    ]


def _run_step(
    project: Project,
    engine: Engine,
    relations: Relations,
    step: Step,
    served: set[Relation],
    watch: Watch,
) -> NodeResult:
    node = project.nodes[step.node_id]
    started = time.perf_counter()
    rows = None
    warnings: list[str] = []
    try:
        if step.action is Action.CHECK_SOURCE:
            warnings = check_source_columns(project, engine, node)
            rows = engine.row_count(Relation(node.schema, node.name))
        elif step.action is Action.BUILD:
            assert step.physical is not None
            if node.kind is Kind.SOURCE:
                warnings = check_source_columns(project, engine, node)
            rows = _build_version(project, engine, relations, node, step, served)
    except EngineError as exc:
        return NodeResult(
            node.id,
            step.action,
            Status.ERROR,
            time.perf_counter() - started,
            message=exc.message,
            location=node.relpath,
            hint=exc.hint,
        )
    if step.action is Action.REUSE:
        # the same file as before: only how long it has gone unchanged is news
        fresh = watch.freshness(node, step.data_stamp)
        if fresh is None:
            return NodeResult(node.id, step.action, Status.REUSED, time.perf_counter() - started)
        status = Status.FAILED if fresh.blocks else Status.REUSED
        return NodeResult(
            node.id, step.action, status, time.perf_counter() - started, assertions=(fresh,)
        )
    checks = tuple(
        run_assertions(engine, relations, node, watch.recorded(node.id), watch.monitors(node))
    )
    fresh = watch.freshness(node, step.data_stamp)
    if fresh is not None:
        checks += (fresh,)
    blocked = any(a.blocks for a in checks)
    if blocked:
        status = Status.FAILED
    else:
        status = {
            Action.BUILD: Status.BUILT,
            Action.RETEST: Status.RETESTED,
        }.get(step.action, Status.PASSED)
    return NodeResult(
        node.id,
        step.action,
        status,
        time.perf_counter() - started,
        rows,
        checks,
        warnings=tuple(warnings),
    )


def _build_version(
    project: Project,
    engine: Engine,
    relations: Relations,
    node: Node,
    step: Step,
    served: set[Relation],
) -> int | None:
    physical = step.physical
    assert physical is not None
    # an interrupted earlier build may have left this version's relation behind, unrecorded
    kinds = engine.relations(physical.schema) if step.leftover else {}
    if physical.name in kinds:
        if physical in served:
            raise EngineError(
                f"{physical} is served by an environment but sqlops_meta has no record of it",
                hint="the state was changed by hand; restore it, or build into a new environment",
            )
        engine.drop(physical, kinds[physical.name])
    if node.kind is Kind.SEED:
        return engine.load_file(physical, node.path, [], seed=True)
    if node.kind is Kind.SOURCE:
        assert node.location is not None
        declared = [(c.name, c.type) for c in node.columns or ()]
        path = project.location_path(node)
        rows = engine.load_file(physical, path, declared)
        if step.data_stamp is not None and f"file {file_hash(path)}" != step.data_stamp:
            # the version's name promises the bytes that were planned; these are others
            engine.drop(physical, "table")
            raise EngineError(
                f"{node.location} changed while the build was running",
                hint="run the build again once the file is complete",
            )
        return rows
    sql = relations.query(node).sql(engine.dialect)
    if node.materialized is Materialized.VIEW:
        engine.create_view_as(physical, sql)
        # a view that cannot be read must fail here, not when someone reads the environment
        return engine.read_all(physical)
    return engine.create_table_as(physical, sql)


class _Recorder:
    """Records each node's result and the version it built or re-tested. Writes are batched, a
    transaction at most every second: a version whose record a crash lost is dropped and built
    again by the next build (see _build_version), so batching loses work, never state."""

    def __init__(self, history: History, run_id: int, plan: Plan, fps: dict[str, str]) -> None:
        self.history, self.run_id, self.fps = history, run_id, fps
        self.order = {s.node_id: i for i, s in enumerate(plan.steps)}
        self.results: list[tuple[Node, NodeResult, str | None]] = []
        self.versions: list[Version] = []
        self.aside: list[Measured] = []  # what the passed versions measured
        self.flushed = time.perf_counter()

    def add(self, node: Node, step: Step, result: NodeResult, *, flush: bool = True) -> None:
        """Keep a node's result; write what is kept at most every second (`flush`)."""
        self.results.append((node, result, step.fingerprint))
        records = (
            step.action in (Action.BUILD, Action.RETEST)
            and step.physical is not None
            and not step.recheck
            and result.status not in (Status.ERROR, Status.SKIPPED)
        )
        if records:
            assert step.physical is not None
            self.versions.append(
                Version(
                    node.id,
                    step.fingerprint,
                    step.physical,
                    node.relation_kind,
                    "passed" if result.ok else "failed",
                    assertions_hash(node, self.fps),
                    result.rows,
                )
            )
            if result.ok:
                self.aside += [
                    Measured(node.id, expr, step.fingerprint, value)
                    for a in result.assertions
                    for expr, value in a.tracked.items()
                ]
        if flush and self.versions and time.perf_counter() - self.flushed > 1.0:
            with self.history.engine.transaction():
                self.flush()

    def flush(self) -> None:
        """Write what is pending. Call inside a transaction."""
        self.history.record_nodes(self.run_id, self.results, self.order)
        self.history.store.record_versions(self.versions)
        # kept with the versions: a build killed before it promotes loses none of their values
        self.history.keep_aside(self.run_id, unique(self.aside))
        self.results, self.versions, self.aside = [], [], []
        self.flushed = time.perf_counter()


def _promote(
    project: Project,
    engine: Engine,
    store: StateStore,
    plan: Plan,
    commit: Commit | None,
    ending: _Ending,
    definitions_now: dict[str, str],
) -> int | None:
    """Point the environment's views at the new versions and record it (sqlops.run.switch).
    `definitions_now`: the definitions the environment records anew (_definitions)."""
    current = store.environment(plan.env)
    deployed = []
    for step in plan.promoted:
        node = project.nodes[step.node_id]
        assert step.physical is not None
        deployed.append(Deployed(node.id, step.fingerprint, step.physical, node.relation_kind))
    views = {d.node: env_relation(project.nodes[d.node], plan.env) for d in deployed}
    deployed_of = {d.node: d for d in deployed}
    # a full build also retires what the project no longer has (a deleted or renamed model)
    full = set(plan.selected) >= set(project.nodes)
    retired = (
        sorted(n for n in current if n not in project.nodes or not project.nodes[n].is_versioned)
        if full
        else []
    )
    present = engine.relations_in(view.schema for view in views.values())
    intact = all(views[d.node].name in present[views[d.node].schema] for d in deployed)
    recorded = store.definitions(plan.env)
    forget = [n for n in recorded if n not in project.nodes] if full else []
    if (
        intact
        and not retired
        and not definitions_now
        and not forget
        and all(current.get(d.node) == d for d in deployed)
    ):
        return None  # the environment already serves exactly these versions
    carried = [
        s
        for s in plan.promoted
        if s.action is Action.REUSE and current.get(s.node_id) != deployed_of[s.node_id]
    ]

    def also(deployment: int) -> None:
        ending.history.promoted(ending.run_id, deployment)
        ending.write(True, carried)

    unchanged = [
        d.node
        for d in deployed
        if current.get(d.node) == d
        and present[views[d.node].schema].get(views[d.node].name) == "view"
    ]
    change = ViewSwitch(
        plan.env,
        deployed,
        retired,
        definitions_now,
        forget,
        run_id=ending.run_id,
        commit=commit,
        unchanged=unchanged,
    )
    return switch(engine, store, change, also=also)


def _definitions(project: Project, node_ids: list[str], recorded: dict[str, str]) -> dict[str, str]:
    """The definitions the environment must record anew, for `sqlops impact`: those of the nodes
    the build covered (ephemeral models and tables read in place included) that differ from what
    it recorded. Types cost to infer, so only those nodes get them."""
    changed = []
    for node_id, definition in definitions(project, node_ids, types=False).items():
        text = recorded.get(node_id)
        before = Definition.from_json(text) if text else None
        if before is None or before.without_types() != definition.without_types():
            changed.append(node_id)
    return {n: d.to_json() for n, d in definitions(project, changed).items()}

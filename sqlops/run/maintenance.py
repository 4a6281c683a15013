"""Environment maintenance: `sqlops rollback` points an environment back at an earlier deployment;
`sqlops gc` drops the physical relations that no environment and no recent deployment uses.

Both read what an environment served after each deployment by replaying its deployments
(`served_after`), and both change views and state in one transaction, like a build's promotion.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlops.engines.base import Relation
from sqlops.errors import EngineError, SqlopsError
from sqlops.gitinfo import Commit
from sqlops.plan.relations import SANDBOX_PREFIX, env_relation_of
from sqlops.run.switch import ViewSwitch, switch
from sqlops.state.store import Deployed, DeploymentRecord, StateStore, Version

if TYPE_CHECKING:
    from sqlops.engines.base import Engine
    from sqlops.project.loader import Project

KEEP = 5  # deployments of each environment whose relations `sqlops gc` keeps by default
# what a version's physical relation is called: <name>__<first 12 hex digits of its fingerprint>
_VERSION_NAME = re.compile(r"__[0-9a-f]{12}$")


# -- opening a target: maintenance must work when the working tree does not load --------------


def open_target(start: Path, target: str | None, *, read_only: bool) -> Engine:
    """A connection to a target of the project, from sqlops.toml alone."""
    from sqlops.engines import connect
    from sqlops.project.config import find_project_root, load_config

    root = find_project_root(start)
    return connect(load_config(root).target(target), root, read_only=read_only)


def try_load(start: Path, target: str | None) -> tuple[Project | None, str | None]:
    """The project, or None and why it does not load (a rollback then forgets definitions)."""
    from sqlops.project.config import find_project_root
    from sqlops.project.loader import load_project

    try:
        return load_project(start, target), None
    except SqlopsError as exc:
        where = exc.location
        if exc.path is not None and exc.path.is_absolute():  # as the project's files are named
            with contextlib.suppress(SqlopsError, ValueError):
                relative = exc.path.relative_to(find_project_root(start))
                where = str(relative) + where[len(str(exc.path)) :]
        return None, (f"{where}: " if where else "") + exc.message


# -- what an environment served after each deployment -----------------------------------------


def served_after(records: Iterable[DeploymentRecord]) -> dict[int, dict[str, str]]:
    """node -> fingerprint that an environment served right after each of its deployments.

    `records` are one environment's deployments, oldest first. A build with selectors promoted
    part of the environment, so its versions are laid over what was served before; a build
    without selectors set all of it (the nodes it does not name were retired); a rollback
    served again what the deployment it restored served.
    """
    after: dict[int, dict[str, str]] = {}
    state: dict[str, str] = {}
    for record in records:
        if record.restores is not None and record.restores in after:
            state = dict(after[record.restores])
        elif record.whole:
            state = dict(record.nodes)
        else:
            state = {**state, **record.nodes}
        after[record.id] = state
    return after


def physical_of(
    node_id: str, fingerprint: str, versions: dict[tuple[str, str], Version]
) -> Relation:
    """Where a version was built: as recorded, else by the naming rule of
    sqlops.plan.relations.physical_relation (a record gc forgot)."""
    version = versions.get((node_id, fingerprint))
    if version is not None:
        return version.physical
    schema, _, name = node_id.partition(".")
    return Relation(f"{SANDBOX_PREFIX}{schema}", f"{name}__{fingerprint[:12]}")


class _Catalog:
    """The relations of each schema, read once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._schemas: dict[str, dict[str, str]] = {}

    def schema(self, schema: str) -> dict[str, str]:
        if schema not in self._schemas:
            self._schemas[schema] = self.engine.relations(schema)
        return self._schemas[schema]

    def kind(self, relation: Relation) -> str | None:
        return self.schema(relation.schema).get(relation.name)


# -- rollback ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """A version as an environment serves it: a view on its physical relation."""

    node: str
    fingerprint: str
    physical: Relation
    relation_kind: str


@dataclass(frozen=True)
class Switch:
    node: str
    before: Served | None  # None: the environment does not serve the node now
    after: Served | None  # None: the rollback stops serving it (its view is dropped)


@dataclass(frozen=True)
class Rollback:
    """A rollback, planned (`deployment` None) or done."""

    env: str
    current: int  # the environment's latest deployment
    to: DeploymentRecord  # the deployment whose versions the environment serves again
    switches: tuple[Switch, ...]
    repaired: tuple[Served, ...]  # unchanged versions whose view was missing: made again
    definitions: dict[str, str]  # node -> definition recorded for `sqlops impact`
    forgotten: tuple[str, ...]  # nodes whose recorded definitions are deleted
    notes: tuple[str, ...] = ()
    deployment: int | None = None  # the deployment that recorded the rollback

    @property
    def changes_nothing(self) -> bool:
        return not self.switches and not self.repaired

    def to_json(self) -> dict[str, Any]:
        def served(s: Served | None) -> dict[str, Any] | None:
            if s is None:
                return None
            return {
                "fingerprint": s.fingerprint,
                "relation": str(s.physical),
                "kind": s.relation_kind,
            }

        return {
            "env": self.env,
            "from_deployment": self.current,
            "to_deployment": self.to.id,
            "to_git_commit": self.to.git_commit,
            "to_deployed_at": self.to.deployed_at,
            "deployment": self.deployment,
            "changes": [
                {
                    "node": s.node,
                    "view": str(env_relation_of(s.node, self.env)),
                    "before": served(s.before),
                    "after": served(s.after),
                }
                for s in self.switches
            ],
            "repaired_views": [str(env_relation_of(s.node, self.env)) for s in self.repaired],
            "definitions": {
                "recorded": sorted(self.definitions),
                "forgotten": list(self.forgotten),
            },
            "notes": list(self.notes),
        }


def plan_rollback(
    engine: Engine,
    env: str,
    to: int | None = None,
    project: Project | None = None,
    project_problem: str | None = None,
) -> Rollback:
    """What rolling `env` back to deployment `to` (default: the latest earlier deployment that
    served something else than the environment serves now) changes. Reads only; refuses, naming
    them, when a relation it needs is gone or a view it would create is someone else's."""
    store = StateStore(engine)
    records = store.deployment_records(env)
    if not records:
        others = sorted({r.env for r in store.deployment_records()})
        raise SqlopsError(
            f"environment `{env}` has no deployments, so there is nothing to roll back",
            hint=f"environments with deployments: {', '.join(others)}"
            if others
            else f"deploy it first with `sqlops build --env {env}`",
        )
    after = served_after(records)
    current = store.environment(env)
    now = {n: d.fingerprint for n, d in current.items()}
    latest = records[-1]
    if to is None:
        earlier = [r for r in reversed(records[:-1]) if after[r.id] != now]
        if not earlier:
            raise SqlopsError(
                f"environment `{env}` has only one deployment ({latest.id}): there is nothing "
                "to roll back to"
                if len(records) == 1
                else f"every earlier deployment of environment `{env}` served what it serves "
                "now: there is nothing to roll back to",
                hint="a rollback goes back to an earlier deployment; build the versions you want "
                f"with `sqlops build --env {env}`",
            )
        chosen = earlier[0]
    else:
        found = [r for r in records if r.id == to]
        if not found:
            listed = ", ".join(str(r.id) for r in records[-10:])
            raise SqlopsError(
                f"deployment {to} is not a deployment of environment `{env}`",
                hint=f"its latest deployments are {listed} (see sqlops_meta.deployments)",
            )
        chosen = found[0]

    versions = store.versions()
    catalog = _Catalog(engine)

    def served(node: str, fingerprint: str) -> Served:
        if node in current and current[node].fingerprint == fingerprint:
            d = current[node]
            return Served(node, fingerprint, d.physical, d.relation_kind)
        physical = physical_of(node, fingerprint, versions)
        recorded = versions.get((node, fingerprint))
        kind = catalog.kind(physical) or (recorded.relation_kind if recorded else "table")
        return Served(node, fingerprint, physical, kind)

    target = {n: served(n, fp) for n, fp in sorted(after[chosen.id].items())}
    switches = tuple(
        Switch(
            n,
            served(n, current[n].fingerprint) if n in current else None,
            target.get(n),
        )
        for n in sorted(set(current) | set(target))
        if n not in current or n not in target or current[n].fingerprint != target[n].fingerprint
    )
    _check_relations(engine, catalog, env, chosen, [s.after for s in switches if s.after])
    _check_views(catalog, env, switches)
    repaired = tuple(
        s
        for n, s in target.items()
        if n in current
        and current[n].fingerprint == s.fingerprint
        and catalog.kind(env_relation_of(n, env)) is None
    )
    notes = []
    for s in switches:
        recorded = versions.get((s.node, s.after.fingerprint)) if s.after else None
        if recorded is not None and recorded.status == "failed":
            notes.append(
                f"{s.node}: the version it serves again failed its assertions when it was last "
                f"checked; run `sqlops test --env {env}` after the rollback"
            )
    if project is not None:
        gone = [s.node for s in switches if s.after and s.node not in project.nodes]
        if gone:
            notes.append(
                f"{', '.join(gone)}: not in the project any more; the environment serves "
                f"{'it' if len(gone) == 1 else 'them'} again until a build without selectors "
                "retires " + ("it" if len(gone) == 1 else "them")
            )
    record, forget, why = _definitions(project, project_problem, engine, switches, versions)
    if why:
        notes.append(why)
    return Rollback(env, latest.id, chosen, switches, repaired, record, forget, tuple(notes))


def _check_relations(
    engine: Engine,
    catalog: _Catalog,
    env: str,
    to: DeploymentRecord,
    needed: list[Served],
) -> None:
    """Every physical relation the rollback points a view at exists, and a view version still
    reads (what it reads may be gone)."""
    missing = []
    for s in needed:
        if catalog.kind(s.physical) is None:
            missing.append(f"{s.physical} ({s.node})")
        elif catalog.kind(s.physical) == "view":
            try:
                engine.query(f"SELECT * FROM {engine.quote(s.physical)} WHERE 1 = 0")
            except EngineError as exc:
                missing.append(
                    f"{s.physical} ({s.node}, a view that no longer reads: {exc.message})"
                )
    if missing:
        one = len(missing) == 1
        it = "it" if one else "them"
        commit = f"commit {to.git_commit[:12]}" if to.git_commit else "its code"
        raise SqlopsError(
            f"cannot roll back environment `{env}` to deployment {to.id}: "
            f"{len(missing)} relation{'' if one else 's'} it served {'is' if one else 'are'} "
            f"gone: {', '.join(missing)}; nothing was changed",
            hint=f"`sqlops gc` (or someone) dropped {it}; gc keeps what the last deployments of "
            "each environment served: roll back to another deployment (--to), or check out "
            f"{commit} and run `sqlops build --env {env}`, which builds {it} again",
        )


def _check_views(catalog: _Catalog, env: str, switches: tuple[Switch, ...]) -> None:
    """A rollback replaces the views sqlops made; a table or view of someone else's is refused."""
    for s in switches:
        if s.after is None:
            continue
        view = env_relation_of(s.node, env)
        kind = catalog.kind(view)
        if kind is not None and (s.before is None or kind != "view"):
            raise SqlopsError(
                f"rolling back environment `{env}` would replace the {kind} {view}, which sqlops "
                "did not create; nothing was changed",
                hint=f"rename or move {view} out of the way, then roll back again",
            )


def _definitions(
    project: Project | None,
    problem: str | None,
    engine: Engine,
    switches: tuple[Switch, ...],
    versions: dict[tuple[str, str], Version],
) -> tuple[dict[str, str], tuple[str, ...], str | None]:
    """What to record for `sqlops impact` about each node the rollback changes: definitions to
    write, nodes whose definitions to delete, and a note when some could not be written.

    Old definitions are not kept, so a node served again gets the working tree's definition only
    when the working tree has exactly that version (same fingerprint, same assertions); the
    others' are deleted, and `sqlops impact` then treats those nodes as changed. An ephemeral
    model that feeds a changed version keeps a definition only when every such version matched.
    """
    retired = {s.node for s in switches if s.after is None}
    changed = {s.node: s.after for s in switches if s.after is not None}
    if not changed:
        return {}, tuple(sorted(retired)), None
    if project is None:
        return (
            {},
            tuple(sorted(retired | set(changed))),
            (
                f"the project does not load ({problem}): the definitions of the nodes the "
                "rollback changes are forgotten, so `sqlops impact` treats them as changed"
            ),
        )
    from sqlops.graph.fingerprint import assertions_hash, fingerprints
    from sqlops.impact.definition import definitions
    from sqlops.run.executor import data_stamps

    why = None
    matched: set[str] = set()
    try:
        now = fingerprints(project, data_stamps(project, engine))
    except SqlopsError as exc:
        why = f"the project's versions cannot be computed ({exc.message})"
    else:
        for node_id, after in changed.items():
            node = project.nodes.get(node_id)
            recorded = versions.get((node_id, after.fingerprint))
            if (
                node is not None
                and now.get(node_id) == after.fingerprint
                and recorded is not None
                and recorded.assertions_hash == assertions_hash(node, now)
            ):
                matched.add(node_id)
    fed = {
        n.id: changed.keys() & project.graph.descendants(n.id)
        for n in project.nodes.values()
        if n.is_ephemeral
    }
    fed = {n: readers for n, readers in fed.items() if readers}
    matched |= {n for n, readers in fed.items() if readers <= matched}
    forget = sorted((retired | set(changed) | set(fed)) - matched)
    record = {n: d.to_json() for n, d in definitions(project, sorted(matched)).items()}
    unknown = [n for n in forget if n in changed]
    if unknown:
        named = ", ".join(unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        one = len(unknown) == 1
        why = (why + "; " if why else "") + (
            f"{named}: the working tree has {'another version' if one else 'other versions'}, "
            f"so {'its definition is' if one else 'their definitions are'} forgotten and "
            f"`sqlops impact` treats {'it' if one else 'them'} as changed"
        )
    return record, tuple(forget), why


def apply_rollback(engine: Engine, plan: Rollback) -> Rollback:
    """Switch the views and sqlops_meta.environments (sqlops.run.switch), and record the rollback
    as a deployment of the environment (git commit: the one of the deployment it restores)."""
    store = StateStore(engine)
    store.ensure()
    env = plan.env
    pointed = [s.after for s in plan.switches if s.after is not None] + list(plan.repaired)
    promoted = [s.after for s in plan.switches if s.after is not None]
    commit = Commit(plan.to.git_commit, None, plan.to.author) if plan.to.git_commit else None

    def check() -> None:
        latest = store.latest_deployment(env)
        if latest != plan.current:
            raise SqlopsError(
                f"environment `{env}` was deployed to (deployment {latest}) while the rollback "
                "was being prepared; nothing was changed",
                hint="look at what it serves now, then run `sqlops rollback` again",
            )

    change = ViewSwitch(
        env,
        [Deployed(a.node, a.fingerprint, a.physical, a.relation_kind) for a in pointed],
        [s.node for s in plan.switches if s.after is None],
        plan.definitions,
        list(plan.forgotten),
        promoted=[Deployed(a.node, a.fingerprint, a.physical, a.relation_kind) for a in promoted],
        commit=commit,
        restores=plan.to.id,
    )
    deployment = switch(engine, store, change, check=check)
    return replace(plan, deployment=deployment)


# -- gc ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Garbage:
    """A physical relation that nothing uses."""

    relation: Relation
    kind: str  # "table" or "view"
    node: str | None  # None: not recorded (left behind by an interrupted build)
    fingerprint: str | None
    status: str | None  # the version's: "passed" or "failed"
    rows: int | None  # as recorded when it was built

    def to_json(self) -> dict[str, Any]:
        return {
            "relation": str(self.relation),
            "kind": self.kind,
            "node": self.node,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class Collection:
    """What `sqlops gc` drops (or would), and what it keeps and why."""

    keep: int
    dropped: tuple[Garbage, ...]  # in the order they are dropped: readers first
    forgotten: tuple[Version, ...]  # records of versions whose relation is already gone
    kept: dict[str, int]  # why relations of the sandbox stay -> how many
    deployments: dict[str, tuple[int, ...]]  # env -> the deployments whose relations are kept
    done: bool = False

    @property
    def rows(self) -> int:
        return sum(g.rows or 0 for g in self.dropped)

    def to_json(self) -> dict[str, Any]:
        return {
            "keep": self.keep,
            "dry_run": not self.done,
            "dropped": [g.to_json() for g in self.dropped],
            "relations": len(self.dropped),
            "rows": self.rows,
            "forgotten": [
                {"node": v.node, "fingerprint": v.fingerprint, "relation": str(v.physical)}
                for v in self.forgotten
            ],
            "kept": self.kept,
            "kept_deployments": {env: list(ids) for env, ids in self.deployments.items()},
        }


def plan_gc(engine: Engine, keep: int = KEEP) -> Collection:
    """The physical relations of the sandbox schemas that no environment serves, that none of the
    last `keep` deployments of each environment served, and that no view kept (or of anyone's)
    reads. Reads only."""
    store = StateStore(engine)
    if not store.exists():
        return Collection(keep, (), (), {}, {})
    versions = store.versions()
    by_env: dict[str, list[DeploymentRecord]] = {}
    for record in store.deployment_records():
        by_env.setdefault(record.env, []).append(record)
    served = store.served()
    recent: set[Relation] = set()
    kept_ids: dict[str, tuple[int, ...]] = {}
    for env, records in sorted(by_env.items()):
        after = served_after(records)
        kept_ids[env] = tuple(r.id for r in records[max(0, len(records) - keep) :])
        for deployment in kept_ids[env]:
            recent |= {physical_of(n, fp, versions) for n, fp in after[deployment].items()}
    present: dict[Relation, str] = {}
    for schema in sorted(_sandbox_schemas(engine, versions, served)):
        for name, kind in engine.relations(schema).items():
            present[Relation(schema, name)] = kind
    ours = {r for r in present if _VERSION_NAME.search(r.name)}
    reads = _view_reads(engine, set(present))
    # views outside the candidates (the environments', a user's, ...) keep what they read, and a
    # kept view version keeps what it reads (the upstream versions it was built on)
    kept = (served | recent) & set(present)
    for view, read in reads.items():
        if view not in ours:
            kept |= read
    pending = list(kept)
    while pending:
        for upstream in reads.get(pending.pop(), ()):
            if upstream not in kept:
                kept.add(upstream)
                pending.append(upstream)
    by_physical = {v.physical: v for v in versions.values()}
    dropped = []
    for relation in _readers_first(ours - kept, reads):
        v = by_physical.get(relation)
        dropped.append(
            Garbage(
                relation,
                present[relation],
                v.node if v else None,
                v.fingerprint if v else None,
                v.status if v else None,
                v.row_count if v else None,
            )
        )
    forgotten = tuple(
        sorted(
            (v for v in versions.values() if v.physical not in present and v.physical not in kept),
            key=lambda v: (v.node, v.fingerprint),
        )
    )
    in_sandbox = set(present)
    why = {
        "served": len(served & in_sandbox),
        "recent_deployments": len((recent & in_sandbox) - served),
        "read_by_views": len(kept - served - recent),
        "not_versions": len(in_sandbox - ours),
    }
    return Collection(keep, tuple(dropped), forgotten, why, kept_ids)


def _sandbox_schemas(
    engine: Engine, versions: dict[tuple[str, str], Version], served: set[Relation]
) -> set[str]:
    """sqlops__<schema>: from the catalog, and from state."""
    schemas = {s for s in engine.schemas() if s.startswith(SANDBOX_PREFIX)}
    schemas |= {v.physical.schema for v in versions.values()} | {r.schema for r in served}
    return {s for s in schemas if s.startswith(SANDBOX_PREFIX)}


def _view_reads(engine: Engine, known: set[Relation]) -> dict[Relation, set[Relation]]:
    """Every view of the database that reads a relation of the sandbox -> those it reads."""
    rows = engine.view_definitions(SANDBOX_PREFIX[:6])
    found: dict[Relation, set[Relation]] = {}
    for schema, name, text in rows:
        view = Relation(str(schema), str(name))
        try:
            tables = [
                Relation(t.db, t.name)
                for t in sqlglot.parse_one(str(text), read=engine.dialect).find_all(exp.Table)
                if t.db.startswith(SANDBOX_PREFIX)
            ]
        except SqlglotError:  # cannot parse it: keep every relation it names
            tables = [r for r in known if r.name in str(text)]
        read = {t for t in tables if t != view}
        if read:
            found[view] = read
    return found


def _readers_first(
    relations: set[Relation], reads: dict[Relation, set[Relation]]
) -> list[Relation]:
    """Drop order: a view before what it reads (PostgreSQL refuses the other way)."""
    left = set(relations)
    ordered: list[Relation] = []
    while left:
        read = {r for view in left for r in reads.get(view, ()) if r in left}
        ready = sorted(left - read, key=str) or sorted(left, key=str)  # (no cycles: views)
        ordered += ready
        left -= set(ready)
    return ordered


def collect(engine: Engine, plan: Collection) -> Collection:
    """Drop what `plan` found and forget its versions, in one transaction that first checks
    again, in the database, that no environment serves any of it."""
    if not plan.dropped and not plan.forgotten:
        return replace(plan, done=True)
    store = StateStore(engine)
    if not (engine.supports_transactional_ddl and engine.state is engine):
        return _collect_in_steps(engine, store, plan)
    with engine.transaction():
        _refuse_served(store, plan)
        for garbage in plan.dropped:
            _drop(engine, garbage, "and dropped nothing")
        store.forget_versions(
            [g.relation for g in plan.dropped] + [v.physical for v in plan.forgotten]
        )
    return replace(plan, done=True)


def _collect_in_steps(engine: Engine, store: StateStore, plan: Collection) -> Collection:
    """Without transactions: forget the versions first, then drop their relations. A process
    killed between the two leaves relations that no version names, which the next gc drops."""
    with store.engine.transaction():
        _refuse_served(store, plan)
        store.forget_versions(
            [g.relation for g in plan.dropped] + [v.physical for v in plan.forgotten]
        )
    for number, garbage in enumerate(plan.dropped):
        _drop(engine, garbage, f"after dropping {number} of {len(plan.dropped)}")
    return replace(plan, done=True)


def _refuse_served(store: StateStore, plan: Collection) -> None:
    served = store.served()
    clash = sorted(str(g.relation) for g in plan.dropped if g.relation in served)
    if clash:
        raise SqlopsError(
            f"{', '.join(clash)} {'is' if len(clash) == 1 else 'are'} served by an "
            "environment now (a build or rollback ran meanwhile); nothing was dropped",
            hint="run `sqlops gc` again",
        )


def _drop(engine: Engine, garbage: Garbage, so_far: str) -> None:
    try:
        engine.drop(garbage.relation, garbage.kind)
    except EngineError as exc:
        raise EngineError(
            f"gc stopped at {garbage.relation}, {so_far}: {exc.message}",
            hint="something sqlops does not know of reads it (someone's view, say): "
            "drop or change that first; `sqlops gc --dry-run` lists what gc drops",
        ) from None

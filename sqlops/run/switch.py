"""Switching an environment: point its views at versions and record it in the state.

Where the engine holds its own state and has transactional DDL (DuckDB, PostgreSQL), views and
state change in one transaction: all or nothing.

Where it does not (Spark), the switch is journaled:

1. the whole switch is written down in the state database (one transaction);
2. the views are replaced one by one (each replacement is atomic on its own);
3. the state records the deployment and closes the journal (one transaction).

A process killed in step 2 leaves some views on the new versions and some on the old: every
version it points at passed its checks, but the environment mixes two deployments until the next
sqlops command that writes (build, test, rollback, gc) finds the journal and finishes the switch
(`finish_switches`). Killed before step 1 ends, nothing changed; after step 3, all did.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlops.engines.base import Engine, Relation
from sqlops.errors import EngineError
from sqlops.gitinfo import Commit
from sqlops.plan.relations import env_relation_of
from sqlops.state.store import Deployed, StateStore


@dataclass(frozen=True)
class ViewSwitch:
    env: str
    views: Sequence[Deployed]  # the views to point at these versions
    retired: Sequence[str] = ()  # nodes whose views go
    definitions: dict[str, str] = field(default_factory=dict)  # for `sqlops impact`
    forget: Sequence[str] = ()  # nodes whose definitions go
    # what the deployment records as promoted (a rollback also re-points views it repaired)
    promoted: Sequence[Deployed] | None = None
    run_id: int | None = None
    commit: Commit | None = None
    restores: int | None = None  # a rollback: the deployment it serves again

    def to_json(self) -> str:
        return json.dumps(
            {
                "env": self.env,
                "views": [_deployed_json(d) for d in self.views],
                "retired": list(self.retired),
                "definitions": self.definitions,
                "forget": list(self.forget),
                "promoted": None
                if self.promoted is None
                else [_deployed_json(d) for d in self.promoted],
                "run_id": self.run_id,
                "commit": None
                if self.commit is None
                else [
                    self.commit.sha,
                    self.commit.time.isoformat() if self.commit.time else None,
                    self.commit.author,
                ],
                "restores": self.restores,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ViewSwitch:
        data = json.loads(text)
        commit = data["commit"]
        return cls(
            data["env"],
            [_deployed(d) for d in data["views"]],
            data["retired"],
            data["definitions"],
            data["forget"],
            None if data["promoted"] is None else [_deployed(d) for d in data["promoted"]],
            data["run_id"],
            None
            if commit is None
            else Commit(
                commit[0], datetime.fromisoformat(commit[1]) if commit[1] else None, commit[2]
            ),
            data["restores"],
        )


def _deployed_json(d: Deployed) -> list[str]:
    return [d.node, d.fingerprint, d.physical.schema, d.physical.name, d.relation_kind]


def _deployed(row: list[str]) -> Deployed:
    return Deployed(row[0], row[1], Relation(row[2], row[3]), row[4])


def switch(
    engine: Engine,
    store: StateStore,
    change: ViewSwitch,
    *,
    check: Callable[[], None] = lambda: None,
    also: Callable[[int], None] = lambda deployment: None,
) -> int:
    """ViewSwitch and record; the deployment's id. `check` runs first, where the switch is decided
    (it raises to call it off); `also(deployment)` writes what else the state records with it."""
    if engine.supports_transactional_ddl and engine.state is engine:
        with engine.transaction():
            check()
            _point_views(engine, change)
            deployment = _record(store, change)
            also(deployment)
        return deployment
    finish_switches(engine, store)  # a switch left half done comes first
    state = store.engine
    with state.transaction():
        check()
        store.journal(change.env, change.to_json())
    _point_views(engine, change)
    with state.transaction():
        deployment = _record(store, change)
        also(deployment)
        store.close_journal(change.env)
    return deployment


def finish_switches(engine: Engine, store: StateStore) -> list[str]:
    """Finish every switch a killed process left half done (see the module's doc); a line for
    each, to tell the user."""
    done = []
    for env, text in sorted(store.journaled().items()):
        change = ViewSwitch.from_json(text)
        try:
            _point_views(engine, change)
        except EngineError as exc:
            raise EngineError(
                f"environment `{env}` has a switch that run {change.run_id} left half done, and "
                f"it cannot be finished: {exc.message}",
                hint="a version it points at is gone; run `sqlops build --env "
                f"{env}` after restoring it, or `sqlops rollback --env {env}`",
            ) from None
        with store.engine.transaction():
            deployment = _record(store, change)
            if change.run_id is not None:
                store.engine.execute(
                    f"UPDATE {store._t('runs')} SET deployment_id = ?, outcome = CASE WHEN "
                    "outcome = 'running' THEN 'success' ELSE outcome END WHERE id = ?",
                    (deployment, change.run_id),
                )
            store.close_journal(env)
        done.append(
            f"finished the switch of environment `{env}` that "
            + (f"run {change.run_id}" if change.run_id is not None else "a rollback")
            + f" left half done (deployment {deployment})"
        )
    return done


def _point_views(engine: Engine, change: ViewSwitch) -> None:
    views = {d.node: env_relation_of(d.node, change.env) for d in change.views}
    for schema in sorted({v.schema for v in views.values()}):
        engine.create_schema(schema)
    for d in change.views:
        engine.create_view_as(
            views[d.node], f"SELECT * FROM {engine.quote(d.physical)}", replace=True
        )
    for node_id in change.retired:
        view = env_relation_of(node_id, change.env)
        # a source that now is someone's table keeps it: only sqlops's view goes
        if engine.relations(view.schema).get(view.name) == "view":
            engine.drop(view, "view")


def _record(store: StateStore, change: ViewSwitch) -> int:
    store.retire(change.env, list(change.retired))
    store.set_definitions(change.env, change.definitions, list(change.forget))
    promoted = change.views if change.promoted is None else change.promoted
    deployment = store.set_deployed(change.env, list(promoted), change.commit, change.run_id)
    if change.restores is not None:
        store.mark_restored(deployment, change.restores)
    return deployment

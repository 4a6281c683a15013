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
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlops.clock import now
from sqlops.engines.base import Engine, Relation
from sqlops.errors import EngineError, SqlopsError
from sqlops.gitinfo import Commit
from sqlops.plan.relations import env_relation_of
from sqlops.state.store import Deployed, StateStore

JOURNAL_VERSION = 1


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
    # nodes of `views` whose view is there and serves that version already: left as it is
    unchanged: Sequence[str] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": JOURNAL_VERSION,
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
                "unchanged": list(self.unchanged),
            }
        )

    @classmethod
    def from_json(cls, text: str, env: str) -> ViewSwitch:
        try:
            return cls._from_json(text)
        except (ValueError, KeyError, TypeError, IndexError):
            raise SqlopsError(
                f"the journal of a switch of environment `{env}` cannot be read (written by "
                "another version of sqlops?)",
                hint=f"remove it with DELETE FROM sqlops_meta.meta WHERE key = 'switch:{env}' in "
                "the state database, then check the environment with `sqlops rollback --dry-run`",
            ) from None

    @classmethod
    def _from_json(cls, text: str) -> ViewSwitch:
        data = json.loads(text)
        if data.get("v") != JOURNAL_VERSION:
            raise ValueError("another journal version")
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
            tuple(data.get("unchanged", ())),
        )


def _deployed_json(d: Deployed) -> list[str]:
    return [d.node, d.fingerprint, d.physical.schema, d.physical.name, d.relation_kind]


def _deployed(row: list[str]) -> Deployed:
    return Deployed(row[0], row[1], Relation(row[2], row[3]), row[4])


def switches_atomically(engine: Engine) -> bool:
    """Views and state change in one transaction on this engine."""
    return engine.supports_transactional_ddl and engine.state is engine


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
    if switches_atomically(engine):
        with engine.transaction():
            check()
            change = _still_unchanged(store, change)
            _point_views(engine, change)
            deployment = _record(store, change)
            also(deployment)
        return deployment
    finish_switches(engine, store)  # a switch left half done comes first
    state = store.engine
    with state.transaction():
        check()
        change = _still_unchanged(store, change)
        journal = change.to_json()
        if change.env in store.journaled():
            raise SqlopsError(
                f"environment `{change.env}` is being switched by another sqlops; nothing was "
                "changed",
                hint="wait for it to end, then run again",
            )
        store.journal(change.env, journal)
    try:
        _point_views(engine, change)
        with state.transaction():
            deployment = _record(store, change)
            also(deployment)
            store.close_journal(change.env, journal)
    except EngineError as exc:
        raise EngineError(
            f"{exc.message} (the switch of `{change.env}` is journaled)",
            hint="the next sqlops command that writes (build, test, rollback, gc) finishes it",
        ) from None
    return deployment


def finish_switches(engine: Engine, store: StateStore) -> list[str]:
    """Finish every switch a killed process left half done (see the module's doc); a line for
    each, to tell the user."""
    from sqlops.state.history import History

    done, stuck = [], []
    for env, text in sorted(store.journaled().items()):
        change = ViewSwitch.from_json(text, env)
        who = f"run {change.run_id}" if change.run_id is not None else "a rollback"
        try:
            _point_views(engine, change)
        except EngineError as exc:
            stuck.append(
                f"environment `{env}` has a switch that {who} left half done, and it cannot be "
                f"finished: {exc.message}"
            )
            continue
        with store.engine.transaction():
            deployment = _record(store, change)
            if change.run_id is not None:
                # the run deployed: its outcome says so, and its versions bring their values
                store.engine.execute(
                    f"UPDATE {store._t('runs')} SET deployment_id = ?, outcome = 'success', "
                    "message = NULL, finished_at = coalesce(finished_at, ?) WHERE id = ?",
                    (deployment, now(), change.run_id),
                )
                history = History(store)
                for d in change.views:
                    history.carry(env, change.run_id, d.node, d.fingerprint)
            store.close_journal(env, text)
        done.append(
            f"finished the switch of environment `{env}` that {who} left half done "
            f"(deployment {deployment})"
        )
    if stuck:
        raise EngineError(
            "; ".join(stuck),
            hint="a version the switch points at is gone: restore it, or remove the journal "
            "with DELETE FROM sqlops_meta.meta WHERE key = 'switch:<env>' in the state database "
            "and run `sqlops rollback` to serve a deployment whose versions exist",
        )
    return done


def _still_unchanged(store: StateStore, change: ViewSwitch) -> ViewSwitch:
    """`change` with only those views left alone that the environment still serves at the
    version the switch wants, as read where the switch is decided: another sqlops may have
    switched it since the build looked."""
    if not change.unchanged:
        return change
    current = store.environment(change.env)
    wanted = {d.node: d for d in change.views}
    kept = tuple(n for n in change.unchanged if current.get(n) == wanted.get(n))
    return replace(change, unchanged=kept)


def _point_views(engine: Engine, change: ViewSwitch) -> None:
    unchanged = set(change.unchanged)
    repointed = [d for d in change.views if d.node not in unchanged]
    views = {d.node: env_relation_of(d.node, change.env) for d in repointed}
    for schema in sorted({v.schema for v in views.values()}):
        engine.create_schema(schema)
    for d in repointed:
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

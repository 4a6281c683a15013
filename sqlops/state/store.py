"""The state tables, read and written through the engine interface.

Every statement here runs on the engine the build uses, so promotion can write views and state in
the same transaction; an engine without transactions (Spark) names a state database instead, and
promotion follows the journaled protocol of sqlops.run.switch.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlglot

from sqlops.clock import now
from sqlops.engines.base import Relation
from sqlops.errors import SqlopsError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from sqlops.engines.base import Engine
    from sqlops.gitinfo import Commit

META = "sqlops_meta"
SCHEMA_VERSION = 4

# how to bring state of each older version up to the next one
_MIGRATIONS = {
    # 2: environments remember the definition of each node, for `sqlops impact`
    1: ["CREATE TABLE IF NOT EXISTS {definitions} ({definitions_columns})"],
    # 3: run history, measured values, source observations, incidents; deployments say which
    # run made them and when and by whom their commit was made
    2: [
        "CREATE TABLE IF NOT EXISTS {runs} ({runs_columns})",
        "CREATE TABLE IF NOT EXISTS {node_results} ({node_results_columns})",
        "CREATE TABLE IF NOT EXISTS {assertion_results} ({assertion_results_columns})",
        "CREATE TABLE IF NOT EXISTS {measurements} ({measurements_columns})",
        "CREATE TABLE IF NOT EXISTS {source_observations} ({source_observations_columns})",
        "CREATE TABLE IF NOT EXISTS {incidents} ({incidents_columns})",
        "ALTER TABLE {deployments} ADD COLUMN IF NOT EXISTS run_id BIGINT",
        "ALTER TABLE {deployments} ADD COLUMN IF NOT EXISTS commit_time TIMESTAMP",
        "ALTER TABLE {deployments} ADD COLUMN IF NOT EXISTS author VARCHAR",
    ],
    # 4: node results remember their place in the run
    3: ["ALTER TABLE {node_results} ADD COLUMN IF NOT EXISTS seq INTEGER"],
}

_TABLES = {
    "meta": "key VARCHAR PRIMARY KEY, value VARCHAR",
    "versions": (
        "node VARCHAR, fingerprint VARCHAR, physical_schema VARCHAR, physical_name VARCHAR, "
        "relation_kind VARCHAR, status VARCHAR, assertions_hash VARCHAR, row_count BIGINT, "
        "built_at TIMESTAMP, PRIMARY KEY (node, fingerprint)"
    ),
    "environments": (
        "env VARCHAR, node VARCHAR, fingerprint VARCHAR, physical_schema VARCHAR, "
        "physical_name VARCHAR, relation_kind VARCHAR, deployed_at TIMESTAMP, "
        "PRIMARY KEY (env, node)"
    ),
    "deployments": (
        "id BIGINT PRIMARY KEY, env VARCHAR, deployed_at TIMESTAMP, git_commit VARCHAR, "
        "nodes VARCHAR, run_id BIGINT, commit_time TIMESTAMP, author VARCHAR"
    ),
    # what each node of an environment was when it was last built or checked there (JSON of
    # sqlops.impact.definition.Definition): what `sqlops impact` compares the code with
    "definitions": "env VARCHAR, node VARCHAR, definition VARCHAR, PRIMARY KEY (env, node)",
    # run history (sqlops.state.history): every build and test, what each node and check did
    "runs": (
        "id BIGINT PRIMARY KEY, command VARCHAR, env VARCHAR, target VARCHAR, "
        "started_at TIMESTAMP, finished_at TIMESTAMP, duration DOUBLE, user_name VARCHAR, "
        "host VARCHAR, selection VARCHAR, selected INTEGER, git_commit VARCHAR, "
        "outcome VARCHAR, deployment_id BIGINT, counts VARCHAR, message VARCHAR, "
        "sqlops_version VARCHAR"
    ),
    "node_results": (
        "run_id BIGINT, node VARCHAR, kind VARCHAR, action VARCHAR, status VARCHAR, "
        "fingerprint VARCHAR, code_hash VARCHAR, finished_at TIMESTAMP, duration DOUBLE, "
        "row_count BIGINT, message VARCHAR, seq INTEGER, PRIMARY KEY (run_id, node)"
    ),
    "assertion_results": (
        "run_id BIGINT, node VARCHAR, name VARCHAR, check_text VARCHAR, severity VARCHAR, "
        "location VARCHAR, outcome VARCHAR, failing BIGINT, total BIGINT, measured VARCHAR, "
        "samples VARCHAR, message VARCHAR, code_hash VARCHAR, finished_at TIMESTAMP"
    ),
    # the series prev() and anomaly() read: one value per version of the data an environment
    # served, appended when a run that measured it succeeded
    "measurements": (
        "env VARCHAR, node VARCHAR, expr VARCHAR, version VARCHAR, value DOUBLE, "
        "run_id BIGINT, recorded_at TIMESTAMP"
    ),
    # what each source held at each run: volume and freshness monitoring
    "source_observations": (
        "run_id BIGINT, env VARCHAR, node VARCHAR, observed_at TIMESTAMP, row_count BIGINT, "
        "data_stamp VARCHAR, changed_at TIMESTAMP"
    ),
    # a failure of a node in an environment, open until a run checks that node green again
    "incidents": (
        "id BIGINT PRIMARY KEY, env VARCHAR, node VARCHAR, opened_run BIGINT, "
        "opened_at TIMESTAMP, reason VARCHAR, closed_run BIGINT, closed_at TIMESTAMP"
    ),
}
_CORE = ("meta", "versions", "environments", "deployments")  # the tables of state version 1


@dataclass(frozen=True)
class Version:
    node: str
    fingerprint: str
    physical: Relation
    relation_kind: str  # "table" or "view"
    status: str  # "passed" or "failed"
    assertions_hash: str
    row_count: int | None = None


@dataclass(frozen=True)
class Deployed:
    node: str
    fingerprint: str
    physical: Relation
    relation_kind: str


@dataclass(frozen=True)
class DeploymentRecord:
    """One row of sqlops_meta.deployments, with what it takes to replay an environment's history
    (see sqlops.run.maintenance.served_after)."""

    id: int
    env: str
    deployed_at: datetime | None
    git_commit: str | None
    author: str | None
    run_id: int | None
    nodes: dict[str, str]  # node -> fingerprint of each version the deployment promoted
    # it set every node of the environment: a build without selectors (which also retires what
    # the project no longer has), so nodes the deployment does not name were no longer served
    whole: bool
    restores: int | None  # a rollback: the deployment whose versions it served again


class StateStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine.state  # the build's engine, or the state database it names
        self._exists = False  # once the tables are known to be there, they stay
        self._version = SCHEMA_VERSION

    def exists(self) -> bool:
        if self._exists:
            return True
        if not set(_CORE) <= set(self.engine.relations(META)):
            return False
        self._check_version()
        self._exists = True
        return True

    def _check_version(self) -> None:
        rows = self.engine.query(
            f"SELECT value FROM {self._t('meta')} WHERE key = 'schema_version'"
        ).rows
        found = int(rows[0][0]) if rows and str(rows[0][0]).isdigit() else SCHEMA_VERSION
        self._version = found
        if found > SCHEMA_VERSION:
            raise SqlopsError(
                f"the state in {META} was written by a newer sqlops (state version {found}, "
                f"this sqlops knows {SCHEMA_VERSION})",
                hint="upgrade sqlops: pip install --upgrade sqlops",
            )

    def ensure(self) -> None:
        existing = self.engine.relations(META)
        if set(_CORE) <= set(existing):
            self._check_version()
            self._migrate()
            self._exists = True
            return
        with self.engine.transaction():
            self.engine.create_schema(META)
            for name, columns in _TABLES.items():
                if name not in existing:
                    self._ddl(f"CREATE TABLE IF NOT EXISTS {self._t(name)} ({columns})")
            self.engine.execute(f"DELETE FROM {self._t('meta')} WHERE key = 'schema_version'")
            self.engine.execute(
                f"INSERT INTO {self._t('meta')} VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        self._version = SCHEMA_VERSION

    def _migrate(self) -> None:
        """Bring state written by an older sqlops up to date, in one transaction."""
        if self._version >= SCHEMA_VERSION:
            return
        tables = {name: self._t(name) for name in _TABLES}
        tables.update({f"{name}_columns": columns for name, columns in _TABLES.items()})
        with self.engine.transaction():
            for version in range(self._version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[version]:
                    self._ddl(statement.format(**tables))
            self.engine.execute(
                f"UPDATE {self._t('meta')} SET value = ? WHERE key = 'schema_version'",
                (str(SCHEMA_VERSION),),
            )
        self._version = SCHEMA_VERSION

    @property
    def version(self) -> int:
        """The state version found (after exists() or ensure())."""
        return self._version

    def _ddl(self, statement: str) -> None:
        """State tables are declared in DuckDB's types; each engine gets its own."""
        if self.engine.dialect != "duckdb":
            statement = sqlglot.transpile(statement, read="duckdb", write=self.engine.dialect)[0]
        self.engine.execute(statement)

    def _t(self, name: str) -> str:
        return self.engine.quote(Relation(META, name))

    # -- versions -------------------------------------------------------------------------------

    def versions(self) -> dict[tuple[str, str], Version]:
        if not self.exists():
            return {}
        rows = self.engine.query(
            "SELECT node, fingerprint, physical_schema, physical_name, relation_kind, status, "
            f"assertions_hash, row_count FROM {self._t('versions')}"
        ).rows
        return {
            (r[0], r[1]): Version(r[0], r[1], Relation(r[2], r[3]), r[4], r[5], r[6], r[7])
            for r in rows
        }

    def record_versions(self, versions: list[Version]) -> None:
        """Record versions built or re-tested, replacing earlier records of them. Call inside a
        transaction."""
        stamp = now()
        for start in range(0, len(versions), 200):
            part = versions[start : start + 200]
            keys = " OR ".join(["(node = ? AND fingerprint = ?)"] * len(part))
            self.engine.execute(
                f"DELETE FROM {self._t('versions')} WHERE {keys}",
                [value for v in part for value in (v.node, v.fingerprint)],
            )
            self.engine.insert_rows(
                self._t("versions"),
                [
                    (
                        v.node,
                        v.fingerprint,
                        v.physical.schema,
                        v.physical.name,
                        v.relation_kind,
                        v.status,
                        v.assertions_hash,
                        v.row_count,
                        stamp,
                    )
                    for v in part
                ],
            )

    # -- environments ---------------------------------------------------------------------------

    def environment(self, env: str) -> dict[str, Deployed]:
        if not self.exists():
            return {}
        rows = self.engine.query(
            "SELECT node, fingerprint, physical_schema, physical_name, relation_kind "
            f"FROM {self._t('environments')} WHERE env = ?",
            (env,),
        ).rows
        return {r[0]: Deployed(r[0], r[1], Relation(r[2], r[3]), r[4]) for r in rows}

    def definitions(self, env: str) -> dict[str, str]:
        """node -> the JSON definition the environment recorded for it."""
        if not self.exists() or self._version < 2:  # read-only on older state: none recorded
            return {}
        rows = self.engine.query(
            f"SELECT node, definition FROM {self._t('definitions')} WHERE env = ?", (env,)
        ).rows
        return {r[0]: r[1] for r in rows}

    def set_definitions(self, env: str, changed: dict[str, str], forget: list[str]) -> None:
        """Record definitions and forget those of removed nodes. Call inside a transaction."""
        gone = sorted(set(changed) | set(forget))
        for start in range(0, len(gone), 500):
            chunk = gone[start : start + 500]
            self.engine.execute(
                f"DELETE FROM {self._t('definitions')} WHERE env = ? AND node IN "
                f"({', '.join('?' * len(chunk))})",
                [env, *chunk],
            )
        self.engine.insert_rows(
            self._t("definitions"),
            [[env, node, definition] for node, definition in sorted(changed.items())],
        )

    def served(self) -> set[Relation]:
        """Every physical relation some environment points at."""
        if not self.exists():
            return set()
        rows = self.engine.query(
            f"SELECT DISTINCT physical_schema, physical_name FROM {self._t('environments')}"
        ).rows
        # and what a switch in progress (journaled, on Spark) points views at
        for text in self.journaled().values():
            with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                rows += [(v[2], v[3]) for v in json.loads(text)["views"]]
        return {Relation(r[0], r[1]) for r in rows}

    def retire(self, env: str, nodes: list[str]) -> None:
        """Forget nodes the environment no longer serves. Call inside a transaction."""
        if nodes:
            marks = ", ".join("?" * len(nodes))
            self.engine.execute(
                f"DELETE FROM {self._t('environments')} WHERE env = ? AND node IN ({marks})",
                [env, *nodes],
            )

    def set_deployed(
        self,
        env: str,
        deployed: list[Deployed],
        commit: Commit | None,
        run_id: int | None = None,
    ) -> int:
        """Record the environment's new versions and a deployment. Call inside a transaction."""
        stamp = now()
        if deployed:
            self.retire(env, [d.node for d in deployed])
            self.engine.insert_rows(
                self._t("environments"),
                [
                    (
                        env,
                        d.node,
                        d.fingerprint,
                        d.physical.schema,
                        d.physical.name,
                        d.relation_kind,
                        stamp,
                    )
                    for d in deployed
                ],
            )
        last = self.engine.query(f"SELECT max(id) FROM {self._t('deployments')}").rows[0][0]
        deployment_id = int(last or 0) + 1
        self.engine.execute(
            f"INSERT INTO {self._t('deployments')} (id, env, deployed_at, git_commit, nodes, "
            "run_id, commit_time, author) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                deployment_id,
                env,
                stamp,
                commit.sha if commit else None,
                json.dumps({d.node: d.fingerprint for d in deployed}, sort_keys=True),
                run_id,
                commit.time if commit else None,
                commit.author if commit else None,
            ),
        )
        return deployment_id

    # -- maintenance: rollback and gc (sqlops.run.maintenance) ----------------------------------

    def deployment_records(self, env: str | None = None) -> list[DeploymentRecord]:
        """The deployments of one environment (or of all), oldest first."""
        if not self.exists():
            return []
        where, params = ("WHERE d.env = ? ", (env,)) if env is not None else ("", ())
        if self._version >= 3:  # deployments say which run made them
            rows = self.engine.query(
                "SELECT d.id, d.env, d.deployed_at, d.git_commit, d.author, d.run_id, d.nodes, "
                f"r.command, r.selection FROM {self._t('deployments')} d "
                f"LEFT JOIN {self._t('runs')} r ON r.id = d.run_id {where}ORDER BY d.id",
                params,
            ).rows
        else:
            rows = [
                (*r[:4], None, None, r[4], None, None)
                for r in self.engine.query(
                    "SELECT d.id, d.env, d.deployed_at, d.git_commit, d.nodes "
                    f"FROM {self._t('deployments')} d {where}ORDER BY d.id",
                    params,
                ).rows
            ]
        restores = self._restores()
        return [
            DeploymentRecord(
                int(r[0]),
                str(r[1]),
                r[2],
                r[3],
                r[4],
                None if r[5] is None else int(r[5]),
                {str(k): str(v) for k, v in json.loads(r[6] or "{}").items()},
                r[7] == "build" and r[8] is not None and json.loads(r[8]) == [],
                restores.get(int(r[0])),
            )
            for r in rows
        ]

    def _restores(self) -> dict[int, int]:
        """rollback deployment -> the deployment it restored, from the meta table's
        `deployment:<id>:restores` rows (see mark_restored)."""
        rows = self.engine.query(
            f"SELECT key, value FROM {self._t('meta')} WHERE key LIKE 'deployment:%:restores'"
        ).rows
        found = {}
        for key, value in rows:
            number = str(key).split(":")[1]
            if number.isdigit() and str(value).isdigit():
                found[int(number)] = int(value)
        return found

    def mark_restored(self, deployment_id: int, restored: int) -> None:
        """Record that a deployment served again what an earlier one served (a rollback). Call
        inside the transaction that records the deployment."""
        self.engine.execute(
            f"INSERT INTO {self._t('meta')} VALUES (?, ?)",
            (f"deployment:{deployment_id}:restores", str(restored)),
        )

    # -- the journal of a switch in progress, on engines without transactions (run/switch.py) --

    def journal(self, env: str, switch: str) -> None:
        """Write down a switch about to start (JSON); a second one of the same environment
        fails on the key. Call inside a transaction."""
        self.engine.execute(
            f"INSERT INTO {self._t('meta')} VALUES (?, ?)", (f"switch:{env}", switch)
        )

    def journaled(self) -> dict[str, str]:
        """env -> the switch a process started and did not finish."""
        if not self.exists():
            return {}
        rows = self.engine.query(
            f"SELECT key, value FROM {self._t('meta')} WHERE key LIKE 'switch:%'"
        ).rows
        return {str(k).split(":", 1)[1]: str(v) for k, v in rows}

    def close_journal(self, env: str, switch: str) -> None:
        """The switch is recorded: its journal goes (only this one). Call inside the
        transaction that records it."""
        self.engine.execute(
            f"DELETE FROM {self._t('meta')} WHERE key = ? AND value = ?", (f"switch:{env}", switch)
        )

    def latest_deployment(self, env: str) -> int | None:
        rows = self.engine.query(
            f"SELECT max(id) FROM {self._t('deployments')} WHERE env = ?", (env,)
        ).rows
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def forget_versions(self, physical: Iterable[Relation]) -> None:
        """Forget the versions built into these relations (dropped by gc). Call inside a
        transaction."""
        relations = sorted(set(physical), key=str)
        for start in range(0, len(relations), 200):
            part = relations[start : start + 200]
            keys = " OR ".join(["(physical_schema = ? AND physical_name = ?)"] * len(part))
            self.engine.execute(
                f"DELETE FROM {self._t('versions')} WHERE {keys}",
                [value for r in part for value in (r.schema, r.name)],
            )

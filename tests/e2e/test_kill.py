"""Crash safety: `sqlops build` killed with SIGKILL right after its N-th statement, for many N
spread over the whole build (planning, building, asserting, recording, the promotion's
transaction and right after its COMMIT), on DuckDB and on PostgreSQL. After each kill, prod
serves exactly its old versions or exactly its new ones, everything it serves exists, the state
reads, and the next build succeeds and serves what a clean build serves.

The kill comes from the engines' crash switch (sqlops/engines/base.py, `_CrashSwitch`), which only
these tests arm. Run alone with `pytest tests/e2e/test_kill.py`; `SQLOPS_KILL_POINTS=all` kills
after every statement of the build, a number kills at that many points (default 52 per engine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import Run, run_sqlops

ENGINES = ("duckdb", "postgres")
DEFAULT_POINTS = 52
ALL_SLOTS = 200  # SQLOPS_KILL_POINTS=all: one slot per statement; slots past the last one skip
SCHEMAS = ("raw", "ref", "staging", "marts")
ENVS = ("prod", "dev")  # the build changes prod; dev, built before, must not move
MARTS = ("marts.orders", "marts.customers", "marts.revenue_daily")
PHASES = ("planning", "building", "asserting", "recording", "promoting", "promoted", "finishing")

# a prod view's definition names the physical relation it serves
VIEW_TARGET = re.compile(r'FROM\s+"?(sqlops__\w+?)"?\."?(\w+?__[0-9a-f]{12})"?', re.IGNORECASE)


def _slots() -> int:
    value = os.environ.get("SQLOPS_KILL_POINTS", "").strip().lower()
    if value == "all":
        return ALL_SLOTS
    return int(value) if value else DEFAULT_POINTS


# -- a copy of the warehouse: a project folder, and on PostgreSQL a database of its own ----------


@dataclass(frozen=True)
class Served:
    """What every environment serves, read from the database: each view's physical relation,
    the state's record of each environment, and how many deployments each has recorded."""

    views: dict[str, str]  # "marts.customers", "marts__dev.customers" -> "sqlops__marts.x__fp"
    state: dict[tuple[str, str], tuple[str, str]]  # (env, node) -> (fingerprint, physical)
    deployments: dict[str, int]
    missing: tuple[str, ...]  # relations a view or the state points at that do not exist

    def key(self) -> tuple[object, ...]:
        return self.views, self.state, self.deployments


@dataclass(frozen=True)
class Warehouse:
    root: Path
    engine: str
    dsn: str | None = None

    def sqlops(self, *args: str, env: dict[str, str] | None = None) -> Run:
        return run_sqlops(
            list(args), self.root, {"SQLOPS_TEST_PG_DSN": self.dsn or "", **(env or {})}
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Run:
        result = self.sqlops(*args, env=env)
        assert result.code == 0, result.output
        return result

    def query(self, *sql: str) -> list[list[tuple[Any, ...]]]:
        """The rows of each statement, run on one connection."""
        if self.engine == "postgres":
            import psycopg

            assert self.dsn is not None
            with psycopg.connect(self.dsn, autocommit=True) as server:
                return [[tuple(r) for r in server.execute(q).fetchall()] for q in sql]
        local = duckdb.connect(str(self.root / "shop.duckdb"), read_only=True)
        try:
            return [local.execute(q).fetchall() for q in sql]
        finally:
            local.close()

    def served(self) -> Served:
        schemas = [f"'{s}'" if env == "prod" else f"'{s}__{env}'" for s in SCHEMAS for env in ENVS]
        views_sql = (
            "SELECT schemaname, viewname, definition FROM pg_views "
            f"WHERE schemaname IN ({', '.join(schemas)})"
            if self.engine == "postgres"
            else "SELECT schema_name, view_name, sql FROM duckdb_views() "
            f"WHERE NOT internal AND schema_name IN ({', '.join(schemas)})"
        )
        defined, recorded, deployed, physical = self.query(
            views_sql,
            "SELECT env, node, fingerprint, physical_schema || '.' || physical_name "
            "FROM sqlops_meta.environments",
            "SELECT env, count(*) FROM sqlops_meta.deployments GROUP BY env",
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE left(table_schema, 8) = 'sqlops__'",
        )
        views = {}
        for schema, name, sql in defined:
            target = VIEW_TARGET.search(str(sql))
            assert target, f"{schema}.{name} is not a view onto a version: {sql}"
            views[f"{schema}.{name}"] = f"{target[1]}.{target[2]}"
        state = {(str(e), str(n)): (str(fp), str(rel)) for e, n, fp, rel in recorded}
        deployments = {str(env): int(count) for env, count in deployed}
        tables = {str(name) for (name,) in physical}
        used = sorted(set(views.values()) | {rel for _, rel in state.values()})
        return Served(views, state, deployments, tuple(r for r in used if r not in tables))

    def rows(self, relation: str) -> list[tuple[Any, ...]]:
        """Every row, in one order, with numbers compared as numbers."""
        (rows,) = self.query(f"SELECT * FROM {relation}")
        return sorted(
            (tuple(_plain(v) for v in row) for row in rows), key=lambda r: [str(v) for v in r]
        )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal | float):
        return round(float(value), 6)
    return value


def _change(root: Path) -> None:
    """A change that rebuilds most models with new data: a staging model and a raw CSV."""
    for relpath, old, new in (
        (
            "models/staging/customers.sql",
            "trim(last_name)    AS last_name",
            "upper(trim(last_name)) AS last_name",
        ),
        ("data/orders.csv", "\n1001,13,2024-01-03,completed\n", "\n1001,13,2024-01-03,returned\n"),
    ):
        path = root / relpath
        text = path.read_text()
        assert old in text, f"{old!r} not in {relpath}"
        path.write_text(text.replace(old, new, 1))


# -- the statements of a build, and where in the build each one is -------------------------------


def read_log(path: Path) -> list[str]:
    """The statements a run completed, in order (the crash switch's log)."""
    if not path.exists():
        return []
    return [line.split("\t", 1)[1] for line in path.read_text().splitlines()]


def _is_write_of_state(sql: str) -> bool:
    return sql.split(" ", 1)[0] in ("INSERT", "DELETE", "UPDATE") and "sqlops_meta" in sql


def promotion(log: list[str]) -> tuple[int, int]:
    """The statement numbers (1-based) of the promotion transaction's BEGIN and COMMIT."""
    deploy = next(
        i for i, s in enumerate(log) if s.startswith('INSERT INTO "sqlops_meta"."deployments"')
    )
    begin = max(i for i in range(deploy) if log[i].startswith("BEGIN"))
    commit = next(i for i in range(deploy, len(log)) if log[i] == "COMMIT")
    return begin + 1, commit + 1


def results_recorded(log: list[str]) -> int:
    """The statement number of the COMMIT of the last results the build records before it
    promotes: every version it built is recorded from then on."""
    begin, _ = promotion(log)
    last = max(i for i, s in enumerate(log[: begin - 1]) if _is_write_of_state(s))
    return log.index("COMMIT", last) + 1


def phase_of(log: list[str], n: int) -> str:
    """What the build was doing when its n-th statement completed."""
    begin, commit = promotion(log)
    if begin <= n < commit:
        return "promoting"
    if n == commit:
        return "promoted"
    if n > commit:
        return "finishing"
    i = n - 1
    if log[i].startswith("BEGIN"):
        i += 1  # a transaction is what it is opened for
    elif log[i] == "COMMIT":
        i -= 1
    sql = log[i]
    first_build = next(j for j, s in enumerate(log) if "sqlops__" in s)
    last_check = max(j for j, s in enumerate(log) if s.startswith("WITH __sqlops_"))
    if _is_write_of_state(sql):
        return "recording"
    if sql.startswith("WITH __sqlops_"):
        return "asserting"
    if i < first_build:
        return "planning"
    if i > last_check:
        return "promoting"  # reading what the switch needs
    return "building"


def kill_points(log: list[str], count: int) -> list[int]:
    """`count` statement numbers spread over every phase of the build, evenly within each, with
    the promotion's transaction sampled three times as densely, and always: the first statement,
    the run's first record, the first physical relation made, the last record of what was built,
    the promotion's BEGIN and first switch, its last statement before COMMIT, its COMMIT and the
    one after, and the last statement."""
    total = len(log)
    if count >= total:
        return list(range(1, total + 1))
    begin, commit = promotion(log)
    made = next(i for i, s in enumerate(log) if re.match(r'(CREATE|COPY) .*"sqlops__\w+"\.', s))
    first_record = next(i for i, s in enumerate(log) if _is_write_of_state(s))
    recorded = results_recorded(log)
    chosen = {1, first_record + 1, made + 1, recorded - 1, recorded, begin, begin + 1}
    chosen |= {commit - 1, commit, commit + 1, total}
    groups: dict[tuple[str, bool], list[int]] = {}
    for n in range(1, total + 1):
        if n not in chosen:
            groups.setdefault((phase_of(log, n), begin <= n < commit), []).append(n)
    weight = {g: len(members) * (3 if g[1] else 1) for g, members in groups.items()}
    spare = count - len(chosen)
    # largest remainders: each group's share of the spare points, in proportion to its weight
    shares = {g: spare * w / sum(weight.values()) for g, w in weight.items()}
    quota = {g: min(int(shares[g]), len(groups[g])) for g in groups}
    for g in sorted(groups, key=lambda g: int(shares[g]) - shares[g]):
        if sum(quota.values()) < spare and quota[g] < len(groups[g]):
            quota[g] += 1
    for g, members in groups.items():
        k = quota[g]
        chosen |= {members[int((i + 0.5) * len(members) / k)] for i in range(k)}
    return sorted(chosen)


# -- the scenario: prod built once, then a change; a clean build of it is the reference ---------


@dataclass(frozen=True)
class Scenario:
    engine: str
    old_root: Path  # the project as prod was built, before the change
    template: str | None  # PostgreSQL: the database of that build, cloned for each kill
    admin_dsn: str | None
    old: Served
    new: Served
    old_rows: dict[str, list[tuple[Any, ...]]]
    new_rows: dict[str, list[tuple[Any, ...]]]
    measured: set[tuple[str, str, str]]  # (node, expr, version) of prod's measured series
    log: list[str]  # the statements of a clean build of the change
    points: list[int]

    def copy(self, folder: Path) -> Warehouse:
        """A fresh copy of the warehouse before the change, with the change made."""
        root = folder / "shop"
        shutil.copytree(self.old_root, root)
        _change(root)
        if self.engine != "postgres":
            return Warehouse(root, self.engine)
        assert self.admin_dsn is not None and self.template is not None
        name = "k_" + uuid.uuid4().hex[:16]
        _admin(self.admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return Warehouse(root, self.engine, self.admin_dsn.rsplit("/", 1)[0] + "/" + name)


def measured(warehouse: Warehouse) -> set[tuple[str, str, str]]:
    """(node, expr, version) of each value in prod's series, what prev() and anomaly() read."""
    (rows,) = warehouse.query(
        "SELECT node, expr, version FROM sqlops_meta.measurements WHERE env = 'prod'"
    )
    return {(str(n), str(e), str(v)) for n, e, v in rows}


def _admin(dsn: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(sql)


def _use_engine(root: Path, engine: str) -> None:
    """Three models built at once, each on a connection (or cursor) of its own."""
    config = root / "sqlops.toml"
    text = config.read_text()
    local = '[targets.local]\nengine = "duckdb"\npath = "shop.duckdb"'
    assert local in text
    target = (
        '[targets.local]\nengine = "postgres"\ndsn = "${SQLOPS_TEST_PG_DSN}"'
        if engine == "postgres"
        else local
    )
    config.write_text(text.replace(local, target + "\nthreads = 3"))


@pytest.fixture(scope="module", params=ENGINES)
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    engine: str = request.param
    folder = tmp_path_factory.mktemp(f"kill-{engine}")
    init = run_sqlops(["init", "shop"], folder)
    assert init.code == 0, init.output
    _use_engine(folder / "shop", engine)
    admin = template = None
    if engine == "postgres":
        server = request.getfixturevalue("pg_server")
        admin = server.dsn("postgres")
        template = "kill_" + uuid.uuid4().hex[:12]
        _admin(admin, f'CREATE DATABASE "{template}"')
    before = Warehouse(folder / "shop", engine, None if admin is None else server.dsn(template))
    before.ok("build")
    before.ok("build", "--env", "dev")
    old = before.served()

    old_rows = {mart: before.rows(mart) for mart in MARTS}
    reference = Scenario(
        engine, before.root, template, admin, old, old, {}, {}, set(), [], []
    ).copy(folder / "reference")
    log_path = folder / "reference.log"
    reference.ok("build", env={"SQLOPS_TEST_STATEMENT_LOG": str(log_path)})
    new = reference.served()
    log = read_log(log_path)
    yield Scenario(
        engine,
        before.root,
        template,
        admin,
        old,
        new,
        old_rows,
        {mart: reference.rows(mart) for mart in MARTS},
        measured(reference),
        log,
        kill_points(log, _slots()),
    )


@pytest.fixture
def copies(scenario: Scenario, tmp_path: Path) -> Iterator[Callable[[], Warehouse]]:
    """Fresh copies of the warehouse before the change, with the change made."""
    made: list[Warehouse] = []

    def copy() -> Warehouse:
        made.append(scenario.copy(tmp_path / f"copy{len(made)}"))
        return made[-1]

    yield copy
    for warehouse in made:
        if warehouse.dsn is not None and scenario.admin_dsn is not None:
            name = warehouse.dsn.rsplit("/", 1)[1]
            _admin(scenario.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def kill_build(
    scenario: Scenario, copies: Callable[[], Warehouse], n: int
) -> tuple[Warehouse, list[str], str]:
    """Run the change's build on a fresh copy, killed after its n-th statement; the copy, the
    statements it completed, and what it was doing."""
    warehouse = copies()
    log_path = warehouse.root.parent / "statements.log"
    killed = warehouse.sqlops(
        "build",
        env={"SQLOPS_TEST_KILL_AFTER": str(n), "SQLOPS_TEST_STATEMENT_LOG": str(log_path)},
    )
    ran = read_log(log_path)
    if killed.code == 0 and len(ran) < n:
        # this build ran fewer statements than the reference (results are recorded in batches,
        # timed): kill the same statement counted from the end, on another copy
        assert n > len(scenario.log) - len(ran), (n, len(ran))
        return kill_build(scenario, copies, n - (len(scenario.log) - len(ran)))
    assert killed.code == -signal.SIGKILL, (n, len(ran), killed.output)
    assert len(ran) == n  # killed right after the n-th statement, with none after it
    # the build's own statements up to the kill, the reference's after it
    phase = phase_of(ran + scenario.log[n:], n)
    return warehouse, ran, f"killed after statement {n} ({phase}): {ran[-1][:120]}"


# -- the tests -----------------------------------------------------------------------------------


def test_the_change_rebuilds_models_and_the_points_cover_every_phase(scenario: Scenario) -> None:
    old, new = scenario.old, scenario.new
    for served in (old, new):
        assert not served.missing
        # each view serves what the state says its environment serves
        assert served.views == {
            (node if env == "prod" else node.replace(".", f"__{env}.", 1)): physical
            for (env, node), (_, physical) in served.state.items()
        }
    assert len(old.views) == len(new.views) == 10 * len(ENVS)
    changed = {v for v in new.views if new.views[v] != old.views[v]}
    assert changed == {
        "raw.orders",
        "staging.customers",
        "staging.orders",
        "marts.orders",
        "marts.customers",
        "marts.revenue_daily",
    }
    assert old.deployments == {"prod": 1, "dev": 1}
    assert new.deployments == {"prod": 2, "dev": 1}
    for mart in MARTS:  # the change changes data
        assert scenario.new_rows[mart] != scenario.old_rows[mart], mart
    phases = {phase_of(scenario.log, n) for n in scenario.points}
    assert phases == set(PHASES), scenario.points
    if _slots() >= len(scenario.log):
        assert len(scenario.log) <= ALL_SLOTS  # SQLOPS_KILL_POINTS=all reaches every statement
        assert scenario.points == list(range(1, len(scenario.log) + 1))
    else:
        assert len(scenario.points) == _slots() >= 30


@pytest.mark.parametrize("slot", range(_slots()), ids=lambda s: f"point{s:02d}")
def test_a_killed_build_leaves_every_environment_whole_and_the_next_build_finishes(
    scenario: Scenario, slot: int, copies: Callable[[], Warehouse]
) -> None:
    if slot >= len(scenario.points):
        pytest.skip(f"the build runs {len(scenario.log)} statements")
    warehouse, _, where = kill_build(scenario, copies, scenario.points[slot])

    # (a) nothing an environment serves is missing, and every view reads
    after = warehouse.served()
    assert not after.missing, where
    warehouse.query(*(f"SELECT count(*) FROM {view}" for view in after.views))
    # (b) every environment is exactly as it was, or exactly as a clean build leaves it, in its
    # views and in the state alike
    assert after.key() in (scenario.old.key(), scenario.new.key()), where
    if "(promoted)" in where or "(finishing)" in where:
        assert after.key() == scenario.new.key(), where
    elif "(promoting)" not in where:
        assert after.key() == scenario.old.key(), where
    # (c) the state reads
    history = warehouse.sqlops("history", "--json")
    assert history.code == 0, (where, history.output)
    assert json.loads(history.stdout), where
    listed = warehouse.sqlops("ls")
    assert listed.code == 0, (where, listed.output)
    # (d) the next build finishes, and every environment serves what a clean build leaves
    again = warehouse.sqlops("build")
    assert again.code == 0, (where, again.output)
    # no run is left `running`: the killed one is marked interrupted unless it was recorded
    runs = json.loads(warehouse.ok("history", "--json").stdout)
    assert all(r["outcome"] != "running" for r in runs), (where, runs)
    final = warehouse.served()
    assert not final.missing, where
    assert final.key() == scenario.new.key(), where
    for mart in MARTS:
        assert warehouse.rows(mart) == scenario.new_rows[mart], (where, mart)


def test_a_build_killed_after_promoting_is_recorded_as_the_run_that_deployed(
    scenario: Scenario, copies: Callable[[], Warehouse]
) -> None:
    _, n = promotion(scenario.log)
    for _ in range(10):  # a build that records its results in more batches runs more statements
        warehouse, ran, where = kill_build(scenario, copies, n)
        if "(promoted)" in where:
            break
        n += -1 if "(finishing)" in where else 1
    assert ran[-1] == "COMMIT" and "(promoted)" in where, where
    assert warehouse.served().key() == scenario.new.key(), where
    warehouse.ok("build")  # finds prod up to date
    (((deployment, run_id),),) = warehouse.query(
        "SELECT id, run_id FROM sqlops_meta.deployments WHERE id = "
        "(SELECT max(id) FROM sqlops_meta.deployments)"
    )
    runs = {r["id"]: r for r in json.loads(warehouse.ok("history", "--json").stdout)}
    killed = runs[run_id]
    if killed["outcome"] == "running" or killed["deployment_id"] != deployment:
        raise AssertionError(f"run {run_id}, which made deployment {deployment}: {killed}")
    report = json.loads(warehouse.ok("report", "--json").stdout)
    if report["change_failure_rate"]["failed"]:
        raise AssertionError(f"a failed change: {report['change_failure_rate']}")


def test_a_build_killed_before_promoting_loses_no_measured_value(
    scenario: Scenario, copies: Callable[[], Warehouse]
) -> None:
    recorded, (_, commit) = results_recorded(scenario.log), promotion(scenario.log)
    new_versions = {fp for (env, _), (fp, _) in scenario.new.state.items() if env == "prod"}
    for n in range(recorded, commit):  # the first kill after which every new version is recorded
        warehouse, _, where = kill_build(scenario, copies, n)
        (passed,) = warehouse.query(
            "SELECT fingerprint FROM sqlops_meta.versions WHERE status = 'passed'"
        )
        if new_versions <= {str(fp) for (fp,) in passed}:
            break
    assert warehouse.served().key() == scenario.old.key(), where
    warehouse.ok("build")
    assert warehouse.served().key() == scenario.new.key(), where
    lost = scenario.measured - measured(warehouse)
    if lost:
        raise AssertionError(f"{where}; then the next build; prod's series lacks {sorted(lost)}")


def test_a_promotion_that_fails_partway_switches_nothing(
    scenario: Scenario, copies: Callable[[], Warehouse]
) -> None:
    """The database refuses a statement of the promotion (`SQLOPS_TEST_FAIL_AFTER`, the crash
    switch's other half): its first statement, its first and last view, and its last write
    (a statement that fails after it ran is one the transaction rolls back). The build
    fails, every environment serves what it served, no view was left behind, and the next build
    promotes."""
    begin, commit = promotion(scenario.log)
    views = [i + 1 for i in range(begin, commit) if " VIEW " in scenario.log[i]]
    for n in sorted({begin + 1, *views[:1], *views[-1:], commit - 1}):
        warehouse = copies()
        failed = warehouse.sqlops("build", env={"SQLOPS_TEST_FAIL_AFTER": str(n)})
        where = f"failed after statement {n}: {scenario.log[n - 1][:100]}"
        assert failed.code == 1, (where, failed.output)
        assert "injected failure" in failed.output and "Traceback" not in failed.output, where
        after = warehouse.served()
        assert not after.missing, where
        assert after.key() == scenario.old.key(), where  # no view switched, none added
        again = warehouse.sqlops("build")
        assert again.code == 0, (where, again.output)
        assert warehouse.served().key() == scenario.new.key(), where

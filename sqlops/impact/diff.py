"""Data diff: how the rows one environment serves for a model differ from another's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

from sqlops.assertions.definition import CheckKind
from sqlops.engines.base import Relation
from sqlops.errors import SqlopsError, did_you_mean
from sqlops.plan.relations import PROD, env_relation
from sqlops.project.definition import Kind, Node
from sqlops.state.store import StateStore

if TYPE_CHECKING:
    from sqlops.engines.base import Engine
    from sqlops.project.loader import Project

SAMPLE_ROWS = 5
Columns = tuple[tuple[str, str], ...]  # (name, type) in the relation's order


@dataclass(frozen=True)
class SchemaDiff:
    added: Columns  # only on the env side
    removed: Columns  # only on the against side
    retyped: tuple[tuple[str, str, str], ...]  # name, type on the against side, on the env side
    compared: tuple[str, ...]  # the common columns whose values are compared (keys excluded)


@dataclass(frozen=True)
class RowSample:
    count: int
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]  # at most SAMPLE_ROWS


@dataclass(frozen=True)
class ChangedRow:
    key: tuple[Any, ...]
    changes: tuple[tuple[str, Any, Any], ...]  # column, before (against), after (env)


@dataclass(frozen=True)
class KeyDiff:
    """The by-key comparison: only keys that are unique on both sides are paired."""

    matched: int  # keys on both sides, once each
    changed: int  # matched keys whose compared columns differ
    by_column: dict[str, int] = field(hash=False)  # compared column -> changed values
    sample: tuple[ChangedRow, ...]
    null_key_rows: tuple[int, int]  # env, against: a NULL key matches nothing, as in unique()
    duplicate_keys: tuple[int, int]  # env, against: key values found more than once
    duplicate_rows: tuple[int, int]  # env, against: the rows holding them
    ambiguous: int  # keys on both sides and duplicated on one: their rows are not compared
    duplicate_sample: tuple[tuple[tuple[Any, ...], int, int], ...]  # key, env rows, against rows

    def to_json(self, key: tuple[str, ...]) -> dict[str, Any]:
        def keyed(values: tuple[Any, ...]) -> dict[str, Any]:
            return dict(zip(key, values, strict=True))

        return {
            "matched": self.matched,
            "changed": self.changed,
            "unchanged": self.matched - self.changed,
            "changed_by_column": self.by_column,
            "changed_sample": [
                {
                    "key": keyed(c.key),
                    "changes": {n: {"before": b, "after": a} for n, b, a in c.changes},
                }
                for c in self.sample
            ],
            "null_key_rows": dict(zip(("env", "against"), self.null_key_rows, strict=True)),
            "duplicate_keys": {
                "env": {"keys": self.duplicate_keys[0], "rows": self.duplicate_rows[0]},
                "against": {"keys": self.duplicate_keys[1], "rows": self.duplicate_rows[1]},
                "ambiguous": self.ambiguous,
                "sample": [
                    {"key": keyed(v), "env": e, "against": a} for v, e, a in self.duplicate_sample
                ],
            },
        }


@dataclass(frozen=True)
class DataDiff:
    env: Relation
    against: Relation
    key: tuple[str, ...] | None  # None: rows compared as a multiset, on the common columns
    schema: SchemaDiff
    env_rows: int
    against_rows: int
    only_in_env: RowSample
    only_in_against: RowSample
    by_key: KeyDiff | None = None

    @property
    def identical(self) -> bool:
        """Same columns, and every row was compared and found on the other side unchanged."""
        s, k = self.schema, self.by_key
        unmatched = (s.added, s.removed, s.retyped, self.only_in_env.count)
        if any(unmatched) or self.only_in_against.count or self.env_rows != self.against_rows:
            return False
        return k is None or not (k.changed or k.ambiguous or any(k.null_key_rows))


@dataclass(frozen=True)
class ModelDiff:
    model: str
    env: str
    against: str
    versions: tuple[str, str]  # the fingerprints env and against serve
    key_from: str | None  # "--key", or the unique() assertion the key came from
    data: DataDiff

    def to_json(self) -> dict[str, Any]:
        d, s = self.data, self.data.schema

        def rows(sample: RowSample) -> dict[str, Any]:
            listed = [dict(zip(sample.columns, r, strict=True)) for r in sample.rows]
            return {"count": sample.count, "sample": listed}

        return {
            "model": self.model,
            "env": self.env,
            "against": self.against,
            "relations": {"env": str(d.env), "against": str(d.against)},
            "versions": {"env": self.versions[0], "against": self.versions[1]},
            "key": list(d.key) if d.key else None,
            "key_from": self.key_from,
            "identical": d.identical,
            "schema": {
                "added": [{"name": n, "type": t} for n, t in s.added],
                "removed": [{"name": n, "type": t} for n, t in s.removed],
                "retyped": [{"name": n, "before": b, "after": a} for n, b, a in s.retyped],
                "compared": list(s.compared),
            },
            "rows": {"env": d.env_rows, "against": d.against_rows},
            "only_in_env": rows(d.only_in_env),
            "only_in_against": rows(d.only_in_against),
            "by_key": d.by_key.to_json(d.key or ()) if d.by_key else None,
        }


def default_key(node: Node) -> tuple[tuple[str, ...], str] | None:
    """The columns of the model's unique() assertion, preferring one that covers every row."""
    checks = [a for a in node.assertions if a.kind is CheckKind.UNIQUE and a.columns]
    checks.sort(key=lambda a: a.where is not None)
    if not checks:
        return None
    return checks[0].columns, f"{checks[0].name} at {checks[0].location}"


def diff_model(
    project: Project, engine: Engine, node_id: str, env: str, against: str, key: tuple[str, ...]
) -> ModelDiff:
    """Diff what `env` serves for a node against what `against` serves; key () means default."""
    node = project.nodes[node_id]
    if node.kind is Kind.TEST:
        raise SqlopsError(f"{node.id} is a test file, not a relation", hint="diff a model")
    if node.is_ephemeral:
        raise SqlopsError(
            f"{node.id} is ephemeral: no environment stores its rows",
            hint=f"preview it with `sqlops show {node.id} --env {env}`",
        )
    if not node.is_versioned:
        raise SqlopsError(
            f"{node.id} is a database source: every environment reads the same table",
            hint="diff the models built from it",
        )
    if env == against:
        raise SqlopsError(
            f"--env and --against both name `{env}`",
            hint="compare two environments, e.g. --env dev --against prod",
        )
    store = StateStore(engine)
    if not store.exists():
        raise SqlopsError(
            f"nothing has been built in target `{project.target.name}` yet",
            hint="run `sqlops build`, then `sqlops build --env dev` after your change",
        )
    versions = []
    for name in (env, against):
        deployed = store.environment(name).get(node.id)
        if deployed is None:
            build = "sqlops build" if name == PROD else f"sqlops build --env {name}"
            raise SqlopsError(
                f"{node.id} is not served by environment `{name}`", hint=f"run `{build}` first"
            )
        versions.append(deployed.fingerprint)
    key_from: str | None = "--key" if key else None
    if not key and (found := default_key(node)) is not None:
        key, key_from = found
    data = diff_relations(engine, env_relation(node, env), env_relation(node, against), key or None)
    return ModelDiff(node.id, env, against, (versions[0], versions[1]), key_from, data)


def diff_relations(
    engine: Engine, env: Relation, against: Relation, key: tuple[str, ...] | None
) -> DataDiff:
    """Compare two relations in a few queries: by key when there is one, else as multisets."""
    env_cols, against_cols = _columns(engine, env), _columns(engine, against)
    before, after = dict(against_cols), dict(env_cols)
    common = [n for n, _ in env_cols if n in before]
    if key:
        key = tuple(dict.fromkeys(_key_column(k, common, env, against, before, after) for k in key))
    retyped = tuple((n, before[n], after[n]) for n in common if before[n] != after[n])
    schema = SchemaDiff(
        added=tuple((n, t) for n, t in env_cols if n not in before),
        removed=tuple((n, t) for n, t in against_cols if n not in after),
        retyped=retyped,
        compared=tuple(n for n in common if n not in (key or ())),
    )
    # values of columns whose types are not comparable are compared as text
    as_text = {n for n, b, a in retyped if not _comparable(b, a, engine.dialect)}
    queries = _Queries(engine, env, against, as_text, key or ())
    if key:
        return queries.by_key(schema, env_cols, against_cols)
    return queries.as_multisets(schema)


def _columns(engine: Engine, relation: Relation) -> Columns:
    found = engine.columns(relation)
    if found is None:
        raise SqlopsError(
            f"{relation} does not exist", hint="build the environment again to recreate its views"
        )
    return tuple(found)


def _key_column(
    name: str,
    common: list[str],
    env: Relation,
    against: Relation,
    before: dict[str, str],
    after: dict[str, str],
) -> str:
    if name in common:
        return name
    # identifiers are case-insensitive in SQL: accept --key Customer_ID for customer_id
    folded = [c for c in common if c.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    lacking = [str(r) for r, cols in ((env, after), (against, before)) if name not in cols]
    raise SqlopsError(
        f"key column `{name}` is not in {' nor '.join(lacking)}{did_you_mean(name, common)}",
        hint="pass --key with columns both sides have: " + ", ".join(common),
    )


def _comparable(before: str, after: str, dialect: str) -> bool:
    """Whether the engine can compare the two types as they are (numbers with numbers, ...)."""
    try:
        types = [exp.DataType.build(t, dialect=dialect) for t in (before, after)]
    except (sqlglot.errors.ParseError, ValueError):
        return False
    families = (exp.DataType.NUMERIC_TYPES, exp.DataType.TEXT_TYPES, exp.DataType.TEMPORAL_TYPES)
    return any(all(t.is_type(*family) for t in types) for family in families)


def _q(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql()


def _count(value: Any) -> int:
    return int(value or 0)  # SUM over no rows is NULL


class _Queries:
    """The diff's queries, written in sqlglot's neutral SQL and transpiled to the engine's.

    Real names are always quoted; internal ones (`__k0`, `__e`, ...) are numbered, so a column of
    any name, even `__e`, cannot clash with them.
    """

    def __init__(
        self,
        engine: Engine,
        env: Relation,
        against: Relation,
        as_text: set[str],
        key: tuple[str, ...],
    ) -> None:
        self.engine, self.env, self.against, self.as_text = engine, env, against, as_text
        self.env_sql, self.against_sql = env.table().sql(), against.table().sql()
        self.key = key
        self.keys = ", ".join(f"__k{i}" for i in range(len(key)))
        known = " AND ".join(f"t.{_q(c)} IS NOT NULL" for c in key)
        values = ", ".join(f"{self.col(c, 't')} AS __k{i}" for i, c in enumerate(key))
        group = ", ".join(self.col(c, "t") for c in key)
        # one row per key value found on either side, with how many rows hold it on each; a NULL
        # in the key matches nothing, as unique() ignores NULL keys
        self.with_keys = (
            f"WITH __keys_e AS (SELECT {values}, COUNT(*) AS __n FROM {self.env_sql} AS t "
            f"WHERE {known} GROUP BY {group}), "
            f"__keys_a AS (SELECT {values}, COUNT(*) AS __n FROM {self.against_sql} AS t "
            f"WHERE {known} GROUP BY {group}), "
            "__keys AS (SELECT "
            + "".join(f"COALESCE(e.__k{i}, a.__k{i}) AS __k{i}, " for i in range(len(key)))
            + "COALESCE(e.__n, 0) AS __e, COALESCE(a.__n, 0) AS __a "
            "FROM __keys_e AS e FULL OUTER JOIN __keys_a AS a ON "
            + " AND ".join(f"e.__k{i} = a.__k{i}" for i in range(len(key)))
            + ")"
        )

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        return self.engine.query(sqlglot.transpile(sql, write=self.engine.dialect)[0]).rows

    def value(self, column: str, sql: str) -> str:
        return f"CAST({sql} AS TEXT)" if column in self.as_text else sql

    def col(self, column: str, alias: str) -> str:
        return self.value(column, f"{alias}.{_q(column)}")

    def as_multisets(self, schema: SchemaDiff) -> DataDiff:
        columns = schema.compared
        picked = ", ".join(self.col(c, "t") for c in columns) or "1"
        env_side = f"SELECT {picked} FROM {self.env_sql} AS t"
        against_side = f"SELECT {picked} FROM {self.against_sql} AS t"
        # EXCEPT ALL counts copies: a row twice in dev and once in prod is once only in dev
        env_only = f"{env_side} EXCEPT ALL {against_side}"
        against_only = f"{against_side} EXCEPT ALL {env_side}"
        (row,) = self.run(
            f"SELECT (SELECT COUNT(*) FROM {self.env_sql}), "
            f"(SELECT COUNT(*) FROM {self.against_sql}), "
            f"(SELECT COUNT(*) FROM ({env_only}) AS d), "
            f"(SELECT COUNT(*) FROM ({against_only}) AS d)"
        )
        env_rows, against_rows, env_count, against_count = map(_count, row)

        def sample(query: str, count: int) -> RowSample:
            if not count or not columns:
                return RowSample(count, columns, ())
            order = ", ".join(str(i + 1) for i in range(len(columns)))
            rows = self.run(f"SELECT * FROM ({query}) AS d ORDER BY {order} LIMIT {SAMPLE_ROWS}")
            return RowSample(count, columns, tuple(rows))

        if not columns:  # nothing in common: no row can be found on the other side
            env_count, against_count = env_rows, against_rows
        only_env, only_against = sample(env_only, env_count), sample(against_only, against_count)
        return DataDiff(
            self.env, self.against, None, schema, env_rows, against_rows, only_env, only_against
        )

    def by_key(self, schema: SchemaDiff, env_cols: Columns, against_cols: Columns) -> DataDiff:
        counts = {
            "only_env": "CASE WHEN __a = 0 THEN __e ELSE 0 END",
            "only_against": "CASE WHEN __e = 0 THEN __a ELSE 0 END",
            "matched": "CASE WHEN __e = 1 AND __a = 1 THEN 1 ELSE 0 END",
            "dup_keys_env": "CASE WHEN __e > 1 THEN 1 ELSE 0 END",
            "dup_keys_against": "CASE WHEN __a > 1 THEN 1 ELSE 0 END",
            "dup_rows_env": "CASE WHEN __e > 1 THEN __e ELSE 0 END",
            "dup_rows_against": "CASE WHEN __a > 1 THEN __a ELSE 0 END",
            "ambiguous": "CASE WHEN __e > 0 AND __a > 0 AND (__e > 1 OR __a > 1) THEN 1 ELSE 0 END",
        }
        nulls = " OR ".join(f"t.{_q(c)} IS NULL" for c in self.key)
        totals = f"SELECT COUNT(*) AS n, SUM(CASE WHEN {nulls} THEN 1 ELSE 0 END) AS nulls FROM"
        (row,) = self.run(
            f"{self.with_keys} SELECT te.n, ta.n, te.nulls, ta.nulls, "
            + ", ".join(f"s.{name}" for name in counts)
            + " FROM (SELECT "
            + ", ".join(f"SUM({expr}) AS {name}" for name, expr in counts.items())
            + f" FROM __keys) AS s CROSS JOIN ({totals} {self.env_sql} AS t) AS te "
            f"CROSS JOIN ({totals} {self.against_sql} AS t) AS ta"
        )
        env_rows, against_rows, env_nulls, against_nulls, *found = map(_count, row)
        n = dict(zip(counts, found, strict=True))
        changed, by_column, sample = self.changes(schema.compared)
        duplicates: tuple[tuple[tuple[Any, ...], int, int], ...] = ()
        if n["dup_keys_env"] or n["dup_keys_against"]:
            rows = self.run(
                f"{self.with_keys} SELECT {self.keys}, __e, __a FROM __keys "
                f"WHERE __e > 1 OR __a > 1 ORDER BY __e + __a DESC, {self.keys} LIMIT {SAMPLE_ROWS}"
            )
            duplicates = tuple((tuple(r[:-2]), int(r[-2]), int(r[-1])) for r in rows)
        return DataDiff(
            self.env,
            self.against,
            self.key,
            schema,
            env_rows,
            against_rows,
            self.only(self.env_sql, env_cols, "__a", n["only_env"]),
            self.only(self.against_sql, against_cols, "__e", n["only_against"]),
            KeyDiff(
                matched=n["matched"],
                changed=changed,
                by_column=by_column,
                sample=sample,
                null_key_rows=(env_nulls, against_nulls),
                duplicate_keys=(n["dup_keys_env"], n["dup_keys_against"]),
                duplicate_rows=(n["dup_rows_env"], n["dup_rows_against"]),
                ambiguous=n["ambiguous"],
                duplicate_sample=duplicates,
            ),
        )

    def on_key(self, alias: str) -> str:
        return " AND ".join(f"k.__k{i} = {self.col(c, alias)}" for i, c in enumerate(self.key))

    def only(self, table: str, columns: Columns, other: str, count: int) -> RowSample:
        """A sample of the rows whose key the other side (`__a` or `__e`) does not have."""
        names = tuple(c for c, _ in columns)
        if not count:
            return RowSample(count, names, ())
        order = ", ".join(f"t.{_q(c)}" for c in self.key)
        rows = self.run(
            f"{self.with_keys} SELECT t.* FROM {table} AS t JOIN __keys AS k ON {self.on_key('t')} "
            f"WHERE k.{other} = 0 ORDER BY {order} LIMIT {SAMPLE_ROWS}"
        )
        return RowSample(count, names, tuple(rows))

    def changes(
        self, compared: tuple[str, ...]
    ) -> tuple[int, dict[str, int], tuple[ChangedRow, ...]]:
        """Pair the rows of each key found once on each side; count and sample what differs."""
        if not compared:
            return 0, {}, ()
        numbered = list(enumerate(compared))
        pairs = "".join(f", a.{_q(c)} AS __old{i}, e.{_q(c)} AS __new{i}" for i, c in numbered)
        flags = ", ".join(
            f"CASE WHEN {self.value(c, f'__old{i}')} IS DISTINCT FROM {self.value(c, f'__new{i}')} "
            f"THEN 1 ELSE 0 END AS __d{i}"
            for i, c in numbered
        )
        keyed = ", ".join(f"k.__k{i}" for i in range(len(self.key)))
        pairs_and_flags = (
            f"{self.with_keys}, __pairs AS (SELECT {keyed}{pairs} FROM __keys AS k "
            f"JOIN {self.env_sql} AS e ON {self.on_key('e')} "
            f"JOIN {self.against_sql} AS a ON {self.on_key('a')} WHERE k.__e = 1 AND k.__a = 1), "
            f"__flags AS (SELECT __pairs.*, {flags} FROM __pairs) "
        )
        differs = " + ".join(f"__d{i}" for i, _ in numbered) + " > 0"
        ((changed, *per_column),) = self.run(
            f"{pairs_and_flags} SELECT COUNT(*), "
            + ", ".join(f"SUM(__d{i})" for i, _ in numbered)
            + f" FROM __flags WHERE {differs}"
        )
        values = "".join(f", __old{i}, __new{i}, __d{i}" for i, _ in numbered)
        rows = self.run(
            f"{pairs_and_flags} SELECT {self.keys}{values} FROM __flags WHERE {differs} "
            f"ORDER BY {self.keys} LIMIT {SAMPLE_ROWS}"
        )
        sample = []
        for row in rows:
            rest = row[len(self.key) :]
            changes = tuple(
                (c, rest[3 * i], rest[3 * i + 1]) for i, c in numbered if rest[3 * i + 2]
            )
            sample.append(ChangedRow(tuple(row[: len(self.key)]), changes))
        by_column = {c: _count(per_column[i]) for i, c in numbered}
        return _count(changed), by_column, tuple(sample)

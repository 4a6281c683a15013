"""The data diff on real DuckDB tables: odd names, retyped columns, NULL and duplicate keys."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from sqlops.engines.base import QueryResult, Relation
from sqlops.engines.duckdb import DuckDBEngine
from sqlops.errors import SqlopsError
from sqlops.impact.diff import diff_relations

ENV = Relation('we"ird', "t-1 dev")
AGAINST = Relation('we"ird', "t-1")

# `id` is the key; `n` goes from NULL to 1 for id 1 (`amount` is NULL on both sides: no change);
# `na me` changes for id 2; `__e` (a name the diff uses inside) changes for id 3;
# `amount` is INTEGER in prod and VARCHAR in dev, equal as text except for id 3; `n` widens to
# BIGINT and stays equal. id 4 is only in prod, id 5 only in dev; id 6 is twice in dev; a NULL id
# on each side matches nothing.
SETUP = """
CREATE SCHEMA "we""ird";
CREATE TABLE "we""ird"."t-1" AS SELECT * FROM (VALUES
    (1, 'a', 0, NULL, NULL), (2, 'b', 0, 20, 2), (3, 'c', 0, 30, 3), (4, 'd', 0, 40, 4),
    (6, 'f', 0, 60, 6), (NULL, 'x', 0, 0, 0)
) AS v("id", "na me", "__e", "amount", "n");
CREATE TABLE "we""ird"."t-1 dev" AS SELECT * FROM (VALUES
    (1, 'a', 0, NULL, 1::BIGINT, 'new'), (2, 'B', 0, '20', 2, 'new'), (3, 'c', 1, '31', 3, 'new'),
    (5, 'e', 0, '50', 5, 'new'), (6, 'f', 0, '60', 6, 'new'), (6, 'g', 0, '60', 6, 'new'),
    (NULL, 'x', 0, '0', 0, 'new')
) AS v("id", "na me", "__e", "amount", "n", "added col");
"""


class Recording(DuckDBEngine):
    """Keeps every query, to check that they transpile to the other engines' dialects."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(con, ":memory:")
        self.queries: list[str] = []

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        self.queries.append(sql)
        return super().query(sql, params)


@pytest.fixture
def engine() -> Iterator[Recording]:
    con = duckdb.connect()
    con.execute(SETUP)
    yield Recording(con)
    con.close()


def test_by_key(engine: Recording) -> None:
    d = diff_relations(engine, ENV, AGAINST, ("id",))
    assert d.schema.added == (("added col", "VARCHAR"),)
    assert d.schema.removed == ()
    assert d.schema.retyped == (("amount", "INTEGER", "VARCHAR"), ("n", "INTEGER", "BIGINT"))
    assert d.schema.compared == ("na me", "__e", "amount", "n")
    assert (d.env_rows, d.against_rows) == (7, 6)
    assert d.only_in_env.count == 1 and d.only_in_env.rows[0][:2] == (5, "e")
    assert d.only_in_env.columns[-1] == "added col"
    assert d.only_in_against.count == 1 and d.only_in_against.rows[0][:2] == (4, "d")
    k = d.by_key
    assert k is not None
    assert (k.matched, k.changed) == (3, 3)
    assert k.by_column == {"na me": 1, "__e": 1, "amount": 1, "n": 1}
    assert [(c.key, c.changes) for c in k.sample] == [
        ((1,), (("n", None, 1),)),
        ((2,), (("na me", "b", "B"),)),
        ((3,), (("__e", 0, 1), ("amount", 30, "31"))),
    ]
    assert k.null_key_rows == (1, 1)
    assert (k.duplicate_keys, k.duplicate_rows, k.ambiguous) == ((1, 0), (2, 0), 1)
    assert k.duplicate_sample == (((6,), 2, 1),)
    assert not d.identical


def test_as_multisets_counts_copies(engine: Recording) -> None:
    d = diff_relations(engine, ENV, AGAINST, None)
    assert d.key is None and d.by_key is None
    assert d.schema.compared == ("id", "na me", "__e", "amount", "n")
    # dev rows 1, 2, 3, 5 and one of the two 6s are not in prod; prod rows 1 to 4 are not in dev
    assert d.only_in_env.count == 5
    assert d.only_in_against.count == 4
    assert [r[0] for r in d.only_in_against.rows] == [1, 2, 3, 4]
    assert sorted(r[1] for r in d.only_in_env.rows) == ["B", "a", "c", "e", "g"]


def test_identical_relations(engine: Recording) -> None:
    d = diff_relations(engine, AGAINST, AGAINST, ("id",))
    assert d.by_key is not None and d.by_key.changed == 0
    # the NULL key cannot be compared, so the diff does not call the sides identical
    assert not d.identical
    engine.execute('DELETE FROM "we""ird"."t-1" WHERE "id" IS NULL')
    assert diff_relations(engine, AGAINST, AGAINST, ("id",)).identical
    assert diff_relations(engine, AGAINST, AGAINST, None).identical


def test_queries_transpile_to_the_other_engines(engine: Recording) -> None:
    diff_relations(engine, ENV, AGAINST, ("id", "na me"))
    diff_relations(engine, ENV, AGAINST, None)
    assert len(engine.queries) >= 8
    for sql in engine.queries:
        for dialect in ("postgres", "spark"):
            sqlglot.transpile(sql, read="duckdb", write=dialect, unsupported_level=ErrorLevel.RAISE)


def test_a_key_column_missing_on_a_side(engine: Recording) -> None:
    with pytest.raises(SqlopsError) as err:
        diff_relations(engine, ENV, AGAINST, ("added col",))
    assert 'we"ird.t-1' in err.value.message and "t-1 dev" not in err.value.message
    assert err.value.hint and "id, na me" in err.value.hint
    # a different case names the same column
    assert diff_relations(engine, ENV, AGAINST, ("ID",)).key == ("id",)

"""PostgreSQL through psycopg 3: one connection per worker, transactional DDL, so views and state
switch in one transaction."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql as pgsql

from sqlops.engines.base import Engine, QueryResult, Relation
from sqlops.engines.duckdb import described_file, file_query, short
from sqlops.errors import ConfigError, EngineError
from sqlops.project.config import Target

if TYPE_CHECKING:
    from sqlops.state.lock import Holder

# the advisory lock of commands that change the database (sqlops.state.lock): "SQLO", 1
_LOCK = (0x53514C4F, 1)

# `?` placeholders outside quotes, as the rest of sqlops writes them
_PLACEHOLDER = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")|(\?)|(%)""")

# how a column DuckDB reads from a file is declared in PostgreSQL
_TYPES = {
    "BOOLEAN": "BOOLEAN",
    "TINYINT": "SMALLINT",
    "SMALLINT": "SMALLINT",
    "INTEGER": "INTEGER",
    "BIGINT": "BIGINT",
    "HUGEINT": "NUMERIC",
    "UTINYINT": "SMALLINT",
    "USMALLINT": "INTEGER",
    "UINTEGER": "BIGINT",
    "UBIGINT": "NUMERIC",
    "FLOAT": "REAL",
    "DOUBLE": "DOUBLE PRECISION",
    "DATE": "DATE",
    "TIME": "TIME",
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "VARCHAR": "TEXT",
    "BLOB": "BYTEA",
    "UUID": "UUID",
    "INTERVAL": "INTERVAL",
}


class PostgresEngine(Engine):
    dialect = "postgres"
    supports_transactional_ddl = True
    # CREATE OR REPLACE VIEW cannot rename or drop a column: views are dropped and made again,
    # in the promotion's transaction
    supports_create_or_replace_view = False

    def __init__(self, dsn: str, con: psycopg.Connection[Any]) -> None:
        self.dsn = dsn
        self.con = con

    @classmethod
    def open(cls, target: Target, root: Path, *, read_only: bool = False) -> PostgresEngine:
        dsn = str(target.settings.get("dsn", ""))
        if not dsn:
            raise ConfigError(
                f"[targets.{target.name}] needs a dsn",
                hint='write dsn = "${PG_DSN}" and export PG_DSN=postgresql://user@host:5432/db',
            )
        return cls(dsn, _connect(dsn, target.name))

    # -- statements -------------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._errors(sql):
            self.con.execute(_placeholders(sql) if params else sql, list(params) or None)

    def create_table_as(self, relation: Relation, select_sql: str) -> int:
        # PostgreSQL's command tag of CREATE TABLE AS, SELECT n, gives the rows it wrote
        sql = f"CREATE TABLE {self.quote(relation)} AS {select_sql}"
        with self._errors(sql):
            rows = self.con.execute(sql).rowcount
        return rows if rows >= 0 else self.row_count(relation)

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        with self._errors(sql):
            cursor = self.con.execute(_placeholders(sql) if params else sql, list(params) or None)
            columns = tuple(d.name for d in cursor.description or ())
            return QueryResult(columns, cursor.fetchall() if cursor.description else [])

    @contextmanager
    def _errors(self, sql: str) -> Iterator[None]:
        try:
            yield
        except psycopg.errors.QueryCanceled:
            raise KeyboardInterrupt from None
        except psycopg.Error as exc:
            # a failed statement ends the transaction it was in: later ones must not run in it
            raise EngineError(_message(exc), snippet=short(sql)) from None
        self.statement_done(sql)

    def interrupt(self) -> None:
        self.con.cancel_safe()

    def try_lock(self, holder: str) -> Holder | None:
        from sqlops.state.lock import parse_holder

        # who holds it is told by the session's name: pid, host and command
        self.execute("SELECT set_config('application_name', ?, false)", (holder[:63],))
        for _ in range(3):  # the holder may let go between the two queries: try again
            if self.query("SELECT pg_try_advisory_lock(?, ?)", _LOCK).rows[0][0]:
                return None
            rows = self.query(
                "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks AS l "
                "JOIN pg_stat_activity AS a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ? AND l.objid = ? "
                "AND l.objsubid = 2 AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())",
                _LOCK,
            ).rows
            if rows:
                session, name, started = rows[0]
                return parse_holder(str(name or ""), started, int(session))
        return parse_holder("", None, None)  # held by a session this role cannot see

    def end_session(self, session: int) -> None:
        self.query("SELECT pg_terminate_backend(?)", (session,))
        # the server ends it a moment later: wait for its lock to go, a few seconds at most
        for _ in range(50):
            alive = self.query("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", (session,))
            if not alive.rows[0][0]:
                return
            time.sleep(0.1)

    def fork(self) -> PostgresEngine:
        return PostgresEngine(self.dsn, _connect(self.dsn, "fork"))

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def _outermost_transaction(self) -> Iterator[None]:
        try:
            with self.con.transaction():
                self.statement_done("BEGIN")
                yield
            self.statement_done("COMMIT")
        except psycopg.Error as exc:  # COMMIT itself failed
            raise EngineError(_message(exc)) from None

    def _type_name(self, written: str) -> str:
        return written.upper()  # PostgreSQL's catalog writes `integer`

    def data_stamp(self, relation: Relation) -> str | None:
        if self.columns(relation) is None:
            return None
        # an order-free digest of every row's text
        count, digest = self.query(
            "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM "
            f"(SELECT md5(CAST(r AS TEXT)) AS h FROM {self.quote(relation)} AS r) AS d"
        ).rows[0]
        return f"rows {count} md5 {digest}"

    def read_all(self, relation: Relation) -> int:
        return int(
            self.query(
                f"SELECT count(*) FROM {self.quote(relation)} AS r WHERE md5(CAST(r AS TEXT)) "
                "IS NOT NULL OR TRUE"
            ).rows[0][0]
        )

    # -- files: read by DuckDB, which sqlops has anyway, then copied in ---------------------------

    def file_columns(self, path: Path) -> list[tuple[str, str]]:
        return [(name, _pg_type(duckdb_type)) for name, duckdb_type in described_file(path)]

    def load_file(
        self,
        relation: Relation,
        path: Path,
        columns: Sequence[tuple[str, str | None]],
        *,
        seed: bool = False,
    ) -> int:
        import duckdb

        with duckdb.connect() as reader:
            try:
                result = reader.execute(file_query(path, columns, seed=seed))
            except duckdb.Error as exc:
                raise EngineError(f"cannot read {path.name}: {exc}") from None
            described = [(d[0], _pg_type(str(d[1]))) for d in result.description or ()]
            rows = result.fetchall()
        if columns:  # the declared types, as PostgreSQL writes them
            declared = dict(columns)
            described = [(n, _declared(declared.get(n), t)) for n, t in described]
        definition = ", ".join(f"{self.ident(n)} {t}" for n, t in described)
        self.create_schema(relation.schema)
        with self.transaction():
            self.execute(f"DROP TABLE IF EXISTS {self.quote(relation)}")
            self.execute(f"CREATE TABLE {self.quote(relation)} ({definition})")
            copy = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
                pgsql.Identifier(relation.schema, relation.name),
                pgsql.SQL(", ").join(pgsql.Identifier(n) for n, _ in described),
            )
            with self._errors(f"COPY {relation}"), self.con.cursor().copy(copy) as writer:
                for row in rows:
                    writer.write_row(row)
        return len(rows)


def _connect(dsn: str, name: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise ConfigError(
            f"cannot connect to PostgreSQL for target `{name}`: {_message(exc)}",
            hint="check the dsn (host, port, user, database) and that the server is running",
        ) from None


def _placeholders(sql: str) -> str:
    """`?` to psycopg's `%s`, and a literal `%` to `%%`, outside quoted text."""

    def swap(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1).replace("%", "%%")
        return "%s" if match.group(2) else "%%"

    return _PLACEHOLDER.sub(swap, sql)


def _pg_type(duckdb_type: str) -> str:
    upper = duckdb_type.upper()
    if upper.startswith("DECIMAL"):
        return upper.replace("DECIMAL", "NUMERIC")
    return _TYPES.get(upper, "TEXT")


def _declared(written: str | None, found: str) -> str:
    if not written:
        return found
    import sqlglot

    try:
        return sqlglot.exp.DataType.build(written, dialect="duckdb").sql("postgres")
    except (sqlglot.errors.SqlglotError, ValueError):
        return found


def _message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag else None
    return str(primary or exc).strip().splitlines()[0]

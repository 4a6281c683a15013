"""The engine interface: everything sqlops asks of a database, and nothing more."""

from __future__ import annotations

import os
import signal
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlglot import exp

from sqlops.errors import EngineError
from sqlops.secrets import scrub

if TYPE_CHECKING:
    from sqlops.state.lock import Holder


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    def table(self) -> exp.Table:
        return exp.table_(
            exp.to_identifier(self.name, quoted=True),
            db=exp.to_identifier(self.schema, quoted=True),
        )


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


class _CrashSwitch:
    """For the crash tests only (tests/e2e/test_kill.py); inert unless they set its variables.

    `SQLOPS_TEST_KILL_AFTER=N`: the process kills itself with SIGKILL right after the N-th
    statement it ran successfully, counted across every connection and thread of the process.
    `SQLOPS_TEST_KILL_MATCHING=TEXT`: only statements that contain TEXT count toward N.
    `SQLOPS_TEST_STATEMENT_LOG=PATH`: each statement's number and first line are appended to
    PATH as it completes, so that a test knows what the N-th statement is.
    `SQLOPS_TEST_FAIL_AFTER=N` with `SQLOPS_TEST_FAIL_MATCHING=TEXT`: the N-th statement that
    contains TEXT fails (an EngineError) right after it ran, as if the database had refused it
    (tests/e2e/test_failed_promotion.py).
    They are read once, at import: when none is set, a statement costs a call and a test.
    """

    def __init__(self) -> None:
        kill_after = os.environ.get("SQLOPS_TEST_KILL_AFTER", "")
        self.kill_after = int(kill_after) if kill_after.strip() else 0
        self.matching = os.environ.get("SQLOPS_TEST_KILL_MATCHING", "")
        self.log_path = os.environ.get("SQLOPS_TEST_STATEMENT_LOG") or None
        fail_after = os.environ.get("SQLOPS_TEST_FAIL_AFTER", "")
        self.fail_after = int(fail_after) if fail_after.strip() else 0
        self.fail_matching = os.environ.get("SQLOPS_TEST_FAIL_MATCHING", "")
        self.armed = bool(self.kill_after or self.log_path or self.fail_after)
        self.count = 0
        self.counted = 0  # toward the kill
        self.failing = 0  # toward the failure
        self.lock = threading.Lock()

    def statement_done(self, sql: str) -> None:
        with self.lock:  # held until the kill: no other statement completes after the N-th
            self.count += 1
            if self.log_path:
                first = scrub(" ".join(sql.split())[:200])
                with open(self.log_path, "a", encoding="utf-8") as log:
                    log.write(f"{self.count}\t{first}\n")
            if self.matching in sql:
                self.counted += 1
            if self.counted == self.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fail_after and self.fail_matching in sql:
                self.failing += 1
                if self.failing == self.fail_after:
                    raise EngineError(f"injected failure after: {' '.join(sql.split())[:200]}")


_crash_switch = _CrashSwitch()


class Engine(ABC):
    """One connection to a target. `fork()` gives another for a worker thread."""

    dialect: ClassVar[str]
    supports_transactional_ddl: ClassVar[bool] = False
    supports_create_or_replace_view: ClassVar[bool] = True
    # queries one connection can run side by side from several threads (1: one at a time)
    concurrent_queries: ClassVar[int] = 1

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult: ...

    @abstractmethod
    def fork(self) -> Engine: ...

    def insert_rows(self, table: str, rows: Sequence[Sequence[Any]], chunk: int = 200) -> None:
        """INSERT `rows` (each a full row, in the table's column order) into `table`, already
        quoted, in as few statements as the engine allows."""
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            marks = "(" + ", ".join("?" * len(part[0])) + ")"
            self.execute(
                f"INSERT INTO {table} VALUES " + ", ".join([marks] * len(part)),
                [value for row in part for value in row],
            )

    @abstractmethod
    def close(self) -> None: ...

    @staticmethod
    def statement_done(sql: str) -> None:
        """Each engine calls this once a statement (BEGIN and COMMIT included) has succeeded:
        the crash tests' kill switch (_CrashSwitch), a no-op otherwise."""
        if _crash_switch.armed:
            _crash_switch.statement_done(sql)

    @property
    def state(self) -> Engine:
        """The engine that holds sqlops_meta: this one, unless the engine cannot hold it well
        (Spark keeps it in a state database of its own)."""
        return self

    def interrupt(self) -> None:
        """Stop the statement running on this connection, from another thread (Ctrl-C)."""
        return None

    def try_lock(self, holder: str) -> Holder | None:
        """Take the lock of commands that change the database (sqlops.state.lock) for as long as
        this connection lives, naming this process `holder`; None once taken, else who holds it.
        An engine whose database file admits one writing process holds it by being open."""
        return None

    def end_session(self, session: int) -> None:
        """End a server session a killed process left holding the lock."""
        return None

    _depth = 0  # transactions open on this connection

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; one opened inside it joins it."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self._outermost_transaction():
                yield
        finally:
            self._depth = 0

    @abstractmethod
    def _outermost_transaction(self) -> AbstractContextManager[None]:
        """BEGIN, then COMMIT, or ROLLBACK when the block raises."""

    def columns(self, relation: Relation) -> list[tuple[str, str]] | None:
        """(name, type) of each column, or None when the relation does not exist."""
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (relation.schema, relation.name),
        ).rows
        return [(str(r[0]), self._type_name(str(r[1]))) for r in rows] or None

    def _type_name(self, written: str) -> str:
        """A column type as the catalog writes it, in the form sqlops compares."""
        return written

    def relations(self, schema: str) -> dict[str, str]:
        """The tables and views in a schema: name -> "table" or "view"."""
        return self.relations_in([schema])[schema]

    def relations_in(self, schemas: Iterable[str]) -> dict[str, dict[str, str]]:
        """`relations` of each schema, in one catalog query (a query each costs 5 to 10 ms
        on a DuckDB file of a thousand tables)."""
        wanted = sorted(set(schemas))
        found: dict[str, dict[str, str]] = {schema: {} for schema in wanted}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            rows = self.query(
                "SELECT table_schema, table_name, table_type FROM information_schema.tables "
                f"WHERE table_schema IN ({', '.join('?' * len(part))})",
                part,
            ).rows
            for schema, name, kind in rows:
                found[str(schema)][str(name)] = "view" if kind == "VIEW" else "table"
        return found

    def schemas(self) -> set[str]:
        """The names of every schema of the database."""
        rows = self.query("SELECT DISTINCT schema_name FROM information_schema.schemata").rows
        return {str(r[0]) for r in rows}

    def view_definitions(self, contains: str) -> list[tuple[str, str, str]]:
        """(schema, name, SQL text) of every view whose text contains `contains`."""
        rows = self.query(
            "SELECT table_schema, table_name, view_definition FROM information_schema.views "
            "WHERE view_definition LIKE ?",
            (f"%{contains}%",),
        ).rows
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    @abstractmethod
    def load_file(
        self,
        relation: Relation,
        path: Path,
        columns: Sequence[tuple[str, str | None]],
        *,
        seed: bool = False,
    ) -> int:
        """Create or replace a table from a CSV, Parquet or JSON file; return its row count. A
        seed is comma-separated CSV with double quotes, as the loader read its header."""

    @abstractmethod
    def file_columns(self, path: Path) -> list[tuple[str, str]]:
        """The columns a file holds, as the engine reads them."""

    # -- generated SQL, with every identifier quoted --------------------------------------------

    def quote(self, relation: Relation) -> str:
        return relation.table().sql(self.dialect)

    def ident(self, name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(self.dialect)

    def create_schema(self, schema: str) -> None:
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.ident(schema)}")

    def create_table_as(self, relation: Relation, select_sql: str) -> int:
        """Create a table from a query; the number of rows it has."""
        self.execute(f"CREATE TABLE {self.quote(relation)} AS {select_sql}")
        return self.row_count(relation)

    def create_view_as(self, relation: Relation, select_sql: str, replace: bool = False) -> None:
        if replace and not self.supports_create_or_replace_view:
            self.drop(relation, "view")
        verb = (
            "CREATE OR REPLACE VIEW"
            if replace and self.supports_create_or_replace_view
            else ("CREATE VIEW")
        )
        self.execute(f"{verb} {self.quote(relation)} AS {select_sql}")

    def drop(self, relation: Relation, kind: str) -> None:
        """Drop a relation of kind "table" or "view" if it exists."""
        self.execute(f"DROP {kind.upper()} IF EXISTS {self.quote(relation)}")

    def data_stamp(self, relation: Relation) -> str | None:
        """Something that changes when the relation's rows change; None if it does not exist.

        The row count is the portable floor; engines that can hash rows do better.
        """
        if self.columns(relation) is None:
            return None
        return f"rows {self.row_count(relation)}"

    def read_all(self, relation: Relation) -> int:
        """Compute every value of every row (a view's errors show), and count the rows."""
        return self.row_count(relation)

    def row_count(self, relation: Relation) -> int:
        return int(self.query(f"SELECT count(*) FROM {self.quote(relation)}").rows[0][0])

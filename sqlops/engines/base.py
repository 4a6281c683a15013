"""The engine interface: everything sqlops asks of a database, and nothing more."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlglot import exp


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


class Engine(ABC):
    """One connection to a target. `fork()` gives another for a worker thread."""

    dialect: ClassVar[str]
    supports_transactional_ddl: ClassVar[bool] = False
    supports_create_or_replace_view: ClassVar[bool] = True

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult: ...

    @abstractmethod
    def fork(self) -> Engine: ...

    @abstractmethod
    def close(self) -> None: ...

    def interrupt(self) -> None:
        """Stop the statement running on this connection, from another thread (Ctrl-C)."""
        return None

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]: ...

    @abstractmethod
    def columns(self, relation: Relation) -> list[tuple[str, str]] | None:
        """(name, type) of each column, or None when the relation does not exist."""

    @abstractmethod
    def relations(self, schema: str) -> dict[str, str]:
        """The tables and views in a schema: name -> "table" or "view"."""

    @abstractmethod
    def load_file(
        self, relation: Relation, path: Path, columns: Sequence[tuple[str, str | None]]
    ) -> int:
        """Create or replace a table from a CSV, Parquet or JSON file; return its row count."""

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

    def create_table_as(self, relation: Relation, select_sql: str) -> None:
        self.execute(f"CREATE TABLE {self.quote(relation)} AS {select_sql}")

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

"""DuckDB, the embedded default engine: one file (or memory), transactional DDL."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlops.engines.base import Engine, QueryResult, Relation
from sqlops.errors import ConfigError, EngineError
from sqlops.project.config import Target

if TYPE_CHECKING:
    from sqlops.state.lock import BusyError


class DuckDBEngine(Engine):
    dialect = "duckdb"
    supports_transactional_ddl = True
    supports_create_or_replace_view = True

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str) -> None:
        self.con = con
        self.path = path

    @staticmethod
    def file_of(target: Target, root: Path) -> Path | None:
        """The database file of `target`; None for a database in memory."""
        raw = str(target.settings.get("path", ":memory:"))
        return None if raw == ":memory:" else (root / raw).resolve()

    @classmethod
    def open(cls, target: Target, root: Path, *, read_only: bool = False) -> DuckDBEngine:
        raw = str(target.settings.get("path", ":memory:"))
        file = cls.file_of(target, root)
        path = ":memory:" if file is None else str(file)
        try:
            if read_only and path != ":memory:" and not Path(path).exists():
                path = ":memory:"  # nothing built yet: look at an empty database, create no file
            elif path != ":memory:" and not read_only:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(path, read_only=read_only and path != ":memory:")
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise _in_use(raw, text) from None
            raise ConfigError(
                f"cannot open DuckDB file {raw}: {text}",
                hint=f"check the path of [targets.{target.name}] in sqlops.toml",
            ) from None
        except (duckdb.Error, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(
                f"cannot open DuckDB file {raw}: {reason}",
                hint=f"check the path of [targets.{target.name}] in sqlops.toml",
            ) from None
        # relative paths in models (read_csv('data/x.csv')) mean the project folder, not the cwd
        con.execute("SET file_search_path = ?", [str(root)])
        return cls(con, path)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _errors(sql):
            self.con.execute(sql, list(params) if params else None)

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        with _errors(sql):
            cursor = self.con.execute(sql, list(params) if params else None)
            columns = tuple(d[0] for d in cursor.description or ())
            return QueryResult(columns, cursor.fetchall())

    def insert_rows(self, table: str, rows: Sequence[Sequence[Any]], chunk: int = 0) -> None:
        # one list a column, unnested side by side: binding a parameter per value costs DuckDB
        # about ten times as much (1,000 rows of 12 values: 200 ms against 18 ms)
        if rows:
            columns = [list(column) for column in zip(*rows, strict=True)]
            unnested = ", ".join(f"unnest(${i})" for i in range(1, len(columns) + 1))
            self.execute(f"INSERT INTO {table} SELECT {unnested}", columns)

    def interrupt(self) -> None:
        self.con.interrupt()

    def create_table_as(self, relation: Relation, select_sql: str) -> int:
        # DuckDB answers CREATE TABLE AS with the number of rows it wrote
        result = self.query(f"CREATE TABLE {self.quote(relation)} AS {select_sql}")
        return int(result.rows[0][0])

    def fork(self) -> DuckDBEngine:
        return DuckDBEngine(self.con.cursor(), self.path)

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def _outermost_transaction(self) -> Iterator[None]:
        self.execute("BEGIN TRANSACTION")
        try:
            yield
            self.execute("COMMIT")
        except BaseException:
            # a failed COMMIT may have ended the transaction already
            with contextlib.suppress(duckdb.Error, RuntimeError):
                self.con.execute("ROLLBACK")
            raise

    def data_stamp(self, relation: Relation) -> str | None:
        if self.columns(relation) is None:
            return None
        count, total = self.query(
            f"SELECT count(*), sum(hash(__sqlops_row__)::HUGEINT) "
            f"FROM {self.quote(relation)} AS __sqlops_row__"
        ).rows[0]
        return f"rows {count} hash {total}"

    def read_all(self, relation: Relation) -> int:
        # count(*) alone would not compute the columns: hashing the row does
        alias = "__sqlops_row__"
        return int(
            self.query(
                f"SELECT count(*) FROM {self.quote(relation)} AS {alias} "
                f"WHERE hash({alias}) IS NOT NULL"
            ).rows[0][0]
        )

    def file_columns(self, path: Path) -> list[tuple[str, str]]:
        result = self.query(f"DESCRIBE {file_query(path)}")
        return [(str(r[0]), str(r[1])) for r in result.rows]

    def load_file(
        self,
        relation: Relation,
        path: Path,
        columns: Sequence[tuple[str, str | None]],
        *,
        seed: bool = False,
    ) -> int:
        self.create_schema(relation.schema)
        query = file_query(path, columns, seed=seed)
        self.execute(f"CREATE OR REPLACE TABLE {self.quote(relation)} AS {query}")
        return self.row_count(relation)


@contextmanager
def _errors(sql: str) -> Iterator[None]:
    """DuckDB's errors as EngineErrors; a statement stopped by Ctrl-C as KeyboardInterrupt."""
    try:
        yield
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except duckdb.Error as exc:
        raise EngineError(_message(exc), snippet=short(sql)) from None
    except RuntimeError as exc:  # DuckDB checks for signals while it runs a statement
        if "interrupted" in str(exc).lower():
            raise KeyboardInterrupt from None
        raise
    Engine.statement_done(sql)


def file_query(
    path: Path, columns: Sequence[tuple[str, str | None]] = (), *, seed: bool = False
) -> str:
    """DuckDB's query of a file's rows, each declared column cast to its declared type (other
    engines read files with it too)."""

    def name(column: str) -> str:
        return exp.to_identifier(column, quoted=True).sql("duckdb")

    def cast(column: str, declared: str) -> str:
        try:  # printed again by sqlglot: only a type, whatever the declaration held
            kind = exp.DataType.build(declared, dialect="duckdb").sql("duckdb")
        except (SqlglotError, ValueError):
            raise EngineError(f"`{declared}` (column `{column}`) is not a type") from None
        return f"CAST({name(column)} AS {kind}) AS {name(column)}"

    select = ", ".join(cast(n, t) if t else name(n) for n, t in columns)
    return f"SELECT {select or '*'} FROM {file_reader(path, seed=seed)}"


def described_file(path: Path) -> list[tuple[str, str]]:
    """(name, DuckDB type) of each column of a file, read by a DuckDB of its own."""
    with duckdb.connect() as reader:
        rows = reader.execute(f"DESCRIBE {file_query(path)}").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def file_reader(path: Path, *, seed: bool = False) -> str:
    """DuckDB's table function that reads a CSV, Parquet or JSON file (other engines use it too).

    A seed is read as the loader read its header, comma-separated with double quotes; any other
    CSV file's dialect is sniffed."""
    literal = "'" + str(path).replace("'", "''") + "'"
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return f"read_parquet({literal})"
    if suffix == ".json":
        return f"read_json_auto({literal})"
    if seed:
        dialect = "delim = ',', quote = '\"', escape = '\"', "
        return f"read_csv({literal}, header = true, {dialect}auto_detect = true)"
    return f"read_csv({literal}, header = true, auto_detect = true)"


def _message(exc: duckdb.Error) -> str:
    text = str(exc).strip()
    return text.split("\n\nLINE")[0] if "\n\nLINE" in text else text


def short(sql: str, limit: int = 600) -> str:
    sql = sql.strip()
    return sql if len(sql) <= limit else sql[:limit] + " ..."


def _in_use(raw: str, text: str) -> BusyError:
    """The file is locked by another process: which one, what it runs and since when."""
    from sqlops.state.lock import BusyError, Holder, local_process

    found = re.search(r"PID (\d+)", text)
    holder = local_process(int(found.group(1))) if found else Holder(None, None, None, None)
    return BusyError(
        f"the DuckDB file {raw} is in use by another process: {holder.describe()}",
        hint="DuckDB allows one writing process at a time: wait for it to end (or close the "
        "program that holds the file) and run again",
    )

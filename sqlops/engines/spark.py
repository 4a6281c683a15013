"""Spark SQL through pyspark: `master = "local[N]"` runs Spark in this process's JVM, with its
catalog in an embedded Hive metastore kept in the project folder; `remote = "sc://..."` talks to
a Spark Connect server.

Physical relations are parquet tables in the session catalog and environments are views, as on
every engine. Spark has no transactions, so the state lives in a state database of its own (a
DuckDB file by default, or PostgreSQL) and promotion follows the journaled protocol of
sqlops.run.switch. The Spark session starts on the first statement that needs it: commands that
only read the state (history, report) never start a JVM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlops.engines.base import Engine, QueryResult, Relation
from sqlops.engines.duckdb import described_file, file_query, short
from sqlops.errors import ConfigError, EngineError
from sqlops.project.config import Target

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Spark's own chatter (log4j, the JVM's warnings) goes to this file in the project, not the terminal
_LOG4J = """rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n
"""

DEFAULT_MASTER = "local[*]"
DEFAULT_WAREHOUSE = "spark-warehouse"
DEFAULT_METASTORE = "metastore_db"
SIDE_FOLDER = ".sqlops"  # Spark's log and Derby's log, in the project folder


class _Session:
    """The Spark session an engine and its forks share, started on first use."""

    def __init__(self, target: Target, root: Path) -> None:
        self.target, self.root = target, root
        self.lock = threading.Lock()
        self.spark: SparkSession | None = None
        self.interrupted = False  # Ctrl-C: a cancelled statement is the user's doing

    def get(self) -> SparkSession:
        with self.lock:
            if self.spark is None:
                self.spark = _start(self.target, self.root)
            return self.spark

    def stop(self) -> None:
        with self.lock:
            if self.spark is not None:
                spark, self.spark = self.spark, None
                with contextlib.suppress(Exception):  # a session that is gone is stopped
                    spark.stop()


class SparkEngine(Engine):
    dialect = "spark"
    supports_transactional_ddl = False
    supports_create_or_replace_view = True
    concurrent_queries = 4  # a query's cost is mostly planning, on the driver

    def __init__(self, session: _Session, state: Engine, *, owner: bool) -> None:
        self._session, self._state, self._owner = session, state, owner

    @classmethod
    def open(cls, target: Target, root: Path, *, read_only: bool = False) -> SparkEngine:
        from sqlops.engines import open_state

        return cls(_Session(target, root), open_state(target, root, read_only), owner=True)

    @property
    def state(self) -> Engine:
        return self._state

    @property
    def spark(self) -> SparkSession:
        return self._session.get()

    # -- statements -------------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._errors(sql):
            self.spark.sql(sql, args=list(params) or None).collect()

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        with self._errors(sql):
            frame = self.spark.sql(sql, args=list(params) or None)
            rows = [tuple(row) for row in frame.collect()]
            return QueryResult(tuple(frame.columns), rows)

    @contextmanager
    def _errors(self, sql: str) -> Iterator[None]:
        from pyspark.errors import PySparkException

        try:
            yield
        except PySparkException as exc:
            if self._session.interrupted and "CANCEL" in str(exc).upper():
                raise KeyboardInterrupt from None
            raise EngineError(_message(exc), snippet=short(sql)) from None
        self.statement_done(sql)

    def interrupt(self) -> None:
        spark = self._session.spark
        if spark is not None:
            self._session.interrupted = True
            with contextlib.suppress(Exception):  # best effort, from another thread
                spark.interruptAll()

    def fork(self) -> SparkEngine:
        # Spark runs jobs from many threads of one session
        return SparkEngine(self._session, self._state, owner=False)

    def close(self) -> None:
        if self._owner:
            self._session.stop()
            self._state.close()

    @contextmanager
    def _outermost_transaction(self) -> Iterator[None]:
        yield  # Spark has none: each statement stands alone

    # -- the catalog ------------------------------------------------------------------------------

    def relations_in(self, schemas: Iterable[str]) -> dict[str, dict[str, str]]:
        return {schema: self.relations(schema) for schema in sorted(set(schemas))}

    def relations(self, schema: str) -> dict[str, str]:
        try:
            tables = self.query(f"SHOW TABLES IN {self.ident(schema)}").rows
        except EngineError as exc:
            if "SCHEMA_NOT_FOUND" in exc.message:
                return {}
            raise
        views = {str(r[1]) for r in self.query(f"SHOW VIEWS IN {self.ident(schema)}").rows}
        return {
            str(r[1]): "view" if str(r[1]) in views else "table"
            for r in tables
            if not r[2]  # not a temporary view
        }

    def schemas(self) -> set[str]:
        return {str(r[0]).lower() for r in self.query("SHOW DATABASES").rows}

    def columns(self, relation: Relation) -> list[tuple[str, str]] | None:
        if relation.name not in self.relations(relation.schema):
            return None
        found = []
        for name, data_type, *_ in self.query(f"DESCRIBE TABLE {self.quote(relation)}").rows:
            if not name or str(name).startswith("#"):
                break  # partition and detail sections follow the columns
            found.append((str(name), str(data_type).upper()))
        return found

    def view_definitions(self, contains: str) -> list[tuple[str, str, str]]:
        found = []
        for schema in sorted(self.schemas()):
            for row in self.query(f"SHOW VIEWS IN {self.ident(schema)}").rows:
                if row[2]:
                    continue
                view = Relation(schema, str(row[1]))
                details = self.query(f"DESCRIBE TABLE EXTENDED {self.quote(view)}").rows
                text = next((str(r[1]) for r in details if r[0] == "View Text"), "")
                if contains in text:
                    found.append((schema, view.name, text))
        return found

    # -- generated SQL ----------------------------------------------------------------------------

    def create_table_as(self, relation: Relation, select_sql: str) -> int:
        self.execute(f"CREATE TABLE {self.quote(relation)} USING parquet AS {select_sql}")
        return self.row_count(relation)

    def data_stamp(self, relation: Relation) -> str | None:
        if self.columns(relation) is None:
            return None
        # the row as JSON: xxhash64 cannot hash a MAP column, to_json can write one
        count, total = self.query(
            "SELECT count(*), sum(CAST(xxhash64(to_json(struct(*))) AS DECIMAL(38, 0))) "
            f"FROM {self.quote(relation)}"
        ).rows[0]
        return f"rows {count} hash {total}"

    def read_all(self, relation: Relation) -> int:
        # count(*) alone would not compute the columns, nor would a filter Spark knows is always
        # true: an aggregate of every row's text does
        return int(
            self.query(
                f"SELECT count(*), max(to_json(struct(*))) FROM {self.quote(relation)}"
            ).rows[0][0]
        )

    # -- files: read by DuckDB on this machine (a cluster cannot see its files), sent as Arrow ---

    def file_columns(self, path: Path) -> list[tuple[str, str]]:
        return [(name, _spark_type(duckdb_type)) for name, duckdb_type in described_file(path)]

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
                table = reader.sql(file_query(path, columns, seed=seed)).to_arrow_table()
            except duckdb.Error as exc:
                raise EngineError(f"cannot read {path.name}: {exc}") from None
        self.create_schema(relation.schema)
        self.drop(relation, "table")
        statement = f"-- load {path.name}\nCREATE TABLE {self.quote(relation)} FROM FILE"
        with self._errors(statement):
            frame = self.spark.createDataFrame(table)
            frame.write.format("parquet").saveAsTable(self.quote(relation))
        return int(table.num_rows)


def _start(target: Target, root: Path) -> SparkSession:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyspark warns of pandas versions it has not tried
            from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            f"target `{target.name}` uses Spark, and pyspark is not installed",
            hint="pip install 'sqlops[spark]'",
        ) from None
    # pyspark logs every failed query's full Java stack; sqlops shows the first line instead
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    remote = str(target.settings.get("remote", ""))
    if remote:
        _reachable(target, remote)
    try:
        if remote:
            return SparkSession.builder.remote(remote).getOrCreate()
        return _start_local(SparkSession, target, root)
    except Exception as exc:  # Java, gRPC and py4j each raise their own
        where = f"the Spark Connect server {remote}" if remote else "a local Spark"
        raise ConfigError(
            f"cannot start {where} for target `{target.name}`: {_first_line(str(exc))}",
            hint=(
                "check that the server runs and the address is sc://host:port"
                if remote
                else f"Spark needs Java 17 or later on the PATH; its log is {SIDE_FOLDER}/spark.log"
            ),
        ) from None


def _reachable(target: Target, remote: str) -> None:
    """Spark Connect's client retries a refused connection for minutes: look first."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(remote.split(";")[0])
    try:
        host, port = parsed.hostname, parsed.port or 15002
    except ValueError:  # a port that is not a number
        host, port = None, 0
    if parsed.scheme != "sc" or not host:
        raise ConfigError(
            f'[targets.{target.name}] remote = "{remote}" is not a Spark Connect address',
            hint='write remote = "sc://host:15002"',
        )
    try:
        with socket.create_connection((host, port), timeout=10):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Spark Connect server {host}:{port} of target `{target.name}`: "
            f"{exc.strerror or exc}",
            hint='check that the server runs and that remote = "sc://host:port" names it',
        ) from None


def _start_local(builder_of: Any, target: Target, root: Path) -> SparkSession:
    master = str(target.settings.get("master", "") or DEFAULT_MASTER)
    warehouse = (root / str(target.settings.get("warehouse", "") or DEFAULT_WAREHOUSE)).resolve()
    metastore = root / DEFAULT_METASTORE
    side = root / SIDE_FOLDER
    side.mkdir(parents=True, exist_ok=True)
    log4j = side / "log4j2.properties"
    log4j.write_text(_LOG4J.format(log=side / "spark.log"), encoding="utf-8")
    java_options = " ".join(
        (
            f"-Dlog4j2.configurationFile=file:{log4j}",
            f"-Dderby.stream.error.file={side / 'derby.log'}",
        )
    )
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no warning about the host's name
    # the target says local: a Spark Connect address in the environment must not say otherwise
    for name in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE"):
        os.environ.pop(name, None)
    builder = (
        builder_of.builder.master(master)
        .appName(f"sqlops {root.name}")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={metastore};create=true",
        )
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # a small project's queries are small: a few partitions, not 200
        .config("spark.sql.shuffle.partitions", str(max(2, target.threads)))
        .enableHiveSupport()
    )
    # the JVM writes its first words to stderr before log4j is set up: into the log with them
    with _stderr_to(side / "spark.log"):
        return builder.getOrCreate()  # type: ignore[no-any-return]


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """File descriptor 2 points at `path` while the JVM is launched (it inherits it)."""
    saved = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(log, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log)


def _message(exc: Exception) -> str:
    return _first_line(str(exc))


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


_TYPES = {
    "TINYINT": "TINYINT",
    "SMALLINT": "SMALLINT",
    "INTEGER": "INT",
    "BIGINT": "BIGINT",
    "HUGEINT": "DECIMAL(38,0)",
    "FLOAT": "FLOAT",
    "DOUBLE": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP_NTZ",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "VARCHAR": "STRING",
    "BLOB": "BINARY",
}


def _spark_type(duckdb_type: str) -> str:
    upper = duckdb_type.upper()
    return upper if upper.startswith("DECIMAL") else _TYPES.get(upper, "STRING")

"""Database engines behind one small interface."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlops.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from sqlops.engines.base import Engine
    from sqlops.project.config import Target


def connect(target: Target, root: Path, *, read_only: bool = False) -> Engine:
    """Open the engine a target names. Engines are imported only when used.

    `read_only` is for commands that only look: they must not create or change anything.
    """
    if target.engine == "duckdb":
        from sqlops.engines.duckdb import DuckDBEngine

        return DuckDBEngine.open(target, root, read_only=read_only)
    if target.engine == "postgres":
        try:
            from sqlops.engines.postgres import PostgresEngine
        except ImportError:
            raise ConfigError(
                f"target `{target.name}` uses PostgreSQL, and its driver is not installed",
                hint="pip install 'sqlops[postgres]'",
            ) from None

        return PostgresEngine.open(target, root, read_only=read_only)
    if target.engine == "spark":
        from sqlops.engines.spark import SparkEngine

        return SparkEngine.open(target, root, read_only=read_only)
    raise ConfigError(
        f"target `{target.name}` uses engine `{target.engine}`, which this version cannot run",
        hint='use engine = "duckdb", "postgres" or "spark"',
    )


def creates_database(target: Target, root: Path) -> bool:
    """Whether a connection that writes would create a file: a DuckDB target's file, or the
    DuckDB state file of a Spark target, that is not there yet (a server's database is never
    created by connecting)."""
    if target.engine == "spark":
        return creates_database(state_target(target), root)
    if target.engine != "duckdb":
        return False
    from sqlops.engines.duckdb import DuckDBEngine

    file = DuckDBEngine.file_of(target, root)
    return file is not None and not file.exists()


DEFAULT_STATE = "sqlops_state.duckdb"


def state_target(target: Target) -> Target:
    """Where an engine that cannot hold sqlops_meta itself keeps it: `state = "..."` of the
    target, a DuckDB file (relative to the project) or a postgresql:// DSN."""
    from sqlops.project.config import Target

    where = str(target.settings.get("state", "") or DEFAULT_STATE)
    if where.startswith(("postgres://", "postgresql://")):
        return Target(f"{target.name}.state", "postgres", {"dsn": where})
    return Target(f"{target.name}.state", "duckdb", {"path": where})


def open_state(target: Target, root: Path, read_only: bool) -> Engine:
    """The state database of `target` (`state_target`)."""
    return connect(state_target(target), root, read_only=read_only)

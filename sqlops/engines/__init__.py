"""Database engines behind one small interface."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlops.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from sqlops.engines.base import Engine
    from sqlops.project.config import Target


def connect(target: Target, root: Path) -> Engine:
    """Open the engine a target names. Engines are imported only when used."""
    if target.engine == "duckdb":
        from sqlops.engines.duckdb import DuckDBEngine

        return DuckDBEngine.open(target, root)
    raise ConfigError(
        f"target `{target.name}` uses engine `{target.engine}`, which this version cannot run yet",
        hint='use engine = "duckdb"',
    )

"""The things a project is made of: models, sources, seeds and standalone tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sqlops.assertions.definition import Assertion


class Kind(StrEnum):
    MODEL = "model"
    SOURCE = "source"
    SEED = "seed"
    TEST = "test"


class Materialized(StrEnum):
    TABLE = "table"
    VIEW = "view"
    EPHEMERAL = "ephemeral"


@dataclass(frozen=True)
class Column:
    name: str
    type: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Node:
    """One vertex of the graph. `id` is the relation name (`schema.name`) or `test:<name>`."""

    id: str
    kind: Kind
    schema: str
    name: str
    path: Path
    relpath: str
    sql: str = ""
    materialized: Materialized = Materialized.TABLE
    description: str | None = None
    tags: tuple[str, ...] = ()
    owner: str | None = None
    location: str | None = None
    assertions: tuple[Assertion, ...] = ()
    depends_on: tuple[str, ...] = ()  # what its SQL reads: its data depends on these
    check_deps: tuple[str, ...] = ()  # read only by its assertions: run after, not rebuilt
    assertion_reads: tuple[str, ...] = ()  # everything its assertions read, data deps included
    columns: tuple[Column, ...] | None = None
    canonical: str = ""
    content_hash: str = ""
    # the line of the first reference to each dependency, for messages
    ref_lines: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    @property
    def all_deps(self) -> tuple[str, ...]:
        return self.depends_on + self.check_deps

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...] | None:
        return None if self.columns is None else tuple(c.name for c in self.columns)

    @property
    def is_ephemeral(self) -> bool:
        return self.kind is Kind.MODEL and self.materialized is Materialized.EPHEMERAL

    @property
    def reads_in_place(self) -> bool:
        """A source that is a table of the database: read where it is, never copied."""
        return self.kind is Kind.SOURCE and self.location is None

    @property
    def relation_kind(self) -> str:
        """What its physical relation is: "view" or "table"."""
        return "view" if self.materialized is Materialized.VIEW else "table"

    @property
    def is_versioned(self) -> bool:
        """Models, seeds and sources read from files get fingerprinted physical relations.

        A source that is a table of the database is not sqlops's to version: it is read in place.
        """
        if self.kind is Kind.SOURCE:
            return self.location is not None
        return self.kind in (Kind.MODEL, Kind.SEED) and self.materialized != Materialized.EPHEMERAL

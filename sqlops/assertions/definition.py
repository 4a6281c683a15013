"""An assertion as written: what it checks, on which rows, how many failures it tolerates."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CheckKind(StrEnum):
    UNIQUE = "unique"
    NOT_NULL = "not_null"
    ACCEPTED_VALUES = "accepted_values"
    REFERENCES = "references"
    ROW = "row"  # a boolean expression that must hold for every row (NULL passes)
    TABLE = "table"  # a boolean expression over aggregates or subqueries (NULL fails)
    QUERY = "query"  # a query returning failing rows


@dataclass(frozen=True)
class Tolerance:
    count: int | None = None
    percent: float | None = None

    def allows(self, failing: int, total: int) -> bool:
        if self.count is not None:
            return failing <= self.count
        if self.percent is not None:
            # no rows checked and none failing passes, like the default
            return failing * 100.0 <= self.percent * total
        return failing == 0

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{self.percent:g}%"


@dataclass(frozen=True)
class Assertion:
    """`-- @assert CHECK [where COND] [tolerate N | P%]`, or a named query block."""

    name: str
    kind: CheckKind
    blocking: bool
    text: str  # the check as the user wrote it, for messages
    path: str  # the file it is in, relative to the project
    line: int
    columns: tuple[
        str, ...
    ] = ()  # columns named by unique / not_null / accepted_values / references
    values: tuple[str, ...] = ()  # SQL literals of accepted_values
    target: str | None = None  # references: `schema.model` as written
    target_column: str | None = None
    expression: str = ""  # ROW / TABLE: the boolean expression; QUERY: the query
    where: str | None = None
    tolerate: Tolerance | None = None
    owner: str = ""  # the node id this assertion belongs to; set when attached
    monitor: bool = False  # added by sqlops ([monitor] in sqlops.toml), not written in a file

    @property
    def severity(self) -> str:
        return "error" if self.blocking else "warn"

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"

    def to_json(self) -> dict[str, object]:
        """How every command's --json names an assertion."""
        return {
            "name": self.name,
            "check": self.text,
            "severity": self.severity,
            "blocking": self.blocking,
            "location": self.location,
        }

"""The one error hierarchy: the core raises these, only the CLI turns them into messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class SqlopsError(Exception):
    """A problem the user can fix. Carries where it is and how to fix it."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
        snippet: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        self.column = column
        self.hint = hint
        self.snippet = snippet

    @property
    def location(self) -> str:
        if self.path is None:
            return ""
        loc = str(self.path)
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.snippet:
            text += "\n" + self.snippet
        if self.hint:
            text += f"\n  to fix this: {self.hint}"
        return text


class ConfigError(SqlopsError):
    """sqlops.toml is missing, malformed or refers to something that does not exist."""


class ProjectError(SqlopsError):
    """A model, source, seed, test or macro file is wrong."""


class SelectorError(SqlopsError):
    """A selector names nothing or cannot be parsed."""


class EngineError(SqlopsError):
    """The database refused a statement sqlops generated or was asked to run."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean `x`?)' suffix, or '' when nothing is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{matches[0]}`?)" if matches else ""


def snippet_at(text: str, line: int, column: int | None = None) -> str:
    """The source line with a caret under the column, for error messages."""
    # lines are counted at \n, as sqlglot and the directive scanner count them; splitlines()
    # would also split at \x0c, \x1e or \u2028 and show another line than the one meant
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return ""
    source = lines[line - 1]
    out = f"  {line:>4} | {source}"
    if column is not None and column >= 1:
        out += "\n       | " + " " * (column - 1) + "^"
    return out

"""Shared SQL plumbing over sqlglot: parsing with file positions, and finding table references."""

from __future__ import annotations

import contextlib
import difflib
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.schema import MappingSchema
from sqlglot.schema import normalize_name as sqlglot_normalize_name
from sqlglot.tokens import Token, TokenType  # type: ignore[attr-defined]

from sqlops.errors import ProjectError, snippet_at


@dataclass(frozen=True)
class TableRef:
    """A table name as written in SQL, before it is resolved to a node."""

    schema: str | None
    name: str
    line: int
    column: int
    catalog: str | None = None  # a database part: sqlops builds in one database

    @property
    def written(self) -> str:
        parts = (self.catalog, self.schema, self.name)
        return ".".join(p for p in parts if p)


LineMap = Callable[[int], int]


@functools.cache
def sqlglot_dialect(name: str) -> Dialect:
    """The dialect named `name`, made once: sqlglot makes a new one at each call given a name
    (each parse, print and normalized name), about 4% of a cold load."""
    return Dialect.get_or_raise(name)


def same_line(line: int) -> int:
    return line


def line_map(source: str, rendered: str) -> LineMap:
    """Map a line of Jinja's output back to the line of the file it came from.

    Lines Jinja left alone map one to one; lines a template expression produced map to the line
    of that expression.
    """
    if source == rendered or (
        source.count("\n") == rendered.count("\n") and _same_shape(source, rendered)
    ):
        return same_line
    src, out = source.splitlines(), rendered.splitlines()
    mapping: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, src, out, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k in range(j1, j2):
            mapping[k + 1] = i1 + (k - j1) + 1 if tag == "equal" else min(i1 + 1, max(i2, 1))
    return lambda line: mapping.get(line, line)


def _same_shape(source: str, rendered: str) -> bool:
    # every line that has no template tag is unchanged: lines line up one to one
    for a, b in zip(source.splitlines(), rendered.splitlines(), strict=False):
        if "{" not in a and a != b:
            return False
    return True


def top_level_tokens(text: str, dialect: str) -> list[Token] | None:
    """The tokens outside any brackets (strings are single tokens); None if it cannot tokenize."""
    try:
        tokens = sqlglot_dialect(dialect).tokenize(text)
    except SqlglotError:
        return None
    depth, found = 0, []
    for token in tokens:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0:
            found.append(token)
    return found


def statement_lines(sql: str, dialect: str) -> list[int]:
    """The line each statement of a script starts on."""
    try:
        tokens = sqlglot_dialect(dialect).tokenize(sql)
    except SqlglotError:
        return [1]
    lines, start = [], True
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            start = True
        elif start:
            lines.append(token.line)
            start = False
    return lines or [1]


def parse_statements(
    sql: str,
    dialect: str,
    path: Path,
    file_text: str,
    line_offset: int = 0,
    lines: LineMap = same_line,
    column_offset: int | None = 0,
) -> list[exp.Expr]:
    """Parse SQL; a syntax error becomes a ProjectError at the file's line and column.

    SQL taken from inside a line of the file (an assertion) starts `column_offset` characters
    into that line; None when that is not known, and the error then names no column.
    """
    try:
        statements = [e for e in sqlglot_dialect(dialect).parse(sql) if e is not None]
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        sql_line = int(first.get("line") or 1)
        highlight = first.get("highlight") or ""
        end = int(first.get("col") or 1)
        if sql_line > sql.count("\n") + 1:
            # sqlglot counts a line too many after some tokens (`$`): the error is at the end
            body = sql.rstrip()
            sql_line, end = body.count("\n") + 1, max(1, len(body.rsplit("\n", 1)[-1]))
        line = lines(sql_line) + line_offset
        col = _file_column(
            sql_line,
            max(1, end - len(highlight) + 1) if highlight else end,
            column_offset,
        )
        message = str(first.get("description") or err).split("\n")[0]
        message = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", message)
        message = _END_OF_SQL.sub("but the statement ends there", message)
        message = _TOKEN.sub(lambda m: f"`{m.group(1)}`", message)
        raise ProjectError(
            f"SQL syntax error: {message}",
            path=path,
            line=line,
            column=col,
            snippet=snippet_at(file_text, line, col),
            hint=f"fix the SQL near `{highlight}`" if highlight else "fix the SQL",
        ) from None
    except RecursionError:
        raise ProjectError(
            "the SQL is nested too deeply to parse",
            path=path,
            line=1 + line_offset,
            hint="flatten the deepest brackets or subqueries, e.g. with CTEs",
        ) from None
    except TokenError as err:
        raise ProjectError(
            f"SQL syntax error: {err}",
            path=path,
            line=1 + line_offset,
            hint="check quotes and brackets",
        ) from None
    if not all([_keep_positions(statement) for statement in statements]):
        # the error needs the positions the walk cut: they are parsed again (an error is rare)
        for statement in sqlglot_dialect(dialect).parse(sql):
            if statement is not None:
                _check_set_operations(
                    statement, dialect, path, file_text, line_offset, lines, column_offset
                )
    return statements


def _keep_positions(tree: exp.Expr) -> bool:
    """Of the positions in a parsed tree's metadata, only each identifier's line and column
    stay: they are all sqlops reads once a file is parsed (a table or column named in an
    error), and sqlglot deep-copies every node's metadata dict at each copy of a tree and at
    each SQL it prints from one, which a load does several times a model. What else the
    parser put there (a `/* sqlglot.meta case_sensitive */` comment's flag) stays.

    False when a set operation has a side that is not a query (`_check_set_operations`): the
    same walk looks, as a walk of its own costs a fifth of sqlglot's parse."""
    sound = True
    for node in tree.walk():
        meta = node._meta
        if meta:
            kept = without_positions(meta)
            if type(node) is exp.Identifier and "line" in meta:
                kept = {"line": meta["line"], "col": meta["col"], **(kept or {})}
            node._meta = kept
        if isinstance(node, exp.SetOperation) and not (
            _is_set_side(node.this) and _is_set_side(node.expression)
        ):
            sound = False
    return sound


def _is_set_side(side: object) -> bool:
    return isinstance(side, exp.Query | exp.UDTF | exp.Table)


_POSITIONS = frozenset(("line", "col", "start", "end"))  # the keys of a position in metadata


def without_positions(meta: dict[str, Any]) -> dict[str, Any] | None:
    """A node's metadata with no position in it (None when nothing else is left)."""
    return {k: v for k, v in meta.items() if k not in _POSITIONS} or None


def release(tree: exp.Expr) -> None:
    """A tree no one will use again, freed at once. Each node points to its parent, so a
    dropped tree is a cycle that only Python's garbage collector frees, after walking it: the
    copies a load makes of each model's query (to qualify it, to print each column of it) were
    most of what the collector walked, about a tenth of a cold load. With the parent links cut,
    each node is freed when its last reference goes."""
    for node in tree.walk():
        node.parent = None


@contextlib.contextmanager
def not_too_deep(path: Path) -> Iterator[None]:
    """sqlglot's RecursionError as an error at the model's file: its qualify, scopes and SQL
    generator walk a query's tree a level a call, and hundreds of levels of subqueries, or of
    calls inside calls, are more than Python's stack allows. (CTE chains and unions of
    thousands load: sqlops's own walks keep a stack of their own.)"""
    try:
        yield
    except RecursionError:
        raise ProjectError(
            "the query nests too deeply for sqlops to analyse (hundreds of levels of "
            "subqueries, or of calls inside calls)",
            path=path,
            hint="move inner levels into CTEs or models of their own",
        ) from None


def _file_column(line: int, column: int, column_offset: int | None) -> int | None:
    """The file's column of a column of the SQL's `line` (1 is where the SQL starts)."""
    if line > 1:
        return column
    return None if column_offset is None else column + column_offset


# sqlglot's stand-in for "no token left": the statement stopped before the construct was complete
_END_OF_SQL = re.compile(r"but got <Token token_type: TokenType\.SENTINEL, [^>]*>")
# sqlglot's parse errors show tokens as `<Token token_type: TokenType.NUMBER, text: 1, ...>`
_TOKEN = re.compile(
    r"<Token token_type: TokenType\.\w+, text: (.*?), line: \d+, col: \d+, start: \d+, "
    r"end: \d+, comments: \[.*?\]>"
)


def _check_set_operations(
    statement: exp.Expr,
    dialect: str,
    path: Path,
    file_text: str,
    line_offset: int,
    lines: LineMap,
    column_offset: int | None,
) -> None:
    """sqlglot parses `x IN (1 EXCEPT SELECT 1)` and `WHERE 1 UNION SELECT 2` with a value on
    one side of the set operation, which nothing downstream can use: a syntax error here."""
    for operation in statement.find_all(exp.SetOperation):
        for side in (operation.this, operation.expression):
            if _is_set_side(side):
                continue
            at: dict[str, int] = next((n.meta for n in side.walk() if "line" in n.meta), {})
            line = lines(int(at.get("line", 1))) + line_offset
            col = None
            if "col" in at:
                start = max(1, int(at["col"]) - int(at["end"]) + int(at["start"]))
                col = _file_column(int(at.get("line", 1)), start, column_offset)
            keyword = type(operation).__name__.upper()
            raise ProjectError(
                f"SQL syntax error: {keyword} joins two queries, and "
                f"`{quoted_text(side.sql(dialect))}` is not a query",
                path=path,
                line=line,
                column=col,
                snippet=snippet_at(file_text, line, col),
                hint=f"write SELECT ... {keyword} SELECT ...",
            )


def quoted_text(text: str, limit: int = 80) -> str:
    """The user's text as a message quotes it: on one line, and cut if it is long."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_expression(
    sql: str, dialect: str, path: Path, file_text: str, line: int, column: int | None = None
) -> exp.Expr:
    """One expression that starts at `line` (and `column`, if known) of the file."""
    statements = parse_statements(
        sql,
        dialect,
        path,
        file_text,
        line - 1,
        column_offset=None if column is None else column - 1,
    )
    if len(statements) != 1:
        raise ProjectError(
            "expected one SQL expression",
            path=path,
            line=line,
            snippet=snippet_at(file_text, line),
        )
    return statements[0]


def outer_select(query: exp.Expr) -> exp.Select | None:
    """The first SELECT of a query: its select list names a union's columns."""
    while isinstance(query, exp.SetOperation):
        query = query.left
    return query if isinstance(query, exp.Select) else None


def selects_star(select: exp.Select) -> bool:
    """Whether a select list has a `*` that qualify could not expand."""
    return any(
        isinstance(s, exp.Star) or (isinstance(s, exp.Column) and s.is_star)
        for s in select.expressions
    )


@functools.lru_cache(maxsize=65536)
def normalize_name(name: str, dialect: str, quoted: bool = False) -> str:
    """An identifier as the dialect resolves it: DuckDB and PostgreSQL fold unquoted names."""
    ident = exp.Identifier(this=name, quoted=quoted)
    return str(normalize_identifiers(ident, dialect=sqlglot_dialect(dialect)).name)


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@functools.lru_cache(maxsize=65536)
def _schema_key(name: str, dialect: str) -> str:
    if _PLAIN_NAME.fullmatch(name):
        return name
    try:
        parsed = exp.parse_identifier(name, dialect=dialect)
    except (SqlglotError, TypeError, ValueError):
        parsed = None
    if isinstance(parsed, exp.Identifier) and parsed.name == name and not parsed.quoted:
        return name
    return exp.to_identifier(name, quoted=True).sql(dialect)


def schema_for_sqlglot(schema: dict[str, object], dialect: str) -> dict[str, object]:
    """`{schema: {table: {column: type}}}` with each name as sqlglot's schema reads it.

    sqlglot parses every key of a schema as SQL, so a name that SQL reads otherwise (`a;b`, `?`,
    `a--b`, `'x'`: a seed's header can hold anything) is given quoted, as a name."""
    result: dict[str, object] = {}
    for schema_name, tables in schema.items():
        assert isinstance(tables, dict)
        result[_schema_key(schema_name, dialect)] = {
            _schema_key(table, dialect): {
                _schema_key(column, dialect): kind for column, kind in columns.items()
            }
            for table, columns in tables.items()
        }
    return result


def normalized_schema(schema: dict[str, object], dialect: str) -> MappingSchema | dict[str, object]:
    """`schema_for_sqlglot(schema)` as the schema sqlglot's `qualify` would make of it, its names
    already normalized: sqlglot normalizes each name of a schema it is given (parsing it as
    SQL) and each table it looks up in it again, about a quarter of a model's `qualify`. Here
    each name is normalized by sqlglot's own function, once a load and not once a model
    (`_normalized`), and the schema reads the query's names as they are (`normalize=False`): the
    query's identifiers are normalized by `qualify` before it looks anything up (and a model's
    tables were pointed at their nodes' names, already folded, even one a `/* sqlglot.meta
    case_sensitive */` comment keeps from being normalized). A table with no column is given as
    it is, for sqlglot to refuse as it does."""
    mapping: dict[str, object] = {}
    for schema_name, tables in schema.items():
        assert isinstance(tables, dict)
        normalized: dict[str, object] = {}
        for table, columns in tables.items():
            assert isinstance(columns, dict)
            if not columns:
                return schema_for_sqlglot(schema, dialect)
            normalized[_normalized(table, dialect, True)] = {
                _normalized(column, dialect, False): kind for column, kind in columns.items()
            }
        mapping[_normalized(schema_name, dialect, True)] = normalized
    return MappingSchema(mapping, dialect=sqlglot_dialect(dialect), normalize=False)


@functools.lru_cache(maxsize=1 << 16)
def _normalized(name: str, dialect: str, is_table: bool) -> str:
    """A name of a schema as sqlglot's MappingSchema normalizes it."""
    glot = sqlglot_dialect(dialect)
    return sqlglot_normalize_name(_schema_key(name, dialect), glot, is_table=is_table).name


def table_refs(
    expression: exp.Expr, line_offset: int = 0, dialect: str | None = None
) -> list[tuple[exp.Table, TableRef]]:
    """Every real table a query reads: CTE names, aliases and table functions are not tables."""
    found: list[tuple[exp.Table, TableRef]] = []
    seen: set[int] = set()
    for scope in traverse_scope(expression):
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and id(source) not in seen:
                seen.add(id(source))
                if isinstance(source.this, exp.Identifier):
                    found.append((source, table_ref(source, dialect, line_offset)))
    # traverse_scope only sees queries; a check like `sum(a) = (SELECT ...)` has them nested.
    if not isinstance(expression, exp.Query):
        for sub in expression.find_all(exp.Query):
            if isinstance(sub.parent, exp.Query):
                continue
            for table, ref in table_refs(sub, line_offset, dialect):
                if id(table) not in seen:
                    seen.add(id(table))
                    found.append((table, ref))
    return found


def table_ref(table: exp.Table, dialect: str | None, line_offset: int = 0) -> TableRef:
    """A table as written, its names folded the way the dialect folds them."""
    meta = table.this.meta
    line = int(meta.get("line", 1)) + line_offset
    end_col = int(meta.get("col", 1))
    start = max(1, end_col - len(table.name) + 1)
    if table.args.get("db") is not None:
        start = max(1, start - len(table.db) - 1)
    schema = table.args.get("db")
    if dialect is None:
        return TableRef(table.db or None, table.name, line, start)
    return TableRef(
        normalize_name(schema.name, dialect, schema.quoted) if schema is not None else None,
        normalize_name(table.name, dialect, table.this.quoted),
        line,
        start,
        table.catalog or None,
    )


_QUERY_START = re.compile(r"\s*(SELECT|WITH|FROM)\b", re.IGNORECASE)


def is_query_text(text: str) -> bool:
    """Does the text start with a query, not a name like `selected_at` that begins like one?"""
    return _QUERY_START.match(text) is not None

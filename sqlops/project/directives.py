"""The pre-pass over comments: find `-- @keyword text` and `/* @keyword text */` directives.

Directives are lifted out of the file before Jinja and sqlglot see it, and replaced by blanks of the
same shape, so every line and column in the remaining SQL is still where it was in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlops.errors import ProjectError, did_you_mean, snippet_at

KEYWORDS = (
    "assert",
    "warn",
    "description",
    "materialized",
    "tags",
    "owner",
    "unique_key",
    "location",
)
_DIRECTIVE = re.compile(r"\s*@([A-Za-z_]\w*)")
_SPACED = re.compile(r"\s*@\s+([A-Za-z_]\w*)")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_]\w*)?\$")  # PostgreSQL and DuckDB: $$...$$, $tag$...$tag$
# where a quote, a dollar quote, a Jinja tag or a comment can start: the scan jumps between these
_MAYBE = re.compile(r"['\"`${/-]")


@dataclass(frozen=True)
class Directive:
    keyword: str
    text: str
    line: int
    column: int
    block: bool


@dataclass(frozen=True)
class Scanned:
    directives: tuple[Directive, ...]
    body: str


def scan(text: str, path: Path) -> Scanned:
    """Split a file into its directives and its body (the SQL, with directives blanked)."""
    if "\x00" in text:
        # sqlglot reads a NUL as a space: a file saved as UTF-16 would parse as `S E L E C T`
        line, col = _position(text, text.index("\x00"))
        raise ProjectError(
            "the file has a NUL byte, which SQL text never has",
            path=path,
            line=line,
            column=col,
            hint="save the file as UTF-8 text (a file saved as UTF-16 has a NUL after each letter)",
        )
    out = list(text)
    directives: list[Directive] = []
    i, n = 0, len(text)
    while i < n:
        found = _MAYBE.search(text, i)
        if found is None:
            break
        i = found.start()
        ch = text[i]
        two = text[i : i + 2]
        if ch in ("'", '"', "`"):
            i = _skip_quoted(text, i, ch, _escape_string(text, i))
        elif ch == "$" and (tag := _DOLLAR_TAG.match(text, i)) and not _in_word(text, i):
            end = text.find(tag.group(0), tag.end())
            i = n if end < 0 else end + len(tag.group(0))
        elif two in ("{{", "{%", "{#"):
            end = text.find({"{{": "}}", "{%": "%}", "{#": "#}"}[two], i + 2)
            i = n if end < 0 else end + 2
        elif two == "--":
            end = text.find("\n", i)
            end = n if end < 0 else end
            _take(text, path, i, i + 2, end, end, False, directives, out)
            i = end
        elif two == "/*":
            end = text.find("*/", i + 2)
            if end < 0:
                line, col = _position(text, i)
                raise ProjectError(
                    "block comment is never closed",
                    path=path,
                    line=line,
                    column=col,
                    snippet=snippet_at(text, line, col),
                    hint="close it with */",
                )
            _take(text, path, i, i + 2, end, end + 2, True, directives, out)
            i = end + 2
        else:
            i += 1
    return Scanned(tuple(directives), "".join(out))


def _take(
    text: str,
    path: Path,
    start: int,
    inner_start: int,
    inner_end: int,
    end: int,
    block: bool,
    directives: list[Directive],
    out: list[str],
) -> None:
    inner = text[inner_start:inner_end]
    match = _DIRECTIVE.match(inner)
    line, col = _position(text, start)

    def fail(message: str, hint: str) -> ProjectError:
        return ProjectError(
            message,
            path=path,
            line=line,
            column=col,
            snippet=snippet_at(text, line, col),
            hint=hint,
        )

    if not match:
        spaced = _SPACED.match(inner)
        if spaced and spaced.group(1).lower() in KEYWORDS:
            word = spaced.group(1)
            raise fail(f"`@ {word}` has a space after @", f"write @{word.lower()}")
        return
    keyword = match.group(1).lower()
    if inner[match.end() :].startswith(":") and not inner[match.end() :].startswith("::"):
        raise fail(
            f"@{keyword} is followed by a colon",
            f"a name goes after the keyword: -- @{keyword} my_check_name: CHECK",
        )
    if keyword not in KEYWORDS:
        raise fail(
            f"unknown directive @{match.group(1)}{did_you_mean(keyword, KEYWORDS)}",
            f"directives are @{', @'.join(KEYWORDS)}; "
            "a comment that is not a directive must not start with @",
        )
    body = inner[match.end() :]
    directives.append(Directive(keyword, body.strip(), line, col, block))
    for k in range(start, end):
        if out[k] != "\n":
            out[k] = " "


def _escape_string(text: str, i: int) -> bool:
    """E'...' (PostgreSQL, DuckDB) lets a backslash escape the quote."""
    return text[i] == "'" and i > 0 and text[i - 1] in "eE" and not _in_word(text, i - 1)


def _in_word(text: str, i: int) -> bool:
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_$")


def _skip_quoted(text: str, i: int, quote: str, backslash: bool = False) -> int:
    j = i + 1
    while j < len(text):
        if backslash and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if text[j + 1 : j + 2] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return j


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column

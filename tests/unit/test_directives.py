"""The comment pre-pass: directives are lifted out, everything else keeps its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlops.errors import ProjectError, SqlopsError
from sqlops.project.directives import Directive, scan

PATH = Path("models/staging/orders.sql")


def test_line_directive() -> None:
    scanned = scan("-- @description One row per order.\nSELECT 1 AS id\n", PATH)
    assert scanned.directives == (
        Directive("description", "One row per order.", line=1, column=1, block=False),
    )


def test_keyword_is_case_insensitive_and_text_is_stripped() -> None:
    (directive,) = scan("--   @Materialized   view  \nSELECT 1", PATH).directives
    assert (directive.keyword, directive.text) == ("materialized", "view")


def test_line_directive_after_sql_on_the_same_line() -> None:
    (directive,) = scan("SELECT 1 AS id  -- @tags finance, daily\n", PATH).directives
    assert (directive.keyword, directive.text, directive.line, directive.column) == (
        "tags",
        "finance, daily",
        1,
        17,
    )


def test_block_directive_spanning_lines() -> None:
    text = "SELECT 1 AS id\n/* @assert no_negative:\nSELECT * FROM {{ this }}\nWHERE id < 0\n*/\n"
    (directive,) = scan(text, PATH).directives
    assert directive == Directive(
        "assert",
        "no_negative:\nSELECT * FROM {{ this }}\nWHERE id < 0",
        line=2,
        column=1,
        block=True,
    )


def test_directives_keep_their_order() -> None:
    text = "-- @assert unique(id)\nSELECT 1 AS id\n/* @warn id > 0 */\n-- @assert not_null(id)\n"
    assert [(d.keyword, d.text, d.line) for d in scan(text, PATH).directives] == [
        ("assert", "unique(id)", 1),
        ("warn", "id > 0", 3),
        ("assert", "not_null(id)", 4),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "-- a plain comment\nSELECT 1",
        "/* a plain block comment */ SELECT 1",
        "-- email me @ noon\nSELECT 1",
        "SELECT 1 -- total paid, in dollars",
    ],
)
def test_plain_comments_are_not_directives(text: str) -> None:
    scanned = scan(text, PATH)
    assert scanned.directives == ()
    assert scanned.body == text


@pytest.mark.parametrize(
    "text",
    [
        "SELECT '-- @asert x' AS a",
        "SELECT '/* @bogus */' AS a",
        "SELECT 'it''s -- @bogus' AS a",
        'SELECT 1 AS "-- @bogus"',
        'SELECT 1 AS "/* @bogus */"',
        'SELECT 1 AS "a""b -- @bogus"',
        "SELECT 1 AS `a -- @bogus`",
        "SELECT E'it\\'s -- @bogus' AS a",
        "SELECT $$ -- @bogus $$ AS a",
        "SELECT $body$ /* @bogus */ $body$ AS a",
    ],
    ids=[
        "line-in-string",
        "block-in-string",
        "doubled-quote",
        "line-in-identifier",
        "block-in-identifier",
        "doubled-quote-identifier",
        "backtick-identifier",
        "escape-string",
        "dollar-quoted",
        "tagged-dollar-quoted",
    ],
)
def test_comment_markers_inside_quotes_are_not_comments(text: str) -> None:
    scanned = scan(text, PATH)
    assert scanned.directives == ()
    assert scanned.body == text


def test_a_comment_after_a_string_is_still_found() -> None:
    (directive,) = scan("SELECT 'a--b' AS s -- @owner data@example.com", PATH).directives
    assert (directive.keyword, directive.text) == ("owner", "data@example.com")


@pytest.mark.parametrize(
    "text",
    [
        "{# -- @bogus #}\nSELECT 1",
        "{# /* @bogus */ #}\nSELECT 1",
        "SELECT {{ '-- @bogus' }} AS a",
        "{% set x = '/* @bogus' %}\nSELECT 1",
    ],
)
def test_jinja_is_skipped(text: str) -> None:
    scanned = scan(text, PATH)
    assert scanned.directives == ()
    assert scanned.body == text


def test_jinja_inside_a_directive_is_kept_for_later_rendering() -> None:
    (directive,) = scan("SELECT 1 AS n\n-- @assert n >= {{ var('min') }}\n", PATH).directives
    assert directive.text == "n >= {{ var('min') }}"


def test_directives_become_blanks_so_positions_do_not_move() -> None:
    text = (
        "-- @description Orders.\n"
        "/* @assert q:\n"
        "   SELECT 1 */ SELECT id,\n"
        "  amount  -- @tags a\n"
        "FROM raw.orders\n"
    )
    body = scan(text, PATH).body
    assert len(body) == len(text)
    assert body.splitlines() == [
        " " * 23,
        " " * 13,
        " " * 15 + "SELECT id,",
        "  amount" + " " * 12,
        "FROM raw.orders",
    ]
    for word in ("SELECT id", "amount", "FROM raw.orders"):
        assert body.index(word) == text.index(word)


def test_plain_comments_stay_in_the_body() -> None:
    text = "SELECT amount  -- total paid, in dollars\nFROM t /* why */"
    assert scan(text, PATH).body == text


def _error(text: str) -> SqlopsError:
    with pytest.raises(ProjectError) as info:
        scan(text, PATH)
    return info.value


def test_unknown_directive_names_its_place_and_the_likely_keyword() -> None:
    err = _error("SELECT 1 AS id\n\n  -- @asert unique(id)\n")
    assert isinstance(err, SqlopsError)
    assert (err.path, err.line, err.column) == (PATH, 3, 3)
    assert "unknown directive @asert" in err.message
    assert "did you mean `assert`" in err.message
    assert err.hint is not None and "@assert" in err.hint and "@warn" in err.hint
    assert err.snippet is not None and "-- @asert unique(id)" in err.snippet


def test_unknown_block_directive_is_reported_at_its_first_line() -> None:
    err = _error("SELECT 1\n/* @descripton\n   spans lines */")
    assert (err.path, err.line, err.column) == (PATH, 2, 1)
    assert "did you mean `description`" in err.message


def test_unknown_directive_with_nothing_close_has_no_suggestion() -> None:
    err = _error("-- @frobnicate\nSELECT 1")
    assert err.line == 1
    assert "unknown directive @frobnicate" in err.message
    assert "did you mean" not in err.message


def test_unterminated_block_comment() -> None:
    err = _error("SELECT 1 AS id\nFROM t /* forgot to close\n\n")
    assert isinstance(err, SqlopsError)
    assert (err.path, err.line, err.column) == (PATH, 2, 8)
    assert "never closed" in err.message
    assert err.hint is not None and "*/" in err.hint


def test_block_comment_opener_inside_a_string_needs_no_closing() -> None:
    assert scan("SELECT '/*' AS opener", PATH).directives == ()

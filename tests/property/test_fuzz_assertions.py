"""The assertion language: any check text parses into an assertion or an error at its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlops.assertions.parse import parse_assertion
from sqlops.errors import SqlopsError
from tests.property.conftest import (
    MODEL,
    VALID_MODEL,
    assertion_texts,
    check_user_error,
    count,
    load_or_user_error,
    mutated,
    query_assertions,
)

checks = st.one_of(assertion_texts(), mutated(assertion_texts()))


@given(checks, st.booleans(), st.sampled_from(["duckdb", "postgres", "spark", "bigquery"]))
def test_any_check_text_parses_or_fails_at_its_line(
    text: str, standalone: bool, dialect: str
) -> None:
    path = Path("/project/models/m.sql")
    file_text = f"{VALID_MODEL}-- @assert {text}\n"
    try:
        parsed = parse_assertion(
            text,
            blocking=True,
            path=path,
            relpath="models/m.sql",
            line=2,
            file_text=file_text,
            dialect=dialect,
            standalone=standalone,
        )
    except SqlopsError as err:
        check_user_error(err, None, ())
        assert err.path == path
        assert err.line is not None and err.line >= 2
        return
    count(f"parses: {parsed.assertion.kind.value}")


@given(st.lists(st.tuples(st.sampled_from(["assert", "warn"]), checks), min_size=1, max_size=3))
def test_checks_in_a_model_load_or_the_error_names_the_model(
    lines: list[tuple[str, str]],
) -> None:
    text = VALID_MODEL + "".join(f"-- @{keyword} {check}\n" for keyword, check in lines)
    load_or_user_error({MODEL: text}, {MODEL})


@given(st.one_of(query_assertions, mutated(query_assertions)))
def test_query_checks_in_a_model_load_or_the_error_names_the_model(block: str) -> None:
    load_or_user_error({MODEL: f"{VALID_MODEL}\n{block}\n"}, {MODEL})


@given(st.lists(st.one_of(checks.map(lambda c: f"-- @assert {c}"), query_assertions), min_size=1))
def test_checks_in_a_test_file_load_or_the_error_names_it(lines: list[str]) -> None:
    load_or_user_error({"tests/t.sql": "\n".join(lines) + "\n"}, {"tests/t.sql"})


@pytest.mark.parametrize(
    "check",
    [
        "unique(" + "(" * 600 + "id" + ")" * 600 + ")",
        "accepted_values(id, " + "(" * 600 + "1" + ")" * 600 + ")",
        "(" * 600 + "id > 0" + ")" * 600,
        "id > 0 where " + "(" * 600 + "id > 0" + ")" * 600,
        "id > 0 where 1 EXCEPT SELECT 1",
        "q: SELECT id FROM raw.x WHERE id IN (1 UNION SELECT 1)",
    ],
)
def test_a_check_nested_too_deeply_or_oddly_gives_an_error(check: str) -> None:
    load_or_user_error({MODEL: f"{VALID_MODEL}-- @assert {check}\n"}, {MODEL})

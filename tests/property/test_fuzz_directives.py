"""Directives of every form, right or wrong, in every kind of file that takes them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.property.conftest import (
    MODEL,
    VALID_MODEL,
    directive_lines,
    load_or_user_error,
    mutated,
)

SOURCE = "sources/raw/x.sql"
SOURCE_SQL = "CREATE TABLE raw.x (id INTEGER, name VARCHAR, amount DECIMAL(10, 2))\n"
TEST = "tests/t.sql"

directive_blocks = st.lists(st.one_of(directive_lines(), mutated(directive_lines())), min_size=1)


@given(directive_blocks, st.booleans())
def test_directives_in_a_model_load_or_the_error_names_the_model(
    lines: list[str], above: bool
) -> None:
    block = "\n".join(lines)
    text = f"{block}\n{VALID_MODEL}" if above else f"{VALID_MODEL}{block}\n"
    load_or_user_error({MODEL: text}, {MODEL})


@given(directive_blocks)
def test_directives_in_a_source_load_or_the_error_names_the_source(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n" + SOURCE_SQL
    load_or_user_error({SOURCE: text, "data/x.csv": "id,name,amount\n1,a,2\n"}, {SOURCE})


@given(directive_blocks)
def test_directives_in_a_test_file_load_or_the_error_names_the_test(lines: list[str]) -> None:
    load_or_user_error({TEST: "\n".join(lines) + "\n"}, {TEST})

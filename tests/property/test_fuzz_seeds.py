"""CSV seeds of any bytes: the seed loads, or the error names the seed (or the model reading it)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given

from tests.property.conftest import (
    MODEL,
    csv_seeds,
    load_or_user_error,
    trips_the_column_name_bug,
)

SEED = "seeds/ref/codes.csv"
READER = "SELECT * FROM ref.codes\n"  # a model reading every column: the header names them


@given(csv_seeds())
def test_any_seed_loads_or_its_error_names_it(raw: bytes) -> None:
    load_or_user_error({SEED: raw}, {SEED})


@given(csv_seeds())
def test_a_model_reading_any_seed_loads_or_the_error_names_one_of_them(raw: bytes) -> None:
    assume(not trips_the_column_name_bug(raw))  # see the test below
    load_or_user_error({SEED: raw, MODEL: READER}, {SEED, MODEL})


def columns_bug(raises: type[Exception]) -> pytest.MarkDecorator:
    return pytest.mark.xfail(
        raises=raises,
        strict=True,
        reason="bug: sqlops/project/columns.py gives sqlglot's qualify the seed's column names "
        "as strings, which sqlglot parses as SQL",
    )


@pytest.mark.parametrize(
    "header",
    [
        # TypeError: Identifier expected, got Block (a `;` ends a statement)
        pytest.param("id;name;amount", marks=columns_bug(TypeError), id="semicolon-separated"),
        pytest.param("id,a;b", marks=columns_bug(TypeError), id="a semicolon in a name"),
        # TypeError: Identifier expected, got Placeholder
        pytest.param("id,?", marks=columns_bug(TypeError), id="a question mark"),
        pytest.param("id,:a", marks=columns_bug(TypeError), id="a colon first"),
        # `a--b` is read as `a` and a comment, `'x'` as `x`: "ref.codes has no column `a`"
        pytest.param("id,a--b", marks=columns_bug(AssertionError), id="two dashes in a name"),
        pytest.param("id,'x'", marks=columns_bug(AssertionError), id="quotes around a name"),
        pytest.param("id,a/*b,a'b,é", id="other SQL in names"),
    ],
)
def test_a_model_reads_a_seed_whose_column_names_look_like_sql(header: str) -> None:
    project = load_or_user_error({SEED: f"{header}\n1,2,3\n", MODEL: READER}, {SEED, MODEL})
    assert project is not None, "the seed's columns are names, not SQL"
    assert project.nodes["marts.m"].column_names == tuple(header.split(","))

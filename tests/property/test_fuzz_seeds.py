"""CSV seeds of any bytes: the seed loads, or the error names the seed (or the model reading it)."""

from __future__ import annotations

import pytest
from hypothesis import given

from tests.property.conftest import (
    MODEL,
    csv_seeds,
    load_or_user_error,
)

SEED = "seeds/ref/codes.csv"
READER = "SELECT * FROM ref.codes\n"  # a model reading every column: the header names them


@given(csv_seeds())
def test_any_seed_loads_or_its_error_names_it(raw: bytes) -> None:
    load_or_user_error({SEED: raw}, {SEED})


@given(csv_seeds())
def test_a_model_reading_any_seed_loads_or_the_error_names_one_of_them(raw: bytes) -> None:
    load_or_user_error({SEED: raw, MODEL: READER}, {SEED, MODEL})


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("id;name;amount", id="semicolon-separated"),
        pytest.param("id,a;b", id="a semicolon in a name"),
        pytest.param("id,?", id="a question mark"),
        pytest.param("id,:a", id="a colon first"),
        pytest.param("id,a--b", id="two dashes in a name"),
        pytest.param("id,'x'", id="quotes around a name"),
        pytest.param("id,a/*b,a'b,é", id="other SQL in names"),
    ],
)
def test_a_model_reads_a_seed_whose_column_names_look_like_sql(header: str) -> None:
    project = load_or_user_error({SEED: f"{header}\n1,2,3\n", MODEL: READER}, {SEED, MODEL})
    assert project is not None, "the seed's columns are names, not SQL"
    assert project.nodes["marts.m"].column_names == tuple(header.split(","))

"""sqlops.secrets: what is masked, and how a stream masks what is written in pieces."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from sqlops import secrets
from sqlops.secrets import ScrubbedStream, register, scrub


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    secrets.forget()
    yield
    secrets.forget()


def test_a_value_and_the_passwords_inside_it_are_masked() -> None:
    register("postgresql://app:p%40ss-word@db.internal:5432/shop")
    register("host=127.0.0.1 password='two words' sslmode=require")
    assert scrub("url postgresql://app:p%40ss-word@db.internal:5432/shop") == "url ***"
    assert scrub("auth failed: p@ss-word") == "auth failed: ***"  # as the driver decodes it
    assert scrub("near two words") == "near ***"
    assert scrub("sslmode=require is fine") == "sslmode=*** is fine"


def test_json_and_repr_forms_are_masked() -> None:
    register('quote"and\\slash')
    assert scrub('{"k": "quote\\"and\\\\slash"}') == '{"k": "***"}'


def test_short_values_are_left_alone() -> None:
    register("eu")
    register("1234")
    assert scrub("eu 1234") == "eu ***"


def test_a_stream_masks_a_secret_written_in_two_pieces() -> None:
    register("Sup3r-Secret")
    out = io.StringIO()
    stream = ScrubbedStream(out)
    stream.write("value: Sup3r")
    stream.write("-Secret\nnext ")
    assert out.getvalue() == "value: ***\n"
    stream.write("Sup3r-Secret")
    stream.flush()
    assert out.getvalue() == "value: ***\nnext ***"

"""Selectors of any text pick nodes of the project, or fail with a SelectorError that says why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlops.errors import SelectorError
from sqlops.graph.selectors import select
from sqlops.project.loader import Project
from tests.property.conftest import check_user_error, count, load_or_user_error, nasty

FILES: dict[str, str | bytes] = {
    "models/marts/revenue.sql": "-- @tags finance, daily\nSELECT id, amount FROM staging.orders\n",
    "models/marts/codes_used.sql": "-- @tags daily\nSELECT code FROM ref.codes\n",
    "tests/revenue_positive.sql": "SELECT * FROM marts.revenue WHERE amount < 0\n",
}
CORES = (
    "orders",
    "staging.orders",
    "STAGING.ORDERS",
    "raw.x",
    "x",
    "codes",
    "ref.codes",
    "revenue",
    "marts.revenue",
    "marts.revenu",
    "test:revenue_positive",
    "test:nope",
    "tag:daily",
    "tag:finance",
    "tag:",
    "tag:nope",
    "path:models/marts",
    "path:models/marts/",
    "path:models/*/re*.sql",
    "path:",
    "path:/",
    "path:[",
    "*",
    "**",
    "marts.*",
    "*.orders",
    "ord*",
    "[",
    "[!a]*",
    "changed",
    "state:modified",
    ".",
    "..",
    "a.b.c",
)
cores = st.one_of(st.sampled_from(CORES), st.text(max_size=12), nasty)
selectors = st.tuples(
    st.sampled_from(["", "", "+", "++", " + ", "\t"]),
    cores,
    st.sampled_from(["", "", "+", "++", "+ ", " "]),
).map("".join)
changed_sets = st.one_of(st.none(), st.just(set()), st.sets(st.sampled_from(["staging.orders"])))


@pytest.fixture(scope="module")
def loaded() -> Project:
    """The project, loaded once (selecting reads only its nodes and graph)."""
    found = load_or_user_error(FILES, ())
    assert found is not None
    return found


@given(st.lists(selectors, max_size=3), st.lists(selectors, max_size=2), changed_sets)
def test_any_selector_picks_nodes_or_says_why_not(
    loaded: Project, include: list[str], exclude: list[str], changed: set[str] | None
) -> None:
    try:
        chosen = select(loaded, include, exclude, changed)
    except SelectorError as err:
        check_user_error(err, None, ())
        return
    assert len(chosen) == len(set(chosen))
    assert set(chosen) <= set(loaded.nodes)
    count("selects nothing" if not chosen else "selects some")

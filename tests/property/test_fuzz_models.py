"""Model files of every shape load, or fail with an error at the model's own file."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlops.errors import ProjectError
from sqlops.project.loader import load_project
from tests.property.conftest import (
    COLUMNS,
    MODEL,
    VALID_MODEL,
    check_user_error,
    deep_query,
    directive_lines,
    encoded,
    jinja,
    load_or_user_error,
    mutated,
    nested_queries,
    noise,
    project,
    queries,
    valid_directives,
)

model_texts = st.one_of(
    queries(),
    mutated(queries()),
    nested_queries(),
    mutated(nested_queries()),
    st.lists(st.one_of(queries(), noise, jinja), min_size=1, max_size=3).map(";\n".join),
    st.text(),
)


@st.composite
def model_files(draw: st.DrawFn) -> str:
    """A query with directives above and below it, as model files have them: mostly right ones,
    so that the query is read too."""
    directives = st.lists(
        st.one_of(valid_directives, valid_directives, directive_lines()), max_size=3
    )
    above, below = draw(directives), draw(directives)
    return "\n".join([*above, draw(model_texts), *below])


@given(model_files())
def test_a_model_file_loads_or_its_error_names_it(text: str) -> None:
    load_or_user_error({MODEL: text}, {MODEL})


@given(encoded(st.one_of(queries(), mutated(queries()))))
def test_a_model_file_of_any_bytes_loads_or_its_error_names_it(raw: bytes) -> None:
    load_or_user_error({MODEL: raw}, {MODEL})


name_parts = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
    st.sampled_from(
        [
            "select",
            "1st",
            "a-b",
            "a b",
            "a.b",
            "É",
            "\U0001d518",
            "main",
            "raw",
            "memory",
            "sqlops",
            "x__y",
        ]
    ),
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
        min_size=1,
        max_size=8,
    ).filter(lambda s: s not in (".", "..") and not s.startswith(".")),
)


@given(
    st.sampled_from(["models", "seeds", "sources"]),
    st.lists(name_parts, min_size=1, max_size=3),
)
def test_a_file_of_any_name_loads_or_its_error_names_it(folder: str, parts: list[str]) -> None:
    suffix = ".csv" if folder == "seeds" else ".sql"
    relpath = "/".join([folder, *parts]) + suffix
    schema = parts[0] if len(parts) > 1 else "main"
    content = {
        "models": VALID_MODEL,
        "seeds": "id,label\n1,a\n",
        "sources": f'CREATE TABLE "{schema}"."{parts[-1]}" (id INTEGER)',
    }[folder]
    load_or_user_error({relpath: content}, {relpath})


# Nesting this deep is rare in a real project, and must still give an error, not a crash.
TOO_DEEP = (
    "the query nests too deeply for sqlops to analyse (hundreds of levels of subqueries, or of "
    "calls inside calls)",
    "the SQL is nested too deeply to parse",
)


@pytest.mark.parametrize(
    ("shape", "depth"),
    [
        ("parentheses", 500),
        ("cases", 500),
        ("functions", 500),
        ("subqueries", 500),
        ("in_subqueries", 300),
    ],
)
def test_a_query_nested_hundreds_deep_gives_an_error_at_its_file(shape: str, depth: int) -> None:
    with project({MODEL: deep_query(shape, depth)}) as root:
        with pytest.raises(ProjectError) as info:
            load_project(root, use_cache=False)
        check_user_error(info.value, root, {MODEL})
    # which of sqlglot's walks runs out of stack first depends on how deep the caller's is
    assert info.value.message in TOO_DEEP
    assert info.value.hint in (
        "move inner levels into CTEs or models of their own",
        "flatten the deepest brackets or subqueries, e.g. with CTEs",
    )


# sqlops's own walks (column lineage) keep a stack of their own: what sqlglot can analyse loads,
# and a chain of CTEs or unions is not nesting to sqlglot
@pytest.mark.parametrize(
    ("shape", "depth"),
    [
        ("parentheses", 300),
        ("cases", 300),
        ("functions", 300),
        ("subqueries", 200),
        ("in_subqueries", 150),
        ("ctes", 1000),
        ("unions", 1000),
    ],
)
def test_a_query_nested_hundreds_deep_loads_with_its_lineage(shape: str, depth: int) -> None:
    loaded = load_or_user_error({MODEL: deep_query(shape, depth)}, {MODEL})
    assert loaded is not None, f"{shape} {depth} deep does not load"
    lineage = loaded.lineage["marts.m"]
    names = {"parentheses": ["a"], "cases": ["a"], "functions": ["a"], "subqueries": COLUMNS}
    assert [c.name for c in lineage.columns] == list(names.get(shape, ["id"]))
    assert lineage.reads() <= {("raw.x", c) for c in COLUMNS}
    assert lineage.reads() >= {("raw.x", "id")}


def test_a_star_over_a_repeated_column_loads_with_its_columns_unknown() -> None:
    # sqlglot's qualify asserts on these (a star over two columns of one name, grouped by
    # position); DuckDB names them id and id_1, and says what it makes of the GROUP BY
    for model in (
        "SELECT * FROM (SELECT id, id FROM raw.x) AS s GROUP BY 1\n",
        "SELECT * FROM (SELECT id, id FROM raw.x) AS s GROUP BY 1, 2\n",
    ):
        loaded = load_or_user_error({MODEL: model}, {MODEL})
        assert loaded is not None, model
        assert loaded.nodes["marts.m"].columns is None, "only the database can tell them"
        assert loaded.nodes["marts.m"].depends_on == ("raw.x",)


def test_a_jinja_error_shows_its_line_as_written() -> None:
    model = "SELECT {{ 1 / 0 }} AS a  -- @tags x\n"
    with project({MODEL: model}) as root, pytest.raises(ProjectError) as info:
        load_project(root, use_cache=False)
    assert info.value.message == "Jinja: ZeroDivisionError: division by zero"
    assert info.value.line == 1
    assert info.value.snippet == f"     1 | {model.rstrip()}"

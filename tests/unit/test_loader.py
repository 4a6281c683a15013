"""Loading real projects: dependencies and columns read from SQL, errors, cache, fingerprints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sqlops.errors import SqlopsError
from sqlops.graph.fingerprint import fingerprints
from sqlops.project.cache import cache_folder
from sqlops.project.loader import Project, load_project

TOML = """\
[project]
name = "t"
dialect = "duckdb"
[targets.local]
engine = "duckdb"
path = "t.duckdb"
"""
SOURCE = "CREATE TABLE raw.x (id INTEGER, name VARCHAR, amount DECIMAL(10, 2))\n"
ORDERS = "SELECT id, amount FROM raw.x\n"


def write(root: Path, files: dict[str, str]) -> Path:
    files = {"sqlops.toml": TOML, "sources/raw/x.sql": SOURCE, **files}
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def load(root: Path, files: dict[str, str] | None = None, *, use_cache: bool = False) -> Project:
    if files is not None:
        write(root, files)
    return load_project(root, use_cache=use_cache)


def load_error(root: Path, files: dict[str, str], relpath: str, line: int) -> SqlopsError:
    """Loading fails with an error located at relpath:line."""
    with pytest.raises(SqlopsError) as info:
        load(root, files)
    err = info.value
    assert err.path == root / relpath
    assert err.line == line
    assert err.message
    assert err.hint
    return err


# -- dependencies and columns ---------------------------------------------------------------------


def test_a_model_reads_a_source(tmp_path: Path) -> None:
    project = load(tmp_path, {"models/staging/orders.sql": ORDERS})
    node = project.nodes["staging.orders"]
    assert node.depends_on == ("raw.x",)
    assert node.column_names == ("id", "amount")
    assert project.nodes["raw.x"].column_names == ("id", "name", "amount")


def test_a_model_in_the_models_folder_is_in_the_default_schema(tmp_path: Path) -> None:
    project = load(tmp_path, {"models/orders.sql": ORDERS})
    assert project.nodes["main.orders"].depends_on == ("raw.x",)


def test_cte_that_shadows_a_model_name(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/marts/orders.sql": "WITH orders AS (SELECT * FROM staging.orders)\n"
            "SELECT * FROM orders",
        },
    )
    node = project.nodes["marts.orders"]
    assert node.depends_on == ("staging.orders",)
    assert node.column_names == ("id", "amount")


@pytest.mark.parametrize(
    "sql",
    [
        "WITH x AS (SELECT 1 AS id) SELECT id FROM x",
        "SELECT id FROM (WITH x AS (SELECT 1 AS id) SELECT id FROM x) AS s",
        "WITH RECURSIVE x AS (SELECT 1 AS id UNION ALL SELECT id + 1 FROM x WHERE id < 3) "
        "SELECT id FROM x",
        "SELECT range AS id FROM range(3)",
    ],
    ids=["cte", "cte-in-subquery", "recursive-cte", "table-function"],
)
def test_names_that_are_not_tables_are_not_dependencies(tmp_path: Path, sql: str) -> None:
    node = load(tmp_path, {"models/marts/m.sql": sql}).nodes["marts.m"]
    assert node.depends_on == ()
    assert node.column_names == ("id",)


@pytest.mark.parametrize(
    "reference",
    ['"Staging"."Orders"', "STAGING.Orders", '"staging".orders', 'Staging."ORDERS"'],
)
def test_quoted_and_mixed_case_names_resolve_on_duckdb(tmp_path: Path, reference: str) -> None:
    project = load(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/marts/m.sql": f"SELECT * FROM {reference}",
        },
    )
    assert project.nodes["marts.m"].depends_on == ("staging.orders",)
    assert project.nodes["marts.m"].column_names == ("id", "amount")


def test_union_all_reads_both_sides_and_takes_the_left_columns(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/marts/m.sql": "SELECT id, amount AS value FROM staging.orders\n"
            "UNION ALL\n"
            "SELECT id, 0 FROM raw.x",
        },
    )
    node = project.nodes["marts.m"]
    assert set(node.depends_on) == {"staging.orders", "raw.x"}
    assert node.column_names == ("id", "value")


def test_window_functions(tmp_path: Path) -> None:
    sql = (
        "SELECT id,\n"
        "       row_number() OVER (PARTITION BY name ORDER BY amount) AS rank_in_name,\n"
        "       sum(amount) OVER w AS running\n"
        "FROM raw.x\n"
        "WINDOW w AS (ORDER BY id)"
    )
    node = load(tmp_path, {"models/marts/m.sql": sql}).nodes["marts.m"]
    assert node.depends_on == ("raw.x",)
    assert node.column_names == ("id", "rank_in_name", "running")


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ("SELECT * FROM raw.x", ("id", "name", "amount")),
        ("FROM raw.x", ("id", "name", "amount")),
        ("SELECT o.* FROM raw.x AS o", ("id", "name", "amount")),
        ("SELECT * EXCLUDE (name) FROM raw.x", ("id", "amount")),
        ("SELECT * REPLACE (amount * 2 AS amount) FROM raw.x", ("id", "name", "amount")),
        ("SELECT *, amount * 2 AS doubled FROM raw.x", ("id", "name", "amount", "doubled")),
    ],
    ids=["star", "from-first", "qualified-star", "exclude", "replace", "star-and-more"],
)
def test_star_from_a_source_is_expanded(tmp_path: Path, sql: str, columns: tuple[str, ...]) -> None:
    assert load(tmp_path, {"models/marts/m.sql": sql}).nodes["marts.m"].column_names == columns


def test_star_through_a_chain_of_models(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "models/staging/orders.sql": "SELECT * FROM raw.x",
            "models/marts/m.sql": "SELECT * EXCLUDE (amount) FROM staging.orders",
        },
    )
    assert project.nodes["marts.m"].column_names == ("id", "name")


def test_star_over_a_join_using(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "models/staging/extra.sql": "SELECT id, 1 AS one FROM raw.x",
            "models/marts/m.sql": "SELECT * FROM raw.x JOIN staging.extra USING (id)",
        },
    )
    assert project.nodes["marts.m"].column_names == ("id", "name", "amount", "one")


def test_subqueries_in_where_in_and_select_list(tmp_path: Path) -> None:
    sql = (
        "SELECT id,\n"
        "       (SELECT max(amount) FROM staging.top) AS top_amount,\n"
        "       (SELECT count(*) FROM staging.orders AS o WHERE o.id = x.id) AS n\n"
        "FROM raw.x AS x\n"
        "WHERE id IN (SELECT id FROM staging.orders)\n"
        "  AND EXISTS (SELECT 1 FROM staging.flags)"
    )
    project = load(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/staging/top.sql": ORDERS,
            "models/staging/flags.sql": "SELECT id FROM raw.x",
            "models/marts/m.sql": sql,
        },
    )
    node = project.nodes["marts.m"]
    assert set(node.depends_on) == {"raw.x", "staging.orders", "staging.top", "staging.flags"}
    assert node.column_names == ("id", "top_amount", "n")


def test_group_by_all(tmp_path: Path) -> None:
    sql = "SELECT name, count(*) AS n, sum(amount) AS total FROM raw.x GROUP BY ALL"
    node = load(tmp_path, {"models/marts/m.sql": sql}).nodes["marts.m"]
    assert node.column_names == ("name", "n", "total")


def test_column_comment_is_its_description(tmp_path: Path) -> None:
    sql = "SELECT id,\n  amount  -- paid, in dollars\nFROM raw.x"
    node = load(tmp_path, {"models/marts/m.sql": sql}).nodes["marts.m"]
    assert node.columns is not None
    assert [(c.name, c.description) for c in node.columns] == [
        ("id", None),
        ("amount", "paid, in dollars"),
    ]


# -- name resolution ------------------------------------------------------------------------------


def test_unqualified_name_prefers_the_same_schema(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/marts/orders.sql": "SELECT id FROM staging.orders",
            "models/marts/report.sql": "SELECT * FROM orders",
        },
    )
    assert project.nodes["marts.report"].depends_on == ("marts.orders",)
    assert project.nodes["marts.report"].column_names == ("id",)


def test_unqualified_name_resolves_to_the_one_node_of_that_name(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {"models/staging/orders.sql": ORDERS, "models/marts/report.sql": "SELECT * FROM x"},
    )
    assert project.nodes["marts.report"].depends_on == ("raw.x",)


def test_ambiguous_name_lists_the_candidates(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/marts/orders.sql": ORDERS,
            "models/finance/report.sql": "SELECT *\nFROM orders",
        },
        "models/finance/report.sql",
        2,
    )
    assert err.column == 6
    assert "`orders` is ambiguous" in err.message
    assert "marts.orders" in err.message and "staging.orders" in err.message
    assert err.hint is not None and "qualify it with its schema" in err.hint


def test_unknown_table_suggests_the_closest(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/marts/m.sql": "/* @description\n   spans lines */\nSELECT id\n"
            "FROM staging.order",
        },
        "models/marts/m.sql",
        4,
    )
    assert err.column == 6
    assert "unknown table `staging.order`" in err.message
    assert "did you mean `staging.orders`" in err.message
    assert err.snippet is not None and "FROM staging.order" in err.snippet


def test_unknown_table_in_a_subquery(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {"models/marts/m.sql": "SELECT id FROM raw.x\nWHERE id IN (\n  SELECT id FROM raw.y)"},
        "models/marts/m.sql",
        3,
    )
    assert "unknown table `raw.y` (did you mean `raw.x`?)" in err.message


def test_syntax_error_points_at_line_and_column(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {"models/marts/m.sql": "-- @description x\nSELECT id\nFROM raw.x\nWHERE (id = 1"},
        "models/marts/m.sql",
        4,
    )
    assert err.message.startswith("SQL syntax error")
    assert err.column == 13
    assert err.snippet is not None and "WHERE (id = 1" in err.snippet


def test_unknown_table_found_through_the_cache_keeps_its_position(tmp_path: Path) -> None:
    load(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/marts/m.sql": "SELECT id\nFROM   staging.orders",
        },
        use_cache=True,
    )
    (tmp_path / "models/staging/orders.sql").unlink()
    with pytest.raises(SqlopsError) as info:
        load(tmp_path, use_cache=True)
    assert (info.value.line, info.value.column) == (2, 8)
    assert "unknown table `staging.orders`" in info.value.message


def test_second_statement_error_points_at_it(tmp_path: Path) -> None:
    load_error(
        tmp_path, {"models/marts/m.sql": "SELECT id FROM raw.x;\nSELECT 2"}, "models/marts/m.sql", 2
    )


def test_a_model_cannot_read_itself(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {"models/marts/m.sql": "SELECT 1 AS id\nUNION ALL SELECT id FROM m"},
        "models/marts/m.sql",
        2,
    )
    assert "reads itself" in err.message


def test_cycle_names_the_models_in_order(tmp_path: Path) -> None:
    with pytest.raises(SqlopsError) as info:
        load(
            tmp_path,
            {
                "models/staging/a.sql": "SELECT * FROM staging.b",
                "models/staging/b.sql": "SELECT * FROM staging.a",
            },
        )
    err = info.value
    assert "staging.a -> staging.b -> staging.a" in err.message
    assert err.path in (tmp_path / "models/staging/a.sql", tmp_path / "models/staging/b.sql")
    assert err.hint is not None and "break one of these references" in err.hint


def test_cycle_error_points_at_a_reference(tmp_path: Path) -> None:
    with pytest.raises(SqlopsError) as info:
        load(
            tmp_path,
            {
                "models/staging/a.sql": "SELECT *\nFROM staging.b",
                "models/staging/b.sql": "SELECT *\nFROM staging.a",
            },
        )
    assert info.value.line == 2


# -- Jinja ----------------------------------------------------------------------------------------


def test_ref_and_var(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "sqlops.toml": TOML + '[vars]\nmin_amount = "3"\n',
            "models/staging/orders.sql": ORDERS,
            "models/marts/m.sql": "SELECT id FROM {{ ref('orders') }}\n"
            "WHERE amount > {{ var('min_amount') }}",
        },
    )
    assert project.nodes["marts.m"].depends_on == ("staging.orders",)
    assert '"amount" > 3' in project.nodes["marts.m"].canonical


def test_macro_from_the_macros_folder(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "macros/money.sql": "{% macro cents(column) %}({{ column }} * 100)::BIGINT"
            "{% endmacro %}",
            "models/marts/m.sql": "SELECT id, {{ cents('amount') }} AS amount_cents FROM raw.x",
        },
    )
    node = project.nodes["marts.m"]
    assert node.column_names == ("id", "amount_cents")
    assert '"amount" * 100' in node.canonical


@pytest.mark.parametrize(
    ("line3", "message"),
    [
        ("WHERE {{ nope() }}", "'nope' is undefined"),
        ("WHERE id > {{ var('missing') }}", "var('missing') is not defined"),
        ("{% if %}", "Expected an expression"),
    ],
    ids=["undefined", "missing-var", "syntax"],
)
def test_jinja_error_points_at_the_line(tmp_path: Path, line3: str, message: str) -> None:
    err = load_error(
        tmp_path,
        {"models/marts/m.sql": f"SELECT id\nFROM raw.x\n{line3}\n"},
        "models/marts/m.sql",
        3,
    )
    assert message in err.message


def test_error_line_after_a_multi_line_macro(tmp_path: Path) -> None:
    load_error(
        tmp_path,
        {
            "macros/cols.sql": "{% macro cols() %}id,\nname,\namount{% endmacro %}",
            "models/marts/m.sql": "SELECT {{ cols() }}\nFROM raw.x\nJOIN raw.nope USING (id)",
        },
        "models/marts/m.sql",
        3,
    )


# -- assertions are validated on load ---------------------------------------------------------------


def test_assertions_are_attached_to_their_node(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {"models/marts/m.sql": ORDERS + "-- @assert unique(id)\n-- @warn amount >= 0\n"},
    )
    assertions = project.nodes["marts.m"].assertions
    assert [(a.name, a.blocking, a.line, a.owner) for a in assertions] == [
        ("unique(id)", True, 2, "marts.m"),
        ("amount >= 0", False, 3, "marts.m"),
    ]


@pytest.mark.parametrize(
    ("directive", "unknown", "suggestion"),
    [
        ("-- @assert amout >= 0", "amout", "amount"),
        ("-- @assert unique(idd)", "idd", "id"),
        ("-- @warn amount >= 0 where amout > 1", "amout", "amount"),
        ("-- @assert sum(amout) > 0", "amout", "amount"),
    ],
)
def test_unknown_column_in_an_assertion(
    tmp_path: Path, directive: str, unknown: str, suggestion: str
) -> None:
    err = load_error(
        tmp_path,
        {"models/marts/m.sql": f"SELECT id,\n  amount\nFROM raw.x\n\n{directive}\n"},
        "models/marts/m.sql",
        5,
    )
    assert f"unknown column `{unknown}` in assertion on marts.m" in err.message
    assert f"did you mean `{suggestion}`" in err.message
    assert err.hint == "marts.m has columns: id, amount"


def test_unknown_target_column_in_references(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/marts/m.sql": "SELECT id FROM raw.x\n-- @assert references(id, staging.orders.idd)",
        },
        "models/marts/m.sql",
        2,
    )
    assert "unknown column `idd` in assertion on staging.orders (did you mean `id`?)" in err.message


def test_assertion_parse_error_has_the_directive_line(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {"models/marts/m.sql": ORDERS + "\n-- @assert amount >= 0 tolerate lots\n"},
        "models/marts/m.sql",
        3,
    )
    assert "`tolerate lots`" in err.message


def test_query_block_errors_point_into_the_block(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {
            "models/marts/m.sql": "SELECT id FROM raw.x\n/* @assert q:\nSELECT * FROM {{ this }}\n"
            "JOIN raw.nope USING (id)\n*/\n"
        },
        "models/marts/m.sql",
        4,
    )
    assert err.column == 6
    assert "unknown table `raw.nope`" in err.message


def test_jinja_error_in_a_directive_points_at_its_line(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {"models/marts/m.sql": "SELECT id FROM raw.x\n-- @assert id > {{ var('nope') }}\n"},
        "models/marts/m.sql",
        2,
    )
    assert "var('nope') is not defined" in err.message


def test_unknown_table_in_an_assertion(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        {"models/marts/m.sql": ORDERS + "-- @assert row_count() = (SELECT count(*) FROM raw.y)\n"},
        "models/marts/m.sql",
        2,
    )
    assert "unknown table `raw.y`" in err.message


def test_a_table_read_only_by_an_assertion_is_a_dependency(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "models/staging/orders.sql": ORDERS,
            "models/marts/m.sql": "SELECT id FROM raw.x\n"
            "-- @assert references(id, staging.orders.id)\n",
        },
    )
    assert "staging.orders" in project.graph.ancestors("marts.m")


# -- the parse cache ------------------------------------------------------------------------------

CACHED = {
    "models/staging/orders.sql": ORDERS,
    "models/marts/m.sql": "SELECT id FROM staging.orders\n-- @assert unique(id)\n",
}


def test_second_load_of_an_unchanged_project_parses_nothing(tmp_path: Path) -> None:
    first = load(tmp_path, CACHED, use_cache=True)
    assert first.cache_misses > 0 and not first.from_snapshot
    second = load(tmp_path, use_cache=True)
    assert second.from_snapshot
    assert second.nodes == first.nodes
    assert second.lineage == first.lineage
    assert second.ast("marts.m").sql() == first.ast("marts.m").sql()
    # without the snapshot, every file comes from the parse cache
    for snapshot in cache_folder(tmp_path).glob("project.pickle"):  # type: ignore[union-attr]
        snapshot.unlink()
    third = load(tmp_path, use_cache=True)
    assert not third.from_snapshot
    assert third.cache_misses == 0
    assert third.cache_hits == first.cache_misses
    assert third.nodes == first.nodes


def test_the_snapshot_is_not_used_when_anything_it_read_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        **CACHED,
        "models/marts/e.sql": 'SELECT \'{{ env_var("SHOP_REGION", "eu") }}\' AS region\n',
        "sources/raw/f.sql": "-- @location f.csv\nCREATE TABLE raw.f (id INTEGER)\n",
        "f.csv": "id\n1\n",
    }
    monkeypatch.delenv("SHOP_REGION", raising=False)
    load(tmp_path, files, use_cache=True)
    assert load(tmp_path, use_cache=True).from_snapshot
    # an environment variable a template reads
    monkeypatch.setenv("SHOP_REGION", "us")
    project = load(tmp_path, use_cache=True)
    assert not project.from_snapshot
    assert "'us'" in project.ast("marts.e").sql()
    assert load(tmp_path, use_cache=True).from_snapshot
    # a file a source reads
    (tmp_path / "f.csv").unlink()
    with pytest.raises(SqlopsError, match="does not exist"):
        load(tmp_path, use_cache=True)
    (tmp_path / "f.csv").write_text("id\n1\n")
    # a file of the project, and the settings
    (tmp_path / "models/marts/m.sql").write_text("SELECT id, 2 AS two FROM staging.orders\n")
    project = load(tmp_path, use_cache=True)
    assert not project.from_snapshot and project.nodes["marts.m"].column_names == ("id", "two")
    config = (tmp_path / "sqlops.toml").read_text()
    (tmp_path / "sqlops.toml").write_text(config + "\n[vars]\nx = 1\n")
    assert not load(tmp_path, use_cache=True).from_snapshot


def test_a_changed_file_is_parsed_again(tmp_path: Path) -> None:
    load(tmp_path, CACHED, use_cache=True)
    (tmp_path / "models/marts/m.sql").write_text("SELECT id, 1 AS one FROM staging.orders\n")
    project = load(tmp_path, use_cache=True)
    assert project.cache_misses > 0
    assert project.nodes["marts.m"].column_names == ("id", "one")


def test_an_unchanged_file_that_now_reads_another_model_is_analysed_again(tmp_path: Path) -> None:
    """The cached analysis and canonical SQL of a model are keyed by the file and by what its
    names resolve to: a new model nearer to the reader changes both, the file unchanged."""
    files = {"models/staging/orders.sql": ORDERS, "models/marts/m.sql": "SELECT id FROM orders\n"}
    before = load(tmp_path, files, use_cache=True).nodes["marts.m"]
    assert before.depends_on == ("staging.orders",)
    write(tmp_path, {"models/marts/orders.sql": "SELECT 7 AS id\n"})
    after = load(tmp_path, use_cache=True).nodes["marts.m"]
    assert after.depends_on == ("marts.orders",)
    assert after.canonical != before.canonical and '"marts"."orders"' in after.canonical


def test_inferred_types_are_cached_by_what_they_depend_on(tmp_path: Path) -> None:
    from sqlops.impact.definition import definitions

    files = {
        "models/staging/orders.sql": ORDERS,
        "models/marts/m.sql": "SELECT id, amount * 2 AS double FROM staging.orders\n",
    }
    fresh = definitions(load(tmp_path, files, use_cache=True))
    types = cache_folder(tmp_path)
    assert types is not None and (types / "types.jsonl").is_file()
    again = definitions(load(tmp_path, use_cache=True))
    assert again == fresh
    column = {c.name: c.type for c in fresh["marts.m"].columns or ()}
    assert column["double"] and "DECIMAL" in column["double"]
    # the source's type changes: the model's types are inferred again, not read from the cache
    write(tmp_path, {"sources/raw/x.sql": SOURCE.replace("DECIMAL(10, 2)", "BIGINT")})
    changed = definitions(load(tmp_path, use_cache=True))
    column = {c.name: c.type for c in changed["marts.m"].columns or ()}
    assert column["double"] == "BIGINT"


def test_an_edit_that_keeps_size_and_time_is_seen_while_the_file_is_recent(
    tmp_path: Path,
) -> None:
    """The snapshot trusts a file's size and modification time only once the file had not
    changed for a while when its hash was taken: a second write in the same clock tick is seen."""
    import os

    load(tmp_path, CACHED, use_cache=True)
    model = tmp_path / "models/marts/m.sql"
    before = model.stat()
    model.write_text(model.read_text().replace("SELECT id", "SELECT ID"))
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert model.stat().st_size == before.st_size
    project = load(tmp_path, use_cache=True)
    assert not project.from_snapshot


def test_old_files_are_not_read_to_know_the_snapshot_is_current(tmp_path: Path) -> None:
    import os

    from sqlops.project.snapshot import snapshot_hashes, snapshot_key

    write(tmp_path, CACHED)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(10**18, 10**18))  # 2001: long settled
    load(tmp_path, use_cache=True)
    known = snapshot_hashes(cache_folder(tmp_path))
    assert known is not None and "models/marts/m.sql" in known.stats
    fresh = snapshot_key(tmp_path.resolve(), "s", True)
    assert snapshot_key(tmp_path.resolve(), "s", True, known).key == fresh.key
    # a changed size is always seen, whatever the time
    (tmp_path / "models/marts/m.sql").write_text("SELECT id, 2 AS two FROM staging.orders\n")
    os.utime(tmp_path / "models/marts/m.sql", ns=(10**18, 10**18))
    assert snapshot_key(tmp_path.resolve(), "s", True, known).key != fresh.key
    assert load(tmp_path, use_cache=True).nodes["marts.m"].column_names == ("id", "two")


PATCHED = {
    "models/staging/orders.sql": ORDERS,
    "models/marts/m.sql": "SELECT id FROM staging.orders\n-- @assert unique(id)\n",
    "models/marts/wide.sql": "SELECT * FROM staging.orders\n",
    "models/marts/other.sql": "SELECT id FROM raw.x\n",
    "tests/no_negative.sql": "-- @assert (SELECT count(*) FROM marts.m WHERE id < 0) = 0\n",
    "macros/double.sql": "{% macro double(x) %}{{ x }} * 2{% endmacro %}\n",
}


def edit(root: Path, relpath: str, text: str) -> Project:
    (root / relpath).write_text(text)
    return load(root, use_cache=True)


def assert_same_as_a_whole_load(root: Path, project: Project) -> None:
    whole = load(root)
    assert project.nodes == whole.nodes
    assert project.lineage == whole.lineage
    assert project.graph.topological() == whole.graph.topological()
    assert {k: project.ast(k).sql() for k in whole.asts} == {
        k: whole.ast(k).sql() for k in whole.asts
    }
    assert [b[:3] for b in project.broken] == [b[:3] for b in whole.broken]


def test_an_edited_model_is_read_again_alone(tmp_path: Path) -> None:
    load(tmp_path, PATCHED, use_cache=True)
    # same columns: nothing downstream is analysed again
    project = edit(tmp_path, "models/staging/orders.sql", ORDERS + "WHERE amount > 0\n")
    assert project.patched == ("staging.orders",)
    assert project.cache_misses > 0 and project.cache_hits == 0
    assert "WHERE" in project.ast("staging.orders").sql()
    assert_same_as_a_whole_load(tmp_path, project)
    # and the snapshot now is of the edited project
    again = load(tmp_path, use_cache=True)
    assert again.from_snapshot and again.nodes == project.nodes
    assert "WHERE" in again.ast("staging.orders").sql()


def test_an_edit_appends_to_the_parse_cache_and_an_undo_finds_it_there(tmp_path: Path) -> None:
    load(tmp_path, PATCHED, use_cache=True)
    path = cache_folder(tmp_path) / "parse.jsonl"  # type: ignore[operator]
    before = path.read_bytes()
    edit(tmp_path, "models/staging/orders.sql", ORDERS + "WHERE amount > 0\n")
    after = path.read_bytes()
    assert after.startswith(before) and len(after) > len(before)  # written at the end only
    # the edit undone: its entries are found in the file, nothing is parsed
    project = edit(tmp_path, "models/staging/orders.sql", ORDERS)
    assert project.patched == ("staging.orders",)
    assert project.cache_hits > 0 and project.cache_misses == 0
    assert path.read_bytes() == after
    assert_same_as_a_whole_load(tmp_path, project)


def test_a_parse_cache_cut_off_in_an_append_is_only_a_miss(tmp_path: Path) -> None:
    load(tmp_path, PATCHED, use_cache=True)
    path = cache_folder(tmp_path) / "parse.jsonl"  # type: ignore[operator]
    edit(tmp_path, "models/staging/orders.sql", ORDERS + "WHERE amount > 0\n")
    cut = path.read_bytes()[:-40]  # a process killed while it appended
    path.write_bytes(cut)
    project = edit(tmp_path, "models/staging/orders.sql", ORDERS + "WHERE amount > 1\n")
    assert "amount > 1" in project.ast("staging.orders").sql()
    assert path.read_bytes().startswith(cut + b"\n")  # the next entries start on a new line
    assert_same_as_a_whole_load(tmp_path, project)
    # the entry that was cut off is parsed again, never read damaged
    project = edit(tmp_path, "models/staging/orders.sql", ORDERS + "WHERE amount > 0\n")
    assert project.cache_misses > 0 and "amount > 0" in project.ast("staging.orders").sql()
    # and, written again after the damaged line, found the next time
    edit(tmp_path, "models/staging/orders.sql", ORDERS)
    project = edit(tmp_path, "models/staging/orders.sql", ORDERS + "WHERE amount > 0\n")
    assert project.cache_misses == 0 and project.cache_hits > 0


def test_a_parse_cache_grown_past_its_bound_is_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlops.project.cache import ParseCache

    load(tmp_path, PATCHED, use_cache=True)
    path = cache_folder(tmp_path) / "parse.jsonl"  # type: ignore[operator]
    lines = path.read_bytes().count(b"\n")  # the header, then an entry a line
    monkeypatch.setattr(ParseCache, "KEPT", lines - 1)
    edit(tmp_path, "models/staging/orders.sql", ORDERS + "WHERE amount > 0\n")
    assert path.read_bytes().count(b"\n") == lines  # the newest entries, one line each
    assert load(tmp_path, use_cache=True).from_snapshot


def test_what_reads_a_model_whose_columns_changed_is_analysed_again(tmp_path: Path) -> None:
    load(tmp_path, PATCHED, use_cache=True)
    project = edit(tmp_path, "models/staging/orders.sql", "SELECT id, amount, name FROM raw.x\n")
    # `wide` selects *: it gains the column; `m` keeps its columns, so its readers are not read
    assert project.patched == ("staging.orders", "marts.m", "marts.wide")
    assert project.nodes["marts.wide"].column_names == ("id", "amount", "name")
    assert_same_as_a_whole_load(tmp_path, project)
    # a model whose columns changed: the test whose assertion reads it is checked again
    project = edit(tmp_path, "models/marts/m.sql", "SELECT id, 1 AS one FROM staging.orders\n")
    assert project.patched == ("marts.m", "test:no_negative")
    assert_same_as_a_whole_load(tmp_path, project)


def test_an_edit_that_breaks_a_reader_fails_like_a_whole_load(tmp_path: Path) -> None:
    load(tmp_path, PATCHED, use_cache=True)
    with pytest.raises(SqlopsError) as patched:
        edit(tmp_path, "models/staging/orders.sql", "SELECT amount FROM raw.x\n")
    with pytest.raises(SqlopsError) as whole:
        load(tmp_path)
    assert str(patched.value) == str(whole.value)
    assert patched.value.path == tmp_path / "models/marts/m.sql"
    # impact loads past it (strict=False) and lists the same broken readers
    project = load_project(tmp_path, strict=False)
    whole = load_project(tmp_path, strict=False, use_cache=False)
    assert project.nodes == whole.nodes
    assert [b[:3] for b in project.broken] == [b[:3] for b in whole.broken]
    assert {b[0] for b in project.broken} == {"marts.m"}
    # fixed: the reader is whole again
    fixed = edit(tmp_path, "models/staging/orders.sql", ORDERS)
    assert not fixed.broken and fixed.nodes["marts.m"].column_names == ("id",)


def test_an_edit_that_changes_what_a_model_reads_reorders_the_graph(tmp_path: Path) -> None:
    load(tmp_path, PATCHED, use_cache=True)
    project = edit(tmp_path, "models/marts/other.sql", "SELECT id FROM marts.wide\n")
    assert project.nodes["marts.other"].depends_on == ("marts.wide",)
    order = project.graph.topological()
    assert order.index("marts.wide") < order.index("marts.other")
    assert_same_as_a_whole_load(tmp_path, project)
    with pytest.raises(SqlopsError, match="cycle"):
        edit(tmp_path, "models/staging/orders.sql", "SELECT id, amount FROM marts.other\n")


def test_an_edit_with_an_error_is_reported_and_then_loads(tmp_path: Path) -> None:
    load(tmp_path, PATCHED, use_cache=True)
    with pytest.raises(SqlopsError) as info:
        edit(tmp_path, "models/marts/m.sql", "SELECT id FROM staging.ordres\n")
    assert info.value.path == tmp_path / "models/marts/m.sql" and "staging.orders" in str(
        info.value
    )
    project = edit(tmp_path, "models/marts/m.sql", "SELECT id AS key FROM staging.orders\n")
    assert project.nodes["marts.m"].column_names == ("key",)
    assert_same_as_a_whole_load(tmp_path, project)


def test_an_edited_test_file_is_read_again(tmp_path: Path) -> None:
    load(tmp_path, PATCHED, use_cache=True)
    project = edit(
        tmp_path, "tests/no_negative.sql", "-- @assert (SELECT count(*) FROM marts.wide) > 0\n"
    )
    assert project.patched == ("test:no_negative",)
    assert project.nodes["test:no_negative"].depends_on == ("marts.wide",)
    assert_same_as_a_whole_load(tmp_path, project)


@pytest.mark.parametrize(
    "change",
    ["a macro", "a new model", "a removed model", "a source", "the settings"],
)
def test_other_changes_load_the_whole_project(tmp_path: Path, change: str) -> None:
    load(tmp_path, PATCHED, use_cache=True)
    if change == "a macro":
        (tmp_path / "macros/double.sql").write_text(
            "{% macro double(x) %}{{ x }} * 3{% endmacro %}\n"
        )
    elif change == "a new model":
        (tmp_path / "models/marts/new.sql").write_text("SELECT 1 AS one\n")
    elif change == "a removed model":
        (tmp_path / "models/marts/other.sql").unlink()
    elif change == "a source":
        (tmp_path / "sources/raw/x.sql").write_text(SOURCE.replace("name", "label"))
    else:
        config = (tmp_path / "sqlops.toml").read_text()
        (tmp_path / "sqlops.toml").write_text(config + "\n[vars]\nx = 1\n")
    project = load(tmp_path, use_cache=True)
    assert not project.patched and not project.from_snapshot
    assert_same_as_a_whole_load(tmp_path, project)


def test_a_file_no_load_reads_does_not_stop_a_patch(tmp_path: Path) -> None:
    load(tmp_path, {**PATCHED, "models/README.md": "# models\n"}, use_cache=True)
    (tmp_path / "models/README.md").write_text("# the models\n")
    project = edit(tmp_path, "models/marts/other.sql", "SELECT id + 1 AS id FROM raw.x\n")
    assert project.patched == ("marts.other",)
    assert_same_as_a_whole_load(tmp_path, project)


def test_without_the_cache_nothing_is_written(tmp_path: Path) -> None:
    load(tmp_path, CACHED, use_cache=False)
    assert not (tmp_path / ".sqlops").exists()


# -- fingerprints -----------------------------------------------------------------------------------

UPSTREAM = {
    "models/staging/orders.sql": "SELECT id, amount FROM raw.x WHERE amount > 0\n",
    "models/marts/m.sql": "SELECT id FROM staging.orders\n",
}


@pytest.mark.parametrize(
    "rewritten",
    [
        "select ID, AMOUNT from RAW.X where AMOUNT > 0",
        "-- the orders\nSELECT\n    id,\n    amount  -- in dollars\nFROM raw.x\n"
        "WHERE amount > 0 /* paid */\n",
        "-- @description Orders.\nSELECT id, amount FROM raw.x WHERE amount > 0\n"
        "-- @assert unique(id)\n",
    ],
    ids=["case", "layout-and-comments", "directives"],
)
def test_fingerprint_ignores_formatting_and_comments(tmp_path: Path, rewritten: str) -> None:
    before = fingerprints(load(tmp_path, UPSTREAM))
    (tmp_path / "models/staging/orders.sql").write_text(rewritten)
    assert fingerprints(load(tmp_path)) == before


def test_fingerprint_changes_with_an_expression_and_downstream(tmp_path: Path) -> None:
    before = fingerprints(load(tmp_path, UPSTREAM))
    (tmp_path / "models/staging/orders.sql").write_text(
        "SELECT id, amount FROM raw.x WHERE amount >= 0\n"
    )
    after = fingerprints(load(tmp_path))
    assert after["raw.x"] == before["raw.x"]
    assert after["staging.orders"] != before["staging.orders"]
    assert after["marts.m"] != before["marts.m"]


def test_fingerprint_changes_with_materialization(tmp_path: Path) -> None:
    before = fingerprints(load(tmp_path, UPSTREAM))
    (tmp_path / "models/marts/m.sql").write_text(
        "-- @materialized view\nSELECT id FROM staging.orders\n"
    )
    after = fingerprints(load(tmp_path))
    assert after["staging.orders"] == before["staging.orders"]
    assert after["marts.m"] != before["marts.m"]


def test_materialization_does_not_flow_downstream(tmp_path: Path) -> None:
    before = fingerprints(load(tmp_path, UPSTREAM))
    (tmp_path / "models/staging/orders.sql").write_text(
        "-- @materialized view\n" + UPSTREAM["models/staging/orders.sql"]
    )
    after = fingerprints(load(tmp_path))
    assert after["staging.orders"] != before["staging.orders"]  # a new version: now a view
    assert after["marts.m"] == before["marts.m"]  # the same rows to read


def test_a_database_source_counts_by_its_data_not_its_declaration(tmp_path: Path) -> None:
    project = load(tmp_path, UPSTREAM)
    before = fingerprints(project, {"raw.x": "rows 3 hash 1"})
    (tmp_path / "sources/raw/x.sql").write_text(SOURCE.replace("VARCHAR", "TEXT"))
    project = load(tmp_path)
    assert fingerprints(project, {"raw.x": "rows 3 hash 1"}) == before
    changed = fingerprints(project, {"raw.x": "rows 4 hash 2"})
    assert changed["staging.orders"] != before["staging.orders"]
    assert changed["marts.m"] != before["marts.m"]


def test_a_planted_snapshot_runs_no_code(tmp_path: Path) -> None:
    import pickle

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    load(tmp_path, CACHED, use_cache=True)
    folder = cache_folder(tmp_path)
    assert folder is not None
    (folder / "project.pickle").write_bytes(pickle.dumps({"key": Payload()}))
    project = load(tmp_path, use_cache=True)
    assert not project.from_snapshot
    assert not (tmp_path / "pwned").exists()
    assert project.nodes["marts.m"].column_names == ("id",)


@pytest.mark.parametrize(
    ("sql", "written", "known"),
    [
        (
            "WITH c AS (SELECT id FROM staging.orders)\nSELECT c.idd FROM c\n",
            "c.idd",
            "`c` returns: id",
        ),
        (
            "SELECT\n    d.amnt\nFROM (SELECT id, amount FROM staging.orders) AS d\n",
            "d.amnt",
            "`d` returns: id, amount",
        ),
    ],
)
def test_a_column_a_cte_or_subquery_lacks_is_an_error(
    tmp_path: Path, sql: str, written: str, known: str
) -> None:
    err = load_error(tmp_path, {**CACHED, "models/marts/bad.sql": sql}, "models/marts/bad.sql", 2)
    assert f"`{written}`" in err.message and "has no column" in err.message
    assert err.column is not None
    assert err.hint is not None and known in err.hint


# -- what a load imports --------------------------------------------------------------------------


@pytest.mark.parametrize("jinja", [False, True])
def test_jinja_is_imported_only_when_a_file_needs_it(tmp_path: Path, jinja: bool) -> None:
    model = "SELECT id FROM {{ ref('raw.x') }}\n" if jinja else "SELECT id FROM raw.x\n"
    write(tmp_path, {"models/marts/m.sql": model})
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sqlops.project.loader import load_project\n"
        f"load_project(Path({str(tmp_path)!r}), use_cache=False)\n"
        "print(sorted(m for m in ('jinja2', 'sqlops.project.sandbox') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    expected = "['jinja2', 'sqlops.project.sandbox']" if jinja else "[]"
    assert out.strip() == expected


@pytest.mark.parametrize(
    "value",
    [
        {"sql": "SELECT 'x\ty'\n", "n": [1, None, True]},
        "café ☕",
        "a lone surrogate \udc80 from a file read with surrogateescape",
        2**70,  # past 64 bits: orjson refuses it
    ],
)
def test_a_parse_cache_value_is_one_line_and_reads_back_as_it_was(value: object) -> None:
    from sqlops.project.cache import dumps, loads

    text = dumps(value)
    assert "\n" not in text and "\t" not in text
    assert loads(text) == value


def test_a_cold_load_leaves_the_garbage_collector_as_it_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from sqlops.project.loader import _Collector

    monkeypatch.setattr(_Collector, "EVERY", 1)  # a freeze after each model
    threshold = gc.get_threshold()
    project = load(tmp_path, PATCHED)
    assert not project.from_snapshot and len(project.nodes) >= 5
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold
    # and when the load fails halfway
    write(tmp_path, {"models/marts/zz_broken.sql": "SELECT id FROM staging.orders WHERE ("})
    with pytest.raises(SqlopsError):
        load(tmp_path)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold


def test_an_edit_of_many_files_reads_the_parse_cache_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlops.project.cache import ParseCache

    load(tmp_path, PATCHED, use_cache=True)
    models = ["models/staging/orders.sql", "models/marts/m.sql", "models/marts/other.sql"]
    before = {m: (tmp_path / m).read_text() for m in models}
    for m in models:
        (tmp_path / m).write_text(before[m] + "-- edited\n")
    load(tmp_path, use_cache=True)
    monkeypatch.setattr(ParseCache, "SEARCHES", 1)  # past one lookup, the file becomes a dict
    for m in models:
        (tmp_path / m).write_text(before[m])
    project = load(tmp_path, use_cache=True)  # the edits undone: every entry is found
    assert len(project.patched) >= len(models)
    assert project.cache_misses == 0 and project.cache_hits > 1
    assert_same_as_a_whole_load(tmp_path, project)


def test_the_files_of_a_folder_are_those_pathlib_globs(tmp_path: Path) -> None:
    """`_files` walks with directory entries; what it lists, and in what order, is what
    `rglob` lists once hidden names and what is not a file are left out (the rule it had)."""
    from sqlops.project.loader import _files

    models = tmp_path / "models"
    for relpath in (
        "a.sql",
        "a-b/x.sql",  # `-` sorts before `/`: the order is by parts, not by the whole path
        "a/x.sql",
        "a/b/c/deep.sql",
        "Upper.sql",
        "notes.md",
        "x.SQL",
        ".hidden.sql",
        ".cache/inside.sql",
        "dir.sql/inside.sql",  # a folder that looks like a model
    ):
        (models / relpath).parent.mkdir(parents=True, exist_ok=True)
        (models / relpath).write_text("SELECT 1 AS x\n")
    (models / "linked.sql").symlink_to(models / "a.sql")  # a link to a file is a file
    (models / "gone.sql").symlink_to(models / "nothing.sql")  # a dangling link is not
    (models / "folder_link").symlink_to(models / "a", target_is_directory=True)  # not walked
    listed = sorted(
        p
        for p in models.rglob("*.sql")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(models).parts)
    )
    assert _files(models, ".sql") == listed
    assert [p.relative_to(models).as_posix() for p in listed] == [
        "Upper.sql",
        "a/b/c/deep.sql",
        "a/x.sql",
        "a-b/x.sql",
        "a.sql",
        "dir.sql/inside.sql",
        "linked.sql",
    ]

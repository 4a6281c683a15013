"""Paths cannot take sqlops out of the project folder: an `@location` that points outside it, or a
model, source, seed, test or macro file that is a symlink to a file elsewhere, is refused, and
what is outside is never read into the warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sqlops.errors import ProjectError
from sqlops.project.loader import load_project
from tests.conftest import Shop, write_project

SECRET = "outside-secret-93ad1f"
SOURCE = "-- the raw orders\n-- @location {}\nCREATE TABLE raw.orders (id INTEGER, v VARCHAR)\n"
MODEL = "SELECT id, v FROM raw.orders\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the project, with files sqlops must not read."""
    folder = tmp_path / "outside"
    (folder / "models").mkdir(parents=True)
    (folder / "orders.csv").write_text(f"id,v\n1,{SECRET}\n")
    (folder / "model.sql").write_text(f"SELECT '{SECRET}' AS v\n")
    (folder / "models" / "leak.sql").write_text(f"SELECT '{SECRET}' AS v\n")
    (folder / "seed.csv").write_text(f"v\n{SECRET}\n")
    (folder / "macro.sql").write_text("{% macro leak() %}" + SECRET + "{% endmacro %}\n")
    return folder


def project(tmp_path: Path, files: dict[str, str]) -> Shop:
    return write_project(tmp_path / "proj", {"data/orders.csv": "id,v\n1,inside\n", **files})


def link(at: Path, to: Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(to)


def refused(shop: Shop, relpath: str, line: int | None) -> ProjectError:
    with pytest.raises(ProjectError) as info:
        load_project(shop.root, use_cache=False)
    err = info.value
    assert err.path == shop.root / relpath
    assert err.line == line
    assert "outside the project folder" in err.message
    assert err.hint
    assert SECRET not in str(err)
    return err


# -- @location -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "../outside/orders.csv",
        "data/../../outside/orders.csv",
        "{outside}/orders.csv",
        "../outside/missing.csv",  # said to be outside, not missing: nothing is told of outside
        "/etc/passwd.csv",
    ],
)
def test_a_location_outside_the_project_is_refused_at_its_line(
    tmp_path: Path, outside: Path, location: str
) -> None:
    location = location.replace("{outside}", str(outside))
    shop = project(tmp_path, {"sources/raw/orders.sql": SOURCE.format(location)})
    err = refused(shop, "sources/raw/orders.sql", 2)
    assert f"@location `{location}`" in err.message
    assert "@location" in (err.snippet or "")


def test_a_location_through_a_symlink_must_end_inside_the_project(
    tmp_path: Path, outside: Path
) -> None:
    shop = project(tmp_path, {"sources/raw/orders.sql": SOURCE.format("data/linked.csv")})
    link(shop.root / "data" / "linked.csv", outside / "orders.csv")
    refused(shop, "sources/raw/orders.sql", 2)
    # a symlinked folder too
    shop.write("sources/raw/orders.sql", SOURCE.format("ext/orders.csv"))
    link(shop.root / "ext", outside)
    refused(shop, "sources/raw/orders.sql", 2)


def test_a_location_symlinked_inside_the_project_is_read(tmp_path: Path) -> None:
    shop = project(tmp_path, {"sources/raw/orders.sql": SOURCE.format("data/linked.csv")})
    link(shop.root / "data" / "linked.csv", shop.root / "data" / "orders.csv")
    assert load_project(shop.root, use_cache=False).nodes["raw.orders"].location == (
        "data/linked.csv"
    )


def test_build_refuses_a_location_outside_and_reads_nothing(tmp_path: Path, outside: Path) -> None:
    shop = project(
        tmp_path,
        {
            "sources/raw/orders.sql": SOURCE.format("../outside/orders.csv"),
            "models/staging/orders.sql": MODEL,
        },
    )
    result = shop.sqlops("build")
    assert result.code == 2, result.output
    assert "sources/raw/orders.sql:2: @location `../outside/orders.csv` is outside the project" in (
        result.output
    )
    assert SECRET not in result.output
    if shop.db.exists():
        assert not shop.query(
            "SELECT * FROM information_schema.tables WHERE table_schema NOT IN ('sqlops_meta')"
        )


# -- symlinked project files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relpath", "target"),
    [
        ("models/staging/leak.sql", "model.sql"),
        ("models/leak.sql", "model.sql"),
        ("sources/raw/leak.sql", "model.sql"),
        ("seeds/ref/leak.csv", "seed.csv"),
        ("tests/leak.sql", "model.sql"),
        ("macros/leak.sql", "macro.sql"),
    ],
)
def test_a_project_file_that_is_a_symlink_to_outside_is_refused(
    tmp_path: Path, outside: Path, relpath: str, target: str
) -> None:
    shop = project(tmp_path, {"models/staging/fine.sql": "SELECT 1 AS id\n"})
    link(shop.root / relpath, outside / target)
    err = refused(shop, relpath, None)
    assert str(outside / target) in err.message


def test_a_folder_of_the_project_that_is_a_symlink_to_outside_is_refused(
    tmp_path: Path, outside: Path
) -> None:
    shop = project(tmp_path, {})
    link(shop.root / "models", outside / "models")
    refused(shop, "models/leak.sql", None)


def test_symlinked_folders_below_a_project_folder_are_not_followed(
    tmp_path: Path, outside: Path
) -> None:
    """As the snapshot of a project's files does not follow them either (project/snapshot.py)."""
    shop = project(tmp_path, {"models/staging/fine.sql": "SELECT 1 AS id\n"})
    link(shop.root / "models" / "ext", outside / "models")
    loaded = load_project(shop.root, use_cache=False)
    assert set(loaded.nodes) == {"staging.fine"}


def test_symlinks_inside_the_project_are_fine(tmp_path: Path) -> None:
    shop = project(
        tmp_path,
        {"shared/model.sql": "SELECT 1 AS id\n", "shared/seed.csv": "id\n1\n"},
    )
    link(shop.root / "models" / "staging" / "alias.sql", shop.root / "shared" / "model.sql")
    link(shop.root / "seeds" / "ref" / "alias.csv", Path("../../shared/seed.csv"))  # relative
    loaded = load_project(shop.root, use_cache=False)
    assert {"staging.alias", "ref.alias"} <= set(loaded.nodes)


def test_a_symlink_repointed_outside_after_a_build_is_refused(
    tmp_path: Path, outside: Path
) -> None:
    """The next load reads only the files that changed (loader.py patch()): it checks them too."""
    shop = project(tmp_path, {"shared/model.sql": "SELECT 1 AS id\n"})
    model = shop.root / "models" / "staging" / "alias.sql"
    link(model, shop.root / "shared" / "model.sql")
    shop.ok("build")
    model.unlink()
    link(model, outside / "model.sql")
    result = shop.sqlops("build")
    assert result.code == 2, result.output
    assert "models/staging/alias.sql: resolves to" in result.output
    assert "outside the project folder" in result.output
    assert shop.query("SELECT * FROM staging.alias") == [(1,)]


# -- problems in files this suite does not own: see docs/security.md ------------------------------


def test_a_location_symlink_repointed_outside_after_a_build_is_refused(
    tmp_path: Path, outside: Path
) -> None:
    shop = project(
        tmp_path,
        {
            "sources/raw/orders.sql": SOURCE.format("data/linked.csv"),
            "models/staging/orders.sql": MODEL,
        },
    )
    linked = shop.root / "data" / "linked.csv"
    link(linked, shop.root / "data" / "orders.csv")
    shop.ok("build")
    linked.unlink()
    link(linked, outside / "orders.csv")
    result = shop.sqlops("build")
    assert SECRET not in str(shop.query("SELECT * FROM staging.orders"))
    assert result.code == 2, result.output


def test_a_duckdb_target_path_cannot_leave_the_project(tmp_path: Path) -> None:
    toml = (
        '[project]\nname = "proj"\n[targets.local]\nengine = "duckdb"\npath = "../escaped.duckdb"\n'
    )
    shop = project(tmp_path, {"sqlops.toml": toml, "models/staging/fine.sql": "SELECT 1 AS id\n"})
    result = shop.sqlops("build")
    assert not (tmp_path / "escaped.duckdb").exists()
    assert result.code == 2, result.output


@pytest.mark.xfail(
    strict=True,
    reason="engines/duckdb.py opens DuckDB with access to every file the user can read, so a "
    "model's SQL (read_text, read_csv) reads files, and /proc/self/environ, outside the project",
)
def test_a_model_cannot_read_files_outside_the_project_through_sql(
    tmp_path: Path, outside: Path
) -> None:
    path = str(outside / "orders.csv").replace("'", "''")
    shop = project(
        tmp_path, {"models/staging/leak.sql": f"SELECT content FROM read_text('{path}')\n"}
    )
    shop.sqlops("build")
    con = duckdb.connect(str(shop.db), read_only=True)
    try:
        tables = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'leak'"
        ).fetchone()
        leaked = (
            tables is not None
            and tables[0]
            and con.execute("SELECT * FROM staging.leak").fetchall()
        )
    finally:
        con.close()
    assert not leaked or SECRET not in str(leaked)

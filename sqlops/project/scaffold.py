"""`sqlops init`: copy the project template into a new folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlops
from sqlops.errors import SqlopsError

_PLACEHOLDER = "__PROJECT_NAME__"
_SUBSTITUTED = ("sqlops.toml", "README.md")


def template_dir() -> Path:
    package = Path(sqlops.__file__).parent
    for candidate in (package / "project_template", package.parent / "project_template"):
        if (candidate / "sqlops.toml").is_file():
            return candidate
    raise SqlopsError("the project template is missing from this installation of sqlops")


# the default target of a new project, per engine; the DuckDB one is the template's own
_TARGETS = {
    "postgres": (
        "[targets.local]\n"
        'engine = "postgres"\n'
        'dsn = "${PG_DSN}"          # e.g. export PG_DSN=postgresql://me@localhost:5432/shop\n'
        "threads = 4\n"
    ),
    "spark": (
        "[targets.local]\n"
        'engine = "spark"\n'
        'master = "local[2]"       # Spark in this process; for a cluster: remote = "sc://host:15002"\n'
        "threads = 2\n"
        "# the catalog (metastore_db/), the tables (spark-warehouse/) and sqlops's state\n"
        "# (sqlops_state.duckdb) stay in this folder; see docs/engines.md\n"
    ),
}

# what an engine keeps in the project folder, for .gitignore
_IGNORED = {
    "spark": "\n# local Spark: its catalog, its tables, its logs\nmetastore_db/\nspark-warehouse/\n.sqlops/\n"
}


def scaffold(folder: Path, engine: str) -> Path:
    if engine not in ("duckdb", *_TARGETS):
        raise SqlopsError(
            f"engine `{engine}` is not available for new projects yet",
            hint="use --engine duckdb (the default), --engine postgres or --engine spark",
        )
    if not folder.name or folder.name in (".", ".."):
        raise SqlopsError("give the new project's folder a name", hint="e.g. sqlops init shop")
    folder = folder.resolve()
    if folder.exists():
        raise SqlopsError(
            f"{folder} already exists; sqlops init never overwrites",
            hint="pick a new folder name, or remove the existing folder first",
        )
    name = folder.name
    if not name.replace("_", "").replace("-", "").isalnum():
        raise SqlopsError(
            f"`{name}` is not a good project name",
            hint="use letters, digits, - and _ (e.g. shop, sales_mart)",
        )
    try:
        shutil.copytree(
            template_dir(), folder, ignore=shutil.ignore_patterns("*.duckdb", "*.wal", ".sqlops")
        )
        for relpath in _SUBSTITUTED:
            path = folder / relpath
            if path.is_file():
                path.write_text(path.read_text(encoding="utf-8").replace(_PLACEHOLDER, name))
        if engine in _TARGETS:
            config = folder / "sqlops.toml"
            text = config.read_text(encoding="utf-8")
            local = f'[targets.local]\nengine = "duckdb"\npath = "{name}.duckdb"\n'
            config.write_text(text.replace(local, _TARGETS[engine]))
        if engine != "duckdb":
            readme = folder / "README.md"
            readme.write_text(
                readme.read_text(encoding="utf-8").replace(
                    "targets (a local DuckDB file)",
                    "targets (PostgreSQL)" if engine == "postgres" else "targets (local Spark)",
                ),
                encoding="utf-8",
            )
        if engine in _IGNORED:
            with (folder / ".gitignore").open("a", encoding="utf-8") as ignore:
                ignore.write(_IGNORED[engine])
    except OSError as exc:
        raise SqlopsError(
            f"cannot create {folder}: {exc.strerror or exc}",
            hint="pick a folder you can write to, inside a folder that exists",
        ) from None
    return folder

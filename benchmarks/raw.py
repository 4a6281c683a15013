"""The physical limit: a generated project's SQL run by one DuckDB connection, with no framework.

The runner starts this file as a script in a fresh process, in the project folder. It reads the
project's baseline.json (written by the generator: each relation's query and one query per
assertion, in dependency order) and runs, for each relation in order, `CREATE TABLE ... AS` (or
`CREATE VIEW`, or a source's `CREATE TABLE ... AS SELECT ... FROM read_csv(...)`), then each of its
assertions as one query, fetching the answer. It imports only the standard library and duckdb.

    build DATABASE --out FILE                 every relation, into a new database file
    rebuild DATABASE MODEL --out FILE         MODEL and everything downstream of it, replaced
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_STARTED = time.perf_counter()

import duckdb  # noqa: E402  (the import is part of what a raw run costs, and is timed apart)

_IMPORTED = time.perf_counter()

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.generate import BASELINE, query_of  # noqa: E402


def run(con: duckdb.DuckDBPyConnection, entries: Sequence[dict[str, Any]], replace: bool) -> int:
    """Create each relation, then run its checks; the number of check queries run."""
    schemas: set[str] = set()
    checks = 0
    verb = "CREATE OR REPLACE" if replace else "CREATE"
    for entry in entries:
        schema = entry["id"].split(".")[0]
        if schema not in schemas:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            schemas.add(schema)
        if entry["kind"] == "source":
            con.execute(entry["head"].replace("CREATE TABLE", f"{verb} TABLE", 1))
        else:
            kind = "VIEW" if entry["kind"] == "view" else "TABLE"
            con.execute(f"{verb} {kind} {entry['id']} AS {query_of(entry)}")
        for check in entry["checks"]:
            con.execute(check.replace("{t}", entry["id"])).fetchall()
            checks += 1
    return checks


def downstream(entries: Sequence[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """`model` and every relation that reads it, directly or not, in dependency order."""
    reached = {model}
    found = []
    for entry in entries:  # baseline.json is in dependency order
        if entry["id"] == model or reached.intersection(entry["upstream"]):
            reached.add(entry["id"])
            found.append(entry)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="raw.py")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build")
    p.add_argument("database")
    p = sub.add_parser("rebuild")
    p.add_argument("database")
    p.add_argument("model")
    for p in sub.choices.values():
        p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    entries = json.loads(Path(BASELINE).read_text(encoding="utf-8"))
    if args.command == "rebuild":
        entries = downstream(entries, args.model)
    start = time.perf_counter()
    con = duckdb.connect(args.database)
    checks = run(con, entries, replace=args.command == "rebuild")
    con.close()
    done = time.perf_counter()
    result = {
        "import": _IMPORTED - _STARTED,
        "run": done - start,
        "relations": len(entries),
        "checks": checks,
    }
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

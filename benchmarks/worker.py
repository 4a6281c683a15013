"""What runs inside a measured process: load a project, time the steps of an impact, profile.

The runner starts this file as a script (`python benchmarks/worker.py COMMAND ...`) in a fresh
process per measurement, with the project folder as the working directory. It imports nothing
but the standard library and the installed `sqlops`, and writes what it measured as JSON to the
file given by `--out`, so that whatever sqlops prints cannot get in the way.

    load PROJECT --lineage on|off --out FILE      time one cold load_project (no parse cache)
    load-cli PROJECT --out FILE                    time the load a command does (cache used)
    phases PROJECT MODEL COLUMN --out FILE         time the steps of `sqlops impact MODEL.COLUMN`
    profile-load PROJECT --out FILE                cProfile a cold load with lineage
    profile-impact PROJECT MODEL.COLUMN --out FILE cProfile the real CLI, `impact --format json`
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_STARTED = time.perf_counter()


def load(project: Path, lineage: bool) -> dict[str, Any]:
    """One cold load: no parse cache is read or written."""
    before = time.perf_counter()
    from sqlops.project.definition import Kind
    from sqlops.project.loader import load_project

    imported = time.perf_counter()
    loaded = load_project(project, use_cache=False, lineage=lineage)
    done = time.perf_counter()
    models = [n for n in loaded.nodes.values() if n.kind is Kind.MODEL]
    return {
        "startup": before - _STARTED,
        "import": imported - before,
        "load": done - imported,
        "nodes": len(loaded.nodes),
        "models": len(models),
        "models_with_columns": sum(1 for n in models if n.columns is not None),
        "models_with_lineage": len(loaded.lineage),
    }


def load_cli(project: Path) -> dict[str, Any]:
    """The load every sqlops command starts with: the parse cache read (and written when it
    is missing or stale), column lineage on."""
    before = time.perf_counter()
    from sqlops.project.definition import Kind
    from sqlops.project.loader import load_project

    imported = time.perf_counter()
    loaded = load_project(project)
    done = time.perf_counter()
    processes = getattr(loaded, "processes", 1)
    # a load shared among processes: each one's peak, so that the memory figure is their sum
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    each = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "startup": before - _STARTED,
        "import": imported - before,
        "load": done - imported,
        "nodes": len(loaded.nodes),
        "models": sum(1 for n in loaded.nodes.values() if n.kind is Kind.MODEL),
        "models_with_lineage": len(loaded.lineage),
        "from_snapshot": getattr(loaded, "from_snapshot", None),
        "processes": processes,
        "own_max_rss_mb": own,
        "load_process_max_rss_mb": each if processes > 1 else 0.0,
        # at most what all of them held at once: our peak, and each load process's taken to be
        # the largest one's (wait4 tells only the largest single process)
        "all_max_rss_mb": own + (processes * each if processes > 1 else 0.0),
    }


def phases(project: Path, model: str, column: str) -> dict[str, Any]:
    """The steps `sqlops impact MODEL.COLUMN --format json` takes, timed one by one."""
    marks: dict[str, float] = {}
    start = time.perf_counter()
    from sqlops.cli import render, render_impact
    from sqlops.impact.downstream import column_impact
    from sqlops.project.loader import load_project

    marks["import"] = time.perf_counter() - start
    start = time.perf_counter()
    loaded = load_project(project)
    marks["load_project"] = time.perf_counter() - start
    start = time.perf_counter()
    impacts = column_impact(loaded, model, [column], rows=False)
    marks["column_impact"] = time.perf_counter() - start
    start = time.perf_counter()
    text = json.dumps(
        render.to_jsonable(render_impact.column_impact_json(model, column, impacts)),
        indent=2,
        default=str,
    )
    marks["render_json"] = time.perf_counter() - start
    return {
        "phases": marks,
        "from_snapshot": getattr(loaded, "from_snapshot", None),
        "cache_hits": loaded.cache_hits,
        "cache_misses": loaded.cache_misses,
        "reached": len(impacts) - 1,
        "output_bytes": len(text),
    }


def profile(call: Callable[[], object], top: int = 25) -> dict[str, Any]:
    """cProfile `call`; the functions that take the most time, by own and by cumulative time."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    try:
        call()
    except SystemExit:
        pass
    finally:
        profiler.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    rows = []
    for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": _where(path, line, name),
                "calls": calls,
                "own": own,
                "cumulative": cumulative,
            }
        )
    by_own = sorted(rows, key=lambda r: -r["own"])[:top]
    by_cumulative = sorted(
        (r for r in rows if r["function"].startswith("sqlops/")),
        key=lambda r: -r["cumulative"],
    )[:top]
    # calls from sqlops into libraries (sqlglot, copy, json, ...), by call site: where the time
    # that the own-time list shows in library functions comes from
    calls = []
    for callee, (_, _, _, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        callee_name = _where(*callee)
        if callee_name.startswith(("sqlops/", "typer/", "click/")):
            continue  # typer and click wrap the whole command
        for caller, (_, count, _, cumulative) in callers.items():
            caller_name = _where(*caller)
            if caller_name.startswith("sqlops/"):
                calls.append(
                    {
                        "caller": caller_name,
                        "callee": callee_name,
                        "calls": count,
                        "cumulative": cumulative,
                    }
                )
    library_calls = sorted(calls, key=lambda r: -r["cumulative"])[:top]
    return {
        "total": total,
        "by_own": by_own,
        "by_cumulative": by_cumulative,
        "library_calls": library_calls,
    }


def _where(path: str, line: int, name: str) -> str:
    """`package/module.py:line(function)`, without the folder it is installed in."""
    if path == "~":
        return name  # a built-in, e.g. <method 'copy' of 'dict' objects>
    parts = Path(path).parts
    for anchor in ("sqlops", "sqlglot", "networkx", "duckdb", "jinja2", "typer", "rich"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            return f"{'/'.join(parts[i:])}:{line}({name})"
    return f"{Path(path).name}:{line}({name})"


def _cli(argv: list[str]) -> None:
    from sqlops.cli.app import main

    sys.argv = ["sqlops", *argv]
    main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker.py")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load")
    p.add_argument("project", type=Path)
    p.add_argument("--lineage", choices=("on", "off"), required=True)
    p = sub.add_parser("load-cli")
    p.add_argument("project", type=Path)
    p = sub.add_parser("phases")
    p.add_argument("project", type=Path)
    p.add_argument("model")
    p.add_argument("column")
    p = sub.add_parser("profile-load")
    p.add_argument("project", type=Path)
    p = sub.add_parser("profile-impact")
    p.add_argument("project", type=Path)
    p.add_argument("what")
    for p in sub.choices.values():
        p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    result: dict[str, Any]
    if args.command == "load":
        result = load(args.project, args.lineage == "on")
    elif args.command == "load-cli":
        result = load_cli(args.project)
    elif args.command == "phases":
        result = phases(args.project, args.model, args.column)
    elif args.command == "profile-load":
        from sqlops.project.loader import load_project

        result = profile(lambda: load_project(args.project, use_cache=False, lineage=True))
    else:
        os.chdir(args.project)
        result = profile(lambda: _cli(["impact", args.what, "--format", "json"]))
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

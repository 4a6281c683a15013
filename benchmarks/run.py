"""Run the benchmarks and write their results into docs/benchmarks.md.

    .venv/bin/python -m benchmarks.run impact --check

`impact` measures the two performance targets of issue 3 on a generated project of 2,000 models:

1. `sqlops impact MODEL.COLUMN --format json` with a warm parse cache answers in under 1 second
   (the real console script, one process per run; cold-cache runs and the in-process steps too);
2. column lineage for every model adds less than 50% to a cold `load_project` (lineage off and
   on, one process per run, interleaved A/B/A/B).

It reports medians and peak memory (max RSS) of each, profiles whatever misses its target, and
exits 1 when a target is missed. `--check` first builds a 100-model generated project with
`sqlops build` to prove the generator makes projects that build and whose assertions pass.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.generate import GeneratedProject, generate
from benchmarks.measure import (
    MeasureError,
    Sample,
    compile_bytecode,
    git_revision,
    load_average,
    machine,
    median,
    run,
    source_digest,
    sqlops_script,
)
from benchmarks.targets import TargetResults

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "worker.py"
DOCS = REPO / "docs" / "benchmarks.md"
IMPACT_TARGET = 1.0  # seconds, warm parse cache
LINEAGE_TARGET = 0.5  # at most this much added to a cold load


@dataclass
class ImpactResults:
    """Everything `impact` measured, as the report needs it."""

    started: dt.datetime
    machine: dict[str, str]
    revision: str
    load_before: str
    project: GeneratedProject
    repeats: int
    cold_repeats: int
    impact_warm: list[Sample] = field(default_factory=list)
    impact_cold: list[Sample] = field(default_factory=list)
    impact_key_warm: list[Sample] = field(default_factory=list)
    reached: int = 0
    reached_key: int = 0
    phases: dict[str, Any] = field(default_factory=dict)
    load_off: list[Sample] = field(default_factory=list)
    load_on: list[Sample] = field(default_factory=list)
    check: dict[str, Any] | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    load_after: str = ""
    source_before: str = ""  # hash of sqlops/*.py when the run started, and when it ended
    source_after: str = ""

    @property
    def impact_seconds(self) -> float:
        return median([s.wall for s in self.impact_warm])

    @property
    def lineage_overhead(self) -> float:
        off = median([_load_time(s) for s in self.load_off])
        on = median([_load_time(s) for s in self.load_on])
        return on / off - 1

    @property
    def impact_passed(self) -> bool:
        return self.impact_seconds < IMPACT_TARGET

    @property
    def lineage_passed(self) -> bool:
        return self.lineage_overhead < LINEAGE_TARGET


def _load_time(sample: Sample) -> float:
    assert sample.result is not None
    return float(sample.result["load"])


class _Runner:
    def __init__(self, workdir: Path, verbose: bool = True) -> None:
        self.workdir = workdir
        self.cache = workdir / "cache"
        self.env = dict(os.environ, SQLOPS_CACHE_DIR=str(self.cache), NO_COLOR="1")
        self.env.pop("SQLOPS_DEBUG", None)
        self.sqlops = sqlops_script()
        self.verbose = verbose
        compile_bytecode()

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    def clear_cache(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)

    def cli(self, project: Path, *args: str) -> Sample:
        return run([str(self.sqlops), *args], cwd=project, env=self.env)

    def worker(self, project: Path, command: str, *args: str) -> Sample:
        out = self.workdir / "worker.json"
        argv = [sys.executable, str(WORKER), command, str(project), *args, "--out", str(out)]
        return run(argv, cwd=project, env=self.env, result_file=out)

    # -- the build check -----------------------------------------------------------------------

    def check(self, rows: int, seed: int) -> dict[str, Any]:
        """Generate 100 models and build them: every node builds, every assertion passes."""
        project = generate(self.workdir / "check-100", 100, rows, seed)
        self.say(f"check: sqlops build of {project.models} generated models ...")
        sample = run(
            [str(self.sqlops), "build", "--json"], cwd=project.root, env=self.env, timeout=600
        )
        built = json.loads(sample.stdout)
        counts, checks = built["counts"], built["assertion_counts"]
        ok = bool(built["ok"]) and counts["failed"] == counts["error"] == 0
        ok = ok and checks["fail"] == checks["error"] == 0
        result = {
            "models": project.models,
            "ok": ok,
            "built": counts["built"],
            "assertions_passed": checks["pass"],
            "assertions_failed": checks["fail"] + checks["error"],
            "seconds": sample.wall,
        }
        self.say(f"check: {json.dumps(result)}")
        if not ok:
            raise MeasureError(f"the generated project does not build cleanly: {result}")
        return result

    # -- target 1: sqlops impact MODEL.COLUMN --------------------------------------------------

    def impact(self, results: ImpactResults) -> None:
        project = results.project
        root = project.root
        what = f"{project.probe_model}.{project.probe_column}"
        self.say(f"impact: sqlops impact {what} --format json")
        self.clear_cache()
        self.cli(root, "impact", what, "--format", "json")  # warm-up: imports compiled, files read
        for i in range(max(results.repeats, results.cold_repeats)):
            if i < results.cold_repeats:
                self.clear_cache()
                sample = self.cli(root, "impact", what, "--format", "json")
                results.impact_cold.append(sample)
                self.say(f"  cold {sample.wall:6.2f}s  {sample.max_rss_mb:5.0f} MiB")
            if i < results.repeats:
                sample = self.cli(root, "impact", what, "--format", "json")
                results.impact_warm.append(sample)
                self.say(f"  warm {sample.wall:6.2f}s  {sample.max_rss_mb:5.0f} MiB")
        results.reached = _reached(results.impact_warm[-1].stdout, what)
        key = f"{project.probe_model}.{project.probe_key}"
        self.say(f"impact: sqlops impact {key} --format json (the key: decides rows downstream)")
        for _ in range(results.cold_repeats):
            sample = self.cli(root, "impact", key, "--format", "json")
            results.impact_key_warm.append(sample)
            self.say(f"  warm {sample.wall:6.2f}s  {sample.max_rss_mb:5.0f} MiB")
        results.reached_key = _reached(results.impact_key_warm[-1].stdout, key)
        try:
            sample = self.worker(root, "phases", project.probe_model, project.probe_column)
        except MeasureError as exc:  # the steps are internal API; the CLI figures stand alone
            self.say(f"  steps not measured: {exc}")
        else:
            assert sample.result is not None
            results.phases = dict(sample.result, wall=sample.wall)
            self.say(f"  steps {json.dumps(sample.result['phases'])}")

    # -- target 2: what lineage adds to a cold load --------------------------------------------

    def lineage(self, results: ImpactResults) -> None:
        root = results.project.root
        self.say("load: cold load_project, lineage off (A) and on (B), interleaved")
        self.worker(root, "load", "--lineage", "off")  # warm-up, not counted
        for _ in range(results.repeats):
            for flag, into in (("off", results.load_off), ("on", results.load_on)):
                sample = self.worker(root, "load", "--lineage", flag)
                into.append(sample)
                assert sample.result is not None
                self.say(
                    f"  {flag:3} load {sample.result['load']:6.2f}s  "
                    f"process {sample.wall:6.2f}s  {sample.max_rss_mb:5.0f} MiB"
                )
        on = results.load_on[-1].result
        assert on is not None
        if on["models_with_lineage"] != on["models"]:
            self.say(
                f"  warning: lineage covers {on['models_with_lineage']} of {on['models']} models"
            )

    # -- profiles of what misses its target ----------------------------------------------------

    def profile(self, results: ImpactResults, which: Sequence[str]) -> None:
        root = results.project.root
        if "impact" in which:
            self.say("profile: sqlops impact, warm parse cache (cProfile)")
            what = f"{results.project.probe_model}.{results.project.probe_column}"
            sample = self.worker(root, "profile-impact", what)
            assert sample.result is not None
            results.profiles["impact"] = sample.result
        if "lineage" in which:
            self.say("profile: cold load_project with lineage (cProfile)")
            sample = self.worker(root, "profile-load")
            assert sample.result is not None
            results.profiles["lineage"] = sample.result


def _reached(stdout: str, what: str) -> int:
    """How many downstream nodes an impact report lists: proof that it did the work."""
    data = json.loads(stdout)
    if not isinstance(data, dict) or "downstream" not in data:
        raise MeasureError(f"unexpected output of sqlops impact {what}: {stdout[:300]}")
    return len(data["downstream"])


def impact(args: argparse.Namespace) -> int:
    own_workdir = not args.workdir  # a folder the user named is never deleted
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="sqlops-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for old in ("check-100", f"project-{args.models}"):  # from an earlier run with --workdir
        if (workdir / old / "benchmark.json").is_file():
            shutil.rmtree(workdir / old)
    runner = _Runner(workdir)
    try:
        started = dt.datetime.now(dt.UTC)
        load_before = load_average()
        source_before = source_digest(REPO / "sqlops")
        check = runner.check(args.rows, args.seed) if args.check else None
        target = workdir / f"project-{args.models}"
        runner.say(f"generate: {args.models} models, {args.rows} rows, seed {args.seed}")
        project = generate(target, args.models, args.rows, args.seed)
        results = ImpactResults(
            started=started,
            machine=machine(),
            revision=git_revision(REPO),
            load_before=load_before,
            project=project,
            repeats=args.repeats,
            cold_repeats=args.cold_repeats,
            check=check,
            source_before=source_before,
        )
        runner.impact(results)
        runner.lineage(results)
        which = []
        if args.profile == "always" or (args.profile == "auto" and not results.impact_passed):
            which.append("impact")
        if args.profile == "always" or (args.profile == "auto" and not results.lineage_passed):
            which.append("lineage")
        runner.profile(results, which)
        _ended(results, runner)
    except (MeasureError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        _leave(workdir, own_workdir and not args.keep)
    block = report.impact_block(results, IMPACT_TARGET, LINEAGE_TARGET)
    print(block)
    if not args.no_write:
        report.write_block(Path(args.output), "impact", block)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0 if results.impact_passed and results.lineage_passed else 1


SCENARIOS = ("build", "big", "load", "help")


def targets(args: argparse.Namespace) -> int:
    """Issue 6: sqlops against raw DuckDB, and the load, impact and --help targets."""
    from benchmarks.targets import TargetRunner, prepare

    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    unknown = only - set(SCENARIOS)
    if unknown:
        print(f"error: unknown scenario {sorted(unknown)[0]}; one of {SCENARIOS}", file=sys.stderr)
        return 2
    own_workdir = not args.workdir
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="sqlops-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    runner = _Runner(workdir)
    results = TargetResults(
        started=dt.datetime.now(dt.UTC),
        machine=machine(),
        revision=git_revision(REPO),
        load_before=load_average(),
        source_before=source_digest(REPO / "sqlops"),
    )
    suite = TargetRunner(runner, results, args.repeats)
    try:
        if "help" in only:
            suite.help(0.3)
        if "build" in only:
            runner.say(f"generate: {args.models} models, {args.rows} rows")
            project = prepare(workdir, "build", args.models, args.rows, args.seed)
            results.projects["build"] = project
            suite.cold_build(project, "cold", 1.3)
            suite.noop_build(project, 1.5)
            suite.one_change(project, 1.3)
        if "big" in only:
            runner.say(f"generate: {args.big_models} models, {args.big_rows} rows")
            project = prepare(workdir, "big", args.big_models, args.big_rows, args.seed)
            results.projects["big"] = project
            suite.cold_build(project, "cold-big", 1.1, small=False)
            shutil.rmtree(project.root)  # gigabytes
        if "load" in only:
            runner.say(f"generate: {args.load_models} models")
            project = prepare(workdir, "load", args.load_models, 1000, args.seed)
            results.projects["load"] = project
            suite.load(project, 10.0, 2.0)
            suite.impact(project, 1.0)
        _ended(results, runner)
    except (MeasureError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        _leave(workdir, own_workdir and not args.keep)
    block = report.targets_block(results)
    print(block)
    if not args.no_write:
        report.write_block(Path(args.output), "targets", block)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0 if results.passed else 1


def _ended(results: ImpactResults | TargetResults, runner: _Runner) -> None:
    """What a run records as it ends: the load average, and whether sqlops/ changed meanwhile."""
    results.load_after = load_average()
    results.source_after = source_digest(REPO / "sqlops")
    if results.source_after != results.source_before:
        runner.say("warning: sqlops/ changed during the run; the figures mix two versions")


def _leave(workdir: Path, remove: bool) -> None:
    if remove:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="benchmark", required=True)
    p = sub.add_parser("impact", help="issue 3: impact under 1 s, lineage under +50%% of a load")
    p.add_argument("--models", type=int, default=2000, help="models to generate (default 2000)")
    p.add_argument("--rows", type=int, default=1000, help="rows per raw source (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument(
        "--repeats", type=int, default=5, help="warm impact runs and A/B load pairs (default 5)"
    )
    p.add_argument(
        "--cold-repeats",
        type=int,
        default=3,
        help="cold-cache impact runs, and key-column runs (default 3)",
    )
    p.add_argument("--check", action="store_true", help="first build a 100-model project")
    p.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile what misses its target (auto), everything, or nothing",
    )
    p.add_argument("--output", default=str(DOCS), help="markdown file to write the results into")
    p.add_argument("--no-write", action="store_true", help="print the results only")
    p.add_argument(
        "--workdir", help="where to generate projects; kept afterwards (default: a temp folder)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp folder afterwards")
    p = sub.add_parser("targets", help="issue 6: sqlops against raw DuckDB, load, impact, --help")
    p.add_argument("--models", type=int, default=1000, help="models of the build project (1000)")
    p.add_argument("--rows", type=int, default=10_000, help="rows per source there (10000)")
    p.add_argument("--big-models", type=int, default=100, help="models of the big project (100)")
    p.add_argument(
        "--big-rows", type=int, default=2_000_000, help="rows per source there (2000000)"
    )
    p.add_argument(
        "--load-models", type=int, default=10_000, help="models of the load project (10000)"
    )
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--repeats", type=int, default=3, help="A/B pairs of each build (default 3)")
    p.add_argument("--only", help=f"some of the scenarios, comma-separated: {','.join(SCENARIOS)}")
    p.add_argument("--output", default=str(DOCS), help="markdown file to write the results into")
    p.add_argument("--no-write", action="store_true", help="print the results only")
    p.add_argument("--workdir", help="where to generate projects; kept afterwards")
    p.add_argument("--keep", action="store_true", help="keep the temp folder afterwards")
    args = parser.parse_args(argv)
    if args.repeats < 1 or getattr(args, "cold_repeats", 1) < 1:
        parser.error("--repeats and --cold-repeats must be at least 1")
    return impact(args) if args.benchmark == "impact" else targets(args)


if __name__ == "__main__":
    sys.exit(main())

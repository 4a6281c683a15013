"""The performance targets of issue 6: sqlops against the same SQL run raw by DuckDB.

    .venv/bin/python -m benchmarks.run targets

Every sqlops figure is measured in the same run as its raw baseline (benchmarks/raw.py: the same
SQL, one DuckDB connection, in dependency order, one query per assertion), the two interleaved
A, B, A, B, each run a fresh process, and compared as the ratio of the medians. Scenarios:

- cold build: `sqlops build` of every model into an empty database (the parse cache warm, as on
  a developer's machine; one run with no parse cache either is reported beside it), against the
  raw build of everything;
- no-op build: `sqlops build` again with nothing changed (wall time);
- one mid-DAG model changed: `sqlops build` after a new column is added to the generated
  project's probe model, against the raw rebuild of exactly that model and its descendants;
- the same cold build on large sources (2M rows each by default);
- cold and warm project load (parse, graph, column lineage) of 10,000 models, and its memory;
- `sqlops impact MODEL.COLUMN` on 10,000 models with a warm parse cache;
- `sqlops --help`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.generate import GeneratedProject, edit
from benchmarks.measure import MeasureError, Sample, median, run

RAW = Path(__file__).resolve().parent / "raw.py"
REPO = RAW.parent.parent


@dataclass(frozen=True)
class Target:
    """What one scenario must reach: at most `limit` times the raw baseline, or seconds, or
    MiB."""

    limit: float
    unit: str  # "x raw", "s" or "MiB"

    def __str__(self) -> str:
        if self.unit == "x raw":
            return f"<= {self.limit:g}x raw DuckDB"
        if self.unit == "MiB":
            return f"<= {self.limit / 1024:g} GiB"
        return f"<= {self.limit:g} s"


@dataclass
class Scenario:
    """One scenario's samples: sqlops's (A) and, where there is one, the raw baseline's (B)."""

    key: str
    title: str
    target: Target | None
    sqlops: list[Sample] = field(default_factory=list)
    raw: list[Sample] = field(default_factory=list)
    note: str = ""
    figure: Callable[[Sample], float] = lambda s: s.wall  # what is compared in a sample

    @property
    def value(self) -> float:
        """The figure compared with the target: a ratio, seconds or MiB."""
        assert self.target is not None
        if self.target.unit == "x raw":
            return self.sqlops_median / self.raw_median
        if self.target.unit == "MiB":
            return max(s.max_rss_mb for s in self.sqlops)
        return self.sqlops_median

    @property
    def sqlops_median(self) -> float:
        return median([self.figure(s) for s in self.sqlops])

    @property
    def raw_median(self) -> float:
        return median([s.wall for s in self.raw])

    @property
    def passed(self) -> bool | None:
        if self.target is None or not self.sqlops:
            return None
        return self.value <= self.target.limit


@dataclass
class TargetResults:
    started: dt.datetime
    machine: dict[str, str]
    revision: str
    load_before: str
    source_before: str
    projects: dict[str, GeneratedProject] = field(default_factory=dict)
    scenarios: list[Scenario] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    load_after: str = ""
    source_after: str = ""

    @property
    def passed(self) -> bool:
        return all(s.passed is not False for s in self.scenarios)


class TargetRunner:
    """Runs the scenarios; `runner` is run.py's _Runner (environment, cache folder, CLI)."""

    def __init__(self, runner: Any, results: TargetResults, repeats: int) -> None:
        self.r = runner
        self.results = results
        self.repeats = repeats

    def say(self, text: str) -> None:
        self.r.say(text)

    def _raw(self, project: Path, *args: str) -> Sample:
        out = self.r.workdir / "raw.json"
        argv = [sys.executable, str(RAW), *args, "--out", str(out)]
        return run(argv, cwd=project, env=self.r.env, result_file=out, timeout=3600)

    def _sqlops(self, project: Path, *args: str) -> Sample:
        argv = [str(self.r.sqlops), *args]
        return run(argv, cwd=project, env=self.r.env, timeout=3600)

    def _build(self, project: Path) -> Sample:
        sample = self._sqlops(project, "build", "--json")
        built = json.loads(sample.stdout)
        if not built.get("ok"):
            raise MeasureError(f"sqlops build failed in {project}: {sample.stdout[-2000:]}")
        return sample

    @staticmethod
    def _empty(project: Path) -> None:
        """No database, no state: what a first build starts from."""
        for path in [*project.glob("*.duckdb"), *project.glob("*.duckdb.wal")]:
            path.unlink()
        shutil.rmtree(project / ".sqlops", ignore_errors=True)

    def _add(self, scenario: Scenario) -> Scenario:
        self.results.scenarios.append(scenario)
        return scenario

    def _line(self, label: str, sample: Sample, extra: str = "") -> None:
        self.say(f"  {label:8} {sample.wall:7.2f}s {sample.max_rss_mb:6.0f} MiB{extra}")

    # -- builds against the raw baseline -------------------------------------------------------

    def cold_build(
        self, project: GeneratedProject, key: str, target: float, *, small: bool = True
    ) -> None:
        """`small`: also warm the raw baseline up, and build once with no parse cache (on big
        sources a run takes a minute and the parse cache is nothing beside the data)."""
        root = project.root
        scenario = self._add(
            Scenario(
                key,
                f"cold full build with assertions, {project.models:,} models, "
                f"{project.rows:,}-row sources, empty database",
                Target(target, "x raw"),
            )
        )
        self.say(f"{key}: sqlops build (A) against the raw build (B), {self.repeats} pairs")
        self._empty(root)
        self._build(root)  # warm-up: the parse cache, the OS file cache
        raw_db = root / "baseline.duckdb"
        if small:
            raw_db.unlink(missing_ok=True)
            self._raw(root, "build", raw_db.name)
        for _ in range(self.repeats):
            self._empty(root)
            sample = self._build(root)
            scenario.sqlops.append(sample)
            self._line("sqlops", sample)
            raw_db.unlink(missing_ok=True)
            sample = self._raw(root, "build", raw_db.name)
            scenario.raw.append(sample)
            self._line("raw", sample)
        if not small:
            return
        # the first build on a new machine: no parse cache either
        self._empty(root)
        self.r.clear_cache()
        sample = self._build(root)
        self._line("no cache", sample)
        cold = self._add(
            Scenario(
                f"{key}-nocache",
                "the same, with no parse cache either (a first build after a clone)",
                None,
                [sample],
                scenario.raw,
            )
        )
        cold.note = "one run"

    def noop_build(self, project: GeneratedProject, target: float) -> None:
        root = project.root  # built by cold_build: every version is there
        scenario = self._add(
            Scenario(
                "noop",
                f"no-op build, {project.models:,} models (wall time)",
                Target(target, "s"),
            )
        )
        self.say(f"noop: sqlops build with nothing changed, {self.repeats + 2} runs")
        self._build(root)
        for _ in range(self.repeats + 2):
            sample = self._build(root)
            scenario.sqlops.append(sample)
            self._line("sqlops", sample)

    def one_change(self, project: GeneratedProject, target: float) -> None:
        root = project.root
        raw_db = root / "baseline.duckdb"
        reached = _downstream(root, project.probe_model)
        scenario = self._add(
            Scenario(
                "change",
                f"one mid-DAG model changed ({project.probe_model}, {reached} models to "
                f"rebuild), {project.models:,} models",
                Target(target, "x raw"),
            )
        )
        scenario.note = (
            "raw: exactly the changed model and its descendants, `CREATE OR REPLACE` and their "
            "assertions"
        )
        self.say(f"change: {project.probe_model} gets a filter; {reached} models to rebuild")
        if not raw_db.is_file():
            self._raw(root, "build", raw_db.name)
        for i in range(1, self.repeats + 1):
            edit(root, project.probe_model, i)
            sample = self._build(root)
            rebuilt = json.loads(sample.stdout)["counts"]["built"]
            if rebuilt != reached:
                raise MeasureError(f"sqlops rebuilt {rebuilt} models, expected {reached}")
            scenario.sqlops.append(sample)
            self._line("sqlops", sample, f"  ({rebuilt} built)")
            sample = self._raw(root, "rebuild", raw_db.name, project.probe_model)
            scenario.raw.append(sample)
            self._line("raw", sample)
        edit(root, project.probe_model, 0)

    # -- loading large projects ----------------------------------------------------------------

    def load(self, project: GeneratedProject, cold_target: float, warm_target: float) -> None:
        root = project.root
        cold = self._add(
            Scenario(
                "load-cold",
                f"cold load of {project.models:,} models (parse, graph, lineage; no parse cache)",
                Target(cold_target, "s"),
                figure=_load_time,
            )
        )
        warm = self._add(
            Scenario(
                "load-warm",
                "the same with a warm parse cache",
                Target(warm_target, "s"),
                figure=_load_time,
            )
        )
        memory = self._add(
            Scenario(
                "load-memory",
                "peak memory of a cold load (max RSS of the process, plus that of each process "
                "it shared the load with)",
                Target(1024, "MiB"),
            )
        )
        self.say(f"load: {project.models:,} models, cold (no cache) and warm, interleaved")
        runs = max(2, self.repeats - 1)
        for _ in range(runs):
            self.r.clear_cache()
            sample = self.r.worker(root, "load-cli")
            cold.sqlops.append(sample)
            assert sample.result is not None
            # the load's own processes count too: the sum of their peaks, not the largest
            together = max(sample.max_rss_mb, float(sample.result.get("all_max_rss_mb", 0)))
            memory.sqlops.append(replace(sample, max_rss_mb=together))
            processes = sample.result.get("processes", 1)
            self._line(
                "cold",
                sample,
                f"  load {sample.result['load']:.2f}s, {processes} process(es), {together:.0f} MiB",
            )
            sample = self.r.worker(root, "load-cli")
            warm.sqlops.append(sample)
            assert sample.result is not None
            self._line("warm", sample, f"  load {sample.result['load']:.2f}s")
        cold.note = "the time of the `load_project` call inside the process"
        warm.note = cold.note

    def impact(self, project: GeneratedProject, target: float) -> None:
        root = project.root  # the load scenario left a warm cache
        what = f"{project.probe_model}.{project.probe_column}"
        scenario = self._add(
            Scenario(
                "impact",
                f"`sqlops impact {what}`, {project.models:,} models, warm parse cache",
                Target(target, "s"),
            )
        )
        self.say(f"impact: sqlops impact {what} --format json, warm")
        self._sqlops(root, "impact", what, "--format", "json")
        for _ in range(self.repeats + 2):
            sample = self._sqlops(root, "impact", what, "--format", "json")
            scenario.sqlops.append(sample)
            self._line("sqlops", sample)
        data = json.loads(scenario.sqlops[-1].stdout)
        scenario.note = f"reaches {len(data['downstream'])} downstream models"

    def help(self, target: float) -> None:
        scenario = self._add(Scenario("help", "`sqlops --help`", Target(target, "s")))
        self.say("help: sqlops --help")
        self._sqlops(self.r.workdir, "--help")
        for _ in range(self.repeats + 2):
            sample = self._sqlops(self.r.workdir, "--help")
            scenario.sqlops.append(sample)
            self._line("sqlops", sample)


def _load_time(sample: Sample) -> float:
    """The `load_project` call a worker timed inside its process."""
    return float(sample.result["load"]) if sample.result else sample.wall


def _downstream(root: Path, model: str) -> int:
    """How many models the raw baseline rebuilds when `model` changes."""
    baseline = json.loads((root / "baseline.json").read_text(encoding="utf-8"))
    reached = {model}
    for entry in baseline:
        if reached.intersection(entry["upstream"]):
            reached.add(entry["id"])
    return len(reached)


def prepare(workdir: Path, name: str, models: int, rows: int, seed: int) -> GeneratedProject:
    """A generated project in `workdir/name`, made anew by a process of its own: a process this
    one starts would otherwise report this one's memory as its own peak (fork copies it)."""
    root = workdir / name
    if root.exists():
        shutil.rmtree(root)
    argv = [sys.executable, "-m", "benchmarks.generate", str(root)]
    argv += ["--models", str(models), "--rows", str(rows), "--seed", str(seed)]
    made = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    if made.returncode != 0:
        raise MeasureError(f"the generator failed: {made.stderr.strip()[-2000:]}")
    return GeneratedProject.from_json(json.loads(made.stdout))

"""The `sqlops` command. Commands parse options, call the core and render; errors end here."""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sqlops.errors import SqlopsError

if TYPE_CHECKING:
    from sqlops.engines.base import Engine
    from sqlops.project.config import Target
    from sqlops.project.loader import Project
    from sqlops.run.results import RunResult

app = typer.Typer(
    name="sqlops",
    help="SQL-first data transformations: tests next to the SQL, sandboxed builds, atomic promotion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from sqlops import __version__

        print(f"sqlops {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """SQL-first data transformations: tests next to the SQL, sandboxed builds, atomic promotion."""


ProjectDir = Annotated[
    Path | None,
    typer.Option("--project-dir", "-p", help="The project folder (default: found from here up)."),
]
TargetOpt = Annotated[str | None, typer.Option("--target", "-t", help="Target in sqlops.toml.")]
EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment: prod, or any other name.")]
Selectors = Annotated[
    list[str] | None,
    typer.Argument(
        help="name, schema.name, +name, name+, tag:x, path:models/x, changed, changed+ "
        "(default: all)."
    ),
]
Exclude = Annotated[
    list[str] | None, typer.Option("--exclude", "-x", help="Leave out what this selects.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


def _load(project_dir: Path | None, target: str | None) -> Project:
    from sqlops.project.loader import load_project

    return load_project(project_dir or Path.cwd(), target)


class _Connection:
    """The target's connection, opened in a thread while the project loads: opening a DuckDB
    file reads its catalog and a PostgreSQL connection waits on the network, both without the
    GIL (a build of 1,000 models after an edit starts about 0.1 s sooner). What is wrong with
    the project or the command is still told before what is wrong with the connection: its
    error is raised by `get()`. A file that is not there yet (a DuckDB database, Spark's state)
    is created by `get()` only, once the project has loaded and passed its checks.

    `close()` does not wait for a PostgreSQL connection still opening (a server that does not
    answer holds it 10 s): the thread closes it once it is open. It waits for the others, which
    open files in this process: a thread still inside DuckDB when the interpreter exits is
    unwound by glibc through DuckDB's C++, which aborts the process."""

    def __init__(self, settings: Target, root: Path, read_only: bool) -> None:
        from sqlops.aside import Aside
        from sqlops.engines import connect, creates_database

        def open_it() -> Engine:
            return connect(settings, root, read_only=read_only)

        self._open = open_it
        self._engine: Engine | None = None  # what get() handed out
        self._lock = threading.Lock()
        self._early: Engine | None = None  # what the thread opened, while nobody closed it
        self._closed = False
        early = read_only or not creates_database(settings, root)
        self._opening = Aside(self._open_early) if early else None
        self._waited = settings.engine != "postgres"

    def _open_early(self) -> Engine:
        engine = self._open()
        with self._lock:
            if self._closed:  # given up on before it was open
                engine.close()
            else:
                self._early = engine
        return engine

    def get(self) -> Engine:
        if self._engine is None:
            self._engine = self._opening.result() if self._opening else self._open()
        return self._engine

    def close(self) -> None:
        if self._engine is None and self._opening is not None and self._waited:
            with suppress(Exception):  # it did not open: its error is not this command's
                self._opening.result()
        with self._lock:
            self._closed = True
            engine = self._engine or self._early
        if engine is not None:
            engine.close()


@contextmanager
def _loaded_and_connecting(
    project_dir: Path | None, target: str | None, *, read_only: bool
) -> Iterator[tuple[Project, _Connection]]:
    """The project, and its target's connection (see _Connection), closed at the end."""
    from sqlops.project.config import find_project_root, load_config

    root = find_project_root(project_dir or Path.cwd())
    connection = _Connection(load_config(root).target(target), root, read_only)
    try:
        yield _load(root, target), connection
    finally:
        connection.close()


def _engine(project: Project, *, writes: str | None = None) -> Engine:
    """A connection to the project's target; `writes` names the command when it changes the
    database (it then holds the lock, see `_writing`), else the connection only reads."""
    from sqlops.engines import connect

    engine = connect(project.target, project.root, read_only=writes is None)
    if writes is not None:
        try:
            _writing(engine, writes)
        except BaseException:
            engine.close()
            raise
    return engine


def _writing(engine: Engine, command: str) -> None:
    """Before a command changes the database: take the lock that keeps other commands from
    changing it at once (sqlops.state.lock), then finish what a killed process left half
    switched (engines without transactions only; see sqlops.run.switch)."""
    from rich.markup import escape

    from sqlops.cli import render
    from sqlops.run.switch import finish_switches
    from sqlops.state.lock import hold
    from sqlops.state.store import StateStore

    hold(engine, command)
    for line in finish_switches(engine, StateStore(engine)):
        render.err.print(f"note: {escape(line)}")


def _select(
    project: Project,
    selectors: list[str] | None,
    exclude: list[str] | None,
    env: str = "prod",
    connection: Callable[[], Engine] | None = None,
) -> list[str]:
    """`changed` compares with what `env` serves (read through `connection`, else a connection
    of its own)."""
    from sqlops.graph.selectors import select, uses_changed

    changed = None
    if uses_changed([*(selectors or []), *(exclude or [])]):
        from sqlops.impact.against import changed_in_environment
        from sqlops.plan.relations import check_env_name

        check_env_name(env)
        if connection is not None:
            changed = changed_in_environment(project, connection(), env)
        else:
            own = _engine(project)
            try:
                changed = changed_in_environment(project, own, env)
            finally:
                own.close()
    return select(project, selectors or [], exclude or [], changed)


def _excluded(exclude: list[str] | None) -> list[str]:
    """--exclude selectors as the run history shows them."""
    return [f"--exclude {x}" for x in exclude or ()]


def _one_node(project: Project, name: str) -> str:
    from sqlops.errors import SelectorError
    from sqlops.graph.selectors import select

    found = select(project, [name])
    if len(found) != 1:
        raise SelectorError(
            f"`{name}` matches {len(found)} nodes: {', '.join(found)}",
            hint="name one with schema.name",
        )
    return found[0]


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="Folder to create for the new project.")],
    engine: Annotated[
        str, typer.Option(help="Engine of the default target: duckdb, postgres or spark.")
    ] = "duckdb",
    debug: Debug = False,
) -> None:
    """Create a new project from the template; it builds as it is."""
    from sqlops.project.scaffold import scaffold

    folder = scaffold(Path(name), engine)
    from sqlops.cli import render

    render.out.print(f"Created project [bold]{folder.name}[/] in {render.relative(folder)}")
    if engine == "postgres":
        render.out.print(
            "Next: export PG_DSN=postgresql://USER@HOST:5432/DATABASE, then "
            f"cd {render.relative(folder)} && sqlops build"
        )
    elif engine == "spark":
        render.out.print(
            "Next: pip install 'sqlops\\[spark]' (and Java 17 or newer), then "
            f"cd {render.relative(folder)} && sqlops build"
        )
    else:
        render.out.print(f"Next: cd {render.relative(folder)} && sqlops build")


@app.command()
def build(
    selectors: Selectors = None,
    exclude: Exclude = None,
    env: EnvOpt = "prod",
    target: TargetOpt = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", "-j", help="Models built at once (1 to 64).", min=1, max=64),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """Build what changed in a sandbox, run assertions, promote the environment if all pass."""
    from sqlops.cli import render
    from sqlops.engines.rewrite import check_target
    from sqlops.plan.relations import check_env_name
    from sqlops.run.executor import build as run_build
    from sqlops.run.executor import plan_build

    check_env_name(env)
    with _loaded_and_connecting(project_dir, target, read_only=dry_run) as (project, connection):
        if not dry_run:
            project.config.notify  # noqa: B018  [notify] and its ${VAR}: checked before anything runs
        check_target(project)
        selected = _select(project, selectors, exclude, env, connection.get)
        engine = connection.get()
        if not dry_run:
            _writing(engine, f"build --env {env}")
        plan = plan_build(project, engine, env, selected)
        if dry_run:
            if json_out:
                render.print_json(render.plan_json(plan))
            else:
                render.plan(plan)
            return
        with _interruptible(), render.progress(len(plan.steps), "building") as listener:
            result = run_build(
                project,
                engine,
                plan,
                threads or project.target.threads,
                listener,
                [*(selectors or []), *_excluded(exclude)],
            )
    _report(project, result, json_out)


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C: the running statements were stopped; say what that means, exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        print(
            "interrupted: nothing was promoted, and every environment serves what it served",
            file=sys.stderr,
        )
        raise typer.Exit(130) from None


def _report(project: Project, result: RunResult, json_out: bool) -> None:
    """Print a build or test run, send its notifications; exit 1 when anything failed."""
    from sqlops.cli import render

    if json_out:
        render.print_json(render.run_json(result))
    else:
        render.run_summary(result)
    if project.config.notify.enabled:
        from sqlops.notify.send import send_run

        # a notification that cannot be delivered is reported, and changes nothing else
        for problem in send_run(project.config.notify, project, result):
            print(f"warning: notification not delivered: {problem}", file=sys.stderr)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def test(
    selectors: Selectors = None,
    exclude: Exclude = None,
    env: EnvOpt = "prod",
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """Run assertions against what an environment serves now (production monitoring)."""
    from sqlops.cli import render
    from sqlops.engines.rewrite import check_target
    from sqlops.plan.relations import check_env_name
    from sqlops.run.monitor import test_environment

    check_env_name(env)
    with _loaded_and_connecting(project_dir, target, read_only=False) as (project, connection):
        project.config.notify  # noqa: B018  [notify] and its ${VAR}: checked before anything runs
        check_target(project)
        selected = _select(project, selectors, exclude, env, connection.get)
        engine = connection.get()
        _writing(engine, f"test --env {env}")
        with _interruptible(), render.progress(len(selected), "testing") as listener:
            result = test_environment(
                project, engine, env, selected, listener, [*(selectors or []), *_excluded(exclude)]
            )
    _report(project, result, json_out)


@app.command()
def impact(
    what: Annotated[
        str | None,
        typer.Argument(
            help="MODEL or MODEL.COLUMN whose downstream to show; leave out to see what the "
            "working tree changes."
        ),
    ] = None,
    changed: Annotated[
        bool, typer.Option("--changed", help="Classify what the working tree changes (default).")
    ] = False,
    env: EnvOpt = "prod",
    against: Annotated[
        str | None,
        typer.Option("--against", help="Compare with a git ref (e.g. main) instead of --env."),
    ] = None,
    upstream: Annotated[
        bool, typer.Option("--upstream", help="Where MODEL.COLUMN comes from, not where it goes.")
    ] = False,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="tree, json, markdown or mermaid.")
    ] = "tree",
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when a change is this bad or worse: breaking, modified, additive or "
            "metadata.",
        ),
    ] = None,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """What a change reaches: models, columns and the assertions that cover them."""
    from sqlops.cli.impact import run_impact

    run_impact(what, changed, env, against, upstream, fmt, fail_on, target, project_dir, json_out)


@app.command("ls")
def ls(
    selectors: Selectors = None,
    exclude: Exclude = None,
    env: Annotated[
        str, typer.Option("--env", "-e", help="What the `changed` selector compares with.")
    ] = "prod",
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """List the project's nodes."""
    from rich.markup import escape
    from rich.table import Table

    from sqlops.cli import render

    project = _load(project_dir, target)
    selected = _select(project, selectors, exclude, env)
    rows: list[dict[str, Any]] = []
    for node_id in selected:
        n = project.nodes[node_id]
        rows.append(
            {
                "id": n.id,
                "kind": n.kind.value,
                "materialized": n.materialized.value if n.kind.value == "model" else None,
                "path": n.relpath,
                "depends_on": list(n.depends_on),
                "checks_read": list(n.check_deps),
                "columns": list(n.column_names) if n.column_names is not None else None,
                "column_descriptions": {
                    c.name: c.description for c in n.columns or () if c.description
                },
                "tags": list(n.tags),
                "owner": n.owner,
                "description": n.description,
                "assertions": [a.to_json() for a in n.assertions],
            }
        )
    if json_out:
        render.print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("node", "kind", "materialized", "assertions", "tags", "path"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            escape(r["id"]),
            r["kind"],
            r["materialized"] or "",
            str(len(r["assertions"])),
            escape(", ".join(r["tags"])),
            escape(r["path"]),
        )
    render.out.print(table)
    render.out.print(f"{len(rows)} nodes")


@app.command("compile")
def compile_(
    node_name: Annotated[str, typer.Argument(metavar="MODEL", help="schema.name of a node.")],
    env: EnvOpt = "prod",
    assertions: Annotated[
        bool, typer.Option("--assertions", "-a", help="Also print each assertion's query.")
    ] = False,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """The SQL a node runs on the target, reading the environment's relations."""
    from sqlops.cli import render
    from sqlops.plan.relations import Relations, check_env_name, env_relation
    from sqlops.project.definition import Kind

    check_env_name(env)
    project = _load(project_dir, target)
    node = project.nodes[_one_node(project, node_name)]
    relations = Relations(project, lambda n: env_relation(n, env), project.target.dialect)
    sql = relations.sql(node) if node.kind is Kind.MODEL else node.sql
    checks = {}
    if assertions or node.kind is Kind.TEST:
        for a in node.assertions:
            checks[a.name] = relations.assertion(node, a).sql
    if json_out:
        render.print_json({"id": node.id, "sql": sql, "assertions": checks})
        return
    if sql:
        print(sql)
    for name, query in checks.items():
        print(f"\n-- assertion: {name}\n{query}")


@app.command()
def show(
    node_name: Annotated[str, typer.Argument(metavar="MODEL", help="schema.name of a node.")],
    limit: Annotated[int, typer.Option("--limit", "-n", help="Rows to show.", min=1)] = 10,
    env: EnvOpt = "prod",
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """Preview a node's rows: its SQL run against the environment, without building it."""
    from rich.markup import escape
    from rich.table import Table

    from sqlops.cli import render
    from sqlops.plan.relations import Relations, check_env_name, env_relation, versions_read
    from sqlops.project.definition import Kind
    from sqlops.state.store import StateStore

    check_env_name(env)
    project = _load(project_dir, target)
    node = project.nodes[_one_node(project, node_name)]
    if node.kind is Kind.TEST:
        raise SqlopsError(
            f"{node.id} is a test file, not a relation", hint="use `sqlops test` to run it"
        )
    relations = Relations(project, lambda n: env_relation(n, env), project.target.dialect)
    engine = _engine(project)
    try:
        deployed = StateStore(engine).environment(env)
        reads = node.depends_on if node.kind is Kind.MODEL else (node.id,)
        missing = [n for n in versions_read(project, reads) if n not in deployed]
        if missing:
            raise SqlopsError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not deployed "
                f"in environment `{env}`",
                hint=f"run `sqlops build --env {env}` first",
            )
        if node.kind is Kind.MODEL:
            sql = relations.sql(node)
        else:
            sql = f"SELECT * FROM {engine.quote(env_relation(node, env))}"
        result = engine.query(f"SELECT * FROM ({sql}) AS __sqlops_show LIMIT {int(limit)}")
    finally:
        engine.close()
    if json_out:
        render.print_json([dict(zip(result.columns, row, strict=True)) for row in result.rows])
        return
    table = Table(*(escape(c) for c in result.columns))
    for row in result.rows:
        table.add_row(*(escape("NULL" if v is None else str(v)) for v in row))
    render.out.print(table)


@app.command()
def diff(
    node_name: Annotated[str, typer.Argument(metavar="MODEL", help="schema.name of a model.")],
    env: Annotated[str, typer.Option("--env", "-e", help="The environment to examine.")],
    against: Annotated[
        str, typer.Option("--against", "-a", help="The environment to compare it with.")
    ] = "prod",
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key", "-k", help="Key columns, comma-separated (default: the model's unique())."
        ),
    ] = None,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """Data diff of what two environments serve for a model: schema, rows, changes by key."""
    from sqlops.cli import render
    from sqlops.impact.diff import diff_model
    from sqlops.plan.relations import check_env_name

    check_env_name(env)
    check_env_name(against)
    columns = tuple(c.strip() for option in key or () for c in option.split(",") if c.strip())
    project = _load(project_dir, target)
    node_id = _one_node(project, node_name)
    engine = _engine(project)
    try:
        with _interruptible():
            result = diff_model(project, engine, node_id, env, against, columns)
    finally:
        engine.close()
    if json_out:
        render.print_json(result.to_json())
    else:
        render.data_diff(result)


@app.command()
def dag(
    selectors: Selectors = None,
    exclude: Exclude = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json or mermaid.")] = "text",
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """The dependency graph, in build order."""
    from rich.markup import escape

    from sqlops.cli import render

    if json_out:
        fmt = "json"
    if fmt not in ("text", "json", "mermaid"):
        raise SqlopsError(f"unknown format `{fmt}`", hint="use --format text, json or mermaid")
    project = _load(project_dir, target)
    selected = _select(project, selectors, exclude)
    chosen = set(selected)
    edges = [(a, b) for a, b in project.graph.edges() if a in chosen and b in chosen]
    if fmt == "json":
        render.print_json(
            {
                "nodes": [
                    {"id": n, "kind": project.nodes[n].kind.value, "path": project.nodes[n].relpath}
                    for n in selected
                ],
                "edges": [list(e) for e in edges],
            }
        )
    elif fmt == "mermaid":
        from sqlops.impact.downstream import mermaid

        print(mermaid({n: n for n in selected}, edges))
    else:
        for n in selected:
            node = project.nodes[n]
            deps = [d for d in node.depends_on if d in chosen]
            checks = [d for d in node.check_deps if d in chosen]
            reads = f"  <- {', '.join(deps)}" if deps else ""
            reads += f"  (its checks read {', '.join(checks)})" if checks else ""
            render.out.print(f"{escape(n)} [dim]({node.kind.value}){escape(reads)}[/]")


@app.command()
def history(
    run: Annotated[
        int | None, typer.Argument(metavar="[RUN]", help="A run's id: show what it did.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only runs that included this node.")
    ] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", "-s", help="Only runs that ended so: success, failed, error, interrupted."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs.", min=1)] = 20,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """Recent build and test runs, newest first."""
    from sqlops.cli.history import show_history

    show_history(run, model, env, status, limit, target, project_dir, json_out)


@app.command()
def report(
    since: Annotated[
        str, typer.Option("--since", help="The period: 30d, 12h, 8w, or a date (2026-01-31).")
    ] = "30d",
    env: Annotated[str, typer.Option("--env", "-e", help="The environment measured.")] = "prod",
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML page here.")
    ] = None,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """DataOps metrics over a period: success and failure rates, incidents, DORA, flaky checks."""
    from sqlops.cli.history import show_report

    show_report(since, env, html, target, project_dir, json_out)


if TYPE_CHECKING:
    from sqlops.run.maintenance import Collection, Rollback


@app.command()
def rollback(
    env: EnvOpt = "prod",
    to: Annotated[
        int | None,
        typer.Option(
            "--to", help="The deployment to go back to (default: the previous one).", min=1
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change, change nothing.")
    ] = False,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """Point an environment back at what an earlier deployment served, as a build promotes."""
    from sqlops.plan.relations import check_env_name
    from sqlops.run.maintenance import apply_rollback, open_target, plan_rollback, try_load

    check_env_name(env)
    start = project_dir or Path.cwd()
    engine = open_target(start, target, read_only=dry_run)
    try:
        if not dry_run:
            _writing(engine, f"rollback --env {env}")
        # the project only helps keep `sqlops impact` right: a rollback works without it
        project, problem = try_load(start, target)
        plan = plan_rollback(engine, env, to, project, problem)
        done = plan if dry_run or plan.changes_nothing else apply_rollback(engine, plan)
    finally:
        engine.close()
    _rollback_out(done, dry_run, json_out)


def _rollback_out(done: Rollback, dry_run: bool, json_out: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sqlops.cli import render
    from sqlops.plan.relations import env_relation_of

    if json_out:
        render.print_json({**done.to_json(), "dry_run": dry_run})
        return
    to = done.to
    when = f"deployed {to.deployed_at:%Y-%m-%d %H:%M:%S}" if to.deployed_at else ""
    about = ", ".join(
        x for x in (when, f"commit {to.git_commit[:12]}" if to.git_commit else "") if x
    )
    target = f"deployment {to.id}" + (f" ({about})" if about else "")
    if done.changes_nothing:
        render.out.print(
            f"environment `{escape(done.env)}` already serves what {escape(target)} served: "
            "nothing to do"
        )
        return
    if done.deployment is None:
        render.out.print(
            f"[bold]Rollback of environment `{escape(done.env)}` from deployment "
            f"{done.current} to {escape(target)}[/]"
        )
    else:
        render.out.print(
            f"rolled back environment `{escape(done.env)}` to {escape(target)}: "
            f"recorded as deployment {done.deployment}"
        )
    table = Table(box=None, pad_edge=False)
    for column in ("view", "before", "after"):
        table.add_column(column)
    for s in done.switches:
        table.add_row(
            escape(str(env_relation_of(s.node, done.env))),
            escape(str(s.before.physical) if s.before else "(not served)"),
            escape(str(s.after.physical) if s.after else "(view dropped)"),
        )
    for r in done.repaired:
        table.add_row(
            escape(str(env_relation_of(r.node, done.env))), "(view missing)", str(r.physical)
        )
    render.out.print(table)
    for note in done.notes:
        render.out.print(f"[yellow]note:[/] {escape(note)}")
    if done.deployment is None:
        count = len(done.switches) + len(done.repaired)
        render.out.print(f"{_plural(count, 'view')} to switch; nothing was changed (--dry-run)")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@app.command()
def gc(
    keep: Annotated[
        int,
        typer.Option(
            "--keep",
            help="Also keep what the last N deployments of each environment served.",
            min=0,
        ),
    ] = 5,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be dropped, drop nothing.")
    ] = False,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    json_out: JsonOpt = False,
    debug: Debug = False,
) -> None:
    """Drop the sandbox's physical relations that no environment or recent deployment uses."""
    from sqlops.run.maintenance import collect, open_target, plan_gc

    engine = open_target(project_dir or Path.cwd(), target, read_only=dry_run)
    try:
        if not dry_run:
            _writing(engine, "gc")
        plan = plan_gc(engine, keep)
        done = plan if dry_run else collect(engine, plan)
    finally:
        engine.close()
    _gc_out(done, json_out)


def _gc_out(done: Collection, json_out: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sqlops.cli import render

    if json_out:
        render.print_json(done.to_json())
        return
    relations = _plural(len(done.dropped), "relation")
    if done.dropped:
        table = Table(box=None, pad_edge=False)
        for column in ("relation", "kind", "node", "status", "rows"):
            table.add_column(column)
        for g in done.dropped:
            table.add_row(
                escape(str(g.relation)),
                g.kind,
                escape(g.node or "(not recorded)"),
                g.status or "",
                f"{g.rows:,}" if g.rows is not None else "",
            )
        render.out.print(table)
    rows = f" ({done.rows:,} rows)" if done.rows else ""
    forgot = len(done.forgotten)
    stale = f"; forgot {_plural(forgot, 'record')} of relations already gone"
    if not done.dropped and not forgot:
        render.out.print("nothing to drop" + ("" if done.done else " (--dry-run)"))
    elif not done.done:
        render.out.print(
            f"would drop {relations}{rows}"
            + (stale.replace("forgot", "would forget") if forgot else "")
            + "; nothing was dropped (--dry-run)"
        )
    else:
        render.out.print(f"dropped {relations}{rows}" + (stale if forgot else ""))
    kept = done.kept
    windows = "; ".join(
        f"{env}: {', '.join(map(str, ids))}" for env, ids in done.deployments.items() if ids
    )
    render.out.print(
        f"kept: {kept.get('served', 0)} served by an environment, "
        f"{kept.get('recent_deployments', 0)} served after the last "
        f"{_plural(done.keep, 'deployment')} of an environment"
        f"{f' ({windows})' if windows else ''}, "
        f"{kept.get('read_by_views', 0)} read by a view that is kept"
        + (f", {kept['not_versions']} not made by sqlops" if kept.get("not_versions") else "")
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: the one place where errors become messages and exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("SQLOPS_DEBUG") == "1"
    _scrub_output()
    try:
        # standalone mode: usage errors print themselves and exit 2; Exit(n) exits n
        app(args=args, prog_name="sqlops")
    except SqlopsError as exc:
        from sqlops.cli import render

        if debug:
            traceback.print_exc()
        render.error(exc)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in sqlops; run again with --debug for the traceback and report it",
            file=sys.stderr,
        )
        sys.exit(2)


def _scrub_output() -> None:
    """Everything printed from here on, tracebacks included, is masked of secrets (the values
    of ${VAR} in sqlops.toml, sqlops.secrets)."""
    from sqlops.secrets import ScrubbedStream

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ScrubbedStream):
            setattr(sys, name, ScrubbedStream(stream))

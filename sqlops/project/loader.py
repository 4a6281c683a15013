"""Load a project folder into nodes: find files, render, parse, resolve names, infer columns."""

from __future__ import annotations

import csv
import gc
import hashlib
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlglot import exp, serde
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from sqlops.assertions.parse import ParsedAssertion, parse_assertion
from sqlops.errors import ConfigError, ProjectError, did_you_mean, snippet_at
from sqlops.graph.dag import Graph
from sqlops.graph.lineage import Lineage, MissingColumn
from sqlops.plan.relations import SANDBOX_PREFIX
from sqlops.project.cache import ParseCache, cache_folder, content_key
from sqlops.project.columns import Analysis, analyze_model, validate_assertions
from sqlops.project.config import ProjectConfig, Target, find_project_root, load_config
from sqlops.project.definition import Column, Kind, Materialized, Node
from sqlops.project.directives import Directive, Scanned, scan
from sqlops.project.references import missing_column_error, point
from sqlops.project.resolve import Resolver
from sqlops.project.snapshot import (
    FOLDERS,
    Asts,
    Hashed,
    Lineages,
    Snapshot,
    read_snapshot,
    snapshot_hashes,
    snapshot_key,
    write_snapshot,
)
from sqlops.project.templating import Renderer, TargetInfo
from sqlops.state.store import META
from sqlops.syntax import (
    LineMap,
    TableRef,
    line_map,
    normalize_name,
    not_too_deep,
    parse_statements,
    release,
    sqlglot_dialect,
    statement_lines,
    table_refs,
)


@dataclass
class Project:
    """A loaded project: config, target, nodes in a graph, and each query's parsed SQL."""

    config: ProjectConfig
    target: Target
    nodes: dict[str, Node]
    graph: Graph
    resolver: Resolver
    asts: Asts = field(repr=False)
    # column lineage of each model whose SQL the lineage walk follows
    lineage: Lineages = field(default_factory=lambda: Lineages({}), repr=False)
    # with strict=False: models reading columns their upstream lacks (reader, upstream, column)
    broken: list[tuple[str, str, str, ProjectError]] = field(default_factory=list, repr=False)
    from_snapshot: bool = False  # loaded whole from the cache folder (project/snapshot.py)
    # loaded from the last snapshot, with these nodes read again (files edited since, or reading
    # a model whose columns changed)
    patched: tuple[str, ...] = ()
    cache_folder: Path | None = None  # where this project's caches are, if it has them
    cache_hits: int = 0
    cache_misses: int = 0
    processes: int = 1  # the processes a cold load shared its work among (project/parallel.py)

    @property
    def root(self) -> Path:
        return self.config.root

    @property
    def dialect(self) -> str:
        return self.config.dialect

    def location_path(self, node: Node) -> Path:
        """The file a source reads with @location, checked again to be inside the project: a
        snapshot is used without reading it, and a symlink may have been pointed elsewhere."""
        assert node.location is not None
        path = (self.root / node.location).resolve()
        if not path.is_relative_to(self.root):
            raise ProjectError(
                f"@location `{node.location}` is outside the project folder",
                path=node.path,
                hint="move or copy the file into the project folder (e.g. data/); a symlink "
                "must point inside it too",
            )
        return path

    def ast(self, node_id: str) -> exp.Expr:
        """A fresh copy of a node's query, with every table named `schema.name` of its node."""
        return self.asts[node_id].copy()


@dataclass
class _Parsed:
    node: Node
    text: str
    ast: exp.Expr | None
    refs: list[TableRef]
    ref_tables: list[exp.Table]
    assertions: list[ParsedAssertion]
    lines: LineMap | None = None  # rendered line -> file line
    parse_key: str = ""  # a model's: what its statements were parsed from (the rendered SQL)


def load_project(
    start: Path,
    target_name: str | None = None,
    *,
    use_cache: bool = True,
    lineage: bool = True,
    strict: bool = True,
    cache_root: Path | None = None,
) -> Project:
    """`lineage=False` skips column lineage (fingerprints then fall back to whole models); it is
    there to measure what lineage costs. `strict=False` keeps loading past models that read a
    column their upstream lacks, and lists them in `Project.broken`: impact reports them.
    `cache_root` shares another folder's parse cache (entries are keyed by content)."""
    root = find_project_root(start)
    config = load_config(root)
    target = config.target(target_name)
    folder = cache_folder(cache_root or root) if use_cache else None
    # a snapshot belongs to its project folder: a load of another folder (a git ref) shares
    # only the parse cache
    saved = folder if cache_root is None else None
    hashed = (
        snapshot_key(root, repr((config, target)), lineage, snapshot_hashes(saved))
        if saved
        else Hashed("", {}, 0)
    )
    snapshot = read_snapshot(saved, hashed, _patchable)
    project = None
    if snapshot is not None and snapshot.changed is not None:
        # the files of some models changed since the last load: only they are loaded again
        cache = ParseCache(folder, appending=True)
        loader = _Loader(config, target, cache, lineage)
        project = loader.patch(snapshot)
        if project is not None:
            cache.save()
            project.cache_hits, project.cache_misses = cache.hits, cache.misses
            env_read = snapshot.env | loader.renderer.env_read
            _save(saved, hashed, project, env_read)
    elif snapshot is not None:
        nodes = snapshot.nodes
        project = Project(
            config,
            target,
            nodes,
            Graph(nodes, snapshot.order),
            Resolver(nodes.values()),
            snapshot.asts,
            snapshot.lineage,
            snapshot.broken,
            from_snapshot=True,
        )
    if project is None:
        cache = ParseCache(folder)
        loader = _Loader(config, target, cache, lineage)
        project = loader.load()
        cache.save()
        project.cache_hits, project.cache_misses = cache.hits, cache.misses
        env_read = loader.renderer.env_read
        # the parse cache's entries are every model's tree again: gone before the snapshot
        # makes its own copy (the peak memory of a cold load)
        del loader, cache
        _save(saved, hashed, project, env_read)
    project.cache_folder = folder
    if strict and project.broken:
        raise project.broken[0][3]
    return project


def _save(
    folder: Path | None, hashed: Hashed, project: Project, env_read: dict[str, str | None]
) -> None:
    """Keep a loaded project as the snapshot of the files `hashed` found."""
    files_read = [
        str((project.root / n.location).resolve())
        for n in project.nodes.values()
        if n.location is not None
    ]
    snapshot = Snapshot(
        project.nodes,
        project.asts,
        project.lineage,
        project.broken,
        project.graph.topological(),
    )
    write_snapshot(folder, hashed, snapshot, env_read, files_read)


class _Collector:
    """Python's cyclic garbage collector during a whole load. A parsed tree is thousands of
    objects in cycles (each node points to its parent), and the load keeps every model's until
    it is settled. Left to itself, the collector walked them again at each collection of an
    older generation: 15% of a cold load of 10,000 models.

    Here it runs only when told: every `EVERY` models, a collection of the young generations
    finds what died in cycles since the last (little: the load frees its own copies of trees,
    `syntax.release`), and what is still alive is frozen (`gc.freeze`), so that no collection
    walks it again; it is unfrozen when the load ends. Measured on 10,000 models in two load
    processes: the collector's time in each 1.75 s to 0.45 s, peak memory the same."""

    EVERY = 50

    def __enter__(self) -> _Collector:
        self._enabled = gc.isenabled()  # the host may have turned it off: it stays off
        gc.disable()
        self._made = 0
        return self

    def made_one(self) -> None:
        self._made += 1
        if self._made % self.EVERY == 0 and self._enabled:
            gc.collect(1)
            gc.freeze()

    def __exit__(self, *exc: object) -> None:
        gc.unfreeze()
        if self._enabled:
            gc.enable()


# a cold load of this many models or more is shared among processes (project/parallel.py);
# below it, starting them costs more than they save
PARALLEL_MODELS = 400


def load_processes(models: int, cache: ParseCache) -> int:
    """How many processes a load of this many models shares its work among (1: this one
    alone). `$SQLOPS_LOAD_PROCESSES` sets it; otherwise the cores, at most 4, for a large
    project whose parse cache does not already hold a load of it."""
    setting = os.environ.get("SQLOPS_LOAD_PROCESSES", "").strip()
    if setting and (not setting.isdecimal() or not 1 <= int(setting) <= 64):
        raise ConfigError(
            f"SQLOPS_LOAD_PROCESSES is `{setting}`, not a number of processes from 1 to 64",
            hint="set it to 1 to load in one process, or to 2 or more; unset, sqlops "
            "chooses from the cores",
        )
    # new interpreters of this one are started: not where there is no such program (an
    # embedded or frozen Python), nor on Windows (the sockets are passed as descriptors)
    if os.name != "posix" or not sys.executable or getattr(sys, "frozen", False):
        return 1
    if cache.size >= models:  # a load of it is cached: one process reads it
        return 1
    if setting:
        return int(setting)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if models < PARALLEL_MODELS or (cores or 1) < 2:
        return 1
    return min(cores or 1, 4)


def _loads(relpath: str) -> bool:
    """Whether a load reads this file of the project (a relpath of `snapshot_key`'s)."""
    folder, _, name = relpath.partition(os.sep)
    return name.endswith(".csv" if folder == "seeds" else ".sql") and folder in FOLDERS


def _patchable(changed: tuple[str, ...]) -> bool:
    """Whether `_Loader.patch` can load these changed files alone: models and tests only."""
    return all(p.partition(os.sep)[0] in ("models", "tests") or not _loads(p) for p in changed)


class _Loader:
    def __init__(
        self,
        config: ProjectConfig,
        target: Target,
        cache: ParseCache,
        lineage: bool,
    ) -> None:
        self.with_lineage = lineage
        self.broken: list[tuple[str, str, str, ProjectError]] = []
        self.config = config
        self.root = config.root
        self.dialect = config.dialect
        self.target = target
        self.cache = cache
        self.default_schema = self._norm(config.default_schema)
        macro_files = [(p, _read(p)) for p in _files(self.root / "macros", ".sql")]
        self.renderer = Renderer(
            config.vars,
            TargetInfo(target.name, target.engine, self.default_schema),
            macro_files,
            self.dialect,
        )

    def _norm(self, name: str) -> str:
        return normalize_name(name, self.dialect)

    def _relpath(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def load(self) -> Project:
        models = _files(self.root / "models", ".sql")
        processes = load_processes(len(models), self.cache)
        if processes > 1:
            from sqlops.project.parallel import load_in_parallel

            project = load_in_parallel(self, models, processes)
            if project is not None:
                return project
        with _Collector() as collector:
            return self._load(models, collector)

    def _load(self, models: list[Path], collector: _Collector) -> Project:
        parsed: list[_Parsed] = []
        for path in models:
            parsed.append(self._model(path))
            collector.made_one()
        parsed += self.others()
        by_id = self.check_unique(parsed)
        resolver = Resolver(p.node for p in parsed)
        found = {item.node.id: item.node for item in parsed}
        nodes: dict[str, Node] = {}
        asts: dict[str, exp.Expr] = {}
        ast_keys: dict[str, str] = {}
        for item in parsed:
            node, ast_keys[item.node.id] = self._link(item, resolver, found)
            nodes[node.id] = node
            if item.ast is not None:
                asts[node.id] = item.ast

        graph = Graph(nodes)
        lineage = Lineages({})
        for node_id in graph.topological():
            self._settle(by_id[node_id], nodes, asts, ast_keys[node_id], lineage, resolver)
            collector.made_one()
        return Project(
            self.config, self.target, nodes, graph, resolver, Asts(asts), lineage, self.broken
        )

    def others(self) -> list[_Parsed]:
        """The files besides models: sources, seeds and tests, in the order a load reads them."""
        parsed = [self._source(path) for path in _files(self.root / "sources", ".sql")]
        parsed += [self._seed(path) for path in _files(self.root / "seeds", ".csv")]
        return parsed + [self._test(path) for path in _files(self.root / "tests", ".sql")]

    @staticmethod
    def check_unique(parsed: list[_Parsed]) -> dict[str, _Parsed]:
        """Each item by its node's id; an error for a relation two files define."""
        by_id: dict[str, _Parsed] = {}
        for item in parsed:
            other = by_id.get(item.node.id)
            if other is not None:
                raise ProjectError(
                    f"{item.node.kind.value} `{item.node.id}` is also defined by {other.node.relpath}",
                    path=item.node.path,
                    hint="each relation may be defined once; rename or move one of the files",
                )
            by_id[item.node.id] = item
        return by_id

    def patch(self, old: Snapshot) -> Project | None:
        """The project again after some model or test files changed (`old.changed`): those
        files are read again, and what reads a model whose columns changed is analysed again;
        everything else is the old snapshot's. None when a change needs a whole load: a file
        added or removed, a macro, a source or a seed."""
        nodes = dict(old.nodes)
        by_relpath = {node.relpath: node for node in nodes.values()}
        edited: list[str] = []
        for relpath in old.changed or ():
            node = by_relpath.get(relpath)
            if node is None and not _loads(relpath):
                continue  # a file no load reads (a README in models/, the settings file)
            if node is None or node.kind not in (Kind.MODEL, Kind.TEST):
                return None
            edited.append(node.id)
        resolver = Resolver(nodes.values())
        items: dict[str, _Parsed] = {}
        ast_keys: dict[str, str] = {}

        def read_again(node_id: str) -> None:
            path = nodes[node_id].path
            _check_inside(path, self.root)  # listed by an earlier load: a symlink may have moved
            item = self._model(path) if nodes[node_id].kind is Kind.MODEL else self._test(path)
            items[node_id] = item
            nodes[node_id], ast_keys[node_id] = self._link(item, resolver, nodes)
            if item.ast is not None:
                old.asts[node_id] = item.ast

        for node_id in edited:
            read_again(node_id)
        same_edges = all(nodes[n].all_deps == old.nodes[n].all_deps for n in edited)
        graph = Graph(nodes, old.order if same_edges else None)
        readers: dict[str, set[str]] = {}
        for node in nodes.values():
            for dep in (*node.all_deps, *node.assertion_reads):
                readers.setdefault(dep, set()).add(node.id)
        lineage = old.lineage
        pending = set(edited)
        for node_id in graph.topological():
            if node_id not in pending:
                continue
            if node_id not in items:
                read_again(node_id)
            self.broken = [b for b in self.broken if b[0] != node_id]
            lineage.pop(node_id, None)
            self._settle(items[node_id], nodes, old.asts, ast_keys[node_id], lineage, resolver)
            if nodes[node_id].columns != old.nodes[node_id].columns:
                pending |= readers.get(node_id, set())
        kept = [b for b in old.broken if b[0] not in items]
        return Project(
            self.config,
            self.target,
            nodes,
            graph,
            resolver,
            old.asts,
            lineage,
            kept + self.broken,
            patched=tuple(graph.topological(items)),
        )

    def _link(
        self, item: _Parsed, resolver: Resolver, nodes: Mapping[str, Node]
    ) -> tuple[Node, str]:
        """An item's node with what it reads resolved (its query's tables now name their
        nodes), and what decides its query from now on: the rendered SQL and the node each table
        reference resolved to (keys the analysis and canonical SQL; "" without a query)."""
        node, targets = self.linked(item, resolver)
        return node, self.point(item, [nodes[t] for t in targets])

    def point(self, item: _Parsed, targets: list[Node]) -> str:
        """Name in the item's query, for each table reference, the node it resolved to
        (`linked`'s targets); the key of what decides the query from now on ("" without one)."""
        if item.ast is None:
            return ""
        point(item.ast, item.ref_tables, targets, self.dialect)
        return content_key("ast", self.dialect, item.parse_key, *(t.id for t in targets))

    def linked(self, item: _Parsed, resolver: Resolver) -> tuple[Node, list[str]]:
        """An item's node with what it and its assertions read resolved, and the node each
        table reference of its query resolved to (in their order)."""
        node = item.node
        deps: list[str] = []
        ref_lines: dict[str, int] = {}
        for ref in item.refs:
            target_id = resolver.resolve(ref, node, item.text)
            if target_id == node.id:
                raise ProjectError(
                    f"{node.id} reads itself",
                    path=node.path,
                    line=ref.line,
                    column=ref.column,
                    snippet=snippet_at(item.text, ref.line, ref.column),
                    hint="a model cannot read its own relation; did you mean a source?",
                )
            deps.append(target_id)
            ref_lines.setdefault(target_id, ref.line)
        targets = list(deps)
        check_deps: list[str] = []
        assertion_reads: list[str] = []
        assertions = []
        for pa in item.assertions:
            for ref in pa.refs:
                target_id = resolver.resolve(ref, node, item.text)
                if target_id != node.id:
                    assertion_reads.append(target_id)
                if target_id != node.id and target_id not in deps:
                    check_deps.append(target_id)
                ref_lines.setdefault(target_id, pa.assertion.line)
            assertions.append(replace(pa.assertion, owner=node.id))
        if node.kind is Kind.TEST:  # a test has no data: what its checks read is all it has
            deps, check_deps = check_deps, []
        linked = replace(
            node,
            depends_on=tuple(dict.fromkeys(deps)),
            check_deps=tuple(dict.fromkeys(check_deps)),
            assertion_reads=tuple(dict.fromkeys(assertion_reads)),
            ref_lines=ref_lines,
            assertions=tuple(assertions),
        )
        return linked, targets

    def _settle(
        self,
        item: _Parsed,
        nodes: dict[str, Node],
        asts: Mapping[str, exp.Expr],
        ast_key: str,
        lineage: MutableMapping[str, Lineage],
        resolver: Resolver,
    ) -> None:
        """A node once its upstream is settled: a model's columns, lineage and canonical SQL;
        then its assertions' columns are checked."""
        self.analyze(item, nodes, asts, ast_key, lineage)
        self.check(item, nodes, resolver)

    def check(self, item: _Parsed, nodes: dict[str, Node], resolver: Resolver) -> None:
        """The columns its assertions name, against its settled node (in `nodes`)."""
        node = nodes[item.node.id]
        validate_assertions(node, item.assertions, item.text, nodes, resolver, self.dialect)

    def analyze(
        self,
        item: _Parsed,
        nodes: dict[str, Node],
        asts: Mapping[str, exp.Expr],
        ast_key: str,
        lineage: MutableMapping[str, Lineage],
        *,
        consume: bool = False,
    ) -> None:
        """A model's columns, lineage and canonical SQL, once its upstream is settled (in
        `nodes`, where its node is replaced). A model reading a column its upstream lacks is
        kept in `broken`. With `consume`, its tree is this call's to change (a load process
        has sent its pickle already): the canonical SQL is printed from it, not from a copy."""
        with not_too_deep(item.node.path):
            node_id = item.node.id
            node = nodes[node_id]
            if node.kind is Kind.MODEL:
                try:
                    analysis = analyze_model(
                        node,
                        asts[node_id],
                        nodes,
                        self.dialect,
                        self.cache,
                        lineage=self.with_lineage,
                        ast_key=ast_key,
                    )
                except MissingColumn as missing:
                    error = missing_column_error(
                        missing, item.node.path, item.text, item.lines, nodes.get(missing.node_id)
                    )
                    self.broken.append((node_id, missing.node_id, missing.column, error))
                    analysis = Analysis(None, None)
                if analysis.lineage is not None:
                    lineage[node_id] = analysis.lineage
                # quoting every identifier makes `id` and `"id"` the same where the dialect does
                canonical_key = content_key("canonical", ast_key)
                canonical = self.cache.get(canonical_key)
                if not isinstance(canonical, str):
                    # the copy is this call's own, so the generator need not copy it again
                    tree = asts[node_id] if consume else asts[node_id].copy()
                    dialect = sqlglot_dialect(self.dialect)
                    canonical = normalize_identifiers(tree, dialect=dialect).sql(
                        dialect, copy=False, comments=False, identify=True
                    )
                    if not consume:
                        release(tree)
                    self.cache.put(canonical_key, canonical)
                nodes[node_id] = replace(node, columns=analysis.columns, canonical=canonical)

    # -- one file of each kind --------------------------------------------------------------

    def _split(self, path: Path, folder: str) -> tuple[str, str]:
        parts = path.relative_to(self.root / folder).parts
        schema = self._norm(parts[0]) if len(parts) > 1 else self.default_schema
        if len(parts) > 1 and "." in parts[0]:
            raise ProjectError(
                f"`{folder}/{parts[0]}`: a dot in a schema folder would make "
                f"`{parts[0]}.{path.stem}` name a table of database `{parts[0].split('.')[0]}`",
                path=path,
                hint="use letters, digits and _ in folder names",
            )
        if "." in path.stem:
            raise ProjectError(
                f"`{path.name}`: a dot in a file name would make `{schema}.{path.stem}` look like "
                "a longer name",
                path=path,
                hint="use letters, digits and _ in file names",
            )
        if schema in self.target.reserved_schemas:
            raise ProjectError(
                f"schema `{schema}` has the name of a database of target `{self.target.name}`, "
                "and the database cannot tell the two apart",
                path=path,
                hint="rename the folder, or the target's database file",
            )
        if (
            "__" in schema
            or schema in (META, SANDBOX_PREFIX.rstrip("_"))
            or schema.startswith(SANDBOX_PREFIX)
        ):
            raise ProjectError(
                f"schema `{schema}` is reserved: sqlops names its own schemas with `__` "
                f"(environments `<schema>__<env>`, the sandbox `{SANDBOX_PREFIX}<schema>`) and "
                f"keeps its state in `{META}`",
                path=path,
                hint="rename the folder to a schema name without a double underscore",
            )
        return schema, self._norm(path.stem)

    def _start(
        self, path: Path, kind: Kind, folder: str
    ) -> tuple[str, Node, Scanned, list[ParsedAssertion]]:
        """Read a SQL file of a model, source or test: its node, directives and assertions."""
        text = _read(path)
        if kind is Kind.TEST:
            schema, name = "", self._norm(str(path.relative_to(self.root / folder).with_suffix("")))
        else:
            schema, name = self._split(path, folder)
        node = Node(
            id=f"test:{name}" if kind is Kind.TEST else f"{schema}.{name}",
            kind=kind,
            schema=schema,
            name=name,
            path=path,
            relpath=self._relpath(path),
            content_hash=_hash(text),
        )
        scanned = scan(text, path)
        node, parsed_assertions = self._directives(node, scanned.directives, text)
        return text, node, scanned, parsed_assertions

    def _model(self, path: Path) -> _Parsed:
        text, node, scanned, parsed_assertions = self._start(path, Kind.MODEL, "models")
        statements, rendered, lines = self._parse(scanned.body, node, text)
        if not statements:
            raise ProjectError(
                "the model has no SQL",
                path=path,
                hint="a model file holds one SELECT (CTEs welcome)",
            )
        if len(statements) > 1 or not isinstance(statements[0], exp.Query):
            which = 0 if len(statements) == 1 else 1
            kind = type(statements[which]).__name__.upper()
            starts = statement_lines(rendered, self.dialect)
            line = lines(starts[which]) if which < len(starts) else None
            raise ProjectError(
                f"a model is exactly one SELECT; this file holds {len(statements)} statement(s), "
                f"the {'first' if which == 0 else 'second'} of them {kind}",
                path=path,
                line=line,
                snippet=snippet_at(text, line) if line else None,
                hint="keep one SELECT per model file; put DDL for raw tables in sources/",
            )
        ast = statements[0]
        tables = [
            (table, replace(ref, line=lines(ref.line)))
            for table, ref in table_refs(ast, 0, self.dialect)
        ]
        return _Parsed(
            node,
            text,
            ast,
            [r for _, r in tables],
            [t for t, _ in tables],
            parsed_assertions,
            lines,
            content_key("parse", self.dialect, rendered),
        )

    def _source(self, path: Path) -> _Parsed:
        text, node, scanned, parsed_assertions = self._start(path, Kind.SOURCE, "sources")
        schema, name = node.schema, node.name
        statements, _, _ = self._parse(scanned.body, node, text)
        create = statements[0] if len(statements) == 1 else None
        if not isinstance(create, exp.Create) or not isinstance(create.this, exp.Schema):
            raise ProjectError(
                "a source declares its table with one CREATE TABLE statement",
                path=path,
                hint=f"write CREATE TABLE {schema}.{name} (id INTEGER, ...) with every column",
            )
        table = create.this.this
        declared = (
            self._norm(table.db) if table.db else schema,
            normalize_name(table.name, self.dialect, table.this.quoted),
        )
        if declared != (schema, name):
            raise ProjectError(
                f"declares `{declared[0]}.{declared[1]}` but its path makes it `{schema}.{name}`",
                path=path,
                hint=f"rename the file to sources/{declared[0]}/{declared[1]}.sql "
                "or fix the CREATE TABLE name",
            )
        columns = tuple(
            Column(
                col.name,
                col.args["kind"].sql(self.dialect) if col.args.get("kind") else None,
                " ".join(c.strip() for c in col.comments or []) or None,
            )
            for col in create.this.expressions
            if isinstance(col, exp.ColumnDef)
        )
        for col in columns:
            if col.type is not None and not _TYPE_NAME.fullmatch(col.type):
                raise ProjectError(
                    f"column `{col.name}` is declared as `{col.type}`, which is not a type",
                    path=path,
                    hint="declare a type of the database: INTEGER, VARCHAR, DECIMAL(10, 2), "
                    "a type's plain name, ...",
                )
        seen: set[str] = set()
        for col in columns:
            if self._norm(col.name) in seen:
                raise ProjectError(
                    f"column `{col.name}` is declared twice",
                    path=path,
                    hint="each column of the CREATE TABLE must have its own name",
                )
            seen.add(self._norm(col.name))
        if not columns:
            raise ProjectError(
                "the source declares no columns", path=path, hint="list its columns with types"
            )
        canonical = create.sql(self.dialect, comments=False)
        node = replace(node, columns=columns, canonical=canonical, sql=canonical)
        if node.location is not None:
            location = (self.root / node.location).resolve()
            line = next((d.line for d in scanned.directives if d.keyword == "location"), None)
            # checked before it is read, and before whether it exists: a project says nothing
            # of the files around it
            if not location.is_relative_to(self.root):
                raise ProjectError(
                    f"@location `{node.location}` is outside the project folder",
                    path=path,
                    line=line,
                    snippet=snippet_at(text, line) if line else None,
                    hint="move or copy the file into the project folder (e.g. data/) and give "
                    "its path relative to that folder; a symlink must point inside it too",
                )
            try:
                found = location.is_file()
            except OSError as exc:  # a path the system refuses (too long, ...)
                raise ProjectError(
                    f"@location `{node.location[:80]}{'...' if len(node.location) > 80 else ''}` "
                    f"cannot be read: {exc.strerror or exc}",
                    path=path,
                    line=line,
                    hint="give a shorter path, relative to the project folder (e.g. data/x.csv)",
                ) from None
            if not found:
                raise ProjectError(
                    f"@location file `{node.location}` does not exist",
                    path=path,
                    line=line,
                    snippet=snippet_at(text, line) if line else None,
                    hint="the path is relative to the project folder (where sqlops.toml is)",
                )
            if location.suffix.lower() not in (".csv", ".parquet", ".json", ".tsv"):
                raise ProjectError(
                    f"@location `{node.location}` is not a .csv, .tsv, .json or .parquet file",
                    path=path,
                    line=line,
                )
        return _Parsed(node, text, None, [], [], parsed_assertions)

    def _seed(self, path: Path) -> _Parsed:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ProjectError(f"cannot read: {exc.strerror or exc}", path=path) from None
        schema, name = self._split(path, "seeds")
        try:
            header = next(csv.reader(raw.decode("utf-8-sig").splitlines()), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ProjectError(f"cannot read the seed as CSV: {exc}", path=path, line=1) from None
        names = [h.strip() for h in header]
        if not names or any(not h for h in names):
            raise ProjectError(
                "the seed's first line must name every column",
                path=path,
                line=1,
                hint="add a header row such as `id,name,amount`",
            )
        seen: set[str] = set()
        for h in names:
            key = self._norm(h)
            if key in seen:
                raise ProjectError(f"column `{h}` appears twice in the header", path=path, line=1)
            seen.add(key)
        node = Node(
            id=f"{schema}.{name}",
            kind=Kind.SEED,
            schema=schema,
            name=name,
            path=path,
            relpath=self._relpath(path),
            columns=tuple(Column(h) for h in names),
            content_hash=hashlib.sha256(raw).hexdigest(),
        )
        return _Parsed(replace(node, canonical=f"seed {node.content_hash}"), "", None, [], [], [])

    def _test(self, path: Path) -> _Parsed:
        text, node, scanned, parsed_assertions = self._start(path, Kind.TEST, "tests")
        name = node.name
        # the body has its directives blanked, line for line: errors show the file as written
        body = self.renderer.render(scanned.body, path, None, file_text=text)
        statements = parse_statements(body, self.dialect, path, text) if body.strip() else []
        if statements:
            query = statements[0]
            if len(statements) > 1 or not isinstance(query, exp.Query):
                raise ProjectError(
                    "a test file holds assertion directives, or one SELECT returning failing rows",
                    path=path,
                    hint="split it into several files, or write checks as -- @assert lines",
                )
            # the query's first line, past any plain comments above it
            line = next(
                (
                    i
                    for i, raw in enumerate(body.splitlines(), start=1)
                    if raw.strip() and not raw.strip().startswith("--")
                ),
                1,
            )
            # the file's name names the check, whatever characters it has
            parsed = parse_assertion(
                f"test_file: {query.sql(self.dialect, comments=False)}",
                blocking=True,
                path=path,
                relpath=node.relpath,
                line=line,
                file_text=text,
                dialect=self.dialect,
                standalone=True,
            )
            parsed_assertions.append(
                replace(parsed, assertion=replace(parsed.assertion, name=name))
            )
        if not parsed_assertions:
            raise ProjectError(
                "the test file has no assertions",
                path=path,
                hint="add `-- @assert (SELECT ...) = (SELECT ...)` lines or a SELECT "
                "returning the rows that break the rule",
            )
        return _Parsed(node, text, None, [], [], parsed_assertions)

    # -- shared steps --------------------------------------------------------------------------

    def _parse(self, body: str, node: Node, text: str) -> tuple[list[exp.Expr], str, LineMap]:
        """Render and parse a body: its statements, the rendered SQL, and where lines came from."""
        rendered = self.renderer.render(body, node.path, (node.schema, node.name), file_text=text)
        lines = line_map(body, rendered)
        key = content_key("parse", self.dialect, rendered)
        cached = self.cache.get(key)
        if cached is not None:
            try:
                loaded = [serde.load(e) for e in cached]
            except Exception:  # a damaged entry is only a cache miss
                loaded = []
            if loaded and all(isinstance(e, exp.Expr) for e in loaded):
                return [e for e in loaded if isinstance(e, exp.Expr)], rendered, lines
        statements = parse_statements(rendered, self.dialect, node.path, text, lines=lines)
        self.cache.put(key, [serde.dump(e) for e in statements])
        return statements, rendered, lines

    def _directives(
        self, node: Node, directives: tuple[Directive, ...], text: str
    ) -> tuple[Node, list[ParsedAssertion]]:
        assertions: list[ParsedAssertion] = []
        description: list[str] = []
        tags: list[str] = []
        changes: dict[str, object] = {}
        seen_once: set[str] = set()
        for d in directives:

            def fail(message: str, hint: str, d: Directive = d) -> ProjectError:
                return ProjectError(
                    message,
                    path=node.path,
                    line=d.line,
                    column=d.column,
                    snippet=snippet_at(text, d.line, d.column),
                    hint=hint,
                )

            if d.keyword in ("assert", "warn"):
                this = (node.schema, node.name) if node.kind is not Kind.TEST else None
                rendered = self.renderer.render(
                    d.text, node.path, this, first_line=d.line, file_text=text
                )
                assertions.append(
                    parse_assertion(
                        rendered,
                        blocking=d.keyword == "assert",
                        path=node.path,
                        relpath=node.relpath,
                        line=d.line,
                        file_text=text,
                        dialect=self.dialect,
                        standalone=node.kind is Kind.TEST,
                    )
                )
            elif node.kind is Kind.TEST:
                raise fail(
                    f"@{d.keyword} has no meaning in a test file",
                    "tests/ files hold only @assert and @warn directives",
                )
            elif d.keyword in changes or d.keyword in seen_once:
                raise fail(f"@{d.keyword} is given twice", "keep one of them")
            elif d.keyword == "description":
                description.append(d.text)
            elif d.keyword == "tags":
                tags += [t for t in d.text.replace(",", " ").split() if t]
            elif d.keyword == "owner":
                changes["owner"] = d.text
            elif d.keyword == "materialized":
                if node.kind is not Kind.MODEL:
                    raise fail("only models have @materialized", "remove the directive")
                value = d.text.strip().lower()
                if value == "incremental":
                    raise fail(
                        "@materialized incremental is not supported yet",
                        "use table (the default), view or ephemeral",
                    )
                try:
                    changes["materialized"] = Materialized(value)
                except ValueError:
                    raise fail(
                        f"unknown materialization `{d.text}`"
                        f"{did_you_mean(value, [m.value for m in Materialized])}",
                        "use table (the default), view or ephemeral",
                    ) from None
            elif d.keyword == "location":
                if node.kind is not Kind.SOURCE:
                    raise fail("only sources have @location", "move it to a file in sources/")
                if not d.text:
                    raise fail("@location needs a file path", "e.g. -- @location data/orders.csv")
                changes["location"] = d.text
            elif d.keyword == "unique_key":
                seen_once.add("unique_key")  # for incremental models, which are not built yet
        if description:
            changes["description"] = " ".join(description)
        if tags:
            changes["tags"] = tuple(dict.fromkeys(tags))
        return replace(node, **changes), assertions  # type: ignore[arg-type]


# a declared column type as sqlglot prints it: words, numbers, dots, brackets, commas, spaces
# and <> of nested types; a name sqlglot does not know is printed as written, so this keeps a
# quoted "type" from carrying SQL into the statements that cast to it
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TYPE_NAME = re.compile(r"[\w .,()\[\]<>]+")


def _files(folder: Path, suffix: str) -> list[Path]:
    """The files of one of the project's folders, hidden ones (and those in hidden folders)
    left out, in the order of their paths' parts. Symlinked folders below it are not followed
    (as in snapshot.py); a file that resolves outside the project folder is an error, so that a
    symlink cannot make sqlops read, or build from, a file elsewhere."""
    if not folder.is_dir():
        return []
    root = folder.parent  # models/, seeds/, ... are folders of the (resolved) project folder
    found: list[tuple[list[str], str, bool]] = []  # (parts below the folder, path, a link?)
    _scan(str(folder), [], suffix, found)
    found.sort(key=lambda f: f[0])
    # below a folder inside the project only a file itself can be a link (folders linked
    # below it are not walked), so only a link is followed to where it leads: a path resolved
    # is a system call for each of its parts, a second of a load of 10,000 files
    # (on Windows a junction is no link, and is walked: every path is resolved there)
    real_folder = (
        os.name == "posix" and not folder.is_symlink() and folder.resolve().is_relative_to(root)
    )
    paths = []
    for _, path, link in found:
        paths.append(Path(path))
        _check_inside(paths[-1], root, followed=not real_folder or link)
    return paths


def _scan(
    folder: str, parts: list[str], suffix: str, found: list[tuple[list[str], str, bool]]
) -> None:
    """`_files`'s walk, one folder: what a directory entry knows of itself (its type, whether
    it is a link) costs no system call, where a `Path` asks again for each."""
    try:
        with os.scandir(folder) as listed:
            entries = list(listed)
    except PermissionError:
        return
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        link = entry.is_symlink()
        if entry.is_dir() and not link:
            _scan(entry.path, [*parts, name], suffix, found)
        elif name.endswith(suffix) and entry.is_file():
            found.append(([*parts, name], entry.path, link))


def _check_inside(path: Path, root: Path, *, followed: bool = True) -> None:
    """A project file must be in the project folder once symlinks are followed, and its name
    may hold no control character (it becomes a node's name, printed to terminals)."""
    bad = _CONTROL.search(str(path.relative_to(root)))
    if bad is not None:
        raise ProjectError(
            f"the file's name holds the control character {bad.group()!r}",
            path=path,
            hint="rename the file: names of models, sources, seeds, tests and their folders "
            "become relation names, and are printed",
        )
    if not followed:
        return
    real = path.resolve()
    if not real.is_relative_to(root):
        raise ProjectError(
            f"resolves to {real}, outside the project folder",
            path=path,
            hint="copy the file into the project, or point the symlink at a file inside "
            "the project folder; sqlops reads only the project's own files",
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ProjectError(
            f"is not UTF-8 text (byte {exc.start})", path=path, hint="save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ProjectError(f"cannot read: {exc.strerror}", path=path) from None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

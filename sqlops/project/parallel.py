"""A cold load of a large project, shared among processes.

A load's time is Python's: parsing each model, qualifying its columns and walking its lineage
(sqlglot) hold the interpreter's one lock, so threads would only take turns. A cold load of many
models (`loader.load_processes`) starts one process per core instead, each a new interpreter
(nothing of this process is copied: not its threads, not a database connection opening beside
the load), and gives each a fixed share of the model files:

1. each process reads, renders and parses its share, keeps the parsed queries, and sends back
   what the rest of the load needs of them: nodes, table references, assertions;
2. this process reads sources, seeds and tests meanwhile, then resolves every reference (only it
   knows the whole project's names) and orders the graph;
3. models are then settled in dependency order: a model whose upstream is settled goes to the
   process that parsed it, with the upstream nodes that process has not seen yet; it sends back
   the model's columns, canonical SQL, parse cache entries and lineage (already pickled, as the
   snapshot keeps it). This process checks the model's assertions, and keeps its query for the
   snapshot as the parse-cache entry its process sent while parsing, with the nodes its tables
   resolved to (`Asts.freeze_parsed`).

Errors are told by this process, as one process alone would tell them: a process stops at the
first error of its share, and the first file in the load's order wins. An error found while
settling (where the order is the graph's), or anything unexpected in a process, makes the
load start again in this process alone, which tells exactly what it would have told.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
import traceback
from collections import defaultdict
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from sqlops.errors import ProjectError
from sqlops.graph.dag import Graph
from sqlops.graph.lineage import Lineage
from sqlops.project.cache import FORMAT, ParseCache
from sqlops.project.definition import Kind, Node
from sqlops.project.loader import Project, _Collector, _Loader, _Parsed
from sqlops.project.resolve import Resolver
from sqlops.project.snapshot import Asts, Lineages
from sqlops.syntax import release


class _Failed(Exception):
    """The parallel load cannot finish: the load starts again in one process."""


def load_in_parallel(loader: _Loader, models: list[Path], processes: int) -> Project | None:
    """The project, its models' work shared among `processes` processes; None when it must be
    loaded again in one process (see the module's docstring)."""
    started: list[tuple[subprocess.Popen[bytes], Connection]] = []
    finished = False
    try:
        for _ in range(processes):
            ours, theirs = socket.socketpair()
            conn = Connection(ours.detach())
            try:
                with theirs:
                    process = subprocess.Popen(
                        [sys.executable, "-P", "-c", _START, str(theirs.fileno()), *sys.path],
                        pass_fds=(theirs.fileno(),),
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
            except BaseException:
                conn.close()
                raise
            started.append((process, conn))
        for _, conn in started:
            # a process that does not answer, or runs another sqlops or sqlglot, is not used
            if not conn.poll(_READY_WITHIN) or conn.recv() != ("ready", FORMAT):
                raise _Failed("a load process did not start")
            conn.send(("start", loader.config, loader.target, loader.with_lineage))
        with _Collector() as collector:
            project = _Coordinator(loader, [conn for _, conn in started], collector).load(models)
        finished = True
        return project
    except ProjectError:
        raise
    except Exception as exc:  # _Failed, or anything unexpected: one process loads it again
        if os.environ.get("SQLOPS_DEBUG") == "1":
            print(f"sqlops: the load starts again in one process: {exc}", file=sys.stderr)
        return None
    finally:
        for process, conn in started:
            conn.close()  # a process that is still working ends when its socket closes
            try:
                if not finished:
                    process.kill()
            finally:
                process.wait()


# a load process: a new interpreter, not a fork (nothing of this process is copied) and not
# multiprocessing's spawn (which runs the main script again, a user's script too); it imports
# what this process imports (its sys.path, given after the socket's descriptor)
_START = (
    "import sys; sys.path[:0] = sys.argv[2:]; from sqlops.project.parallel import serve; serve()"
)
_READY_WITHIN = 30.0  # seconds for a new interpreter to import sqlops and say so


class _Coordinator:
    """This process's side: hands out the work, and puts the project together."""

    def __init__(self, loader: _Loader, conns: list[Connection], collector: _Collector) -> None:
        self.loader = loader
        self.conns = conns
        self.collector = collector  # what it is sent is kept to the end, as a load's trees

    def _receive(self, conn: Connection, expected: str) -> tuple[Any, ...]:
        return self._expect(self._message(conn), expected)

    @staticmethod
    def _message(conn: Connection) -> tuple[Any, ...]:
        try:
            message: tuple[Any, ...] = conn.recv()
        except (EOFError, OSError) as exc:  # the process died (killed, out of memory)
            raise _Failed("a load process ended") from exc
        return message

    @staticmethod
    def _expect(message: tuple[Any, ...], expected: str) -> tuple[Any, ...]:
        if message[0] != expected:
            raise _Failed(message[1] if message[0] == "failed" else message[0])
        return tuple(message[1:])

    def _read_parses(
        self, inbox: list[tuple[int, tuple[Any, ...]]], failure: list[BaseException]
    ) -> None:
        """Every message of the parse, from each process until its last (`parsed`, or
        `failed`), into `inbox` with the process's number."""
        try:
            waiting = dict(enumerate(self.conns))
            while waiting:
                for ready in wait(list(waiting.values())):
                    assert isinstance(ready, Connection)
                    i = self.conns.index(ready)
                    message = self._message(ready)
                    inbox.append((i, message))
                    if message[0] != "entries":
                        del waiting[i]
        except BaseException as exc:  # told by the thread that waits for this one
            failure.append(exc)

    def load(self, models: list[Path]) -> Project:
        loader, conns, k = self.loader, self.conns, len(self.conns)
        for i, conn in enumerate(conns):
            conn.send(("parse", [str(p) for p in models[i::k]]))
        # each process's messages are read as they come, in a thread, while this one reads the
        # other files: a process whose message waits to be read cannot go on parsing
        inbox: list[tuple[int, tuple[Any, ...]]] = []
        failure: list[BaseException] = []
        reader = threading.Thread(target=self._read_parses, args=(inbox, failure), daemon=True)
        reader.start()
        # an error in the other files comes after any model's, as alone
        others_error: Exception | None = None
        try:
            others = loader.others()
        except Exception as exc:
            others, others_error = [], exc
        reader.join()
        if failure:
            raise failure[0]
        replies: dict[int, tuple[Any, ...]] = {}
        for i, message in inbox:
            if message[0] == "entries":  # parse-cache entries, sent as they are made
                loader.cache.adopt(message[1])
            else:
                replies[i] = self._expect(message, "parsed")
        first: tuple[int, ProjectError] | None = None
        for i, (shipped, error) in sorted(replies.items()):
            if error is not None:
                at = i + k * len(shipped)  # its place among all the model files
                if first is None or at < first[0]:
                    first = (at, error)
        if first is not None:
            raise first[1]
        if others_error is not None:
            raise others_error

        parsed: list[_Parsed] = []
        owner: dict[str, int] = {}
        for at in range(len(models)):
            node, text, refs, assertions, parse_key = replies[at % k][0][at // k]
            parsed.append(_Parsed(node, text, None, refs, [], assertions, parse_key=parse_key))
            owner[node.id] = at % k
        parsed += others
        by_id = loader.check_unique(parsed)
        resolver = Resolver(p.node for p in parsed)
        nodes: dict[str, Node] = {}
        targets: dict[str, list[str]] = {}
        for item in parsed:
            node, targets[item.node.id] = loader.linked(item, resolver)
            nodes[node.id] = node
        graph = Graph(nodes)
        try:
            return self._settle(nodes, targets, by_id, owner, graph, resolver)
        except ProjectError as exc:  # told in the graph's order by a load alone
            raise _Failed(str(exc)) from exc

    def _settle(
        self,
        nodes: dict[str, Node],
        targets: dict[str, list[str]],
        by_id: dict[str, _Parsed],
        owner: dict[str, int],
        graph: Graph,
        resolver: Resolver,
    ) -> Project:
        loader, conns = self.loader, self.conns
        order = graph.topological()
        waiting = {n: len(graph.upstream(n)) for n in order}  # upstream nodes not settled yet
        ready = [n for n in order if not waiting[n]]
        known: list[set[str]] = [set() for _ in conns]  # the nodes each process was sent
        asts, lineages = _Pickles(), _Pickles()
        broken: list[tuple[str, str, str, ProjectError]] = []
        settled = outstanding = 0

        def done(node_id: str) -> None:
            nonlocal settled
            settled += 1
            for reader in graph.downstream(node_id):
                waiting[reader] -= 1
                if not waiting[reader]:
                    ready.append(reader)

        while settled < len(order):
            batches: dict[int, list[tuple[str, Node, list[str]]]] = defaultdict(list)
            while ready:
                node_id = ready.pop()
                if nodes[node_id].kind is Kind.MODEL:
                    batches[owner[node_id]].append((node_id, nodes[node_id], targets[node_id]))
                    continue
                loader.check(by_id[node_id], nodes, resolver)  # a source, seed or test
                done(node_id)
            for i, batch in batches.items():
                wanted = {d for node_id, _, _ in batch for d in graph.upstream(node_id)}
                new = [nodes[d] for d in wanted - known[i]]
                known[i] |= wanted
                conns[i].send(("settle", batch, new))
                outstanding += len(batch)
            if settled == len(order):
                break
            if not outstanding:
                raise _Failed("nothing left to settle")  # cannot happen in an acyclic graph
            for conn in wait(conns):
                assert isinstance(conn, Connection)
                (settled_there,) = self._receive(conn, "settled")
                for node_id, columns, canonical, lineage, found, entries in settled_there:
                    outstanding -= 1
                    known[conns.index(conn)].add(node_id)
                    nodes[node_id] = replace(nodes[node_id], columns=columns, canonical=canonical)
                    # its query: the parse-cache entry its process sent while parsing
                    entry = loader.cache.text(by_id[node_id].parse_key)
                    if entry is None:
                        raise _Failed(f"no parse of {node_id}")
                    tables = [nodes[t] for t in targets[node_id]]
                    asts.add(node_id, Asts.freeze_parsed(entry, loader.dialect, tables))
                    if lineage is not None:
                        lineages.add(node_id, lineage)
                    broken += found
                    loader.cache.adopt(entries)
                    loader.check(by_id[node_id], nodes, resolver)
                    done(node_id)
                    self.collector.made_one()

        for conn in conns:
            conn.send(("stop",))
        for conn in conns:
            (env_read,) = self._receive(conn, "stopped")
            loader.renderer.env_read.update(env_read)
        rank = {n: i for i, n in enumerate(order)}
        loader.broken = sorted(broken, key=lambda b: rank[b[0]])  # as a load alone finds them
        return Project(
            loader.config,
            loader.target,
            nodes,
            graph,
            resolver,
            Asts.frozen(asts.buffer, asts.spans),
            Lineages.frozen(lineages.buffer, lineages.spans),
            loader.broken,
            processes=len(conns),
        )


class _Pickles:
    """Pickles as they come, one after the other in one buffer: no list of them joined at the
    end (for 10,000 models, 100 MB twice)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.spans: dict[str, tuple[int, int]] = {}

    def add(self, key: str, pickled: bytes) -> None:
        self.spans[key] = (len(self.buffer), len(self.buffer) + len(pickled))
        self.buffer += pickled


# -- the other processes' side ------------------------------------------------------------------


def serve() -> None:
    """A load process (`_START`): it does what the messages on its socket ask, in their
    order, until told to stop."""
    conn = Connection(int(sys.argv[1]))
    inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()

    def receive() -> None:
        # a thread of its own empties the socket: the coordinator never waits on a full one
        # while this process waits to send
        try:
            while True:
                message = conn.recv()
                inbox.put(message)
                if message[0] == "stop":
                    return
        except (EOFError, OSError):  # the coordinator is gone, or done with this process
            os._exit(0)

    conn.send(("ready", FORMAT))
    threading.Thread(target=receive, daemon=True).start()
    try:
        start = inbox.get()
        if start[0] == "start":
            _, config, target, lineage = start
            loader = _Loader(config, target, ParseCache(None), lineage)
            with _Collector() as collector:
                _Worker(loader, conn, collector).serve(inbox)
    except BaseException:
        with contextlib.suppress(OSError):
            conn.send(("failed", traceback.format_exc()))
    finally:
        os._exit(0)  # what it made dies with it: no interpreter shutdown to wait for


class _Worker:
    ENTRIES = 256  # parse-cache entries sent together while parsing (about one a model)
    SETTLED = 8  # settled models sent together (the others wait for some of them)

    def __init__(self, loader: _Loader, conn: Connection, collector: _Collector) -> None:
        self.loader = loader
        self.conn = conn
        self.collector = collector
        self.items: dict[str, _Parsed] = {}  # parsed, not settled yet
        self.nodes: dict[str, Node] = {}  # every node it was sent or settled
        self.lineages = Lineages({})

    def serve(self, inbox: queue.SimpleQueue[tuple[Any, ...]]) -> None:
        while True:
            message = inbox.get()
            if message[0] == "parse":
                self.parse(message[1])
            elif message[0] == "settle":
                self.settle(message[1], message[2])
            elif message[0] == "stop":
                self.conn.send(("stopped", self.loader.renderer.env_read))
                return
            else:
                return

    def parse(self, paths: list[str]) -> None:
        """Parse a share, keeping each tree until its model is settled. The parse-cache
        entries go to the coordinator `ENTRIES` at a time, not held to the end: with the
        trees, that peak was over the memory target (a tree held as its entry instead costs
        0.3 ms a model to read back, an eighth of the work)."""
        shipped: list[tuple[Any, ...]] = []
        error: ProjectError | None = None
        entries: dict[str, str] = {}
        for path in paths:
            try:
                item = self.loader._model(Path(path))
            except ProjectError as exc:  # the first of its share: the coordinator tells it
                error = exc
                break
            entries |= self.loader.cache.take_new()
            if len(entries) >= self.ENTRIES:
                self.conn.send(("entries", entries))
                entries = {}
            self.items[item.node.id] = item
            shipped.append((item.node, item.text, item.refs, item.assertions, item.parse_key))
            self.collector.made_one()
        if entries:
            self.conn.send(("entries", entries))
        self.conn.send(("parsed", shipped, error))

    def settle(self, batch: list[tuple[str, Node, list[str]]], known: list[Node]) -> None:
        for node in known:
            self.nodes[node.id] = node
        settled: list[tuple[Any, ...]] = []
        for node_id, linked, targets in batch:
            item = self.items.pop(node_id)
            item.node = self.nodes[node_id] = linked
            tree = item.ast
            assert tree is not None
            ast_key = self.loader.point(item, [self.nodes[t] for t in targets])
            lineage: dict[str, Lineage] = {}
            self.loader.broken = []
            self.loader.analyze(item, self.nodes, {node_id: tree}, ast_key, lineage, consume=True)
            release(tree)  # its parse's trees were frozen out of the collector's reach
            item.ast, item.ref_tables = None, []
            node = self.nodes[node_id]
            found = lineage.get(node_id)
            settled.append(
                (
                    node_id,
                    node.columns,
                    node.canonical,
                    None if found is None else self.lineages.freeze(found),
                    self.loader.broken,
                    self.loader.cache.take_new(),
                )
            )
            if len(settled) >= self.SETTLED:
                self.conn.send(("settled", settled))
                settled = []
            self.collector.made_one()
        if settled:
            self.conn.send(("settled", settled))

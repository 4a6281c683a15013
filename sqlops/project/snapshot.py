"""A whole loaded project, kept in the cache folder: an unchanged project loads in one read.

The key covers every file of the project (names and bytes), the resolved settings, the target and
the versions of sqlops, sqlglot and the lineage walk. Environment variables that templates read
and the files sources read with `@location` are checked when the snapshot is read: a snapshot is
used only when loading the files again could give nothing else. Like the parse cache, it lives in
the user's cache folder, never in the project.

It is a pickle, for speed, read by an unpickler that knows only sqlops's own data classes, `Path`
and plain values: reading it cannot run code (pickle's own "restricting globals"). Paths are kept
as strings (pickle's persistent ids), so the file names no class outside sqlops at all. The graph
and the name resolver are rebuilt from the nodes, so no third-party class is in it.

The file is two pickles, the key and what else decides whether the snapshot may be used, then the
project, followed by each serialized query as a pickle of its own. The file is mapped, not read:
a query is unpickled from the mapping only when it is first used (`sqlops impact` never needs
them).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import io
import mmap
import os
import pickle
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self, TypeVar

from sqlglot import exp, serde

from sqlops.errors import ProjectError
from sqlops.graph.lineage import LINEAGE_VERSION, Lineage
from sqlops.project.cache import FORMAT, loads
from sqlops.project.definition import Node
from sqlops.project.references import Target, point
from sqlops.syntax import table_refs

SNAPSHOT = "project.pickle"
VERSION = "snapshot-11"  # what the file holds and how: a snapshot of another is not read
FOLDERS = ("models", "sources", "seeds", "tests", "macros")

V = TypeVar("V")


class _Stored(MutableMapping[str, V]):
    """Values of each node that a snapshot keeps each as a pickle of its own: read from a
    snapshot, each stays in the mapped file until it is first used, and a snapshot written again
    copies the unused ones as they are."""

    def __init__(self, values: dict[str, V]) -> None:
        self._values = values
        self._keys = set(values)
        # where the stored ones are: the mapped snapshot, or the pickles a parallel load made
        self._mapped: mmap.mmap | bytearray | None = None
        self._spans: dict[str, tuple[int, int]] = {}  # where in it each one's pickle is
        self._lock = threading.Lock()  # a build's threads read it at once

    @classmethod
    def _stored(cls, mapped: mmap.mmap | bytearray, spans: dict[str, tuple[int, int]]) -> Self:
        stored = cls({})
        stored._keys = set(spans)
        stored._mapped, stored._spans = mapped, spans
        return stored

    @classmethod
    def frozen(cls, pickles: bytearray, spans: dict[str, tuple[int, int]]) -> Self:
        """Values given as their pickles (`freeze`'s) one after the other, each read when it is
        first used: the processes of a parallel load (project/parallel.py) send them so."""
        return cls._stored(pickles, spans)

    def _thaw(self, pickled: bytes | bytearray) -> V:
        raise NotImplementedError

    def freeze(self, value: V) -> bytes:
        raise NotImplementedError

    def _each_pickled(self) -> Iterator[tuple[str, bytes | bytearray]]:
        """(key, pickled value) of each, in key order, made one at a time: a value that was not
        read is copied from the mapped file."""
        for key in sorted(self._keys):
            with self._lock:
                value = self._values.get(key)
                if value is None:
                    start, end = self._spans[key]
                    assert self._mapped is not None
                    kept = self._mapped[start:end]
            yield key, kept if value is None else self.freeze(value)

    def __getitem__(self, key: str) -> V:
        found = self._values.get(key)
        if found is None:
            with self._lock:
                found = self._values.get(key)
                if found is None:
                    if key not in self._keys:
                        raise KeyError(key)
                    start, end = self._spans[key]
                    assert self._mapped is not None
                    found = self._values[key] = self._thaw(self._mapped[start:end])
        return found

    def read_all(self) -> None:
        """Read every stored value now: for a caller that will use them all, in one pass that
        is twice as fast as one at a time (the collector is kept out, as for the project)."""
        with self._lock:
            unread = [(k, span) for k, span in self._spans.items() if k not in self._values]
            if not unread:
                return
            assert self._mapped is not None
            enabled = gc.isenabled()
            gc.disable()
            try:
                for key, (start, end) in unread:
                    if key in self._keys:
                        self._values[key] = self._thaw(self._mapped[start:end])
            finally:
                if enabled:
                    gc.enable()

    def __setitem__(self, key: str, value: V) -> None:
        with self._lock:
            self._values[key] = value
            self._keys.add(key)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            self._keys.remove(key)
            self._values.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


class Asts(_Stored[exp.Expr]):
    """Each model's parsed query, its tables named by their nodes: a build of a few models
    parses back only theirs, `sqlops impact` none.

    Each is kept in one of two ways: the tree itself (serialized), or, from a parallel load
    (project/parallel.py), the parse cache's entry of its file (the tree as parsed, already
    serialized) with the node each table resolved to, which are named again when it is read.
    A load process then need not serialize each tree a second time, nor send it."""

    def _thaw(self, pickled: bytes | bytearray) -> exp.Expr:
        record = _safe_loads(pickled)
        if record[0] == _PARSED:
            _, entry, dialect, targets = record
            loaded = serde.load(loads(entry)[0])
            assert isinstance(loaded, exp.Expr)
            tables = [table for table, _ in table_refs(loaded, 0, dialect)]
            point(loaded, tables, [Target(schema, name) for schema, name in targets], dialect)
        else:
            loaded = serde.load(record[1])
        assert isinstance(loaded, exp.Expr)
        return loaded

    def freeze(self, value: exp.Expr) -> bytes:
        return pickle.dumps((_TREE, serde.dump(value)), protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def freeze_parsed(entry: str, dialect: str, targets: list[Node]) -> bytes:
        """A model's query as `freeze` would keep it, from its parse-cache entry (the JSON
        text of its statements) and the node each of its table references resolved to."""
        names = [(t.schema, t.name) for t in targets]
        return pickle.dumps((_PARSED, entry, dialect, names), protocol=pickle.HIGHEST_PROTOCOL)


_TREE, _PARSED = "tree", "parsed"  # how a query is kept: its tree, or its parse and its tables


class Lineages(_Stored[Lineage]):
    """Each model's column lineage: `sqlops impact` reads only the models its walk reaches."""

    def _thaw(self, pickled: bytes | bytearray) -> Lineage:
        loaded = _safe_loads(pickled)
        if not isinstance(loaded, Lineage):
            raise pickle.UnpicklingError("a snapshot's lineage is not a Lineage")
        return loaded

    def freeze(self, value: Lineage) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


# relpath -> (size, mtime in ns, sha256 of the bytes) of each project file when it was hashed
Stats = dict[str, tuple[int, int, bytes]]
# a file changed less than this before its hash was taken is hashed again next time: a second
# write within the filesystem's clock tick, at the same size, would keep its modification time
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class Hashed:
    """What snapshot_key found: the key, and each file's stats to keep with the snapshot.
    `base` is the key of everything but the files: a snapshot with the same base differs from
    the project only in the files whose hashes differ."""

    key: str
    stats: Stats
    taken_ns: int
    base: str = ""


def snapshot_key(root: Path, settings: str, lineage: bool, known: Hashed | None = None) -> Hashed:
    """A hash of everything a load reads from the project folder, and of how it reads it.

    Each file's bytes are hashed, unless `known` (the last snapshot's) has it with the same
    size and modification time, and it had not changed for a while when that was taken."""
    digest = hashlib.sha256()
    for part in (FORMAT, VERSION, LINEAGE_VERSION, str(root), settings, str(lineage)):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    base = digest.hexdigest()
    top = str(root)
    taken_ns = time.time_ns()
    before = known.stats if known is not None else {}
    settled_ns = known.taken_ns - RACY_NS if known is not None else 0
    stats: Stats = {}
    for relpath in _project_files(top):
        path = os.path.join(top, relpath)
        try:
            st = os.stat(path)
            old = before.get(relpath)
            if old and old[0] == st.st_size and old[1] == st.st_mtime_ns < settled_ns:
                sha = old[2]
            else:
                sha = hashlib.sha256(_read(path)).digest()
            stats[relpath] = (st.st_size, st.st_mtime_ns, sha)
        except OSError:
            sha = hashlib.sha256(b"\xff unreadable").digest()
        digest.update(relpath.encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(sha)
    return Hashed(digest.hexdigest(), stats, taken_ns, base)


def snapshot_hashes(folder: Path | None) -> Hashed | None:
    """The file stats kept with the last snapshot, if there is one this version can read."""
    if folder is None:
        return None
    try:
        with open(folder / SNAPSHOT, "rb") as fh:
            head = _safe_load(fh)
        if not isinstance(head, dict):
            return None
        stats, taken_ns = head["stats"], head["taken_ns"]
        if not isinstance(stats, dict) or not isinstance(taken_ns, int):
            return None
        return Hashed(str(head["key"]), stats, taken_ns, str(head["base"]))
    except Exception:  # missing, damaged or from another version: every file is hashed
        return None


@dataclass(frozen=True)
class Snapshot:
    """What a load produced that the files decide; the settings are loaded anew each time."""

    nodes: dict[str, Node]
    asts: Asts
    lineage: Lineages
    broken: list[tuple[str, str, str, ProjectError]]
    order: list[str] | None = None  # the nodes' topological order
    # read for a project whose files differ from the snapshot's: these (relpaths) differ
    changed: tuple[str, ...] | None = None
    env: dict[str, str | None] = field(default_factory=dict)  # what templates read of it


def read_snapshot(
    folder: Path | None,
    hashed: Hashed,
    patchable: Callable[[tuple[str, ...]], bool] = lambda changed: False,
) -> Snapshot | None:
    """The snapshot of the project as `hashed` found it; else, with `changed` set, the last
    snapshot of the same project with the same settings and the same files, of which some have
    changed since, if `patchable` says the loader can load only those again. Else None."""
    if folder is None:
        return None
    mapped = None
    try:
        # The file is three pickles: what decides whether it is used (the rest is not read when
        # it says no), the project, and the queries, read from the mapped file only if used.
        with open(folder / SNAPSHOT, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        head = _safe_load(mapped)
        if not isinstance(head, dict):
            return None
        changed = None
        if head.get("key") != hashed.key:
            stats = head["stats"]
            if head.get("base") != hashed.base or stats.keys() != hashed.stats.keys():
                return None
            changed = tuple(p for p, st in hashed.stats.items() if stats[p][2] != st[2])
            if not patchable(changed):
                return None
        if any(os.environ.get(name) != value for name, value in head["env"].items()):
            return None
        if any(not os.path.isfile(p) for p in head["files"]):
            return None
        body = _safe_load(mapped, freeze=True)
        spans = _index(mapped, mapped.tell())
        queries = {key[1:]: span for key, span in spans.items() if key[0] == "q"}
        lineage = {key[1:]: span for key, span in spans.items() if key[0] == "l"}
        if queries.keys() != set(body["asts"]) or lineage.keys() != set(body["lineage"]):
            return None
        asts = Asts._stored(mapped, queries)
        lineages = Lineages._stored(mapped, lineage)
        mapped = None  # theirs now: open while the process lasts
        return Snapshot(
            body["nodes"],
            asts,
            lineages,
            body["broken"],
            body["order"],
            changed,
            head["env"],
        )
    except Exception:  # missing, damaged, from another version or refused: a slower load
        return None
    finally:
        if mapped is not None:
            mapped.close()


def write_snapshot(
    folder: Path | None,
    hashed: Hashed,
    snapshot: Snapshot,
    env_read: dict[str, str | None],
    files_read: list[str],
) -> None:
    if folder is None:
        return
    head = {
        "key": hashed.key,
        "base": hashed.base,
        "env": env_read,
        "files": files_read,
        "stats": hashed.stats,
        "taken_ns": hashed.taken_ns,
    }
    body = {
        "nodes": snapshot.nodes,
        "asts": sorted(snapshot.asts),
        "lineage": sorted(snapshot.lineage),
        "broken": snapshot.broken,
        "order": snapshot.order,
    }
    with contextlib.suppress(OSError, pickle.PicklingError):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            for part in (head, body):  # each apart: read one at a time
                _Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL).dump(part)
            # then each query and each lineage apart, as it is serialized (never all of them
            # in memory twice): its key and its pickle, each after its length, so that one is
            # found without reading the others
            stored: list[tuple[str, _Stored[Any]]] = [("q", snapshot.asts), ("l", snapshot.lineage)]
            for section, values in stored:
                for key, pickled in values._each_pickled():
                    name = (section + key).encode("utf-8", "surrogatepass")
                    fh.write(_LENGTHS.pack(len(name), len(pickled)))
                    fh.write(name)
                    fh.write(pickled)
        os.replace(tmp, folder / SNAPSHOT)


# the only classes a snapshot may name: everything else is refused, so reading runs no code
_ALLOWED = {
    ("sqlops.project.definition", "Node"),
    ("sqlops.project.definition", "Column"),
    ("sqlops.project.definition", "Kind"),
    ("sqlops.project.definition", "Materialized"),
    ("sqlops.assertions.definition", "Assertion"),
    ("sqlops.assertions.definition", "CheckKind"),
    ("sqlops.assertions.definition", "Tolerance"),
    ("sqlops.graph.lineage", "Lineage"),
    ("sqlops.graph.lineage", "ColumnLineage"),
    ("sqlops.errors", "ProjectError"),
    ("sqlops.project.snapshot", "_path"),  # two strings joined into a Path
}


class _Pickler(pickle.Pickler):
    """Paths are kept as the strings of their folder and name, rebuilt by `_path`; the reduction
    is looked up by type (dispatch_table), so no Python code runs for every other object."""

    def __init__(self, file: IO[bytes], protocol: int) -> None:
        super().__init__(file, protocol)
        self.dispatch_table = {type(Path()): _reduce_path}


def _reduce_path(path: Path) -> tuple[Any, tuple[str, str]]:
    return _path, ((str(path.parent), path.name) if path.name else (str(path), ""))


@functools.lru_cache(maxsize=4096)
def _folder(folder: str) -> Path:
    return Path(folder)


def _path(folder: object, name: object) -> Path:
    """A path from the strings of its folder and name, and nothing else (the unpickler may call
    this, and it can only join two strings); a folder's Path is made once for all its files."""
    if type(folder) is not str or type(name) is not str:
        raise pickle.UnpicklingError("a snapshot may hold only strings as a path")
    return _folder(folder) / name if name else _folder(folder)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a snapshot may not name {module}.{name}")


def _safe_load(stream: IO[bytes] | mmap.mmap, *, freeze: bool = False) -> Any:
    """The next pickle of the stream. A snapshot is half a million small objects, none in a
    cycle: the collector is kept from walking them again and again while they are made, and
    with `freeze` (the project, read once as a command starts) from ever walking them
    (`gc.freeze`): most of the time of a read went there."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _Unpickler(stream).load()
    finally:
        if enabled:
            if freeze:
                gc.freeze()
            gc.enable()


def _safe_loads(data: bytes | bytearray) -> Any:
    return _safe_load(io.BytesIO(data))


_LENGTHS = struct.Struct("<IQ")  # of a stored query's key and of its pickle


def _index(mapped: mmap.mmap, offset: int) -> dict[str, tuple[int, int]]:
    """Where each stored query's pickle is: the records after `offset`, to the end."""
    spans: dict[str, tuple[int, int]] = {}
    size = mapped.size()
    while offset < size:
        name_length, length = _LENGTHS.unpack_from(mapped, offset)
        start = offset + _LENGTHS.size + name_length
        key = mapped[offset + _LENGTHS.size : start].decode("utf-8", "surrogatepass")
        offset = start + length
        if offset > size:
            raise pickle.UnpicklingError("the snapshot ends inside a query")
        spans[key] = (start, offset)
    return spans


def _read(path: str) -> bytes:
    """The bytes of a file (unbuffered: a project's files are small, and there are many)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _project_files(root: str) -> list[str]:
    """The paths, relative to the root, of the settings file and every file of the project's
    folders but hidden ones (or those in hidden folders), in a fixed order: by folder, then
    sorted as paths. Symlinks to files count; symlinks to folders are not followed."""
    found = ["sqlops.toml"]
    for folder in FOLDERS:
        base = os.path.join(root, folder)
        if os.path.isdir(base):
            _walk(base, folder, found)
    return found


def _walk(folder: str, relpath: str, found: list[str]) -> None:
    try:
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda entry: entry.name)
    except OSError:
        return
    for entry in listed:
        if entry.name.startswith("."):
            continue
        child = relpath + os.sep + entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                _walk(entry.path, child, found)
            elif entry.is_file():
                found.append(child)
        except OSError:
            continue

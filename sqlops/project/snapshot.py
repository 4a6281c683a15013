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

The file is three pickles one after the other: the key and what else decides whether the snapshot
may be used, the project, and the serialized queries. The file is mapped, not read: the queries
are unpickled from the mapping only when one is first used (`sqlops impact` never needs them).
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
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlglot import exp, serde

from sqlops.errors import ProjectError
from sqlops.graph.lineage import LINEAGE_VERSION, Lineage
from sqlops.project.cache import FORMAT
from sqlops.project.definition import Node

SNAPSHOT = "project.pickle"
VERSION = "snapshot-7"  # what the file holds and how: a snapshot of another is not read
FOLDERS = ("models", "sources", "seeds", "tests", "macros")


class Asts(Mapping[str, exp.Expr]):
    """Each node's parsed query; kept serialized in a snapshot and parsed back when first used
    (`sqlops impact` never needs them)."""

    def __init__(self, parsed: dict[str, exp.Expr]) -> None:
        self._parsed = parsed
        self._dumped: dict[str, Any] = {}
        # where the dumps are kept, unread: unpickled only when a query is first used
        self._source: Callable[[], Any] | None = None
        self._keys = frozenset(parsed)  # every node with a query; the mapping never grows
        self._lock = threading.Lock()  # a build's threads read it at once

    @classmethod
    def _stored(cls, keys: list[str], source: Callable[[], Any]) -> Asts:
        asts = cls({})
        asts._keys = frozenset(keys)
        asts._source = source
        return asts

    def _unpack(self) -> None:
        if self._source is not None:
            self._dumped = self._source()
            self._source = None

    def _all_dumped(self) -> dict[str, Any]:
        return dict(self._each_dumped())

    def _each_dumped(self) -> Iterator[tuple[str, Any]]:
        """(key, serialized query) of each, made one at a time."""
        self._unpack()
        for key in sorted(self._keys):
            parsed = self._parsed.get(key)
            yield key, serde.dump(parsed) if parsed is not None else self._dumped[key]

    def __getitem__(self, key: str) -> exp.Expr:
        found = self._parsed.get(key)
        if found is None:
            with self._lock:
                found = self._parsed.get(key)
                if found is None:
                    self._unpack()
                    loaded = serde.load(self._dumped[key])
                    assert isinstance(loaded, exp.Expr)
                    found = self._parsed[key] = loaded
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __getstate__(self) -> dict[str, Any]:
        dumped = self._all_dumped()
        blob = pickle.dumps(dumped, protocol=pickle.HIGHEST_PROTOCOL)
        return {"keys": sorted(dumped), "blob": blob}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self._parsed = {}
        self._dumped = {}
        self._keys = frozenset(state["keys"])
        self._source = functools.partial(_safe_loads, state["blob"])


# relpath -> (size, mtime in ns, sha256 of the bytes) of each project file when it was hashed
Stats = dict[str, tuple[int, int, bytes]]
# a file changed less than this before its hash was taken is hashed again next time: a second
# write within the filesystem's clock tick, at the same size, would keep its modification time
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class Hashed:
    """What snapshot_key found: the key, and each file's stats to keep with the snapshot."""

    key: str
    stats: Stats
    taken_ns: int


def snapshot_key(root: Path, settings: str, lineage: bool, known: Hashed | None = None) -> Hashed:
    """A hash of everything a load reads from the project folder, and of how it reads it.

    Each file's bytes are hashed, unless `known` (the last snapshot's) has it with the same
    size and modification time, and it had not changed for a while when that was taken."""
    digest = hashlib.sha256()
    for part in (FORMAT, VERSION, LINEAGE_VERSION, str(root), settings, str(lineage)):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
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
    return Hashed(digest.hexdigest(), stats, taken_ns)


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
        return Hashed(str(head["key"]), stats, taken_ns)
    except Exception:  # missing, damaged or from another version: every file is hashed
        return None


@dataclass(frozen=True)
class Snapshot:
    """What a load produced that the files decide; the settings are loaded anew each time."""

    nodes: dict[str, Node]
    asts: Asts
    lineage: dict[str, Lineage]
    broken: list[tuple[str, str, str, ProjectError]]
    order: list[str] | None = None  # the nodes' topological order


def read_snapshot(folder: Path | None, key: str) -> Snapshot | None:
    if folder is None:
        return None
    mapped = None
    try:
        # The file is three pickles: what decides whether it is used (the rest is not read when
        # it says no), the project, and the queries, read from the mapped file only if used.
        with open(folder / SNAPSHOT, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        head = _safe_load(mapped)
        if not isinstance(head, dict) or head.get("key") != key:
            return None
        if any(os.environ.get(name) != value for name, value in head["env"].items()):
            return None
        if any(not os.path.isfile(p) for p in head["files"]):
            return None
        body = _safe_load(mapped, freeze=True)
        asts = Asts._stored(body["asts"], functools.partial(_load_at, mapped, mapped.tell()))
        mapped = None  # the queries' now: closed once they are read
        return Snapshot(body["nodes"], asts, body["lineage"], body["broken"], body["order"])
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
        "env": env_read,
        "files": files_read,
        "stats": hashed.stats,
        "taken_ns": hashed.taken_ns,
    }
    body = {
        "nodes": snapshot.nodes,
        "asts": sorted(snapshot.asts),
        "lineage": snapshot.lineage,
        "broken": snapshot.broken,
        "order": snapshot.order,
    }
    with contextlib.suppress(OSError, pickle.PicklingError):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            for part in (head, body):  # each apart: read one at a time
                _Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL).dump(part)
            # then each query apart, as it is serialized: never all of them in memory twice
            for item in snapshot.asts._each_dumped():
                _Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL).dump(item)
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


def _safe_loads(data: bytes) -> Any:
    return _safe_load(io.BytesIO(data))


def _load_at(mapped: mmap.mmap, offset: int) -> dict[str, Any]:
    """The serialized queries after `offset`: one (key, dump) pickle each, to the end."""
    try:
        mapped.seek(offset)
        found: dict[str, Any] = {}
        while mapped.tell() < mapped.size():
            key, dumped = _safe_load(mapped)
            found[key] = dumped
        return found
    finally:
        mapped.close()


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

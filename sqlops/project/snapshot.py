"""A whole loaded project, kept in the cache folder: an unchanged project loads in one read.

The key covers every file of the project (names and bytes), the resolved settings, the target and
the versions of sqlops, sqlglot and the lineage walk. Environment variables that templates read
and the files sources read with `@location` are checked when the snapshot is read: a snapshot is
used only when loading the files again could give nothing else. Like the parse cache, it lives in
the user's cache folder, never in the project.

It is a pickle, for speed, read by an unpickler that knows only sqlops's own data classes, `Path`
and plain values: reading it cannot run code (pickle's own "restricting globals"). The graph and
the name resolver are rebuilt from the nodes, so no third-party class is in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlglot import exp, serde

from sqlops.errors import ProjectError
from sqlops.graph.lineage import LINEAGE_VERSION, Lineage
from sqlops.project.cache import FORMAT
from sqlops.project.definition import Node

SNAPSHOT = "project.pickle"
FOLDERS = ("models", "sources", "seeds", "tests", "macros")


class Asts(Mapping[str, exp.Expr]):
    """Each node's parsed query; kept serialized in a snapshot and parsed back when first used
    (`sqlops impact` never needs them)."""

    def __init__(self, parsed: dict[str, exp.Expr]) -> None:
        self._parsed = parsed
        self._dumped: dict[str, Any] = {}
        self._blob: bytes | None = None  # the dumps, pickled apart: unpickled only when used
        self._keys = frozenset(parsed)  # every node with a query; the mapping never grows

    def _unpack(self) -> None:
        if self._blob is not None:
            self._dumped = _safe_loads(self._blob)
            self._blob = None

    def __getitem__(self, key: str) -> exp.Expr:
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
        self._unpack()
        dumped = dict(self._dumped)
        dumped.update({k: serde.dump(v) for k, v in self._parsed.items()})
        blob = pickle.dumps(dumped, protocol=pickle.HIGHEST_PROTOCOL)
        return {"keys": sorted(dumped), "blob": blob}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._parsed = {}
        self._dumped = {}
        self._keys = frozenset(state["keys"])
        self._blob = state["blob"]


def snapshot_key(root: Path, settings: str, lineage: bool) -> str:
    """A hash of everything a load reads from the project folder, and of how it reads it."""
    digest = hashlib.sha256()
    for part in (FORMAT, LINEAGE_VERSION, str(root), settings, str(lineage)):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    for path in _project_files(root):
        try:
            data = path.read_bytes()
        except OSError:
            data = b"\xff unreadable"
        digest.update(str(path.relative_to(root)).encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """What a load produced that the files decide; the settings are loaded anew each time."""

    nodes: dict[str, Node]
    asts: Asts
    lineage: dict[str, Lineage]
    broken: list[tuple[str, str, str, ProjectError]]


def read_snapshot(folder: Path | None, key: str) -> Snapshot | None:
    if folder is None:
        return None
    try:
        data = _safe_loads((folder / SNAPSHOT).read_bytes())
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        if any(os.environ.get(name) != value for name, value in data["env"].items()):
            return None
        if any(not Path(p).is_file() for p in data["files"]):
            return None
        asts = Asts({})
        asts.__setstate__(data["asts"])
        return Snapshot(data["nodes"], asts, data["lineage"], data["broken"])
    except Exception:  # missing, damaged, from another version or refused: a slower load
        return None


def write_snapshot(
    folder: Path | None,
    key: str,
    snapshot: Snapshot,
    env_read: dict[str, str | None],
    files_read: list[str],
) -> None:
    if folder is None:
        return
    data = {
        "key": key,
        "env": env_read,
        "files": files_read,
        "nodes": snapshot.nodes,
        "asts": snapshot.asts.__getstate__(),
        "lineage": snapshot.lineage,
        "broken": snapshot.broken,
    }
    with contextlib.suppress(OSError, pickle.PicklingError):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
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
    ("pathlib", "Path"),
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a snapshot may not name {module}.{name}")


def _safe_loads(data: bytes) -> Any:
    return _Unpickler(io.BytesIO(data)).load()


def _project_files(root: Path) -> list[Path]:
    found = [root / "sqlops.toml"]
    for folder in FOLDERS:
        base = root / folder
        if base.is_dir():
            found += sorted(
                p
                for p in base.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(base).parts)
            )
    return found

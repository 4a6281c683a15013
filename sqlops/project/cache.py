"""Parse results cached by content hash, so an unchanged file is not parsed again.

The cache lives in the user's cache folder, never in the project: a project folder comes from
other people (a pull request), and nothing in it may decide what SQL runs. It is JSON, so reading
it cannot run code either (the whole-project snapshot beside it, project/snapshot.py, is a pickle
read by an unpickler that may name only sqlops's own data classes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import sqlglot

import sqlops

FORMAT = f"{sqlops.__version__}-{getattr(sqlglot, '__version__', '')}-3"


def content_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def cache_folder(project_root: Path) -> Path | None:
    """`$SQLOPS_CACHE_DIR`, else the XDG cache folder, one subfolder per project."""
    base = os.environ.get("SQLOPS_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    if base:
        root = Path(base) / ("" if os.environ.get("SQLOPS_CACHE_DIR") else "sqlops")
    else:
        try:
            root = Path.home() / ".cache" / "sqlops"
        except RuntimeError:  # no home folder: no cache
            return None
    return root / "projects" / content_key(str(project_root.resolve()))[:16]


class ParseCache:
    """A dict of hash -> JSON value, loaded once and written back only when it changed.

    Entries that were not used by this load are dropped on save, so the file tracks the project;
    with `keep_unused`, they are kept (up to `KEPT` entries), for caches that only some commands
    read part of (the column types of definitions, impact/definition.py).
    """

    KEPT = 100_000

    def __init__(
        self, folder: Path | None, name: str = "parse.json", *, keep_unused: bool = False
    ) -> None:
        self.path = folder / name if folder else None
        self.keep_unused = keep_unused
        self._old: dict[str, Any] = {}
        self._used: dict[str, Any] = {}
        self.hits = 0
        self.misses = 0
        if self.path and self.path.is_file():
            with contextlib.suppress(OSError, ValueError):  # unreadable: only a slower load
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("format") == FORMAT:
                    entries = data.get("entries")
                    self._old = entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> Any | None:
        value = self._used.get(key)
        if value is None:
            value = self._old.get(key)
            if value is not None:
                self._used[key] = value
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        self._used[key] = value

    def save(self) -> None:
        if self.path is None or (self.misses == 0 and len(self._used) == len(self._old)):
            return
        entries = self._used
        if self.keep_unused:
            if not self.misses:
                return
            kept = [(k, v) for k, v in self._old.items() if k not in self._used]
            entries = dict(kept[-max(0, self.KEPT - len(self._used)) :]) | self._used
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                # json.dumps runs the C encoder; json.dump to a file would not
                fh.write(json.dumps({"format": FORMAT, "entries": entries}, separators=(",", ":")))
            os.replace(tmp, self.path)

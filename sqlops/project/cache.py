"""Parse results cached by content hash in `.sqlops/cache/`, so an unchanged file is parsed once."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import sqlglot

import sqlops

_FORMAT = f"{sqlops.__version__}-{getattr(sqlglot, '__version__', '')}-1"


def content_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


class ParseCache:
    """A dict of hash -> parse result, loaded once and written back only when it grew.

    Entries that were not used by this load are dropped on save, so the file tracks the project.
    """

    def __init__(self, folder: Path | None) -> None:
        self.path = folder / "parse.pickle" if folder else None
        self._old: dict[str, Any] = {}
        self._used: dict[str, Any] = {}
        self.hits = 0
        self.misses = 0
        if self.path and self.path.is_file():
            with contextlib.suppress(Exception):  # a corrupt or stale cache is only a slow load
                with self.path.open("rb") as fh:
                    data = pickle.load(fh)
                if isinstance(data, dict) and data.get("format") == _FORMAT:
                    self._old = data["entries"]

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
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump({"format": _FORMAT, "entries": self._used}, fh, protocol=5)
            os.replace(tmp, self.path)

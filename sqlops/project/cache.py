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

import orjson
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

    Each value is kept as its JSON text and parsed when it is asked for: a cold load of a large
    project puts every model's parsed query in here, and as text it takes a fraction of the
    memory. The file is JSON lines, a header then `key<TAB>json` per entry.

    Entries that were not used by this load are dropped on save, so the file tracks the project;
    with `keep_unused`, they are kept (up to `KEPT` entries), for caches that only some commands
    read part of (the column types of definitions, impact/definition.py).

    `appending` is for a load that looks up a few entries (project/loader.py's patch after an
    edit): the file is searched for each key instead of read into a dict, and new entries are
    appended to it, in one write, instead of the file being written again. For 1,000 models
    (13 MB) that is about 4 ms a lookup, against 50 ms to read the file and write it back;
    past `SEARCHES` lookups (a checkout that changed many files) the file is read into a dict
    once.
    """

    KEPT = 100_000

    def __init__(
        self,
        folder: Path | None,
        name: str = "parse.jsonl",
        *,
        keep_unused: bool = False,
        appending: bool = False,
    ) -> None:
        self.path = folder / name if folder else None
        self.keep_unused = keep_unused or appending
        self._old: dict[str, str] = {}
        self._used: dict[str, str] = {}
        self._new: dict[str, str] = {}  # what put() added
        self.hits = 0
        self.misses = 0
        self._file: bytes | None = None  # appending: the file as read, searched by key
        self._searched = 0
        if appending:
            if self.path:
                with contextlib.suppress(OSError):
                    self._file = self.path.read_bytes()
            if self._file is not None and self._file.startswith(_HEADER_LINE):
                return
            self._file = None  # none, or another format: written anew when saved
        elif self.path and self.path.is_file():
            with contextlib.suppress(OSError, ValueError):  # unreadable: only a slower load
                data = self.path.read_bytes()
                if data.startswith(_HEADER_LINE):
                    self._old = _entries(data)

    @property
    def size(self) -> int:
        """How many entries the file held when it was read (0 for one searched, not read)."""
        return len(self._old)

    def get(self, key: str) -> Any | None:
        text = self.text(key)
        value = None
        if text is not None:
            with contextlib.suppress(ValueError):  # a damaged entry is only a miss
                value = loads(text)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    SEARCHES = 16  # lookups in the file's bytes; past them it is read into a dict once

    def _search(self, key: str) -> str | None:
        assert self._file is not None
        self._searched += 1
        if self._searched > self.SEARCHES:  # many files changed (a checkout): one read
            if not self._old:
                self._old = _entries(self._file)
            return self._old.get(key)
        # the newest entry of the key, as when the file is read into a dict
        start = self._file.rfind(b"\n" + key.encode("ascii", "replace") + b"\t")
        if start < 0:
            return None
        start += len(key) + 2
        end = self._file.find(b"\n", start)
        with contextlib.suppress(UnicodeDecodeError):  # damaged: only a miss
            return self._file[start : end if end >= 0 else None].decode("utf-8")
        return None

    def text(self, key: str) -> str | None:
        """An entry's JSON text, neither parsed nor counted as a hit or a miss; found, it is
        kept when the cache is saved."""
        text = self._used.get(key)
        if text is None:
            text = self._old.get(key) if self._file is None else self._search(key)
            if text is not None:
                self._used[key] = text
        return text

    def put(self, key: str, value: Any) -> None:
        self._used[key] = self._new[key] = dumps(value)

    def take_new(self) -> dict[str, str]:
        """The entries put since the last call, as JSON text, forgotten here: a process of a
        parallel load (project/parallel.py) sends them to the one that saves the cache."""
        new, self._new = self._new, {}
        for key in new:
            self._used.pop(key, None)
        return new

    def adopt(self, entries: dict[str, str]) -> None:
        """Entries another process put (`take_new`'s), saved with this cache's own."""
        self._used.update(entries)
        self._new.update(entries)
        self.misses += len(entries)

    def save(self) -> None:
        if self._file is not None:
            self._append()
            return
        if self.path is None or (self.misses == 0 and len(self._used) == len(self._old)):
            return
        entries = self._used
        if self.keep_unused:
            if not self.misses:
                return
            kept = [(k, v) for k, v in self._old.items() if k not in self._used]
            room = max(0, self.KEPT - len(self._used))  # the newest of the others
            entries = dict(kept[len(kept) - room :] if room else []) | self._used
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(_HEADER + "\n")
                fh.writelines(f"{key}\t{text}\n" for key, text in entries.items())
            os.replace(tmp, self.path)

    def _append(self) -> None:
        """The new entries at the end of the file, in one write: a process killed in it leaves
        at most a damaged last line, which reads as a miss. Past `KEPT` lines the file is
        written again with the newest entries."""
        assert self.path is not None and self._file is not None
        if not self._new:
            return
        if self._file.count(b"\n") - 1 + len(self._new) > self.KEPT:  # the header is a line
            self._old = _entries(self._file)
            self._file = None
            self.misses = max(self.misses, 1)
            self.save()
            return
        ended = self._file.endswith(b"\n")
        text = "".join(f"{key}\t{text}\n" for key, text in self._new.items())
        with contextlib.suppress(OSError), self.path.open("ab") as fh:
            fh.write(("" if ended else "\n").encode() + text.encode("utf-8"))
        self._new = {}


def _entries(data: bytes) -> dict[str, str]:
    """The entries of a cache file's bytes (its header first), the newest of a key kept. A
    line cut in a character (a killed append) is only that entry's miss."""
    lines = data.decode("utf-8", "replace").split("\n")[1:]
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


def dumps(value: Any) -> str:
    """JSON text on one line (tabs and newlines inside strings are escaped). orjson takes a
    tenth of json's time; what it refuses (a string with a lone surrogate, an integer past 64
    bits) is written by json."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


def loads(text: str) -> Any:
    """The value of `dumps`'s text. Raises ValueError for what is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # json's own escapes of a lone surrogate; else ValueError


# an entry is one line: the JSON text of its value has no tab or newline
_HEADER = f"sqlops parse cache {FORMAT}"
_HEADER_LINE = (_HEADER + "\n").encode("utf-8")

"""The values `${VAR}` brings into sqlops.toml are secrets: kept out of all that sqlops prints
and keeps.

Each value is registered as the settings are read, with the parts of it that are a secret on
their own (the password of a URL or of a `key=value` connection string), and as JSON and Python
write it. What the command line prints (`sqlops.cli.app.main` wraps stdout and stderr, tracebacks
of `--debug` included), and every message, sample and measured value the run history stores
(`sqlops.state.history`), goes through `scrub`. A value shorter than MIN_LENGTH is not masked:
a `${THREADS}` of 4 would blank every 4 of the output.
"""

from __future__ import annotations

import json
import re
import threading
from typing import IO
from urllib.parse import unquote, urlsplit

MASK = "***"
MIN_LENGTH = 4

_lock = threading.Lock()
_known: set[str] = set()
_longest_first: tuple[str, ...] = ()

# password=... in a libpq connection string, quoted or not
_PASSWORD = re.compile(r"password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))", re.IGNORECASE)


def register(value: str) -> None:
    """A value that must not be shown."""
    global _longest_first
    found = {value, json.dumps(value)[1:-1], repr(value)[1:-1]}
    if "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            found |= {password, unquote(password)}
    for quoted, plain in _PASSWORD.findall(value):
        found.add(quoted or plain)
    if "=" in value and " " in value.strip():  # host=... password=...: each value, each word
        found |= {word.partition("=")[2] or word for word in value.split()}
    with _lock:
        _known.update(s for s in found if len(s) >= MIN_LENGTH)
        _longest_first = tuple(sorted(_known, key=len, reverse=True))


def scrub(text: str, also: tuple[str, ...] = ()) -> str:
    """The text with every registered secret (and those of `also`) masked."""
    for secret in (*also, *_longest_first) if also else _longest_first:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def forget() -> None:
    """No secret registered (for tests)."""
    global _longest_first
    with _lock:
        _known.clear()
        _longest_first = ()


class ScrubbedStream:
    """A text stream that masks secrets in what is written to it. Text is held back to the end
    of its line (or the next flush), so that a secret written in two pieces is still seen."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        end = self._pending.rfind("\n") + 1
        if end:
            self._stream.write(scrub(self._pending[:end]))
            self._pending = self._pending[end:]
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._stream.write(scrub(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> object:  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)

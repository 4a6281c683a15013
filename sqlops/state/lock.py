"""One command at a time changes a database's environments and state.

`build`, `test`, `rollback` and `gc` take the lock as they connect and hold it until they end:
physical versions are shared by every environment, and the state hands out ids in order, so two
writers at once could build the same version twice, or record deployments out of order.

- DuckDB (and Spark, whose state is a DuckDB file) needs nothing more: the database file admits
  one writing process, and the system releases it when the process ends, killed or not. The
  message for a file in use names the process that holds it.
- PostgreSQL admits many: there the lock is an advisory lock of the command's connection, which
  the server releases when the connection ends. The connection's `application_name` says who
  holds it (pid, host, command), and its start is the command's.

A process that was killed while its statement ran on the server leaves that session, and the
lock, until the statement ends. A holder that is a process of this machine that no longer
runs is such a leftover: its session is ended and the lock taken over.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlops.errors import SqlopsError

if TYPE_CHECKING:
    from sqlops.engines.base import Engine

APPLICATION = "sqlops"  # how a holder's application_name starts


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as far as the engine can tell."""

    pid: int | None
    host: str | None
    command: str | None
    started: datetime | None
    session: int | None = None  # the server's session that holds it, where there is one
    program: str | None = None  # its command line, when it is not sqlops

    def describe(self) -> str:
        parts = []
        if self.command:
            parts.append(f"`sqlops {self.command}`")
        elif self.program:
            parts.append(f"`{self.program}`")
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.host:
            parts.append(f"on host {self.host}")
        if self.started is not None:
            parts.append(f"started {self.started.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
        return ", ".join(parts) or "another process"

    def is_gone(self) -> bool:
        """A process of this machine that no longer runs."""
        if self.pid is None or self.host != socket.gethostname() or self.pid == os.getpid():
            return False
        return not _alive(self.pid)


class BusyError(SqlopsError):
    """Another sqlops command is changing the same database."""

    exit_code = 1


def me(command: str) -> str:
    """This process, as a lock holder names itself: `sqlops <pid>@<host> <command>`."""
    return f"{APPLICATION} {os.getpid()}@{socket.gethostname()} {command}"


def parse_holder(name: str, started: datetime | None, session: int | None) -> Holder:
    """A holder from the name `me` gave it (anything else: only what the server knows)."""
    prefix, _, rest = name.partition(" ")
    who, _, command = rest.partition(" ")
    pid, _, host = who.partition("@")
    if prefix != APPLICATION or not pid.isdigit():
        return Holder(None, None, name or None, started, session)
    return Holder(int(pid), host or None, command or None, started, session)


def hold(engine: Engine, command: str) -> None:
    """Take the lock for the rest of this command (it goes with the connection), or fail with a
    message naming the command that holds it."""
    state = engine.state
    holder = state.try_lock(me(command))
    if holder is not None and holder.is_gone() and holder.session is not None:
        # killed while its statement ran: the server has not noticed yet
        state.end_session(holder.session)
        holder = state.try_lock(me(command))
    if holder is not None:
        raise BusyError(
            f"another sqlops command is changing this database: {holder.describe()}",
            hint="wait for it to end and run again; one command at a time builds, tests, "
            "rolls back or collects garbage in a database (a killed one lets go by itself)",
        )


def local_process(pid: int) -> Holder:
    """What this machine knows of one of its processes: its command and start (Linux)."""
    command = program = started = None
    with contextlib.suppress(OSError, ValueError):
        words = [
            w.decode("utf-8", "replace")
            for w in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if w
        ]
        # `.../bin/sqlops build ...` or `python -m sqlops build ...`: what follows sqlops
        at = next((i for i, w in enumerate(words) if os.path.basename(w) == "sqlops"), None)
        if at is None:
            program = " ".join(words) or None
        else:
            command = " ".join(words[at + 1 :]) or None
    with contextlib.suppress(OSError, ValueError, IndexError, StopIteration):
        started = _started(pid)
    return Holder(pid, socket.gethostname(), command, started, program=program)


def _started(pid: int) -> datetime:
    """A Linux process's start: the boot time plus its start in clock ticks after it."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text(encoding="utf-8").splitlines()
        if line.startswith("btime ")
    )
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

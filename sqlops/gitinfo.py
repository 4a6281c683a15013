"""What git says about the project's code: the commit being run, when it was made, and by whom."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Commit:
    sha: str  # HEAD, with `-dirty` when the working tree has changes: then HEAD is not what ran
    time: datetime | None  # when HEAD was committed (UTC, no time zone)
    author: str | None  # "Name <email>" of HEAD's author


def head_commit(root: Path) -> Commit | None:
    """HEAD of the repository the project is in, or None outside git."""
    try:
        head = subprocess.run(
            ["git", "log", "-1", "--format=%H%x00%cI%x00%an <%ae>"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if head.returncode != 0 or not head.stdout.strip():
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "."],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha, _, rest = head.stdout.strip().partition("\0")
    when, _, author = rest.partition("\0")
    dirty = status.returncode != 0 or bool(status.stdout.strip())
    try:
        time = datetime.fromisoformat(when).astimezone(UTC).replace(tzinfo=None)
    except ValueError:
        time = None
    return Commit(sha + ("-dirty" if dirty else ""), time, author or None)

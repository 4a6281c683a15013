"""Measuring a command in a fresh process: its wall time, its peak memory, and the machine.

Every measurement is one new process, so no run inherits another's imports, caches or heap. The
parent times it from just before the fork to the moment it is reaped, and reads its max RSS from
`wait4`, which reports that one child's peak (not the maximum over all children so far).
"""

from __future__ import annotations

import compileall
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One run of one process."""

    wall: float  # seconds from start to exit
    max_rss_mb: float  # peak resident memory of the process, in MiB
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None = None  # what a worker wrote to its result file


class MeasureError(RuntimeError):
    """A measured process failed: the numbers would mean nothing."""


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    result_file: Path | None = None,
    timeout: float = 900.0,
) -> Sample:
    """Run `argv` to its end; raise `MeasureError` if it fails or runs past `timeout` seconds."""
    if result_file is not None:
        result_file.unlink(missing_ok=True)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=out, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise MeasureError(f"timed out after {timeout:.0f}s: {' '.join(argv)}")
            time.sleep(0.002)
        wall = time.perf_counter() - start
        proc.returncode = returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if returncode != 0:
        raise MeasureError(
            f"exit code {returncode}: {' '.join(argv)}\n{stderr.strip()[-2000:]}".rstrip()
        )
    result = None
    if result_file is not None:
        result = json.loads(result_file.read_text(encoding="utf-8"))
    # ru_maxrss is in KiB on Linux, in bytes on macOS
    rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return Sample(wall, rss, returncode, stdout, stderr, result)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def sqlops_script() -> Path:
    """The `sqlops` console script installed next to this Python, else the one on PATH."""
    here = Path(sys.executable).parent / "sqlops"
    if here.is_file():
        return here
    found = shutil.which("sqlops")
    if found is None:
        raise MeasureError("no `sqlops` console script: run `pip install -e .` first")
    return Path(found)


def compile_bytecode() -> None:
    """Compile the installed sqlops's modules, as `pip install` does. An editable install run
    with PYTHONDONTWRITEBYTECODE set (as on some CI machines) would otherwise compile every
    module again in each measured process: about 70 ms of each command, which no user pays."""
    spec = importlib.util.find_spec("sqlops")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    info = {
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpu": cpu,
        "cores": f"{usable} usable of {os.cpu_count()}",
        "python": platform.python_version(),
    }
    for package in ("sqlops", "sqlglot", "sqlglotc", "duckdb"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def git_revision(repo: Path) -> str:
    """The commit checked out, and whether the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} with uncommitted changes" if dirty else head


def source_digest(package: Path) -> str:
    """A short hash of a package's Python files: to notice code that changed during a run."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(b"\x00")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]

"""What the working tree changes against an environment's deployed definitions, or a git ref."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlops.errors import SqlopsError
from sqlops.graph.fingerprint import fingerprints
from sqlops.impact.changes import Change, detect_changes
from sqlops.impact.definition import Definition, definitions
from sqlops.impact.report import BrokenRead, ChangeReport, build_report
from sqlops.project.definition import Kind
from sqlops.syntax import normalize_name

if TYPE_CHECKING:
    from sqlops.engines.base import Engine
    from sqlops.project.loader import Project


def against_environment(project: Project, engine: Engine | None, env: str) -> ChangeReport:
    """Changes against what `env` serves; `engine` is None when there is no database yet.

    What a build would rebuild comes from the build's own plan, data stamps included.
    """
    from sqlops.run.executor import plan_build

    recorded: dict[str, Definition | None] = {}
    rebuild = [n for n, node in project.nodes.items() if node.is_versioned]
    if engine is not None:
        recorded = _recorded(engine, env)
        plan = plan_build(project, engine, env, list(project.nodes))
        rebuild = [s.node_id for s in plan.to_build]
    name = env if env == "prod" else f"env {env}"
    if not recorded:
        name += " (it serves nothing yet)"
    return _report(project, name, recorded, rebuild)


def changed_in_environment(project: Project, engine: Engine | None, env: str) -> set[str]:
    """The `changed` selector: nodes whose code differs from what `env` serves (cosmetic
    changes do not count), new nodes included."""
    from sqlops.impact.changes import ChangeClass

    recorded = _recorded(engine, env) if engine is not None else {}
    return {
        c.node
        for c in _changes(project, recorded)
        if c.change is not ChangeClass.COSMETIC and not c.deleted
    }


def _recorded(engine: Engine, env: str) -> dict[str, Definition | None]:
    from sqlops.state.store import StateStore

    store = StateStore(engine)
    found: dict[str, Definition | None] = {
        n: Definition.from_json(text) for n, text in store.definitions(env).items()
    }
    # served before definitions were recorded (an older sqlops): known to exist, not what it was
    for node_id in store.environment(env):
        found.setdefault(node_id, None)
    return found


def against_ref(project: Project, ref: str) -> ChangeReport:
    """Changes against the project as it is at a git ref (a branch, tag or commit)."""
    from sqlops.project.loader import load_project

    with tempfile.TemporaryDirectory(prefix="sqlops-ref-") as tmp:
        old_root = _checkout(project.root, ref, Path(tmp))
        try:
            old = load_project(old_root, project.target.name, strict=False, cache_root=project.root)
        except SqlopsError as exc:
            raise SqlopsError(
                f"the project at {ref} does not load: {exc.message}",
                hint="compare against a ref where the project loads, or against an environment",
            ) from None
        return compare_projects(old, project, f"git {ref}")


def compare_projects(old: Project, new: Project, against: str) -> ChangeReport:
    """Changes from one loaded project to another; what a build rebuilds is what has a new
    fingerprint (code only: data is not compared)."""
    old_fps = fingerprints(old)
    new_fps = fingerprints(new)
    rebuild = [
        n for n, node in new.nodes.items() if node.is_versioned and old_fps.get(n) != new_fps.get(n)
    ]
    recorded: dict[str, Definition | None] = dict(definitions(old, types=False))
    return _report(new, against, recorded, rebuild, lambda ids: definitions(old, ids))


def _changes(
    project: Project,
    recorded: dict[str, Definition | None],
    typed_old: Callable[[list[str]], dict[str, Definition]] | None = None,
) -> list[Change]:
    """Compare cheaply (no types) first; infer types only for what changed, on both sides
    (`typed_old` gives the old side's when the recorded definitions have none)."""
    cheap = definitions(project, types=False)
    recorded = {
        n: d
        for n, d in recorded.items()
        if n not in project.nodes or project.nodes[n].kind is not Kind.TEST
    }
    differ = [
        n
        for n, d in cheap.items()
        if n not in recorded or recorded[n] is None or _stripped(recorded[n]) != d.without_types()
    ]
    removed = [n for n in recorded if n not in project.nodes]
    if not differ and not removed:
        return []
    new = dict(cheap)
    new.update(definitions(project, differ))
    if typed_old is not None:
        recorded.update(typed_old([n for n in differ if recorded.get(n) is not None]))
    same = {n: d for n, d in recorded.items() if n not in differ and n in new}
    for n in same:
        new[n] = recorded[n] or new[n]  # equal but for types: nothing to report
    return detect_changes(recorded, new)


def _stripped(definition: Definition | None) -> Definition | None:
    return None if definition is None else definition.without_types()


def _report(
    project: Project,
    against: str,
    recorded: dict[str, Definition | None],
    rebuild: list[str],
    typed_old: Callable[[list[str]], dict[str, Definition]] | None = None,
) -> ChangeReport:
    broken = tuple(
        BrokenRead(reader, upstream, column, str(error).replace(str(project.root) + "/", ""))
        for reader, upstream, column, error in project.broken
    )
    readers: dict[tuple[str, str], list[str]] = {}
    for reader, upstream, column, error in project.broken:
        where = project.nodes[reader].relpath + (f":{error.line}" if error.line else "")
        readers.setdefault((upstream, normalize_name(column, project.dialect)), []).append(
            f"{reader} ({where})"
        )
    changes = []
    for change in _changes(project, recorded, typed_old):
        gone = [*change.removed, *(old for old, _ in change.renamed)]
        if any((change.node, c) in readers for c in gone):
            reasons = [reason + _read_by(readers, change.node, reason) for reason in change.reasons]
            change = replace(change, reasons=tuple(reasons))
        changes.append(change)
    return build_report(project, against, changes, rebuild, broken)


def _read_by(readers: dict[tuple[str, str], list[str]], node: str, reason: str) -> str:
    """`; read by ...` for the reason about a removed or renamed column that is still read."""
    for (upstream, column), who in readers.items():
        if upstream == node and reason.startswith(f"column `{column}` "):
            return f"; read by {', '.join(who)}"
    return ""


def _checkout(root: Path, ref: str, into: Path) -> Path:
    """The project folder as it is at `ref`, extracted with `git archive` (no work tree)."""

    def git(*args: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SqlopsError(
                f"cannot run git: {exc}", hint="install git, or compare against an environment"
            ) from None

    prefix = git("rev-parse", "--show-prefix")
    if prefix.returncode != 0:
        raise SqlopsError(
            f"{root} is not in a git repository, so there is no `{ref}` to compare with",
            hint="run `git init` and commit, or leave out --against to compare with prod",
        )
    subdir = prefix.stdout.decode().strip()
    resolved = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if resolved.returncode != 0:
        raise SqlopsError(
            f"git knows no commit `{ref}`",
            hint="name a branch, tag or commit: e.g. --against main or --against origin/main",
        )
    # "." is the project folder (git runs there); the archive keeps the path from the top
    archive = git("archive", "--format=tar", resolved.stdout.decode().strip(), "--", ".")
    if archive.returncode != 0:
        raise SqlopsError(
            f"the project folder does not exist at `{ref}`: "
            f"{archive.stderr.decode(errors='replace').strip()}",
            hint="compare against a ref that has the project, or against an environment",
        )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / subdir

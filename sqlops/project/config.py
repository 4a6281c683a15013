"""sqlops.toml: the project's settings and targets, with ${VAR} read from the environment."""

from __future__ import annotations

import datetime
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot.errors import SqlglotError

from sqlops.errors import ConfigError, did_you_mean
from sqlops.notify.settings import NotifySettings, parse_notify
from sqlops.secrets import register as register_secret

CONFIG_FILE = "sqlops.toml"
ENGINES = ("duckdb", "postgres", "spark")
# settings each engine's targets take, besides `engine` and `threads`
TARGET_SETTINGS = {
    "duckdb": {"path"},
    "postgres": {"dsn", "schema"},
    "spark": {"master", "remote", "warehouse", "state"},
}
SECTIONS = {"project", "targets", "vars", "notify", "monitor"}
MONITOR_LEVELS = ("warn", "error", "off")
_SPARK_MASTER = re.compile(
    r"^(local(\[(\d+|\*)(,\s*\d+)?\])?|spark://.+|yarn|k8s://.+|mesos://.+)$"
)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# models built at once when a target does not say: a build is mostly the engine's work, and
# while one model's statement runs the next can be compiled, or committed (docs/benchmarks.md)
DEFAULT_THREADS = max(1, min(4, os.cpu_count() or 1))
MAX_THREADS = 64  # each is a connection of its own


@dataclass(frozen=True)
class Target:
    """Where a project is built: an engine and its connection settings."""

    name: str
    engine: str
    settings: dict[str, Any]
    threads: int = 1

    @property
    def dialect(self) -> str:
        return self.engine

    @property
    def reserved_schemas(self) -> frozenset[str]:
        """Names a schema cannot have on this target: DuckDB cannot tell a schema from the
        database (the file's name) or its built-in catalogs."""
        if self.engine != "duckdb":
            return frozenset()
        path = str(self.settings.get("path", ":memory:"))
        database = "memory" if path == ":memory:" else Path(path).stem.lower()
        return frozenset({database, "system", "temp"})


@dataclass(frozen=True)
class MonitorSettings:
    """[monitor]: the checks sqlops adds to every source. "warn" reports, "error" blocks."""

    source_volume: str = "warn"  # anomaly(row_count()) of each source
    source_freshness: str = "warn"  # time since its data changed, against the usual interval


@dataclass(frozen=True)
class ProjectConfig:
    root: Path
    name: str
    dialect: str
    default_schema: str
    default_target: str
    targets: dict[str, Target]
    vars: dict[str, Any] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    # [notify] as written: its ${VAR} (webhook tokens, passwords) are read only by the commands
    # that notify, so a teammate without them can still list, show and report
    notify_section: Any = None
    text: str = field(default="", repr=False)

    @cached_property
    def notify(self) -> NotifySettings:
        """[notify], with ${VAR} read from the environment now."""
        if self.notify_section is None:
            return NotifySettings()
        secrets: set[str] = set()
        expanded = _expand(self.notify_section, self.path, self.text, secrets)
        return parse_notify(expanded, self.path, self.text)

    @property
    def path(self) -> Path:
        return self.root / CONFIG_FILE

    def target(self, name: str | None) -> Target:
        chosen = name or self.default_target
        if chosen not in self.targets:
            raise ConfigError(
                f"no target named `{chosen}`{did_you_mean(chosen, self.targets)}",
                path=self.path,
                line=_line_of(self.path, f"[targets.{self.default_target}]"),
                hint=f"define [targets.{chosen}] or pick one of: {', '.join(sorted(self.targets))}",
            )
        return self.targets[chosen]


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above `start` that holds sqlops.toml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_FILE} in {start} or any folder above it",
        hint="run sqlops inside a project, pass --project-dir, or create one with `sqlops init NAME`",
    )


def load_config(root: Path) -> ProjectConfig:
    path = root / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except OSError as exc:
        raise ConfigError(f"cannot read {CONFIG_FILE}: {exc.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise ConfigError("is not valid UTF-8 text", path=path) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, col = _toml_position(str(exc))
        raise ConfigError(
            f"is not valid TOML: {str(exc).split(' (at')[0]}",
            path=path,
            line=line,
            column=col,
            hint="check quoting and brackets; see docs/guide.md#sqlopstoml",
        ) from None

    for section in raw:
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown section [{section}]{did_you_mean(section, SECTIONS)}",
                path=path,
                line=_line_of(path, f"[{section}", text),
                hint=f"sqlops.toml has sections: {', '.join(f'[{s}]' for s in sorted(SECTIONS))}",
            )
    secrets: set[str] = set()
    data = _expand({k: v for k, v in raw.items() if k != "notify"}, path, text, secrets)
    project = _table(data, "project", path, text)
    _known_keys(
        project, {"name", "dialect", "default_schema", "default_target"}, "project", path, text
    )
    name = _string(project, "name", path, text, "project", default=root.name)
    dialect = _string(project, "dialect", path, text, "project", default="duckdb")
    try:
        sqlglot.Dialect.get_or_raise(dialect)
    except (ValueError, SqlglotError):
        raise ConfigError(
            f"unknown SQL dialect `{dialect}`",
            path=path,
            line=_line_of(path, "dialect", text),
            hint="use a sqlglot dialect name such as duckdb, postgres or spark",
        ) from None
    default_schema = _string(project, "default_schema", path, text, "project", default="main")

    targets_raw = data.get("targets", {})
    if not isinstance(targets_raw, dict) or not targets_raw:
        targets_raw = {"local": {"engine": "duckdb", "path": f"{name}.duckdb"}}
    targets: dict[str, Target] = {}
    for tname, settings in targets_raw.items():
        section = f"targets.{tname}"
        if not isinstance(settings, dict):
            raise ConfigError(
                f"[{section}] must be a table", path=path, line=_line_of(path, tname, text)
            )
        engine = _string(settings, "engine", path, text, section, default="duckdb")
        if engine not in ENGINES:
            raise ConfigError(
                f"[{section}] has unknown engine `{engine}`{did_you_mean(engine, ENGINES)}",
                path=path,
                line=_line_of(path, f"[{section}]", text),
                hint=f"engine is one of: {', '.join(ENGINES)}",
            )
        threads = settings.get("threads", DEFAULT_THREADS)
        if (
            not isinstance(threads, int)
            or isinstance(threads, bool)
            or not 1 <= threads <= MAX_THREADS
        ):
            raise ConfigError(
                f"[{section}] threads must be a whole number from 1 to {MAX_THREADS}",
                path=path,
                line=_line_of(path, "threads", text),
            )
        rest = {k: v for k, v in settings.items() if k not in ("engine", "threads")}
        if "engine" not in settings:
            other = next(
                (e for e, keys in TARGET_SETTINGS.items() if e != engine and set(rest) <= keys),
                None,
            )
            if other is not None and not set(rest) <= TARGET_SETTINGS[engine]:
                raise ConfigError(
                    f"[{section}] has no `engine`, so it is a DuckDB target, and its settings "
                    f"are those of {other}",
                    path=path,
                    line=_line_of(path, next(iter(rest)), text),
                    hint=f'add engine = "{other}" to [{section}]',
                )
        _known_keys(rest, TARGET_SETTINGS[engine], section, path, text)
        for key, value in rest.items():
            if not isinstance(value, str):
                raise ConfigError(
                    f"[{section}] {key} must be a string",
                    path=path,
                    line=_line_of(path, key, text),
                    hint=f'write {key} = "..."',
                )
        if engine == "spark" and rest.get("master") and rest.get("remote"):
            raise ConfigError(
                f"[{section}] has both master and remote",
                path=path,
                line=_line_of(path, "remote", text),
                hint='keep master = "local[N]" to run Spark here, or remote = "sc://host:15002" '
                "to use a Spark Connect server",
            )
        if engine == "spark" and rest.get("master") and not _SPARK_MASTER.match(rest["master"]):
            raise ConfigError(
                f'[{section}] master = "{rest["master"]}" is not a Spark master URL',
                path=path,
                line=_line_of(path, "master", text),
                hint='write master = "local[4]" (Spark in this process, 4 cores), "local[*]", '
                'or a cluster\'s "spark://host:7077", "yarn" or "k8s://..."; for Spark Connect '
                'write remote = "sc://host:15002" instead',
            )
        if engine == "spark":
            state = str(rest.get("state", ""))
            if state and not state.startswith(("postgres://", "postgresql://")):
                stem = Path(state).stem.lower()
                if stem == "sqlops_meta" or "__" in stem:
                    raise ConfigError(
                        f"[{section}] the state file name `{stem}` clashes with the schemas "
                        "sqlops makes",
                        path=path,
                        line=_line_of(path, "state", text),
                        hint='pick another name, e.g. state = "sqlops_state.duckdb"',
                    )
        if engine == "duckdb":
            stem = Path(str(rest.get("path", ":memory:"))).stem.lower()
            if "__" in stem or stem.startswith("sqlops"):
                raise ConfigError(
                    f"[{section}] the DuckDB file name `{stem}` clashes with the schemas sqlops "
                    "makes (names with `__`, or starting with `sqlops`)",
                    path=path,
                    line=_line_of(path, "path", text),
                    hint="pick a file name without a double underscore, e.g. warehouse.duckdb",
                )
        for key in ("path", "state"):
            file = str(rest.get(key, "")) if engine in ("duckdb", "spark") else ""
            if file and file != ":memory:" and "://" not in file and not Path(file).is_absolute():
                root = path.parent.resolve()
                if not (root / file).resolve().is_relative_to(root):
                    raise ConfigError(
                        f'[{section}] {key} = "{file}" leaves the project folder',
                        path=path,
                        line=_line_of(path, key, text),
                        hint="a relative path stays in the project folder; to keep the database "
                        "elsewhere, write its absolute path",
                    )
        targets[tname] = Target(name=tname, engine=engine, settings=rest, threads=threads)

    default_target = _string(
        project, "default_target", path, text, "project", default=next(iter(targets))
    )
    if default_target not in targets:
        raise ConfigError(
            f"default_target `{default_target}` is not defined{did_you_mean(default_target, targets)}",
            path=path,
            line=_line_of(path, "default_target", text),
            hint=f"add [targets.{default_target}] or use one of: {', '.join(sorted(targets))}",
        )
    variables = data.get("vars", {})
    if not isinstance(variables, dict):
        raise ConfigError("[vars] must be a table", path=path, line=_line_of(path, "vars", text))
    monitor = _table(data, "monitor", path, text)
    _known_keys(monitor, {"source_volume", "source_freshness"}, "monitor", path, text)
    levels = {}
    for key in ("source_volume", "source_freshness"):
        level = monitor.get(key, "warn")
        if level not in MONITOR_LEVELS:
            raise ConfigError(
                f"[monitor] {key} must be one of {', '.join(MONITOR_LEVELS)}, not "
                f"{_as_toml(level)}",
                path=path,
                line=_line_of(path, key, text),
                hint=f'write {key} = "warn" (report), "error" (block) or "off"',
            )
        levels[key] = level
    return ProjectConfig(
        monitor=MonitorSettings(**levels),
        notify_section=raw.get("notify"),
        text=text,
        root=root,
        name=name,
        dialect=dialect,
        default_schema=default_schema,
        default_target=default_target,
        targets=targets,
        vars=variables,
        secrets=frozenset(s for s in secrets if s),
    )


def _expand(value: Any, path: Path, text: str, secrets: set[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string, remembering values as secrets."""
    if isinstance(value, dict):
        return {k: _expand(v, path, text, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path, text, secrets) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        found = os.environ.get(var)
        if found is None:
            if default is not None:
                return default
            raise ConfigError(
                f"environment variable {var} is not set",
                path=path,
                line=_line_of(path, match.group(0), text),
                hint=f"export {var}=... before running sqlops, or write ${{{var}:-default}}",
            )
        secrets.add(found)
        register_secret(found)  # masked from now on, in this file's own errors too
        return found

    expanded = _VAR.sub(substitute, value)
    if "${" in _VAR.sub("", value):
        raise ConfigError(
            f"`{value}` has a `${{` that is not a ${{VAR}} reference",
            path=path,
            line=_line_of(path, value, text),
            hint="write ${NAME} or ${NAME:-default}, with NAME made of letters, digits and _",
        )
    return expanded


def _table(data: dict[str, Any], key: str, path: Path, text: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table", path=path, line=_line_of(path, key, text))
    return value


def _known_keys(
    table: dict[str, Any], known: set[str], section: str, path: Path, text: str
) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"unknown setting `{key}` in [{section}]{did_you_mean(key, known)}",
                path=path,
                line=_line_of(path, key, text),
                hint=f"[{section}] takes: {', '.join(sorted(known))}",
            )


def _string(
    table: dict[str, Any], key: str, path: Path, text: str, section: str, *, default: str
) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"[{section}] {key} must be a non-empty string",
            path=path,
            line=_line_of(path, key, text),
        )
    return value


def _line_of(path: Path, needle: str, text: str | None = None) -> int | None:
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


def _toml_position(message: str) -> tuple[int | None, int | None]:
    match = re.search(r"at line (\d+), column (\d+)", message)
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2))


def _as_toml(value: object) -> str:
    """A TOML value as sqlops.toml writes it, for a message (dates and times unquoted)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_as_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return str(value)

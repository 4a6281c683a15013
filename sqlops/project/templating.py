"""Jinja, sandboxed: `var`, `env_var`, `target`, `this`, `ref`, `source` and the project's macros."""

from __future__ import annotations

import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlops.errors import ProjectError, snippet_at

if TYPE_CHECKING:
    from sqlops.project.sandbox import Sandbox

_NEEDS_JINJA = re.compile(r"\{[{%#]")


@dataclass(frozen=True)
class TargetInfo:
    """What templates see as `target`."""

    name: str
    engine: str
    schema: str


class Renderer:
    """Renders model, source, test and assertion text; one per project load."""

    def __init__(
        self,
        variables: dict[str, Any],
        target: TargetInfo,
        macro_files: list[tuple[Path, str]],
        dialect: str = "duckdb",
    ) -> None:
        self.dialect = dialect
        self.variables = variables
        self.target = target
        # the text each template name stands for while it renders (a template includes none)
        self._sources: dict[str, str] = {}
        self._env: Sandbox | None = None
        # environment variables templates read, with what they were: a saved load of the
        # project is good only while they stay the same
        self.env_read: dict[str, str | None] = {}
        self.macro_names: dict[str, Path] = {}
        for path, text in macro_files:
            self._add_macros(path, text)

    @property
    def env(self) -> Sandbox:
        """The sandbox, made (and Jinja imported) when a file first needs it: a project in
        plain SQL never loads Jinja."""
        if self._env is None:
            import jinja2

            from sqlops.project.sandbox import Loader, Sandbox

            self._env = Sandbox(
                loader=Loader(self._sources),
                undefined=jinja2.StrictUndefined,
                autoescape=False,
                keep_trailing_newline=True,
                cache_size=0,
            )
            self._env.globals.update(
                var=self._var,
                env_var=self._env_var,
                target=self.target,
                is_incremental=lambda: False,
                ref=self._ref,
                source=self._source,
            )
        return self._env

    def _add_macros(self, path: Path, text: str) -> None:
        import jinja2

        module = self._module(path, text)
        for name in dir(module):
            if name.startswith("_"):
                continue
            macro = getattr(module, name)
            if not isinstance(macro, jinja2.runtime.Macro):
                continue
            if name in BUILTINS:
                raise ProjectError(
                    f"macro `{name}` would replace sqlops's own `{name}()`",
                    path=path,
                    line=_macro_line(text, name),
                    hint="give the macro another name",
                )
            if name in self.macro_names:
                raise ProjectError(
                    f"macro `{name}` is also defined in {self.macro_names[name].name}",
                    path=path,
                    line=_macro_line(text, name),
                    hint="each macro name may be defined once; rename or remove one",
                )
            self.env.globals[name] = macro
            self.macro_names[name] = path

    def render(
        self,
        text: str,
        path: Path,
        this: tuple[str, str] | None,
        *,
        first_line: int = 1,
        file_text: str | None = None,
    ) -> str:
        """Render `text`, which starts at `first_line` of the file `file_text` (default: itself)."""
        if not _NEEDS_JINJA.search(text):
            return text
        import jinja2

        name = str(path)
        whole = text if file_text is None else file_text

        def at(line: int | None) -> int | None:
            return None if line is None else line + first_line - 1

        env = self.env
        self._sources[name] = text
        try:
            template = env.get_template(name)
            return template.render(this=self._name(*this)) if this else template.render()
        except jinja2.TemplateSyntaxError as exc:
            raise _error(exc.message or str(exc), path, whole, at(exc.lineno)) from None
        except Exception as exc:  # any error raised while a user's template runs
            line = at(_template_line(exc, name) or 1)
            raise _error(_describe(exc), path, whole, line, exc) from None
        finally:
            self._sources.pop(name, None)

    def _module(self, path: Path, text: str) -> Any:
        import jinja2

        name = str(path)
        env = self.env
        self._sources[name] = text
        try:
            template = env.get_template(name)
            try:
                return template.module
            except Exception:
                # as render() does: the traceback then has the template's lines, not Python's
                env.handle_exception()
        except jinja2.TemplateSyntaxError as exc:
            raise _error(exc.message or str(exc), path, text, exc.lineno) from None
        except Exception as exc:
            raise _error(_describe(exc), path, text, _template_line(exc, name), exc) from None
        finally:
            self._sources.pop(name, None)  # a template can include no other file

    def _env_var(self, name: str, default: str | None = None) -> str:
        self.env_read[str(name)] = os.environ.get(str(name))
        return _env_var(name, default)

    def _name(self, *parts: str) -> str:
        """A relation's name as SQL: each part quoted when it needs to be, so that a name is
        only ever a name (`staging."t where false"`), and left as it is when it does not."""
        return ".".join(exp.to_identifier(part).sql(self.dialect) for part in parts)

    def _ref(self, name: str, second: str | None = None) -> str:
        return self._name(name, second) if second else self._name(*name.split(".", 1))

    def _source(self, schema: str, name: str) -> str:
        return self._name(schema, name)

    def _var(self, name: str, default: Any = None) -> Any:
        if name in self.variables:
            return self.variables[name]
        if default is not None:
            return default
        raise ProjectError(
            f"var('{name}') is not defined",
            hint=f'add {name} = "..." under [vars] in sqlops.toml, or give a default: '
            f"var('{name}', 'value')",
        )


BUILTINS = ("var", "env_var", "target", "is_incremental", "ref", "source", "this")


def _macro_line(text: str, name: str) -> int | None:
    match = re.search(r"\{%-?\s*macro\s+" + re.escape(name) + r"\b", text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _env_var(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ProjectError(
            f"env_var('{name}') is not set",
            hint=f"export {name}=... or give a default: env_var('{name}', 'value')",
        )
    return value


def _describe(exc: BaseException) -> str:
    import jinja2

    if isinstance(exc, ProjectError):
        return exc.message
    if isinstance(exc, jinja2.UndefinedError):
        return f"Jinja: {exc.message}"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"Jinja sandbox refused: {exc}"
    return f"Jinja: {type(exc).__name__}: {exc}"


def _template_line(exc: BaseException, name: str) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == name:
            line = lineno
    return line


def _error(
    message: str, path: Path, text: str, line: int | None, cause: BaseException | None = None
) -> ProjectError:
    hint = cause.hint if isinstance(cause, ProjectError) and cause.hint else None
    return ProjectError(
        message,
        path=path,
        line=line,
        snippet=snippet_at(text, line) if line else None,
        hint=hint or "fix the Jinja expression; see docs/guide.md#jinja",
    )

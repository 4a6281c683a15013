"""Jinja, sandboxed: `var`, `env_var`, `target`, `this`, `ref`, `source` and the project's macros."""

from __future__ import annotations

import functools
import os
import re
import string
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from sqlglot import exp

from sqlops.errors import ProjectError, snippet_at

_NEEDS_JINJA = re.compile(r"\{[{%#]")

# The sandbox keeps templates from files, modules, Python's internals and the environment (but
# for env_var()). These bound what one expression may make, so that `'x' * 10**9` or
# `10 ** (10 ** 10)` is an error rather than a build that eats the machine: far beyond any SQL.
MAX_SIZE = 10_000_000  # characters of a string, items of a list
MAX_INT_BITS = 100_000
_SIZED = (str, bytes, list, tuple, dict)
_SIZING_METHODS = ("ljust()", "rjust()", "center()", "zfill()", "expandtabs()")  # of a string
# `%` formats: a width or precision, given or taken from the arguments (*)
_PRINTF_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


@dataclass(frozen=True)
class TargetInfo:
    """What templates see as `target`."""

    name: str
    engine: str
    schema: str


class _Loader(jinja2.BaseLoader):
    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template not in self.sources:
            raise jinja2.TemplateNotFound(template)
        return self.sources[template], template, lambda: True


class Renderer:
    """Renders model, source, test and assertion text; one per project load."""

    def __init__(
        self,
        variables: dict[str, Any],
        target: TargetInfo,
        macro_files: list[tuple[Path, str]],
        dialect: str = "duckdb",
    ) -> None:
        self._loader = _Loader()
        self.dialect = dialect
        self.env = _Sandbox(
            loader=self._loader,
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            cache_size=0,
        )
        self.variables = variables
        # environment variables templates read, with what they were: a saved load of the
        # project is good only while they stay the same
        self.env_read: dict[str, str | None] = {}
        self.env.globals.update(
            var=self._var,
            env_var=self._env_var,
            target=target,
            is_incremental=lambda: False,
            ref=self._ref,
            source=self._source,
        )
        self.macro_names: dict[str, Path] = {}
        for path, text in macro_files:
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
        name = str(path)
        whole = text if file_text is None else file_text

        def at(line: int | None) -> int | None:
            return None if line is None else line + first_line - 1

        self._loader.sources[name] = text
        try:
            template = self.env.get_template(name)
            return template.render(this=self._name(*this)) if this else template.render()
        except jinja2.TemplateSyntaxError as exc:
            raise _error(exc.message or str(exc), path, whole, at(exc.lineno)) from None
        except Exception as exc:  # any error raised while a user's template runs
            line = at(_template_line(exc, name) or 1)
            raise _error(_describe(exc), path, whole, line, exc) from None
        finally:
            self._loader.sources.pop(name, None)

    def _module(self, path: Path, text: str) -> Any:
        name = str(path)
        self._loader.sources[name] = text
        try:
            template = self.env.get_template(name)
            try:
                return template.module
            except Exception:
                # as render() does: the traceback then has the template's lines, not Python's
                self.env.handle_exception()
        except jinja2.TemplateSyntaxError as exc:
            raise _error(exc.message or str(exc), path, text, exc.lineno) from None
        except Exception as exc:
            raise _error(_describe(exc), path, text, _template_line(exc, name), exc) from None
        finally:
            self._loader.sources.pop(name, None)  # a template can include no other file

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


class _Generator(CodeGenerator):
    """Compiles `a ~ b` to a call the sandbox bounds, as it bounds `a + b`."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, with what one operator, call, filter or `~` makes bounded (MAX_SIZE).

    Loops are not bounded beyond Jinja's own `range` limit: the guarantee is that no secret or
    file leaks, not that a template written to waste time cannot."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # lorem ipsum has no place in SQL, and lipsum(10**9) would run for hours
        self.globals.pop("lipsum", None)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, _SIZED) and isinstance(times, int):
                    _check_size(len(seq) * max(times, 0), f"{type(seq).__name__} * {times}")
            if isinstance(left, int) and isinstance(right, int):
                _check_bits(left.bit_length() + right.bit_length(), "*")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                _check_bits(right * max(abs(left).bit_length() - 1, 0), "**")
        elif operator == "+":
            if isinstance(left, _SIZED) and isinstance(right, _SIZED):
                _check_size(len(left) + len(right), "+")
        elif operator == "%" and isinstance(left, str):
            _check_printf(left, right)
        return _checked(super().call_binop(context, operator, left, right), operator)

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        what = f"{getattr(obj, '__name__', 'a call')}()"
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str | bytes) and what in _SIZING_METHODS:
            for value in (*args, *kwargs.values()):
                if isinstance(value, int):
                    _check_size(value, what)
        elif isinstance(owner, list | dict | set) and what in ("extend()", "update()"):
            # grows in place: l.extend(l) in a loop doubles a list that no result shows
            _check_size(len(owner) + sum(len(a) for a in args if isinstance(a, _SIZED)), what)
        return _checked(super().call(context, obj, *args, **kwargs), what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        try:
            fields = list(string.Formatter().parse(value.__self__))
        except ValueError:  # not a format string: str.format says so when it is called
            return wrapped
        nested = False
        for _, _, spec, _ in fields:
            for digits in re.findall(r"\d+", spec or ""):
                _check_size(int(digits), f"a width of {digits}")
            nested = nested or "{" in (spec or "")
        if not nested:
            return wrapped
        format_ = wrapped

        @functools.wraps(format_)
        def widths_checked(*args: Any, **kwargs: Any) -> str:
            # '{:>{}}'.format(1, 10**9): a width among the arguments
            for given in (*args, *kwargs.values()):
                if isinstance(given, int):
                    _check_size(given, "a `{:{}}` width")
            return format_(*args, **kwargs)

        return widths_checked

    def bounded_concat(self, values: tuple[Any, ...]) -> str:
        return str(_checked("".join(map(str, values)), "~"))


def _bounded_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)  # keeps the pass_context (and like) marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name == "format" and args and isinstance(args[0], str):
            _check_printf(args[0], args[1:] or kwargs)
        # |center(10**9), |indent(10**9), |batch(10**9, 'x'): a size, after the value filtered
        for value in (*args[1:], *kwargs.values()):
            if isinstance(value, int) and name in ("center", "indent", "batch", "slice"):
                _check_size(value, f"|{name}({value})")
        return _checked(f(*args, **kwargs), f"|{name}")

    return bounded


def _checked(value: Any, what: str) -> Any:
    if isinstance(value, _SIZED):
        _check_size(len(value), what)
    return value


def _check_size(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise SecurityError(
            f"{what} would make a value {size:,} long; the limit is {MAX_SIZE:,} (characters "
            "or items)"
        )


def _check_bits(bits: int, operator: str) -> None:
    if bits > MAX_INT_BITS:
        raise SecurityError(
            f"`{operator}` would make a number of about {bits:,} bits; the limit is "
            f"{MAX_INT_BITS:,}"
        )


def _check_printf(text: str, args: Any) -> None:
    for match in _PRINTF_WIDTHS.finditer(text):
        for given in match.groups():
            if given == "*":
                values = args if isinstance(args, tuple) else (args,)
                for value in values:
                    if isinstance(value, int):
                        _check_size(value, "a `%*` width")
            elif given is not None:
                _check_size(int(given), f"a width of {given}")


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

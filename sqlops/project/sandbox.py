"""Jinja's sandbox, with bounds on what one expression may make. templating.py renders with
it, and imports it only when a file needs Jinja: a project in plain SQL never loads Jinja."""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

# The sandbox keeps templates from files, modules, Python's internals and the environment (but
# for env_var()). These bound what one expression may make, so that `'x' * 10**9` or
# `10 ** (10 ** 10)` is an error rather than a build that eats the machine: far beyond any SQL.
MAX_SIZE = 10_000_000  # characters of a string, items of a list
MAX_INT_BITS = 100_000
_SIZED = (str, bytes, list, tuple, dict)
_SIZING_METHODS = ("ljust()", "rjust()", "center()", "zfill()", "expandtabs()")  # of a string
# `%` formats: a width or precision, given or taken from the arguments (*)
_PRINTF_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class Loader(jinja2.BaseLoader):
    """Templates by name from a dict: the text being rendered, and nothing else."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template not in self.sources:
            raise jinja2.TemplateNotFound(template)
        return self.sources[template], template, lambda: True


class _Generator(CodeGenerator):
    """Compiles `a ~ b` to a call the sandbox bounds, as it bounds `a + b`."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Sandbox(SandboxedEnvironment):
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

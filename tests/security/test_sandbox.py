"""Jinja's sandbox against the known template-injection escapes: each one, placed in a project file,
fails the load with an error at its file and line, and neither a secret environment variable nor
a file outside the project shows up in the error or in any SQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sqlops.errors import SqlopsError
from sqlops.project.loader import Project, load_project
from sqlops.project.sandbox import MAX_SIZE

TOML = '[project]\nname = "t"\n[targets.local]\nengine = "duckdb"\npath = "t.duckdb"\n'
SOURCE = "CREATE TABLE raw.x (id INTEGER)\n"
MACROS = "{% macro greet(name) %}hello {{ name }}{% endmacro %}\n"
SECRET_VAR = "SQLOPS_SECURITY_SECRET"
SECRET = "env-secret-5f0c9a"
FILE_SECRET = "file-secret-b71e24"
# where the payload goes: the model's third line
MODEL = "-- a model whose template tries to leave the sandbox\nSELECT 1 AS id\n/* {} */\n"

# {secret} is the absolute path of a file outside the project, {model} the model's own path,
# {macro} that of the project's macro file
ESCAPES = [
    # Python's object graph, from any literal
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ [].__class__.__base__.__subclasses__()[0] }}",
    "{{ (1).__class__ }}",
    "{{ ''['__class__'] }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ self.__dict__ }}",
    # the same through filters that take an attribute name
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ (''|attr('__class__')|attr('__base__')|attr('__subclasses__'))() }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ ([1]|map(attribute='__class__')|first).__mro__ }}",
    "{{ ([ref]|map(attribute='__globals__')|first)['os'] }}",
    "{{ [1]|selectattr('__class__')|list }}",
    "{{ [ref, source]|sort(attribute='__globals__') }}",
    "{{ ([1]|groupby('__class__'))[0].grouper }}",
    "{{ [1]|sum(attribute='__class__') }}",
    # __globals__ (and so `os`) through every global and filter sqlops and Jinja provide
    "{{ ref.__globals__['os'].environ }}",
    "{{ source.__globals__ }}",
    "{{ env_var.__self__.env }}",
    "{{ env_var.__func__.__globals__['os'].environ }}",
    "{{ var.__self__.variables }}",
    "{{ var.__globals__ }}",
    "{{ is_incremental.__code__ }}",
    "{{ is_incremental.__globals__ }}",
    "{{ target.__class__.__init__.__globals__ }}",
    "{{ target.__dataclass_fields__ }}",
    "{{ greet._func.__globals__ }}",
    "{{ greet._environment.loader }}",
    "{{ greet.__call__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__.os }}",
    "{% set ns = namespace() %}{{ ns.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ range.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{% for x in [1] %}{{ loop.__class__.__init__.__globals__ }}{% endfor %}",
    "{{ (range(3)|map('string')).gi_frame.f_globals }}",
    "{{ (range(3)|map('string')).gi_code }}",
    "{{ ''.format.__self__ }}",
    # format strings, the sandbox's own format wrapper, and its known bypasses (CVE-2024-56326,
    # CVE-2025-27516)
    "{{ '{0.__class__}'.format(1) }}",
    "{{ '{0.__globals__}'.format(ref) }}",
    "{{ '{0[__globals__]}'.format(ref) }}",
    "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "{{ '{0.__class__}'|attr('format')(1) }}",
    "{% set f = '{0.__class__}'.format %}{{ f(1) }}",
    "{{ '%s'|format(ref.__globals__) }}",
    # files: the loader serves only the template being rendered
    "{% include '/etc/passwd' %}",
    "{% include '{secret}' %}",
    "{% include '../outside/secret.txt' %}",
    "{% include 'sqlops.toml' %}",
    "{% include '{model}' %}",
    "{% include '{macro}' %}",
    "{% import '{secret}' as m %}{{ m }}",
    "{% from '{secret}' import x %}{{ x }}",
    "{% extends '{secret}' %}",
    # the environment, other than through env_var()
    "{{ environ }}",
    "{{ os.environ }}",
    "{{ config }}",
    "{{ request.environ }}",
    # time and memory: one expression cannot make a giant value or run for hours
    "{{ range(10**12)|list }}",
    "{% for i in range(10**12) %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ 10**9 * 'x' }}",
    "{{ [0] * 10**9 }}",
    "{{ 10 ** (10 ** 10) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'|indent(10**9, true) }}",
    "{{ range(3)|batch(10**9, 'x')|list }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%*d' % (10**9, 1) }}",
    "{{ '%999999999d'|format(1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:>{}}'.format(1, 10**9) }}",
    "{{ lipsum(10**9) }}",
    # doubling a value in a loop, by each operator and method that joins strings
    "{% set ns = namespace(s='x' * 10**6) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}",
    "{% set ns = namespace(s='x' * 10**6) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}",
    "{% set ns = namespace(s='x' * 10**6) %}{% for i in range(40) %}"
    "{% set ns.s = ns.s|replace('x', 'xx') %}{% endfor %}",
    "{% set ns = namespace(s='x' * 10**6) %}{% for i in range(40) %}"
    "{% set ns.s = [ns.s, ns.s]|join %}{% endfor %}",
    "{% set ns = namespace(s='x' * 10**6) %}{% for i in range(40) %}"
    "{% set ns.s = '{}{}'.format(ns.s, ns.s) %}{% endfor %}",
    "{% set ns = namespace(s='x' * 10**6) %}{% for i in range(40) %}"
    "{% set ns.s = ns.s.replace('x', 'xx') %}{% endfor %}",
    "{% set ns = namespace(l=[0] * 10**6) %}{% for i in range(40) %}"
    "{{ ns.l.extend(ns.l) or '' }}{% endfor %}",
    "{% set ns = namespace(n=2) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
]


@pytest.fixture
def project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with a macro, next to a folder holding a secret file; a secret in the
    environment."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(FILE_SECRET + "\n")
    monkeypatch.setenv(SECRET_VAR, SECRET)
    root = tmp_path / "proj"
    write(root, {"sqlops.toml": TOML, "sources/raw/x.sql": SOURCE, "macros/util.sql": MACROS})
    return root


def write(root: Path, files: dict[str, str]) -> None:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def fill(payload: str, root: Path, relpath: str) -> str:
    secret = root.parent / "outside" / "secret.txt"
    return (
        payload.replace("{secret}", str(secret))
        .replace("{model}", str(root / relpath))
        .replace("{macro}", str(root / "macros" / "util.sql"))
    )


def refused(root: Path, relpath: str, line: int) -> SqlopsError:
    """Loading fails at relpath:line, and says nothing of the secrets."""
    started = time.monotonic()
    with pytest.raises(SqlopsError) as info:
        project = load_project(root, use_cache=False)
        leaked(project)  # a load that went through must at least not hold a secret
    assert time.monotonic() - started < 30, "the sandbox let the template run for long"
    err = info.value
    assert err.path == root / relpath
    assert err.line == line, str(err)
    for secret in (SECRET, FILE_SECRET, "root:x:0:0"):
        assert secret not in str(err)
    return err


def leaked(project: Project) -> None:
    for node in project.nodes.values():
        for text in (node.sql, node.canonical, sql_of(project, node.id)):
            assert SECRET not in text and FILE_SECRET not in text


def sql_of(project: Project, node_id: str) -> str:
    """A node's query as the load parsed it, after Jinja ("" for nodes without one)."""
    return project.ast(node_id).sql("duckdb") if node_id in project.asts else ""


def test_every_escape_is_tried() -> None:
    assert len(ESCAPES) >= 80
    assert len(set(ESCAPES)) == len(ESCAPES)


@pytest.mark.parametrize("payload", ESCAPES)
def test_an_escape_in_a_model_is_refused(project_root: Path, payload: str) -> None:
    relpath = "models/staging/evil.sql"
    write(project_root, {relpath: MODEL.format(fill(payload, project_root, relpath))})
    refused(project_root, relpath, 3)


# a few from each family, in every other kind of file Jinja renders
SAMPLE = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ '{0.__globals__}'.format(ref) }}",
    "{% include '{secret}' %}",
    "{{ 'x' * 10**9 }}",
]
assert set(SAMPLE) <= set(ESCAPES)


@pytest.mark.parametrize("payload", SAMPLE)
def test_an_escape_in_an_assertion_is_refused(project_root: Path, payload: str) -> None:
    relpath = "models/staging/evil.sql"
    text = f"SELECT 1 AS id\n\n-- @assert id = 1\n-- @assert id > 0 OR '{payload}' = ''\n"
    write(project_root, {relpath: fill(text, project_root, relpath)})
    refused(project_root, relpath, 4)


@pytest.mark.parametrize("payload", SAMPLE)
def test_an_escape_in_a_macro_file_is_refused(project_root: Path, payload: str) -> None:
    relpath = "macros/evil.sql"
    text = f"{{% macro ok() %}}1{{% endmacro %}}\n\n{payload}\n"
    write(project_root, {relpath: fill(text, project_root, relpath)})
    refused(project_root, relpath, 3)


@pytest.mark.parametrize("payload", SAMPLE)
def test_an_escape_in_a_macro_body_is_refused_where_it_is_used(
    project_root: Path, payload: str
) -> None:
    model = "models/staging/uses.sql"
    macro = "macros/evil.sql"
    write(
        project_root,
        {
            macro: fill(
                f"{{% macro evil() %}}\n{payload}\n{{% endmacro %}}\n", project_root, macro
            ),
            model: "SELECT 1 AS id, '{{ evil() }}' AS x\n",
        },
    )
    refused(project_root, model, 1)


@pytest.mark.parametrize("payload", SAMPLE)
def test_an_escape_in_a_source_or_test_file_is_refused(project_root: Path, payload: str) -> None:
    source = "sources/raw/evil.sql"
    write(
        project_root,
        {
            source: fill(
                f"CREATE TABLE raw.evil (\n  id INTEGER\n) /* {payload} */\n", project_root, source
            )
        },
    )
    refused(project_root, source, 3)
    (project_root / source).unlink()
    test = "tests/evil.sql"
    text = f"-- @assert (SELECT count(*) FROM raw.x) >= 0\nSELECT * FROM raw.x /* {payload} */\n"
    write(project_root, {test: fill(text, project_root, test)})
    refused(project_root, test, 2)


def test_the_sandbox_says_what_it_refused(project_root: Path) -> None:
    relpath = "models/staging/evil.sql"
    write(project_root, {relpath: MODEL.format("{{ ''.__class__ }}")})
    err = refused(project_root, relpath, 3)
    assert "sandbox refused" in err.message and "__class__" in err.message
    assert "{{ ''.__class__ }}" in (err.snippet or "")
    write(project_root, {relpath: MODEL.format("{{ 'x' * 10**9 }}")})
    err = refused(project_root, relpath, 3)
    assert f"{MAX_SIZE:,}" in err.message


def test_env_var_reads_the_environment_and_var_the_settings(project_root: Path) -> None:
    """The one sanctioned route to the environment still works, as do the other globals."""
    write(
        project_root,
        {
            "sqlops.toml": TOML + '[vars]\nregion = "eu"\n',
            "models/staging/fine.sql": "SELECT '{{ env_var('" + SECRET_VAR + "') }}' AS a, "
            "'{{ env_var('SQLOPS_SECURITY_UNSET', 'fallback') }}' AS b, "
            "'{{ var('region') }}' AS c, '{{ target.name }}' AS d, '{{ this }}' AS e, "
            "'{{ greet('you') }}' AS f, '{{ ref('raw', 'x') }}' AS g\n",
        },
    )
    project = load_project(project_root, use_cache=False)
    sql = sql_of(project, "staging.fine")
    for value in (SECRET, "fallback", "'eu'", "'local'", "staging.fine", "hello you", "raw.x"):
        assert value in sql


def test_ordinary_templates_are_not_hindered_by_the_bounds(project_root: Path) -> None:
    """What SQL templates really do stays well inside the sandbox's limits."""
    body = (
        "SELECT '{{ '-' * 80 }}' AS rule, {{ 2 ** 62 }} AS big, '{{ '%5d' % 3 }}' AS padded, "
        "'{{ '{:>10}'.format('x') }}' AS right, '{{ 'x'|center(9) }}' AS centred, "
        "'{{ 'a' ~ 'b' ~ 1 }}' AS joined, '{{ [1, 2] + [3] }}' AS listed, "
        "{{ range(1000)|join(' + ') }} AS total, '{{ 'ab'.ljust(4, '.') }}' AS dots, "
        "'{{ '%-4s|'|format('a') }}' AS formatted, "
        # big numbers are values, not sizes
        "{{ '{}'.format(20240101) }} AS day, {{ {'a': 1}.get('b', 20240101) }} AS got, "
        "{{ '%d' % 20240101 }} AS printed, {{ [3, 20240101].index(20240101) }} AS found, "
        "'{{ '{:>{}}'.format('x', 3) }}' AS nested"
        "{% for c in ['p', 'q'] %}, 1 AS {{ c }}{% endfor %}\n"
    )
    write(project_root, {"models/staging/fine.sql": body})
    sql = sql_of(load_project(project_root, use_cache=False), "staging.fine")
    for value in (
        "-" * 80,
        str(2**62),
        "'    3'",
        "'         x'",
        "'    x    '",
        "'ab1'",
        "'[1, 2, 3]'",
        "998 + 999",
        "'ab..'",
        "'a   |'",
        "1 AS q",
        "20240101 AS day",
        "20240101 AS got",
        "20240101 AS printed",
        "1 AS found",
        "'  x' AS nested",
    ):
        assert value in sql, value

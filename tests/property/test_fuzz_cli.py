"""The real `sqlops` command, in this process, on generated projects: never an internal error.

`main()` is the one place where errors become messages and exit codes; an exception it does
not know prints "internal error", which is what these properties look for.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from sqlops.cli.app import main
from tests.property.conftest import (
    MODEL,
    VALID_MODEL,
    count,
    csv_seeds,
    directive_lines,
    fewer,
    mutated,
    project,
    queries,
    settings_files,
)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def sqlops(*args: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Run(code, out.getvalue(), err.getvalue())


def check_run(run: Run, allowed: tuple[int, ...] = (0, 2)) -> None:
    output = run.stdout + run.stderr
    assert "internal error" not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert run.code in allowed, output[-3000:]
    if run.code == 2:
        # a user error, or a usage error typer prints itself
        assert run.stderr.startswith(("error: ", "Usage: ")), run.stderr[-3000:]
    count(f"exit {run.code}")


model_texts = st.one_of(
    queries(),
    mutated(queries()),
    st.tuples(st.lists(directive_lines(), max_size=3), st.sampled_from([VALID_MODEL])).map(
        lambda t: "\n".join([*t[0], t[1]])
    ),
)
seeds = st.one_of(
    st.just(b"code,label\na,Alpha\n"),
    csv_seeds(),
)
projects = st.fixed_dictionaries(
    {MODEL: model_texts, "seeds/ref/codes.csv": seeds},
    optional={"sqlops.toml": settings_files},
)
COMMANDS = (
    ("ls",),
    ("ls", "--json"),
    ("ls", "+marts.m+", "--exclude", "tag:x"),
    ("ls", "changed"),
    ("compile", "marts.m"),
    ("compile", "marts.m", "--assertions", "--json"),
    ("compile", "staging.orders", "--env", "Bad Env"),
    ("dag",),
)


@given(projects, st.sampled_from(COMMANDS))
def test_commands_that_read_a_project_never_fail_internally(
    files: Mapping[str, str | bytes], command: tuple[str, ...]
) -> None:
    with project(files) as root:
        check_run(sqlops(*command, "--project-dir", str(root)))


buildable = st.fixed_dictionaries(
    {
        MODEL: st.one_of(st.just(VALID_MODEL), queries(1)),
        "seeds/ref/codes.csv": seeds,
        "models/marts/from_seed.sql": st.just("SELECT * FROM ref.codes\n"),
    }
)


@fewer(4)
@given(buildable)
def test_a_build_of_any_seed_and_query_never_fails_internally(
    files: Mapping[str, str | bytes],
) -> None:
    with project(files) as root:
        # 1: a model or an assertion failed in the database, which is the user's to fix
        check_run(sqlops("build", "--project-dir", str(root)), allowed=(0, 1, 2))

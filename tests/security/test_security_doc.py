"""docs/security.md cannot drift: every test it cites exists, and its counts are the tests'."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.security.test_injection import COLUMNS, HOSTILE
from tests.security.test_sandbox import ESCAPES, SAMPLE

HERE = Path(__file__).resolve().parent
DOC = (HERE.parents[1] / "docs" / "security.md").read_text()


def defined_in(module: str) -> set[str]:
    tree = ast.parse((HERE / module).read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name[:5] == "test_"}


def test_every_cited_test_exists() -> None:
    cited = re.findall(r"`(test_\w+\.py)::(test_\w+)", DOC)
    assert len(cited) >= 12
    for module, name in cited:
        assert name in defined_in(module), f"{module}::{name}"


def xfails_in(module: str) -> set[str]:
    tree = ast.parse((HERE / module).read_text())
    return {
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef)
        and any("xfail" in ast.unparse(d) for d in n.decorator_list)
    }


def test_every_known_gap_is_an_xfail_test_in_the_table() -> None:
    gaps = DOC.split("## Known gaps")[1]
    cited = set(re.findall(r"`(test_\w+\.py::test_\w+)`", gaps))
    found = {f"{m}::{n}" for m in ("test_paths.py", "test_injection.py") for n in xfails_in(m)}
    assert found == cited


def test_the_counts_are_the_tests() -> None:
    assert f"| {len(ESCAPES)} escapes, one per test" in DOC
    assert f"| {len(SAMPLE)} of them in every other place" in DOC
    assert f"{len(HOSTILE)}\nhostile model names" in DOC
    assert f"{len(COLUMNS) - len(HOSTILE)} more column aliases" in DOC

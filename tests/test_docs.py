"""Docs that cannot drift: the README's commands and example, every documented assertion parses,
and every directive and command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sqlops.assertions.parse import parse_assertion
from sqlops.cli.app import app
from sqlops.project.directives import KEYWORDS, scan
from tests.conftest import Shop

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
GUIDE = (ROOT / "docs" / "guide.md").read_text()
ASSERTIONS = (ROOT / "docs" / "assertions.md").read_text()


def sql_blocks(text: str) -> list[str]:
    return re.findall(r"```sql\n(.*?)```", text, flags=re.S)


def test_readme_quick_start_has_the_two_commands() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README.split("## Quick start")[1], flags=re.S)
    assert blocks[0].strip() == (
        "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/sqlops init shop "
        "&& cd shop && ../.venv/bin/sqlops build"
    )
    assert blocks[1].strip() == "bash .ci/run"
    assert (ROOT / ".ci" / "run").is_file()


def test_readme_example_model_builds(shop: Shop) -> None:
    (model,) = [b for b in sql_blocks(README) if "marts.orders AS o" in b]
    shop.write("models/marts/customers.sql", model)
    result = shop.sqlops("build")
    assert result.code == 0, result.output


def test_every_command_is_in_the_readme() -> None:
    commands = {
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    }
    assert commands == {
        "init",
        "build",
        "test",
        "impact",
        "ls",
        "compile",
        "show",
        "diff",
        "dag",
        "history",
        "report",
        "rollback",
        "gc",
    }
    for command in commands:
        assert f"`sqlops {command}" in README, command


def test_every_directive_is_in_the_guide() -> None:
    for keyword in KEYWORDS:
        assert f"`@{keyword}" in GUIDE, keyword


@pytest.mark.parametrize(
    "block",
    sql_blocks(ASSERTIONS) + sql_blocks(GUIDE),
    ids=lambda b: b.strip().splitlines()[0][:40],
)
def test_documented_assertions_parse(block: str) -> None:
    directives = scan(block, Path("doc.sql")).directives
    for d in directives:
        if d.keyword not in ("assert", "warn"):
            continue
        text = d.text.replace("{{ this }}", "marts.orders")
        check = text.split(":", 1)[-1] if re.match(r"\w+:", text) else text
        parse_assertion(
            text,
            blocking=d.keyword == "assert",
            path=Path("doc.sql"),
            relpath="doc.sql",
            line=d.line,
            file_text=block,
            dialect="duckdb",
            standalone=check.lstrip().startswith("("),  # a tests/ file's check
        )


def test_every_change_class_is_documented() -> None:
    from sqlops.impact.changes import ChangeClass

    text = (ROOT / "docs" / "impact.md").read_text()
    for change in ChangeClass:
        assert f"\n| {change.label} |" in text, change.label

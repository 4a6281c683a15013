"""The HTML report escapes everything it shows: a history whose project, model, column and check
names, descriptions, owners, tags, failing values and git authors hold markup is reported as
text, and the page holds no tag or attribute sqlops did not write."""

from __future__ import annotations

import html
import json
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import Shop, write_project

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'  # a file name can hold it: no `/`, no `.`
AUTHOR = 'Ann "O\'Brien" & <b>co</b>'  # git drops the < and >
MODEL = f"staging.{IMG}"
# what sqlops writes: the page, its tables, and inline SVG charts
TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code", "section",
    "figure", "figcaption", "table", "thead", "tbody", "tr", "th", "td",
    "svg", "g", "line", "rect", "circle", "path", "polyline", "text",
}  # fmt: skip


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def git(root: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": AUTHOR,
        "GIT_AUTHOR_EMAIL": "ann@example.com",
        "GIT_COMMITTER_NAME": AUTHOR,
        "GIT_COMMITTER_EMAIL": "ann@example.com",
    }
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """A history of a passing build, a failing one (an incident whose failing rows hold markup),
    a failing dev build and a test run, of a project whose every name holds markup."""
    root = tmp_path_factory.mktemp("html") / "proj"
    shop = write_project(
        root,
        {
            "sqlops.toml": f"[project]\nname = {json.dumps('shop ' + SCRIPT)}\n\n"
            '[targets.local]\nengine = "duckdb"\npath = "proj.duckdb"\n',
            ".gitignore": "*.duckdb*\n",
            "seeds/raw/labels.csv": "id,label\n1,fine\n",
            f"models/staging/{IMG}.sql": f"-- @description {SCRIPT} {IMG}\n"
            f"-- @owner {SCRIPT}\n"
            f"-- @tags {IMG}\n"
            f"SELECT id, label AS {q(SCRIPT)}, label AS {q(IMG)}, 1 AS {q(SCRIPT + IMG)}\n"
            "FROM raw.labels\n\n"
            f"-- @assert {q(SCRIPT)} <> '{SCRIPT}'\n"
            f"-- @warn {q(IMG)} <> '{IMG}'\n"
            f"-- @assert unique({q(IMG)})\n"
            # the model by its quoted name: `{{ this }}` is not quoted (test_injection.py)
            f"/* @assert no_markup: SELECT * FROM staging.{q(IMG)} WHERE {q(IMG)} LIKE '%<img%' */\n",
            f"tests/{IMG}.sql": f"SELECT * FROM {q('staging')}.{q(IMG)} WHERE {q(SCRIPT)} = '{IMG}'\n",
        },
    )
    git(root, "init", "-q")
    commit(root, SCRIPT)
    shop.ok("build")
    # rows whose values are the markup: the checks fail, and keep them as failing samples
    shop.write("seeds/raw/labels.csv", f"id,label\n1,fine\n2,{q(SCRIPT)}\n3,{q(IMG)}\n")
    commit(root, IMG)
    assert shop.sqlops("build").code == 1
    assert shop.sqlops("build", "--env", "dev").code == 1
    shop.ok("test")
    return shop


def report(shop: Shop, page: Path, *args: str) -> str:
    shop.ok("report", "--html", str(page), *args)
    return page.read_text(encoding="utf-8")


class Markup(HTMLParser):
    """Every tag and attribute of a page; the text of its <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}


def test_the_history_holds_the_markup(hostile: Shop) -> None:
    """The report has every hostile value at hand: what it writes is escaped, not absent."""
    samples = hostile.query(
        "SELECT samples FROM sqlops_meta.assertion_results WHERE outcome = 'fail'"
    )
    assert any(SCRIPT in str(s) for (s,) in samples)
    assert any(IMG in str(s) for (s,) in samples)
    assert SCRIPT in str(hostile.query("SELECT reason FROM sqlops_meta.incidents"))


def test_the_report_has_only_the_markup_sqlops_writes(hostile: Shop, tmp_path: Path) -> None:
    for env in ("prod", "dev"):
        text = report(hostile, tmp_path / f"{env}.html", "--env", env)
        parsed = Markup()
        parsed.feed(text)
        assert parsed.tags <= TAGS, parsed.tags - TAGS
        assert not {a for a in parsed.attributes if a.startswith("on")}
        assert not parsed.attributes & {"src", "href", "style", "srcdoc", "formaction"}
        for raw in (SCRIPT, IMG, "<script", "<img", "<b>"):
            assert raw not in text


def test_every_hostile_value_the_report_shows_is_escaped(hostile: Shop, tmp_path: Path) -> None:
    text = report(hostile, tmp_path / "prod.html")

    def shown(value: str) -> bool:
        return html.escape(value, quote=True) in text

    assert shown(f"sqlops DataOps report: shop {SCRIPT}, environment prod")  # <title>, <h1>
    assert f"<title>{html.escape('sqlops DataOps report: shop ' + SCRIPT)}" in text
    assert shown(MODEL)  # the failures, incidents, flaky checks, coverage, slowest models
    assert shown(f"{q(SCRIPT)} <> '{SCRIPT}'")  # a check, by its text
    assert shown(f"{q(IMG)} <> '{IMG}'")
    assert shown(f"models/staging/{IMG}.sql:7")  # the incident's reason names where
    assert shown(AUTHOR.replace("<", "").replace(">", ""))  # the deployment's author
    assert text.count(html.escape(IMG, quote=True)) >= 10


def test_environment_names_cannot_carry_markup(hostile: Shop, tmp_path: Path) -> None:
    for env in (SCRIPT, IMG):
        page = tmp_path / "env.html"
        result = hostile.sqlops("report", "--env", env, "--html", str(page))
        assert result.code == 2, result.output
        assert "is not a valid environment name" in result.output
        assert not page.exists()
        assert hostile.sqlops("build", "--env", env).code == 2
    assert {e for (e,) in hostile.query("SELECT DISTINCT env FROM sqlops_meta.runs")} == {
        "prod",
        "dev",
    }

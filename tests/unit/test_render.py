"""What a build prints as it goes, on a pipe (CI logs): a line a node, in the order they ended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from sqlops.cli import render
from sqlops.plan.builder import Action
from sqlops.run.results import NodeResult, Status


class _Writes:
    """A file that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_lines_of_reused_versions_are_written_together_before_the_next_news(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = _Writes()
    console = Console(file=file, color_system=None, width=400)  # type: ignore[arg-type]
    monkeypatch.setattr(render, "err", console)
    assert not console.is_terminal
    reused = [NodeResult(f"m.r{i}", Action.REUSE, Status.REUSED) for i in range(3)]
    built = NodeResult("m.b", Action.BUILD, Status.BUILT, 0.5, rows=7)
    with render.progress(6, "building") as listener:
        listener("done", "m.r0", reused[0])
        listener("done", "m.r1", reused[1])
        assert file.writes == []  # no news yet, and no statement started
        listener("start", "m.b", None)
        assert len(file.writes) == 1 and "m.r0" in file.writes[0] and "m.r1" in file.writes[0]
        listener("done", "m.b", built)
        assert len(file.writes) == 2 and "7 rows" in file.writes[1]
        listener("done", "m.r2", reused[2])
        listener("waiting", "", None)  # a statement runs on: what is shown is not held back
        assert len(file.writes) == 3 and "m.r2" in file.writes[2]
        listener("done", "m.r3", NodeResult("m.r3", Action.REUSE, Status.REUSED))
    # the last reused line is written when the build ends
    text = "".join(file.writes)
    assert [line.split()[1] for line in text.splitlines()] == [
        "m.r0",
        "m.r1",
        "m.b",
        "m.r2",
        "m.r3",
    ]
    assert text.splitlines()[0].split()[0] == "reused"


def test_a_failure_is_written_at_once_after_the_reused_lines_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = _Writes()
    monkeypatch.setattr(render, "err", Console(file=file, color_system=None, width=400))  # type: ignore[arg-type]
    with render.progress(2, "building") as listener:
        listener("done", "m.r", NodeResult("m.r", Action.REUSE, Status.REUSED))
        listener("done", "m.x", NodeResult("m.x", Action.BUILD, Status.ERROR, message="boom"))
        lines = "".join(file.writes).splitlines()
        assert [line.split()[:2] for line in lines] == [["reused", "m.r"], ["error", "m.x"]]


@pytest.mark.parametrize(
    "value",
    [
        {"ok": True, "counts": {"built": 3}, "nodes": [{"id": "m.a", "rows": None}], "none": []},
        {"duration": 0.012, "tiny": 1e-07, "huge": 1e20, "pair": (1, "x"), "empty": {}},
        {"name": "café", "snowman": "\u2603"},  # written by json: every character past ASCII
        {"control": "a\x7fb\x00c\x1b"},
        {"wide": 2**70, "negative": -(2**64)},  # past orjson's 64 bits
        {"status": Status.BUILT, "path": Path("models/a.sql")},  # json's `default=str`
    ],
)
def test_json_is_the_json_module_s_value_for_value(value: dict[str, object]) -> None:
    text = render._json_text(value)
    expected = json.dumps(value, indent=2, default=str, allow_nan=False)
    assert json.loads(text) == json.loads(expected)
    assert text.isascii()
    if "tiny" not in value:  # orjson writes 1e-7, json 1e-07: the same number
        assert text == expected

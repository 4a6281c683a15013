"""One message per run: a title and a line per event, as plain text and as a Slack payload."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from sqlops.notify.events import Event

LISTED = 20  # events one message lists; the rest are counted
_EMOJI = {
    "failure": ":x:",
    "warning": ":warning:",
    "deploy": ":rocket:",
    "recovered": ":white_check_mark:",
}
_NOUNS = (("failure", "failures"), ("warning", "warnings"), ("recovered", "recovered"))


@dataclass(frozen=True)
class Message:
    project: str
    command: str
    env: str
    run_id: int | None
    events: tuple[Event, ...]
    skipped: int = 0  # nodes not run because something upstream failed

    @property
    def summary(self) -> str:
        counted = Counter(e.kind for e in self.events)
        parts = [
            f"{counted[one]} {one if counted[one] == 1 else many}"
            for one, many in _NOUNS
            if counted[one]
        ]
        if counted["failure"] and self.skipped:
            parts.append(f"{self.skipped} skipped")
        if counted["deploy"]:
            parts.append("deployed")
        return ", ".join(parts)

    @property
    def title(self) -> str:
        run = f" (run {self.run_id})" if self.run_id is not None else ""
        return f"sqlops {self.project}: {self.command} {self.env}{run}: {self.summary}"

    @property
    def subject(self) -> str:
        return f"[sqlops] {self.project} {self.env}: {self.summary}"

    @property
    def listed(self) -> tuple[Event, ...]:
        return self.events[:LISTED]

    @property
    def more(self) -> str | None:
        extra = len(self.events) - LISTED
        return f"and {extra} more" if extra > 0 else None

    @property
    def owners(self) -> list[str]:
        """The email addresses among the @owners of the models named."""
        found = getaddresses([e.owner for e in self.events if e.owner])
        return list(dict.fromkeys(address for _, address in found if "@" in address))

    def text(self) -> str:
        lines = [self.title, "", *(line(e) for e in self.listed)]
        if self.more:
            lines.append(self.more)
        return "\n".join(lines) + "\n"

    def slack(self) -> dict[str, Any]:
        """An incoming-webhook payload: `text` for notifications, `blocks` for the channel."""
        title = f"*{slack_escape(self.title)}*"
        lines = [_clip(line(e, slack=True), 2900) for e in self.listed]
        blocks: list[dict[str, Any]] = [_section(title), *(_section(x) for x in lines)]
        text = "\n".join([title, *lines])
        if self.more:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": self.more}]})
            text += "\n" + self.more
        return {"text": text, "blocks": blocks}


def line(event: Event, *, slack: bool = False) -> str:
    """`FAILURE marts.orders · positive_amount: amount >= 0 · models/marts/orders.sql:14 ·
    2 failing rows of 60 · owner finance@example.com`; in Slack mrkdwn when `slack`."""

    def text(value: str) -> str:
        return slack_escape(value) if slack else value

    def code(value: str) -> str:
        # a backtick would end the code span early
        return "`" + slack_escape(value).replace("`", "'") + "`" if slack else value

    head = f"{_EMOJI[event.kind]} *{event.kind}*" if slack else event.kind.upper()
    parts = [f"{head} {code(event.node) if event.node else text(event.env)}"]
    if event.check is not None:
        check = code(_clip(event.check, 200))
        if event.assertion and event.assertion != event.check:
            check = f"{text(event.assertion)}: {check}"
        parts.append(check)
    if event.location:
        parts.append(text(event.location))
    if event.failing is not None:
        rows = f"{event.failing:,} failing row{'' if event.failing == 1 else 's'}"
        parts.append(rows + (f" of {event.total:,}" if event.total is not None else ""))
    if event.message:
        parts.append(text(_clip(event.message, 300)))
    if event.owner:
        parts.append(f"owner {text(event.owner)}")
    return " · ".join(parts)


def slack_escape(text: str) -> str:
    """Slack reads &, < and > in mrkdwn as markup: they must be written as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _clip(text: str, limit: int) -> str:
    """On one line, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

"""The period a report covers: `--since 30d` (or 12h, 8w, or a date) until now."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlops.errors import SqlopsError

_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_HINT = "write e.g. --since 30d (days), 12h (hours), 8w (weeks) or a date such as 2026-01-01"


@dataclass(frozen=True)
class Period:
    since: datetime  # naive UTC, like every timestamp in the history
    until: datetime
    text: str  # as the user wrote it

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400

    def __contains__(self, moment: datetime) -> bool:
        return self.since <= moment <= self.until

    def dates(self) -> list[date]:
        """Every UTC date the period touches, first to last."""
        first, last = self.since.date(), self.until.date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def to_json(self) -> dict[str, object]:
        return {"since": self.since, "until": self.until, "given": self.text, "days": self.days}


def parse_since(text: str, until: datetime) -> Period:
    """`30d`, `12h`, `8w` back from `until`, or an ISO date or timestamp (UTC unless it says)."""
    given = text.strip()
    relative = re.fullmatch(r"(\d+)\s*([hdw])", given.lower())
    if relative:
        amount = int(relative.group(1))
        if amount == 0:
            raise SqlopsError(f"--since `{text}` is an empty period", hint=_HINT)
        since = until - timedelta(**{_UNITS[relative.group(2)]: amount})
    else:
        try:
            parsed = datetime.fromisoformat(given)
        except ValueError:
            raise SqlopsError(f"--since `{text}` is not a period or a date", hint=_HINT) from None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        since = parsed
        if since >= until:
            raise SqlopsError(
                f"--since `{text}` is not before now ({until:%Y-%m-%d %H:%M} UTC)", hint=_HINT
            )
    return Period(since, until, given)

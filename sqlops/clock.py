"""The time sqlops writes into state and history: UTC, without a time zone.

`SQLOPS_NOW` (an ISO 8601 timestamp) fixes the clock, so that a history can be replayed in tests
and demos with known times.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlops.errors import SqlopsError


def now() -> datetime:
    fixed = os.environ.get("SQLOPS_NOW")
    if fixed:
        try:
            stamp = datetime.fromisoformat(fixed)
        except ValueError:
            raise SqlopsError(
                f"SQLOPS_NOW `{fixed}` is not an ISO 8601 timestamp",
                hint="write e.g. SQLOPS_NOW=2026-01-31T12:00:00, or unset it",
            ) from None
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC)
        return stamp.replace(tzinfo=None)
    return datetime.now(UTC).replace(tzinfo=None)

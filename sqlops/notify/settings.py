"""[notify] in sqlops.toml: which events are sent, for which environments, and where to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# config.py imports this module, so it reads sqlops.toml's lines itself rather than import them
from sqlops.errors import ConfigError, did_you_mean

EVENTS = ("failure", "warning", "deploy", "recovered")
DEFAULT_EVENTS = ("failure", "warning", "recovered")
SECURITY = ("starttls", "ssl", "none")
PORTS = {"starttls": 587, "ssl": 465, "none": 25}
NOTIFY_KEYS = {"webhooks", "events", "environments", "timeout", "email"}
EMAIL_KEYS = {
    "smtp_host",
    "smtp_port",
    "from",
    "to",
    "owners",
    "username",
    "password",
    "security",
}
_HEADER = re.compile(r'^\s*\[\[?\s*([A-Za-z0-9_.\-" ]+?)\s*\]\]?\s*(#.*)?$')


@dataclass(frozen=True)
class EmailSettings:
    """[notify.email]: the SMTP server, the sender and who receives the mail."""

    smtp_host: str
    sender: str  # `from` in sqlops.toml
    to: tuple[str, ...] = ()
    smtp_port: int = 587
    security: str = "starttls"
    owners: bool = False  # also mail the @owner of each model named, when it is an address
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NotifySettings:
    """[notify]. With no webhooks and no email, nothing is sent."""

    webhooks: tuple[str, ...] = field(default=(), repr=False)  # a webhook URL holds a token
    events: tuple[str, ...] = DEFAULT_EVENTS
    environments: tuple[str, ...] = ("prod",)
    timeout: float = 10.0  # seconds for each delivery
    email: EmailSettings | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.webhooks) or self.email is not None

    def wants(self, kind: str, env: str) -> bool:
        return kind in self.events and ("*" in self.environments or env in self.environments)


def parse_notify(raw: Any, path: Path, text: str) -> NotifySettings:
    """The [notify] table of sqlops.toml, with ${VAR} already expanded; `text` is the file's text,
    for line numbers."""
    if raw is None:
        return NotifySettings()
    toml = _Toml(path, text)
    if not isinstance(raw, dict):
        raise toml.error(
            "[notify] must be a table", "notify", hint="write [notify] on its own line"
        )
    toml.known_keys(raw, NOTIFY_KEYS, "notify")
    webhooks = toml.strings(raw, "webhooks", "notify", ())
    for number, url in enumerate(webhooks, start=1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # the URL is not shown: it holds the webhook's secret token
            raise toml.error(
                f"[notify] webhooks entry {number} is not an http:// or https:// URL",
                "notify",
                "webhooks",
                value=url,
                hint='write the incoming webhook\'s URL, e.g. "${SLACK_WEBHOOK_URL}"',
            )
    events = toml.strings(raw, "events", "notify", DEFAULT_EVENTS)
    for event in events:
        if event not in EVENTS:
            raise toml.error(
                f"[notify] unknown event `{event}`{did_you_mean(event, EVENTS)}",
                "notify",
                "events",
                value=f'"{event}"',
                hint=f"events are: {', '.join(EVENTS)}",
            )
    environments = toml.strings(raw, "environments", "notify", ("prod",))
    timeout = raw.get("timeout", 10)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise toml.error(
            "[notify] timeout must be a number of seconds above 0",
            "notify",
            "timeout",
            hint="write timeout = 10",
        )
    email = _email(raw["email"], toml) if "email" in raw else None
    return NotifySettings(
        webhooks=webhooks,
        events=events,
        environments=environments,
        timeout=float(timeout),
        email=email,
    )


def _email(raw: Any, toml: _Toml) -> EmailSettings:
    section = "notify.email"
    if not isinstance(raw, dict):
        raise toml.error(
            "[notify] email must be a table", "notify", "email", hint="write [notify.email]"
        )
    toml.known_keys(raw, EMAIL_KEYS, section)
    for key in ("smtp_host", "from"):
        if key not in raw:
            raise toml.error(
                f"[notify.email] needs `{key}`",
                section,
                hint='add smtp_host = "smtp.example.com" and from = "sqlops@example.com"',
            )
    host = toml.string(raw, "smtp_host", section)
    sender = toml.string(raw, "from", section)
    to = toml.strings(raw, "to", section, ())
    owners = raw.get("owners", False)
    if not isinstance(owners, bool):
        raise toml.error(
            "[notify.email] owners must be true or false",
            section,
            "owners",
            hint="write owners = true",
        )
    for address in (sender, *to):
        if "@" not in parseaddr(address)[1]:
            raise toml.error(
                f"[notify.email] `{address}` is not an email address",
                section,
                "from" if address == sender else "to",
                value=address,
                hint='write an address such as "data-team@example.com"',
            )
    if not to and not owners:
        raise toml.error(
            "[notify.email] has no one to mail",
            section,
            hint='add to = ["data-team@example.com"], or owners = true to mail each model\'s @owner',
        )
    security = raw.get("security")
    if security is not None and security not in SECURITY:
        raise toml.error(
            f"[notify.email] security must be one of {', '.join(SECURITY)}, not `{security}`",
            section,
            "security",
            hint='write security = "starttls" (port 587), "ssl" (port 465) or "none"',
        )
    port = raw.get("smtp_port", PORTS[security or "starttls"])
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise toml.error(
            "[notify.email] smtp_port must be a port number",
            section,
            "smtp_port",
            hint="write smtp_port = 587",
        )
    username = toml.string(raw, "username", section) if "username" in raw else None
    password = toml.string(raw, "password", section) if "password" in raw else None
    if (username is None) != (password is None):
        raise toml.error(
            "[notify.email] takes username and password together",
            section,
            "username" if username is not None else "password",
            hint='write both, e.g. username = "${SMTP_USER}" and password = "${SMTP_PASSWORD}"',
        )
    return EmailSettings(
        smtp_host=host,
        sender=sender,
        to=to,
        smtp_port=port,
        security=security or ("ssl" if port == 465 else "starttls"),
        owners=owners,
        username=username,
        password=password,
    )


@dataclass(frozen=True)
class _Toml:
    """sqlops.toml's text, to point an error at the line of a setting."""

    path: Path
    text: str

    def error(
        self,
        message: str,
        section: str,
        key: str | None = None,
        *,
        value: str | None = None,
        hint: str | None = None,
    ) -> ConfigError:
        return ConfigError(message, path=self.path, line=self.line(section, key, value), hint=hint)

    def line(self, section: str, key: str | None = None, value: str | None = None) -> int | None:
        """The line of `value` in `key` of [section], else of `key`, else of the header."""
        lines = self.text.splitlines()
        start = next(
            (i for i, line in enumerate(lines) if _header(line) == section),
            None,
        )
        if start is None:  # an inline table or dotted keys: settle for the first mention
            needle = key or section.rsplit(".", 1)[-1]
            return next((i + 1 for i, line in enumerate(lines) if needle in line), None)
        end = next(
            (i for i in range(start + 1, len(lines)) if _header(lines[i]) is not None),
            len(lines),
        )
        if key is None:
            return start + 1
        assignment = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=')
        found = next((i for i in range(start + 1, end) if assignment.match(lines[i])), None)
        if found is None:
            return start + 1
        if value is not None:
            # a value of a list may sit on a later line; one from ${VAR} is on none
            for i in range(found, end):
                if value in lines[i]:
                    return i + 1
        return found + 1

    def known_keys(self, table: dict[str, Any], known: set[str], section: str) -> None:
        for key in table:
            if key not in known:
                raise self.error(
                    f"unknown setting `{key}` in [{section}]{did_you_mean(key, known)}",
                    section,
                    key,
                    hint=f"[{section}] takes: {', '.join(sorted(known))}",
                )

    def strings(
        self, table: dict[str, Any], key: str, section: str, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        """A list of non-empty strings, without repeats."""
        value = table.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(
                f"[{section}] {key} must be a list of strings",
                section,
                key,
                hint=f'write {key} = ["..."]',
            )
        return tuple(dict.fromkeys(value))

    def string(self, table: dict[str, Any], key: str, section: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(
                f"[{section}] {key} must be a non-empty string",
                section,
                key,
                hint=f'write {key} = "..."',
            )
        return value


def _header(line: str) -> str | None:
    """`notify.email` for the line `[notify.email]`; None for a line that is not a header."""
    match = _HEADER.match(line)
    return None if match is None else re.sub(r'[\s"]', "", match.group(1))

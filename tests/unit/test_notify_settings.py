"""[notify] in sqlops.toml: defaults, every setting, and an error at path:line with a hint for
each kind of wrong input."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from sqlops.errors import ConfigError
from sqlops.notify.settings import (
    EMAIL_KEYS,
    EVENTS,
    NOTIFY_KEYS,
    EmailSettings,
    NotifySettings,
    parse_notify,
)

PATH = Path("/project/sqlops.toml")
PROJECT = '[project]\nname = "shop"\n\n'  # lines 1-3: errors below count from line 4

FULL = """\
[notify]
webhooks = ["https://hooks.slack.com/services/T000/B000/XXXX", "http://127.0.0.1:8080/hook"]
events = ["failure", "deploy", "failure"]
environments = ["*"]
timeout = 2.5

[notify.email]
smtp_host = "smtp.example.com"
from = "sqlops <sqlops@example.com>"
to = ["data-team@example.com"]
owners = true
username = "mailer"
password = "hunter2"
"""


def parse(text: str) -> NotifySettings:
    text = PROJECT + text
    return parse_notify(tomllib.loads(text).get("notify"), PATH, text)


def parse_error(text: str, line: int, message: str, hint: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    err = info.value
    assert err.path == PATH
    assert err.line == line, str(err)
    assert message in err.message
    assert err.hint is not None and hint in err.hint
    assert str(err).startswith(f"{PATH}:{line}: ")
    return err


def test_no_notify_section_sends_nothing() -> None:
    settings = parse("")
    assert settings == NotifySettings()
    assert not settings.enabled
    assert settings.events == ("failure", "warning", "recovered")
    assert settings.environments == ("prod",)
    assert settings.timeout == 10


def test_defaults_notify_prod_of_failures_warnings_and_recoveries() -> None:
    settings = parse('[notify]\nwebhooks = ["https://hooks.slack.com/services/T/B/X"]\n')
    assert settings.enabled
    assert settings.email is None
    assert settings.wants("failure", "prod")
    assert settings.wants("recovered", "prod")
    assert not settings.wants("deploy", "prod")  # opt-in
    assert not settings.wants("failure", "dev")


def test_every_setting() -> None:
    settings = parse(FULL)
    assert settings.webhooks == (
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "http://127.0.0.1:8080/hook",
    )
    assert settings.events == ("failure", "deploy")  # repeats dropped
    assert settings.environments == ("*",)
    assert settings.wants("deploy", "dev") and not settings.wants("warning", "prod")
    assert settings.timeout == 2.5
    assert settings.email == EmailSettings(
        smtp_host="smtp.example.com",
        sender="sqlops <sqlops@example.com>",
        to=("data-team@example.com",),
        smtp_port=587,
        security="starttls",
        owners=True,
        username="mailer",
        password="hunter2",
    )


def test_secrets_are_not_in_the_repr() -> None:
    shown = repr(parse(FULL))
    assert "hunter2" not in shown
    assert "XXXX" not in shown


@pytest.mark.parametrize(
    ("settings", "port", "security"),
    [
        ("", 587, "starttls"),
        ("smtp_port = 465", 465, "ssl"),
        ("smtp_port = 2525", 2525, "starttls"),
        ('security = "ssl"', 465, "ssl"),
        ('security = "none"', 25, "none"),
        ('security = "none"\nsmtp_port = 1025', 1025, "none"),
    ],
)
def test_security_and_port_follow_each_other(settings: str, port: int, security: str) -> None:
    email = parse(
        '[notify.email]\nsmtp_host = "localhost"\nfrom = "a@example.com"\nowners = true\n'
        + settings
    ).email
    assert email is not None
    assert (email.smtp_port, email.security) == (port, security)
    assert email.to == ()


@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        (
            '[notify]\nwebhook = ["https://x.example.com"]\n',
            5,
            "unknown setting `webhook` in [notify] (did you mean `webhooks`?)",
            "[notify] takes: email, environments, events, timeout, webhooks",
        ),
        (
            '[notify]\nevents = ["failures"]\n',
            5,
            "unknown event `failures` (did you mean `failure`?)",
            "events are: failure, warning, deploy, recovered",
        ),
        (
            '[notify]\nevents = [\n  "failure",\n  "deploys",\n]\n',
            7,
            "unknown event `deploys` (did you mean `deploy`?)",
            "events are:",
        ),
        (
            '[notify]\nwebhooks = "https://x.example.com"\n',
            5,
            "[notify] webhooks must be a list of strings",
            'webhooks = ["..."]',
        ),
        (
            '[notify]\nenvironments = ["prod", ""]\n',
            5,
            "[notify] environments must be a list of strings",
            'environments = ["..."]',
        ),
        ("[notify]\ntimeout = 0\n", 5, "timeout must be a number of seconds", "timeout = 10"),
        ('[notify]\ntimeout = "10"\n', 5, "timeout must be a number of seconds", "timeout = 10"),
        ("[notify]\ntimeout = true\n", 5, "timeout must be a number of seconds", "timeout = 10"),
        ('[notify]\nemail = "a@example.com"\n', 5, "email must be a table", "[notify.email]"),
        (
            '[notify.email]\nsmtp_hots = "x"\n',
            5,
            "unknown setting `smtp_hots` in [notify.email] (did you mean `smtp_host`?)",
            "[notify.email] takes:",
        ),
        (
            '[notify.email]\nfrom = "a@example.com"\nto = ["b@example.com"]\n',
            4,
            "[notify.email] needs `smtp_host`",
            'smtp_host = "smtp.example.com"',
        ),
        (
            '[notify.email]\nsmtp_host = "h"\nfrom = "a@example.com"\n',
            4,
            "has no one to mail",
            "owners = true",
        ),
        (
            '[notify.email]\nsmtp_host = "h"\nfrom = "a@example.com"\nto = [\n'
            '  "b@example.com",\n  "data-team",\n]\n',
            9,
            "`data-team` is not an email address",
            "data-team@example.com",
        ),
        (
            '[notify.email]\nsmtp_host = "h"\nfrom = "sqlops"\nowners = true\n',
            6,
            "`sqlops` is not an email address",
            "data-team@example.com",
        ),
        (
            '[notify.email]\nsmtp_host = ""\nfrom = "a@example.com"\nowners = true\n',
            5,
            "smtp_host must be a non-empty string",
            'smtp_host = "..."',
        ),
        (
            '[notify.email]\nsmtp_host = "h"\nfrom = "a@example.com"\nowners = "yes"\n',
            7,
            "owners must be true or false",
            "owners = true",
        ),
        (
            '[notify.email]\nsmtp_host = "h"\nfrom = "a@example.com"\nowners = true\n'
            'security = "tls"\n',
            8,
            "security must be one of starttls, ssl, none, not `tls`",
            '"starttls" (port 587)',
        ),
        (
            '[notify.email]\nsmtp_host = "h"\nfrom = "a@example.com"\nowners = true\n'
            "smtp_port = 70000\n",
            8,
            "smtp_port must be a port number",
            "smtp_port = 587",
        ),
        (
            '[notify.email]\nsmtp_host = "h"\nfrom = "a@example.com"\nowners = true\n'
            'smtp_port = "587"\n',
            8,
            "smtp_port must be a port number",
            "smtp_port = 587",
        ),
        (
            '[notify.email]\nsmtp_host = "h"\nfrom = "a@example.com"\nowners = true\n'
            'username = "mailer"\n',
            8,
            "takes username and password together",
            "${SMTP_PASSWORD}",
        ),
        (
            '[notify.email]\nsmtp_host = "h"\nfrom = "a@example.com"\nowners = true\n'
            "password = 42\n",
            8,
            "password must be a non-empty string",
            'password = "..."',
        ),
    ],
)
def test_wrong_input_is_an_error_at_its_line(text: str, line: int, message: str, hint: str) -> None:
    parse_error(text, line, message, hint)


def test_notify_must_be_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        parse_notify(3, PATH, 'notify = 3\n[project]\nname = "shop"\n')
    assert info.value.line == 1
    assert info.value.message == "[notify] must be a table"


def test_a_webhook_that_is_not_a_url_is_not_shown() -> None:
    # the URL holds the webhook's token; a typo must not print it
    err = parse_error(
        '[notify]\nwebhooks = [\n  "https://hooks.slack.com/services/T/B/X",\n'
        '  "hooks.slack.com/services/T/B/SECRET",\n]\n',
        7,
        "[notify] webhooks entry 2 is not an http:// or https:// URL",
        "${SLACK_WEBHOOK_URL}",
    )
    assert "SECRET" not in str(err)


def test_a_webhook_from_an_environment_variable_is_reported_at_its_key() -> None:
    # config.py expands ${VAR} before parse_notify: the value is not in the file's text
    text = PROJECT + '[notify]\nwebhooks = ["${HOOK}"]\n'
    raw = {"webhooks": ["ftp://files.example.com/SECRET"]}
    with pytest.raises(ConfigError) as info:
        parse_notify(raw, PATH, text)
    assert info.value.line == 5
    assert "SECRET" not in str(info.value)


def test_lines_are_found_in_the_notify_section() -> None:
    # `timeout` in an earlier table is not the one reported
    parse_error(
        "[vars]\ntimeout = 5\n\n[notify]\ntimeout = -1\n",
        8,
        "timeout must be a number of seconds",
        "timeout = 10",
    )


def test_the_documented_settings_parse_and_cover_every_setting_and_event() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", docs, flags=re.S)
    # config.py expands ${VAR} first
    text = re.sub(r"\$\{(\w+)\}", lambda m: f"https://{m.group(1).lower()}.example.com", block)
    settings = parse_notify(tomllib.loads(text)["notify"], PATH, text)
    assert settings.webhooks == ("https://slack_webhook_url.example.com",)
    assert settings.email is not None and settings.email.owners
    for key in NOTIFY_KEYS - {"email"} | EMAIL_KEYS:
        assert re.search(rf"^{key} = ", block, flags=re.M), key
    for event in EVENTS:
        assert f"\n| `{event}` |" in docs, event

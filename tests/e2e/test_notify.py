"""Notifications end to end: a real build on DuckDB, sent to a real HTTP server and a real SMTP
server started here on the loopback address; deliveries that fail are reported, never raised."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, Session

from sqlops.engines import connect
from sqlops.graph.selectors import select
from sqlops.notify.events import Event, events_of
from sqlops.notify.message import LISTED, Message
from sqlops.notify.send import send_run
from sqlops.notify.settings import EmailSettings, NotifySettings
from sqlops.project.loader import Project, load_project
from sqlops.run.executor import build, plan_build
from sqlops.run.results import RunResult

LOOPBACK = "127.0.0.1"
TOKEN = "/services/T0001/B0001/s3cr3tT0k3n"
OWNER = "someone@example.com"
ORDERS = """\
-- @owner someone@example.com
SELECT * FROM (VALUES {rows}) AS t(order_id, amount)

-- @assert positive_amount: amount >= 0
-- @warn small_amounts: amount < 5
-- @warn row_count() > 3
"""
FAILING = "(1, 10), (2, -5), (3, -1)"
PASSING = "(1, 1), (2, 2), (3, 3), (4, 4)"


# -- a real project, built twice: first failing, then fixed ----------------------------------------


@dataclass(frozen=True)
class Runs:
    project: Project
    failed: RunResult
    fixed: RunResult


def run_build(root: Path) -> tuple[Project, RunResult]:
    project = load_project(root, use_cache=False)
    engine = connect(project.target, project.root)
    try:
        plan = plan_build(project, engine, "prod", select(project, []))
        return project, build(project, engine, plan)
    finally:
        engine.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("notify") / "shop"
    files = {
        "sqlops.toml": '[project]\nname = "shop"\n\n[targets.local]\nengine = "duckdb"\n'
        'path = "shop.duckdb"\n',
        "models/staging/orders.sql": ORDERS.format(rows=FAILING),
        "models/marts/totals.sql": "SELECT sum(amount) AS total FROM staging.orders\n",
        # fails when it is built, not when it is loaded
        "models/staging/broken.sql": "-- @owner ops-team\nSELECT CAST('abc' AS INTEGER) AS n\n",
    }
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text)
    _, failed = run_build(root)
    assert not failed.ok and not failed.promoted
    (root / "models/staging/orders.sql").write_text(ORDERS.format(rows=PASSING))
    (root / "models/staging/broken.sql").write_text("-- @owner ops-team\nSELECT 1 AS n\n")
    project, fixed = run_build(root)
    assert fixed.ok and fixed.promoted
    return Runs(project, failed, fixed)


# -- a real webhook receiver and a real SMTP server, on the loopback address ----------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Webhook(ThreadingHTTPServer):
    """Answers every POST with `status` and `reply`, and keeps what it received."""

    daemon_threads = True

    def __init__(self, status: int, reply: bytes) -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        self.status = status
        self.reply = reply
        self.received: list[Received] = []

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}{TOKEN}"


class _Handler(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(Received(self.path, dict(self.headers), body))
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.server.reply)))
        self.end_headers()
        self.wfile.write(self.server.reply)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Webhook]]:
    # a proxy set in the environment must not take requests meant for the loopback address
    monkeypatch.setenv("no_proxy", LOOPBACK)
    monkeypatch.setenv("NO_PROXY", LOOPBACK)
    started: list[Webhook] = []

    def start(status: int = 200, reply: bytes = b"ok") -> Webhook:
        server = Webhook(status, reply)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message, or refuses every recipient."""

    refuse: bool = False
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), mail))
        return "250 OK"


def free_port() -> int:
    """A port nothing listens on (aiosmtpd's controller cannot be given port 0)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def smtp() -> Iterator[Callable[..., tuple[Inbox, int]]]:
    controllers: list[Controller] = []

    def start(inbox: Inbox | None = None, **options: Any) -> tuple[Inbox, int]:
        inbox = inbox or Inbox()
        port = free_port()
        controller = Controller(inbox, hostname=LOOPBACK, port=port, **options)
        controller.start()
        controllers.append(controller)
        return inbox, port

    yield start
    for controller in controllers:
        controller.stop()


def email_to(port: int, **options: Any) -> EmailSettings:
    return EmailSettings(
        smtp_host=LOOPBACK,
        sender="sqlops@example.com",
        to=("data-team@example.com",),
        smtp_port=port,
        security="none",
        **options,
    )


# -- what a failed build sends --------------------------------------------------------------------


def test_events_of_a_failed_build(runs: Runs) -> None:
    events = events_of(runs.project, runs.failed)
    assert [e.kind for e in events] == ["failure", "failure", "warning", "warning"]
    failures = {e.node: e for e in events[:2]}
    warnings = events[2:]
    assert failures["staging.orders"] == Event(
        kind="failure",
        env="prod",
        node="staging.orders",
        owner=OWNER,
        assertion="positive_amount",
        check="amount >= 0",
        location="models/staging/orders.sql:4",
        failing=2,
        message=None,
        total=3,
    )
    assert [(w.kind, w.assertion, w.failing, w.location) for w in warnings] == [
        ("warning", "small_amounts", 1, "models/staging/orders.sql:5"),
        ("warning", "row_count() > 3", None, "models/staging/orders.sql:6"),
    ]
    # a table-level check has no failing rows: it says what it measured
    assert warnings[1].message == "measured row_count() = 3"
    # a model the database could not build is a failure, with the database's message
    error = failures["staging.broken"]
    assert (error.owner, error.location, error.assertion, error.failing) == (
        "ops-team",
        "models/staging/broken.sql",
        None,
        None,
    )
    assert error.message is not None and "abc" in error.message
    # marts.totals was skipped: not an event of its own
    assert "marts.totals" not in {e.node for e in events}
    # a promotion that failed is a failure too
    rolled_back = replace(runs.failed, promotion_error="the view could not be replaced")
    promotion = events_of(runs.project, rolled_back)[2]  # after the other failures
    assert (promotion.kind, promotion.node, promotion.message) == (
        "failure",
        None,
        "promoting prod failed and was rolled back: the view could not be replaced",
    )


def test_a_failed_build_is_sent_to_the_webhook_and_by_email(
    runs: Runs, webhook: Callable[..., Webhook], smtp: Callable[..., tuple[Inbox, int]]
) -> None:
    hook = webhook()
    inbox, port = smtp()
    settings = NotifySettings(webhooks=(hook.url,), timeout=5, email=email_to(port, owners=True))
    assert send_run(settings, runs.project, runs.failed, run_id=7) == []

    (request,) = hook.received
    assert request.path == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    payload = request.json()
    title = "sqlops shop: build prod (run 7): 2 failures, 2 warnings, 1 skipped"
    assert payload["blocks"][0]["text"]["text"] == f"*{title}*"
    lines = [b["text"]["text"] for b in payload["blocks"][1:]]
    (failure,) = [x for x in lines if "positive_amount" in x]
    # Slack mrkdwn: & < > are entities, code in backticks
    assert failure == (
        ":x: *failure* `staging.orders` · positive_amount: `amount &gt;= 0` · "
        f"models/staging/orders.sql:4 · 2 failing rows of 3 · owner {OWNER}"
    )
    assert "small_amounts: `amount &lt; 5`" in lines[2]
    assert payload["text"] == "\n".join([f"*{title}*", *lines])
    assert_valid_slack(payload)

    ((recipients, mail),) = inbox.messages
    # owners = true: the @owner that is an email address
    assert recipients == ["data-team@example.com", OWNER]
    assert mail["Subject"] == "[sqlops] shop prod: 2 failures, 2 warnings, 1 skipped"
    assert mail["From"] == "sqlops@example.com"
    body = mail.get_content().replace("\r\n", "\n")
    assert body.startswith(title + "\n")
    assert (
        "FAILURE staging.orders · positive_amount: amount >= 0 · models/staging/orders.sql:4 · "
        f"2 failing rows of 3 · owner {OWNER}"
    ) in body
    assert "WARNING staging.orders · small_amounts: amount < 5" in body
    assert "FAILURE staging.broken · models/staging/broken.sql · Conversion Error" in body
    assert "row_count() > 3 · models/staging/orders.sql:6 · measured row_count() = 3" in body


def assert_valid_slack(payload: dict[str, Any]) -> None:
    """What Slack's incoming webhooks accept: mrkdwn sections and contexts, within its limits."""
    assert set(payload) == {"text", "blocks"}
    assert len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        texts = [block["text"]] if block["type"] == "section" else block["elements"]
        assert block["type"] in ("section", "context")
        for text in texts:
            assert text["type"] == "mrkdwn"
            assert 0 < len(text["text"]) <= 3000
            assert "<" not in text["text"] and ">" not in text["text"]


def test_owners_are_mailed_only_when_asked(
    runs: Runs, smtp: Callable[..., tuple[Inbox, int]]
) -> None:
    inbox, port = smtp()
    settings = NotifySettings(timeout=5, email=email_to(port))
    assert send_run(settings, runs.project, runs.failed) == []
    ((recipients, _),) = inbox.messages
    assert recipients == ["data-team@example.com"]


# -- which events are sent ------------------------------------------------------------------------


def test_only_chosen_events_and_environments_are_sent(
    runs: Runs, webhook: Callable[..., Webhook]
) -> None:
    hook = webhook()
    default = NotifySettings(webhooks=(hook.url,), timeout=5)
    # a successful deploy is not sent unless asked for
    assert send_run(default, runs.project, runs.fixed, recovered=()) == []
    assert hook.received == []
    # only prod notifies by default
    in_dev = replace(runs.failed, env="dev")
    assert send_run(default, runs.project, in_dev) == []
    assert hook.received == []
    # every environment, warnings only
    warnings = replace(default, events=("warning",), environments=("*",))
    assert send_run(warnings, runs.project, in_dev) == []
    (request,) = hook.received
    text = request.json()["text"]
    assert "2 warnings" in text and "dev" in text
    assert "failure" not in text and "skipped" not in text


def test_deploy_is_sent_when_asked_for(runs: Runs, webhook: Callable[..., Webhook]) -> None:
    hook = webhook()
    settings = NotifySettings(webhooks=(hook.url,), events=("deploy",), timeout=5)
    assert send_run(settings, runs.project, runs.fixed, recovered=()) == []
    (request,) = hook.received
    deployment = runs.fixed.deployment_id
    assert request.json()["blocks"][1]["text"]["text"] == (
        f":rocket: *deploy* prod · deployment {deployment}: 3 nodes promoted, 3 built"
    )


def test_recovered_models_are_sent(
    runs: Runs, webhook: Callable[..., Webhook], smtp: Callable[..., tuple[Inbox, int]]
) -> None:
    hook = webhook()
    inbox, port = smtp()
    settings = NotifySettings(webhooks=(hook.url,), timeout=5, email=email_to(port, owners=True))
    assert send_run(settings, runs.project, runs.fixed, recovered=["staging.orders"]) == []
    (request,) = hook.received
    blocks = request.json()["blocks"]
    assert blocks[0]["text"]["text"].endswith(": 1 recovered*")
    assert blocks[1]["text"]["text"] == (
        ":white_check_mark: *recovered* `staging.orders` · models/staging/orders.sql · "
        f"its blocking assertions pass again · owner {OWNER}"
    )
    ((recipients, mail),) = inbox.messages
    assert recipients == ["data-team@example.com", OWNER]
    assert mail["Subject"] == "[sqlops] shop prod: 1 recovered"


def test_recovered_models_default_to_the_runs_own(
    runs: Runs, webhook: Callable[..., Webhook]
) -> None:
    hook = webhook()
    settings = NotifySettings(webhooks=(hook.url,), timeout=5)
    closed = replace(runs.fixed, recovered=("staging.orders",), run_id=12)
    assert send_run(settings, runs.project, closed) == []
    (request,) = hook.received
    assert request.json()["blocks"][0]["text"]["text"] == (
        "*sqlops shop: build prod (run 12): 1 recovered*"
    )


# -- deliveries that fail -------------------------------------------------------------------------


def test_a_webhook_answering_500_is_reported_without_its_url(
    runs: Runs, webhook: Callable[..., Webhook]
) -> None:
    broken = webhook(500, b"no_service")
    working = webhook()
    settings = NotifySettings(webhooks=(broken.url, working.url), timeout=5)
    problems = send_run(settings, runs.project, runs.failed)
    port = broken.server_address[1]
    assert problems == [
        f"webhook 1 ({LOOPBACK}:{port}): HTTP 500 Internal Server Error: no_service"
    ]
    assert len(broken.received) == 1
    assert len(working.received) == 1  # one failing delivery does not stop the others


def test_a_closed_port_is_reported(runs: Runs, webhook: Callable[..., Webhook]) -> None:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}{TOKEN}"
    problems = send_run(NotifySettings(webhooks=(url,), timeout=5), runs.project, runs.failed)
    assert problems == [f"webhook 1 ({LOOPBACK}:{port}): connection refused"]


def test_a_webhook_that_never_answers_is_given_up(runs: Runs) -> None:
    # it accepts the connection and reads nothing: send_run waits `timeout` seconds, no more
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        port = listener.getsockname()[1]
        url = f"http://{LOOPBACK}:{port}{TOKEN}"
        settings = NotifySettings(webhooks=(url,), timeout=0.5)
        problems = send_run(settings, runs.project, runs.failed)
    assert problems == [f"webhook 1 ({LOOPBACK}:{port}): no answer within 0.5s"]


def test_an_smtp_server_that_refuses_is_reported(
    runs: Runs, smtp: Callable[..., tuple[Inbox, int]]
) -> None:
    inbox, port = smtp(Inbox(refuse=True))
    problems = send_run(NotifySettings(timeout=5, email=email_to(port)), runs.project, runs.failed)
    assert problems == [
        f"email via {LOOPBACK}:{port}: the server refused "
        "data-team@example.com (550 5.1.1 no such mailbox)"
    ]
    assert inbox.messages == []


def test_a_refused_login_does_not_show_the_password(
    runs: Runs, smtp: Callable[..., tuple[Inbox, int]]
) -> None:
    def refuse(*args: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    inbox, port = smtp(authenticator=refuse, auth_require_tls=False)
    email = email_to(port, username="mailer", password="pa55w0rd")
    problems = send_run(NotifySettings(timeout=5, email=email), runs.project, runs.failed)
    assert len(problems) == 1
    assert problems[0].startswith(f"email via {LOOPBACK}:{port}: SMTP 535 ")
    assert "pa55w0rd" not in problems[0]
    assert inbox.messages == []


def test_starttls_to_a_server_without_it_is_reported(
    runs: Runs, smtp: Callable[..., tuple[Inbox, int]]
) -> None:
    inbox, port = smtp()
    email = replace(email_to(port), security="starttls")
    problems = send_run(NotifySettings(timeout=5, email=email), runs.project, runs.failed)
    assert problems == [
        f"email via {LOOPBACK}:{port}: SMTPNotSupportedError: "
        "STARTTLS extension not supported by server."
    ]
    assert inbox.messages == []


def test_an_smtp_port_nothing_listens_on_is_reported(runs: Runs) -> None:
    port = free_port()
    problems = send_run(NotifySettings(timeout=5, email=email_to(port)), runs.project, runs.failed)
    assert problems == [f"email via {LOOPBACK}:{port}: connection refused"]


def test_nothing_configured_sends_nothing(runs: Runs) -> None:
    assert send_run(NotifySettings(), runs.project, runs.failed) == []


# -- the message ----------------------------------------------------------------------------------


def test_a_long_run_lists_the_first_events_and_counts_the_rest() -> None:
    events = tuple(
        Event("failure", "prod", f"s.m{i}", None, "a & b", "x < 1", f"m{i}.sql:3", i, None)
        for i in range(LISTED + 5)
    )
    message = Message("shop", "test", "prod", None, events)
    assert message.title == "sqlops shop: test prod: 25 failures"
    payload = message.slack()
    assert len(payload["blocks"]) == 1 + LISTED + 1
    assert payload["blocks"][-1]["elements"][0]["text"] == "and 5 more"
    assert "a &amp; b: `x &lt; 1`" in payload["blocks"][1]["text"]["text"]
    assert_valid_slack(payload)
    text = message.text()
    assert text.count("FAILURE") == LISTED
    assert text.endswith("and 5 more\n")
    assert "a & b: x < 1" in text  # plain text is not escaped


# -- through the command line, configured in sqlops.toml ------------------------------------------


def test_sqlops_build_notifies_from_its_config(
    make_project: Callable[[dict[str, str]], Any],
    webhook: Callable[..., Webhook],
    smtp: Callable[..., tuple[Inbox, int]],
) -> None:
    hook = webhook()
    inbox, port = smtp()
    config = (
        '[project]\nname = "shop"\n\n[targets.local]\nengine = "duckdb"\npath = "shop.duckdb"\n\n'
        '[notify]\nwebhooks = ["${HOOK_URL}"]\nevents = ["failure", "warning", "recovered"]\n\n'
        f'[notify.email]\nsmtp_host = "{LOOPBACK}"\nsmtp_port = {port}\nsecurity = "none"\n'
        'from = "sqlops@example.com"\nto = ["data-team@example.com"]\n'
    )
    shop = make_project(
        {"sqlops.toml": config, "models/staging/orders.sql": ORDERS.format(rows=FAILING)}
    )
    env = {"HOOK_URL": hook.url, "no_proxy": LOOPBACK, "NO_PROXY": LOOPBACK}
    failed = shop.sqlops("build", env=env)
    assert failed.code == 1, failed.output
    [posted] = hook.received
    assert posted.path == TOKEN
    text = posted.json()["text"]
    assert "staging.orders" in text and "positive_amount" in text
    assert "models/staging/orders.sql:4" in text and OWNER in text
    [(_, mail)] = inbox.messages
    assert "positive_amount" in mail.get_content()
    # fixed: the incident closes, and that is news too
    shop.write("models/staging/orders.sql", ORDERS.format(rows=PASSING))
    fixed = shop.sqlops("build", env=env)
    assert fixed.code == 0, fixed.output
    assert "recovered" in hook.received[-1].json()["text"].lower()
    # a webhook that is gone is reported; the build's outcome is its own
    hook.shutdown()
    hook.server_close()
    shop.write("models/staging/orders.sql", ORDERS.format(rows=FAILING))
    gone = shop.sqlops("build", env=env)
    assert gone.code == 1
    assert "warning: notification not delivered: webhook 1" in gone.stderr
    assert TOKEN not in gone.output


def test_only_the_commands_that_notify_need_its_secrets(
    make_project: Callable[[dict[str, str]], Any],
) -> None:
    config = (
        '[project]\nname = "shop"\n\n[targets.local]\nengine = "duckdb"\npath = "shop.duckdb"\n\n'
        '[notify]\nwebhooks = ["${UNSET_HOOK_URL}"]\n'
    )
    shop = make_project({"sqlops.toml": config, "models/m.sql": "SELECT 1 AS one\n"})
    for command in (["ls"], ["history"], ["report"], ["build", "--dry-run"]):
        assert shop.sqlops(*command).code == 0, command
    for command in (["build"], ["test"]):
        refused = shop.sqlops(*command)
        assert refused.code == 2
        assert "sqlops.toml:9: environment variable UNSET_HOOK_URL is not set" in refused.stderr
    assert not shop.db.exists()  # refused before anything ran

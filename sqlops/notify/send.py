"""Deliver a run's message to every webhook and by email. A delivery that fails is reported,
never raised: a notification must not fail a build or hold it up."""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlops import __version__
from sqlops.notify.events import events_of
from sqlops.notify.message import Message
from sqlops.run.results import RunResult, Status
from sqlops.secrets import scrub

if TYPE_CHECKING:
    from sqlops.notify.settings import EmailSettings, NotifySettings
    from sqlops.project.loader import Project


def send_run(
    settings: NotifySettings,
    project: Project,
    result: RunResult,
    *,
    recovered: Sequence[str] | None = None,
    run_id: int | None = None,
) -> list[str]:
    """Send what a finished run has to tell, as one message, to every webhook and the email
    recipients; return what could not be delivered. `recovered` and `run_id` default to the
    result's own. Nothing is sent when no event passes the settings' filters."""
    if not settings.enabled:
        return []
    found = events_of(
        project, result, recovered=result.recovered if recovered is None else recovered
    )
    events = tuple(e for e in found if settings.wants(e.kind, e.env))
    if not events:
        return []
    message = Message(
        project.config.name,
        result.command,
        result.env,
        result.run_id if run_id is None else run_id,
        events,
        result.counts[Status.SKIPPED.value],
    )
    return deliver(settings, message)


def deliver(settings: NotifySettings, message: Message) -> list[str]:
    """Send `message` everywhere at once, waiting at most `settings.timeout` seconds in all.
    A problem names a webhook by its number and host only: the rest of its URL is a secret."""
    jobs: list[tuple[str, Callable[[], None]]] = []
    payload = json.dumps(message.slack()).encode()
    for number, url in enumerate(settings.webhooks, start=1):
        jobs.append(
            (f"webhook {number} ({_host(url)})", partial(_post, url, payload, settings.timeout))
        )
    email = settings.email
    if email is not None:
        owners = message.owners if email.owners else []
        recipients = list(dict.fromkeys([*email.to, *owners]))
        if recipients:
            where = f"email via {email.smtp_host}:{email.smtp_port}"
            jobs.append((where, partial(_mail, email, message, recipients, settings.timeout)))
    problems = _run(jobs, settings.timeout)
    secrets = tuple(_secrets(settings))
    return [scrub(p, secrets) for p in problems]


def _run(jobs: list[tuple[str, Callable[[], None]]], timeout: float) -> list[str]:
    """Run each job in a thread of its own; one still running after `timeout` is left behind
    (a daemon thread does not keep sqlops from exiting) and reported."""
    failed: dict[int, str] = {}

    def attempt(index: int, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as exc:  # whatever goes wrong is a problem to report, not to raise
            failed[index] = _describe(exc, timeout)

    threads = [
        threading.Thread(target=attempt, args=(i, job), name="sqlops-notify", daemon=True)
        for i, (_, job) in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    problems = []
    for index, ((name, _), thread) in enumerate(zip(jobs, threads, strict=True)):
        if thread.is_alive():
            problems.append(f"{name}: no answer within {timeout:g}s")
        elif index in failed:
            problems.append(f"{name}: {failed[index]}")
    return problems


def _post(url: str, payload: bytes, timeout: float) -> None:
    request = urllib.request.Request(
        url,
        data=payload,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"sqlops/{__version__}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def _mail(email: EmailSettings, message: Message, recipients: list[str], timeout: float) -> None:
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = email.sender
    mail["To"] = ", ".join(recipients)
    mail.set_content(message.text())
    context = ssl.create_default_context()
    client = (
        smtplib.SMTP_SSL(email.smtp_host, email.smtp_port, timeout=timeout, context=context)
        if email.security == "ssl"
        else smtplib.SMTP(email.smtp_host, email.smtp_port, timeout=timeout)
    )
    with client:
        if email.security == "starttls":
            client.starttls(context=context)
        if email.username is not None and email.password is not None:
            client.login(email.username, email.password)
        refused = client.send_message(mail, to_addrs=recipients)
    if refused:  # some recipients were refused, the others got it
        raise smtplib.SMTPRecipientsRefused(refused)


def _describe(exc: BaseException, timeout: float) -> str:
    """What went wrong, in words, without the request's URL."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}" + (f": {body}" if (body := _body(exc)) else "")
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return _describe(reason, timeout) if isinstance(reason, BaseException) else str(reason)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot find the host ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(
            f"{address} ({code} {_decode(text)})"
            for address, (code, text) in exc.recipients.items()
        )
        return f"the server refused {refused}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code} {_decode(exc.smtp_error)}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _body(exc: urllib.error.HTTPError) -> str:
    """The start of an error response: Slack says what is wrong there (`invalid_token`)."""
    try:
        return " ".join(exc.read(300).decode("utf-8", "replace").split())[:200]
    except Exception:
        return ""


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _host(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname}:{port}" if port else str(parts.hostname)


def _secrets(settings: NotifySettings) -> list[str]:
    """What a problem must never show: webhook URLs (but for their host), the SMTP password."""
    found = []
    for url in settings.webhooks:
        parts = urlsplit(url)
        found += [url, parts.path, parts.query, parts.password or "", parts.username or ""]
    if settings.email and settings.email.password:
        found.append(settings.email.password)
    # longest first, so that a URL goes whole before its path is looked for
    return sorted({s for s in found if len(s) > 1}, key=len, reverse=True)

"""The doctor's notifier: delivers one message to people by email (SMTP provider) and Slack (Slack provider).

`DoctorNotifier` is an Airflow notifier (airflow.sdk `BaseNotifier`) in the shape of the providers'
own `SmtpNotifier` and `SlackWebhookNotifier`: connection ids with documented defaults (`doctor_smtp`,
`doctor_slack`), hooks built on first use, and only the providers' public surface:
`SmtpHook.send_email_smtp` inside `with SmtpHook(...)`, and `SlackWebhookHook.send`.

Delivery rules (`deliver`): each channel is tried up to `attempts` times with exponential backoff
(1 s, 2 s by default); a failed channel is logged and never stops the other or the caller, and a
missing connection skips its channel with a log line. The SMTP connection's own `retry_limit`
extra (the provider retries a refused connect or send that many times, 5 by default) applies
inside each attempt.

What a message says and how each channel shows it belongs to messages.py (`render_html`,
`slack_payload`); this module only delivers what it is given. The provider's `send_email_smtp`
sends an HTML body only: the message's plain-text form is not part of the email.
Writes: one email and one Slack post per successful `deliver`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from email.utils import make_msgid
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_doctor.settings import SLACK_CONN_ID, SMTP_CONN_ID, connection_exists

if TYPE_CHECKING:
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
    from airflow.providers.smtp.hooks.smtp import SmtpHook

log = logging.getLogger(__name__)

#: Tries per channel and message (the first included).
CHANNEL_ATTEMPTS = 3
#: Seconds before the second try; doubled before each later one.
CHANNEL_BACKOFF_SECONDS = 1.0
#: Seconds the Slack webhook may take to answer one post.
SLACK_TIMEOUT_SECONDS = 10
#: The sender when the SMTP connection names no `from_email` extra.
DEFAULT_FROM_EMAIL = "airflow-doctor@localhost"


def with_retries(
    name: str,
    send: Callable[[], None],
    attempts: int = CHANNEL_ATTEMPTS,
    backoff_seconds: float = CHANNEL_BACKOFF_SECONDS,
) -> str:
    """Run `send` until it returns, at most `attempts` times, sleeping `backoff_seconds` * 2**(n-1)
    seconds after the n-th failure.

    Args:
        name: the channel, for the log ("email", "slack").
        send: one delivery; any exception it raises counts as a failed try.
        attempts: tries in all (at least 1).
        backoff_seconds: the first wait, in seconds.
    Returns:
        "sent", or "failed: <ExceptionType>: <message>" (at most 300 characters) after the last try.
    """
    error = ""
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            send()
            return "sent"
        except Exception as exc:  # noqa: BLE001 - one channel's failure must not stop the other
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("%s attempt %d/%d failed: %s", name, attempt, attempts, error)
            if attempt < attempts:
                time.sleep(backoff_seconds * 2 ** (attempt - 1))
    return f"failed: {error}"


class DoctorNotifier(BaseNotifier):
    """Send one rendered doctor message by email and to a Slack incoming webhook.

    The message is rendered before it gets here (messages.py): it holds text from logs and from the
    LLM, so nothing of it is a template field; Airflow never renders it as Jinja.

    Args:
        to: email recipients (addresses).
        subject: the email's subject (one line).
        html_content: the email's HTML body.
        slack_payload: keyword arguments of `SlackWebhookHook.send` (text, blocks, unfurl_links,
            unfurl_media); None sends nothing to Slack.
        smtp_conn_id: the SMTP connection (default `doctor_smtp`).
        slack_conn_id: the Slack incoming-webhook connection (default `doctor_slack`).
        attempts: tries per channel (the first included).
        backoff_seconds: seconds before the second try of a channel, doubled for each later one.
    """

    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        to: Sequence[str],
        subject: str,
        html_content: str,
        slack_payload: dict[str, Any] | None = None,
        smtp_conn_id: str = SMTP_CONN_ID,
        slack_conn_id: str = SLACK_CONN_ID,
        attempts: int = CHANNEL_ATTEMPTS,
        backoff_seconds: float = CHANNEL_BACKOFF_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to = list(to)
        self.subject = subject
        self.html_content = html_content
        self.slack_payload = slack_payload
        self.smtp_conn_id = smtp_conn_id
        self.slack_conn_id = slack_conn_id
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds

    @cached_property
    def smtp_hook(self) -> SmtpHook:
        """The SMTP provider's hook for `smtp_conn_id` (it logs in on `with`, and out after)."""
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        return SmtpHook(smtp_conn_id=self.smtp_conn_id)

    @cached_property
    def slack_hook(self) -> SlackWebhookHook:
        """The Slack provider's incoming-webhook hook for `slack_conn_id`."""
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        return SlackWebhookHook(slack_webhook_conn_id=self.slack_conn_id, timeout=SLACK_TIMEOUT_SECONDS)

    def send_email(self) -> None:
        """One try of the email: log in, send, log out (`SmtpHook.send_email_smtp`).

        Raises:
            whatever the SMTP provider raises (connection refused, authentication, recipients
            refused, ...).
        """
        with self.smtp_hook as smtp:
            smtp.send_email_smtp(
                to=self.to,
                subject=self.subject,
                html_content=self.html_content,
                from_email=smtp.from_email or DEFAULT_FROM_EMAIL,
                custom_headers={"Message-ID": make_msgid(domain="airflow-doctor")},
            )

    def send_slack(self) -> None:
        """One try of the Slack post (`SlackWebhookHook.send`).

        Raises:
            whatever the Slack provider raises (an answer other than 200 "ok", a timeout, ...).
        """
        self.slack_hook.send(**(self.slack_payload or {}))

    def deliver(self) -> dict[str, str]:
        """Send on both channels with bounded retries. Never raises.

        Returns:
            {"subject": str, "email": "sent" | "skipped: ..." | "failed: ...", "slack": the same}.
        """
        result = {"subject": self.subject}
        result["email"] = self._channel("email", self.smtp_conn_id, self.send_email)
        if self.slack_payload is None:
            result["slack"] = "skipped: no Slack message"
        else:
            result["slack"] = self._channel("slack", self.slack_conn_id, self.send_slack)
        return result

    def _channel(self, name: str, conn_id: str, send: Callable[[], None]) -> str:
        if not connection_exists(conn_id):
            log.warning("No %s connection: %s skipped", conn_id, name)
            return f"skipped: no connection {conn_id}"
        return with_retries(name, send, self.attempts, self.backoff_seconds)

    def notify(self, context) -> None:
        """Airflow's notifier entry point (e.g. as a callback): `deliver`, whose result is logged."""
        result = self.deliver()
        log.info("Doctor message %r: email %s, slack %s", self.subject, result["email"], result["slack"])

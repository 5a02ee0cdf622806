"""DoctorNotifier through the real SMTP and Slack providers to the loopback sinks (tests/conftest.py):
what arrives, what a dead or missing channel does to the other, and that a message is never a
template."""

from __future__ import annotations

import json
import os

import pytest

from airflow_doctor.notifications.notifier import DoctorNotifier, with_retries
from tests.conftest import free_port

SUBJECT = "[airflow-doctor] escalated: etl.load (db_connection_lost)"
HTML = "<h2>escalated</h2><p>Log text {{ conn.doctor_db.password }} {% raise %} shown as is</p>"
SLACK = {"text": SUBJECT, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}


def _notifier(**kwargs) -> DoctorNotifier:
    return DoctorNotifier(
        to=["oncall@example.com", "owner@example.com"],
        subject=SUBJECT,
        html_content=HTML,
        slack_payload=SLACK,
        backoff_seconds=0.01,
        **kwargs,
    )


def test_as_an_airflow_notifier_it_mails_and_posts_the_message_as_given(sinks):
    notifier = _notifier()
    assert (notifier.smtp_conn_id, notifier.slack_conn_id) == ("doctor_smtp", "doctor_slack")
    assert "smtp_hook" not in notifier.__dict__ and "slack_hook" not in notifier.__dict__  # built on use

    notifier({"dag": None, "ti": None})  # what Airflow calls; Jinja syntax in the message stays text

    [mail] = sinks.mails()
    assert mail["subject"] == SUBJECT and mail["html"] == HTML
    assert mail["mail_from"] == "doctor@localhost"  # the connection's from_email extra
    assert mail["rcpt_tos"] == ["oncall@example.com", "owner@example.com"]
    [post] = sinks.posts()
    assert post["path"] == "/services/T0/B0/token" and post["body"] == SLACK


def test_a_dead_mail_server_does_not_stop_slack(sinks, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCTOR_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": free_port(),  # nothing listens there
                "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 2, "retry_limit": 0},
            }
        ),
    )
    result = _notifier().deliver()
    assert result["email"].startswith("failed: ConnectionRefusedError")
    assert result["slack"] == "sent" and len(sinks.posts()) == 1


def test_missing_connections_skip_their_channel(sinks, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_DOCTOR_SMTP")
    result = _notifier(slack_conn_id="doctor_slack_finance").deliver()
    assert result == {
        "subject": SUBJECT,
        "email": "skipped: no connection doctor_smtp",
        "slack": "skipped: no connection doctor_slack_finance",
    }
    assert sinks.mails() == [] and sinks.posts() == []


def test_a_connection_without_a_sender_mails_as_the_doctor(sinks, monkeypatch):
    smtp = json.loads(os.environ["AIRFLOW_CONN_DOCTOR_SMTP"])
    del smtp["extra"]["from_email"]
    monkeypatch.setenv("AIRFLOW_CONN_DOCTOR_SMTP", json.dumps(smtp))
    assert _notifier().deliver()["email"] == "sent"
    assert sinks.mails()[0]["mail_from"] == "airflow-doctor@localhost"


@pytest.mark.parametrize(
    ("failures", "expected", "calls"),
    [
        pytest.param(0, "sent", 1, id="first-try"),
        pytest.param(2, "sent", 3, id="third-try"),
        pytest.param(5, "failed: OSError: down", 3, id="gives-up-after-three"),
    ],
)
def test_retries_are_bounded(failures, expected, calls):
    seen = []

    def send():
        seen.append(1)
        if len(seen) <= failures:
            raise OSError("down")

    assert with_retries("email", send, attempts=3, backoff_seconds=0.001) == expected
    assert len(seen) == calls

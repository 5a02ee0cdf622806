"""Notifications through the real SMTP and Slack providers to loopback sinks."""

from __future__ import annotations

import pytest

from include.doctor import notify
from include.doctor.notify import notify_humans

REF = {
    "dag_id": "example_orders_report",
    "run_id": "manual__2026-01-01",
    "task_id": "build_report",
    "map_index": -1,
    "try_number": 1,
}
DIAGNOSIS = {
    "diagnosis": {
        "error_class": "key_error_missing_field",
        "root_cause": "The payload lacks customer_id.",
        "transient": False,
        "recommended_action": "notify",
        "confidence": 0.9,
        "fix_steps": ["Handle the renamed field"],
        "evidence": ["KeyError: 'customer_id'"],
        "diagnoser": "offline",
    },
    "diagnoser": "offline",
}
DECISION = {
    "verdict": "escalate",
    "reasons": ["judgement: key_error_missing_field is not transient"],
    "similarity": 0.88,
}
MEMORY = {
    "neighbours": [
        {
            "similarity": 0.88,
            "kind": "runbook",
            "error_class": "key_error_missing_field",
            "transient": False,
            "outcome": "none",
        }
    ]
}
EXCERPT = {"exception_type": "KeyError", "message": "'customer_id'"}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(notify, "CHANNEL_BACKOFF_SECONDS", 0.01)


def test_email_and_slack_carry_the_diagnosis(sinks):
    result = notify_humans(REF, EXCERPT, DIAGNOSIS, DECISION, MEMORY, None, "asset_triggered__x")
    assert result["email"] == "sent" and result["slack"] == "sent"
    [mail] = sinks.mails()
    assert (
        mail["subject"]
        == "[airflow-doctor] escalated: example_orders_report.build_report (key_error_missing_field)"
    )
    for expected in (
        "key_error_missing_field",
        "0.90",
        "0.88",
        "Left failed for a human",
        "Handle the renamed field",
        "/dags/example_orders_report/runs/manual__2026-01-01/tasks/build_report?try_number=1",
        "/dags/doctor/runs/asset_triggered__x",
        "offline diagnosis",
    ):
        assert expected in mail["html"], expected
    [post] = sinks.posts()
    blocks = post["body"]["blocks"]
    assert blocks[0]["type"] == "header" and "escalated" in blocks[0]["text"]["text"]
    assert any("key_error_missing_field" in f["text"] for f in blocks[1]["fields"])
    assert blocks[-1]["type"] == "actions"


def test_a_dead_slack_does_not_stop_the_email(sinks):
    sinks.set_slack_path("/services/fail/B0/token")  # the receiver answers 500 on this path
    result = notify_humans(REF, EXCERPT, DIAGNOSIS, DECISION, MEMORY, None, None)
    assert result["email"] == "sent"
    assert result["slack"].startswith("failed")
    assert len(sinks.posts()) == notify.CHANNEL_ATTEMPTS  # retried, then gave up
    assert len(sinks.mails()) == 1


def test_no_slack_connection_means_email_only(sinks, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_DOCTOR_SLACK")
    result = notify_humans(REF, EXCERPT, None, None, None, None, None)
    assert result["slack"].startswith("skipped")
    [mail] = sinks.mails()
    assert "none: the diagnosis stage did not run" in mail["html"]  # no diagnosis still tells a human


@pytest.mark.parametrize(
    ("settings", "details", "recipients", "slack"),
    [
        pytest.param({}, {}, ["airflow-oncall@example.com"], "doctor_slack", id="defaults"),
        pytest.param(
            {},
            {"default_args": {"email": "owner@example.com"}},
            ["owner@example.com"],
            "doctor_slack",
            id="dag-default-args-email",
        ),
        pytest.param(
            {"recipients": {"example_orders_report": ["analytics@example.com"]}},
            {"default_args": {"email": ["owner@example.com"]}},
            ["analytics@example.com"],
            "doctor_slack",
            id="variable-mapping-wins",
        ),
        pytest.param(
            {"slack_connections": {"finance": "doctor_slack_finance"}},
            {"tags": [{"name": "example"}, {"name": "finance"}]},
            ["airflow-oncall@example.com"],
            "doctor_slack_finance",
            id="channel-per-tag",
        ),
    ],
)
def test_routing(settings, details, recipients, slack):
    from include.doctor.config import DoctorSettings
    from include.doctor.notify import route

    assert route("example_orders_report", DoctorSettings(**settings), details) == (recipients, slack)


@pytest.mark.parametrize(
    ("policy", "remediation", "verification", "sent"),
    [
        pytest.param("outcome", None, None, True, id="escalation-always"),
        pytest.param("none", {"cleared": False}, None, True, id="failed-clear-always"),
        pytest.param("outcome", {"cleared": True}, None, False, id="retry-waits-for-its-outcome"),
        pytest.param("outcome", {"cleared": True}, {"outcome": "succeeded"}, True, id="retry-outcome-known"),
        pytest.param("none", {"cleared": True}, {"outcome": "succeeded"}, False, id="retry-messages-off"),
        pytest.param("none", {"cleared": True}, {"outcome": "failed"}, True, id="failed-retry-always"),
        pytest.param("both", {"cleared": True}, None, True, id="both"),
    ],
)
def test_when_to_send(policy, remediation, verification, sent):
    from include.doctor.config import DoctorSettings
    from include.doctor.notify import should_notify

    assert (
        should_notify(
            {"verdict": "auto_retry"}, remediation, verification, DoctorSettings(notify_on_retry=policy)
        )
        is sent
    )

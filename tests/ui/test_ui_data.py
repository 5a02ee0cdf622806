"""The Doctor tab's view model: what the timeline says about the messages sent."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow_doctor.ui.views import tab_view


def _at(second: int) -> datetime:
    return datetime(2026, 12, 5, 1, 0, second, tzinfo=UTC)


def test_the_timeline_lists_the_messages_sent_about_the_selected_try():
    inbox = [
        {
            "try_number": t,
            "source": "listener",
            "failed_at": _at(t),
            "received_at": _at(t),
            "claimed_by": None,
        }
        for t in (1, 2)
    ]
    sent = [
        {
            "try_number": 1,
            "kind": "digest",
            "subject": "storm: 3 failures",
            "email": "sent",
            "slack": "sent",
            "sent_at": _at(5),
        },
        {
            "try_number": 2,
            "kind": "message",
            "subject": "escalated: d.t",
            "email": "sent",
            "slack": "failed: 500",
            "sent_at": _at(9),
        },
    ]
    held = {"cases": [], "inbox": inbox, "notifications": sent}

    view = tab_view(held, None, try_number=2)

    whats = [e["what"] for e in view["timeline"]]
    assert whats[0] == "try 2 failed"
    assert "message sent: \u201cescalated: d.t\u201d (email sent, Slack failed: 500)" in whats
    assert not any("storm" in w for w in whats)  # try 1's digest is not this try's


def test_the_dashboard_shows_a_channel_that_failed_in_the_last_hour(kb):
    from datetime import timedelta

    from airflow_doctor.knowledge.store import UIStore
    from airflow_doctor.models import FailureRef
    from airflow_doctor.ui.views import delivery_health

    kb.migrate()
    refs = [FailureRef(dag_id=d, run_id="r", task_id="t", try_number=1) for d in ("a", "a", "other")]
    kb.record_notifications(
        refs[:1], "message", "escalated: a.t", {"email": "sent", "slack": "failed: HTTP 500"}
    )
    kb.record_notifications(refs[1:2], "message", "escalated: a.t", {"email": "sent", "slack": "sent"})
    kb.record_notifications(
        refs[2:], "message", "escalated: other.t", {"email": "failed: refused", "slack": "sent"}
    )
    since = datetime.now(UTC) - timedelta(hours=1)

    counted = UIStore(dsn=kb.dsn).delivery_failures(since=since, dag_ids=["a"])

    assert (counted["messages"], counted["email_failed"], counted["slack_failed"]) == (2, 0, 1)
    assert delivery_health(counted) == {
        "email, last hour": "2 message(s) sent, none failed",
        "Slack, last hour": "unreachable for 1 of 2 message(s) sent",
    }

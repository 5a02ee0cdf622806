"""The Doctor tab's view model: what the timeline says about the messages sent."""

from __future__ import annotations

from datetime import UTC, datetime

from include.doctor.ui_data import tab_view


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

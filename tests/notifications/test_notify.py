"""Notifications through the real SMTP and Slack providers to loopback sinks."""

from __future__ import annotations

import pytest

from airflow_doctor.notifications import messages as notify
from airflow_doctor.notifications.messages import notify_humans

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
    from airflow_doctor.notifications.messages import route
    from airflow_doctor.settings import DoctorSettings

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
    from airflow_doctor.notifications.messages import should_notify
    from airflow_doctor.settings import DoctorSettings

    assert (
        should_notify(
            {"verdict": "auto_retry"}, remediation, verification, DoctorSettings(notify_on_retry=policy)
        )
        is sent
    )


# -- hostile text: log and LLM text that tries to ping people, link, or break out of code ----------

HOSTILE_REF = {**REF, "run_id": "manual__<!channel>"}
HOSTILE_EXCERPT = {
    "exception_type": "ValueError",
    "message": "<!channel> see <https://evil.example|Approve retry> & ```\n<@U123> *bold*",
}
HOSTILE_DIAGNOSIS = {
    "diagnosis": {
        "error_class": "bad_input",
        "root_cause": "Reset <!here> by <!subteam^S1> in <#C1> & [docs](https://evil.example) "
        "![b](https://evil.example/b.png) <img src=x onerror=alert(1)>",
        "transient": False,
        "recommended_action": "notify",
        "confidence": 0.5,
        "fix_steps": ["Click <https://evil.example|Approve retry>", "Run ``` then <!everyone>"],
        "evidence": ["```", "<!channel> https://evil.example/login"],
        "model": "m",
    },
    "diagnoser": "llm",
}
HOSTILE_DECISION = {"verdict": "escalate", "reasons": ["rules: 'ValueError: <!channel>' is not retry-safe"]}
HOSTILE_MEMORY = {
    "neighbours": [
        {
            "similarity": 0.5,
            "kind": "observed",
            "error_class": "<@U999>",
            "transient": False,
            "outcome": "none",
        }
    ]
}
LOG_URL = "http://airflow.example/dags/example_orders_report/runs/manual__%3C%21channel%3E/tasks/build_report"


class NoDagDetails:
    """Stands in for the Airflow API's DAG details (routing falls back to the defaults)."""

    def get_dag_details(self, dag_id):
        return {}


@pytest.fixture
def ui_base(monkeypatch):
    monkeypatch.setattr(notify, "_ui_base", lambda: "http://airflow.example")


def test_slack_shows_hostile_log_and_llm_text_as_text(sinks, ui_base):
    notify_humans(
        HOSTILE_REF,
        HOSTILE_EXCERPT,
        HOSTILE_DIAGNOSIS,
        HOSTILE_DECISION,
        HOSTILE_MEMORY,
        None,
        "run1",
        {"why": "a <!here> b"},
        api=NoDagDetails(),
    )

    [post] = sinks.posts()
    assert post["body"] == {
        "text": "[airflow-doctor] escalated: example_orders_report.build_report (bad_input)",
        "unfurl_links": False,
        "unfurl_media": False,
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": "[airflow-doctor] escalated: example_orders_report.build_report (bad_input)",
                },
            },
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": "*Task instance*\nexample_orders_report.build_report, "
                        "run manual__&lt;!channel&gt;, try 1",
                        "verbatim": True,
                    },
                    {
                        "type": "mrkdwn",
                        "text": "*Diagnosis*\nbad_input: Reset &lt;!here&gt; by &lt;!subteam^S1&gt; in "
                        "&lt;#C1&gt; &amp; [docs](https://evil.example) ![b](https://evil.example/b.png) "
                        "&lt;img src=x onerror=alert(1)&gt;",
                        "verbatim": True,
                    },
                    {
                        "type": "mrkdwn",
                        "text": "*Diagnoser's opinion*\nnot transient, recommends notify",
                        "verbatim": True,
                    },
                    {"type": "mrkdwn", "text": "*Confidence*\n0.50 (LLM diagnosis (m))", "verbatim": True},
                    {
                        "type": "mrkdwn",
                        "text": "*Action taken*\nLeft failed for a human: a &lt;!here&gt; b",
                        "verbatim": True,
                    },
                    {
                        "type": "mrkdwn",
                        "text": "*Gate's verdict*\nescalate, because: rules: 'ValueError: &lt;!channel&gt;' "
                        "is not retry-safe",
                        "verbatim": True,
                    },
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Error*\n```ValueError: &lt;!channel&gt; see &lt;https://evil.example|Approve "
                    "retry&gt; &amp; \u02cb\u02cb\u02cb\n&lt;@U123&gt; *bold*```",
                    "verbatim": True,
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Fix steps*\n1. Click &lt;https://evil.example|Approve retry&gt;\n"
                    "2. Run \u02cb\u02cb\u02cb then &lt;!everyone&gt;",
                    "verbatim": True,
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Evidence (lines from the log)*\n"
                    "```\u02cb\u02cb\u02cb\n&lt;!channel&gt; https://evil.example/login```",
                    "verbatim": True,
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "*Similar cases*: 0.50 observed &lt;@U999&gt; (transient=False, outcome=none)",
                        "verbatim": True,
                    }
                ],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Log"},
                        "url": f"{LOG_URL}?try_number=1",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Doctor Run"},
                        "url": "http://airflow.example/dags/doctor/runs/run1",
                    },
                ],
            },
        ],
    }


def test_email_html_escapes_the_same_hostile_text(sinks, ui_base):
    notify_humans(
        HOSTILE_REF, HOSTILE_EXCERPT, HOSTILE_DIAGNOSIS, HOSTILE_DECISION, HOSTILE_MEMORY, None, None,
        api=NoDagDetails(),
    )  # fmt: skip

    [mail] = sinks.mails()
    for expected in (
        "<tr><th align='left'>Error</th><td>ValueError: &lt;!channel&gt; see "
        "&lt;https://evil.example|Approve retry&gt; &amp; ```\n&lt;@U123&gt; *bold*</td></tr>",
        "<td>bad_input: Reset &lt;!here&gt; by &lt;!subteam^S1&gt; in &lt;#C1&gt; &amp; "
        "[docs](https://evil.example) ![b](https://evil.example/b.png) "
        "&lt;img src=x onerror=alert(1)&gt;</td>",
        "<ol><li>Click &lt;https://evil.example|Approve retry&gt;</li><li>Run ``` then &lt;!everyone&gt;</li></ol>",
        "<pre>```\n&lt;!channel&gt; https://evil.example/login</pre>",
        "<ul><li>0.50 observed &lt;@U999&gt; (transient=False, outcome=none)</li></ul>",
        f"<p><a href='{LOG_URL}?try_number=1'>log</a></p>",
    ):
        assert expected in mail["html"], expected
    assert "<img" not in mail["html"] and "<a href='https://evil" not in mail["html"]


def test_the_approval_body_is_plain_markdown_with_hostile_text_inert_and_only_the_doctors_links(
    sinks, ui_base
):
    excerpt = {**HOSTILE_EXCERPT, "message": HOSTILE_EXCERPT["message"] + "\n````\n[x](https://evil.example)"}
    decision = {**HOSTILE_DECISION, "verdict": "approval", "reasons": ["rules: a", "memory: b <!here>"]}

    ask = notify.notify_approval_request(
        HOSTILE_REF, excerpt, HOSTILE_DIAGNOSIS, decision, {}, "run1", api=NoDagDetails()
    )

    assert ask["subject"] == "Retry example_orders_report.build_report (try 1)?"
    assert ask["body"] == (
        "**Diagnosis:** bad_input: Reset \\<\\!here\\> by \\<\\!subteam\\^S1\\> in \\<\\#C1\\> \\& \\[docs\\](https:\\/\\/evil.example) \\!\\[b\\](https:\\/\\/evil.example\\/b.png) \\<img src=x onerror=alert(1)\\>\n"
        "\n"
        "**Diagnoser's opinion:** not transient, recommends notify\n"
        "\n"
        "**Confidence:** 0\\.50 (LLM diagnosis (m))\n"
        "\n"
        "**Gate's verdict:** approval, because:\n"
        "\n"
        "- rules: a\n"
        "- memory: b \\<\\!here\\>\n"
        "\n"
        "**Task instance:** example_orders_report.build_report, run manual\\_\\_\\<\\!channel\\>, try 1\n"
        "\n"
        "**Action taken:** Waiting for an engineer to approve or reject a retry (Required Actions in the Airflow UI)\n"
        "\n"
        "**Error:** ValueError: \\<\\!channel\\> see \\<https:\\/\\/evil.example\\|Approve retry\\> \\& \\`\\`\\`\\\n"
        "\\<\\@U123\\> \\*bold\\*\\\n"
        "\\`\\`\\`\\`\\\n"
        "\\[x\\](https:\\/\\/evil.example)\n"
        "\n"
        "**Fix steps:**\n"
        "\n"
        "1. Click \\<https:\\/\\/evil.example\\|Approve retry\\>\n"
        "2. Run \\`\\`\\` then \\<\\!everyone\\>\n"
        "\n"
        "**Evidence (lines from the log):**\n"
        "\n"
        "- \\`\\`\\`\n"
        "- \\<\\!channel\\> https:\\/\\/evil.example\\/login\n"
        "\n"
        f"[Log of the failed try](<{LOG_URL}?try_number=1>) · "
        "[Doctor run](<http://airflow.example/dags/doctor/runs/run1>)"
    )
    # No code block (it would not wrap), and every line short enough to read at 1280 px.
    assert "```text" not in ask["body"]
    [post] = sinks.posts()  # the approval request also went to Slack, escaped the same way
    assert "<!channel>" not in str(post["body"]) and "&lt;!channel&gt;" in str(post["body"])


def test_the_approval_body_renders_hostile_text_as_text():
    """Rendered by a CommonMark renderer, the escaped text forms no link, image, HTML or emphasis."""
    markdown_it = pytest.importorskip("markdown_it")
    hostile = "[docs](https://evil.example) ![b](https://x/b.png) <img src=x> *b* _i_ `c` https://evil.example &amp;"
    html = markdown_it.MarkdownIt("commonmark").enable("linkify").render(notify.markdown_text(hostile))
    assert "<a " not in html and "<img" not in html and "<em>" not in html and "<code>" not in html
    assert "&lt;img src=x&gt;" in html and "&amp;amp;" in html


def test_the_gate_verdict_never_reads_as_the_diagnosers_opinion():
    ref = notify.FailureRef.model_validate(REF)
    transient = {**DIAGNOSIS, "diagnosis": {**DIAGNOSIS["diagnosis"], "transient": True, "confidence": 0.6}}
    msg = notify.build_message(
        ref, EXCERPT, transient, {"verdict": "escalate", "reasons": ["rules: not retry-safe"]}, {}, None, None
    )
    fields = dict(msg["fields"])
    assert "Transient" not in fields
    assert fields["Diagnoser's opinion"] == "transient, recommends notify"
    assert fields["Gate's verdict"] == "escalate, because: rules: not retry-safe"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain", "```text\nplain\n```", id="no-backticks"),
        pytest.param("a ``` b", "````text\na ``` b\n````", id="three-backticks"),
        pytest.param("```\n``````\nx", "```````text\n```\n``````\nx\n```````", id="six-backticks"),
        pytest.param("`a`", "```text\n`a`\n```", id="inline-code"),
    ],
)
def test_a_markdown_code_block_is_longer_than_any_fence_inside_it(text, expected):
    assert notify.markdown_code(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("<!channel>", "```&lt;!channel&gt;```", id="mention"),
        pytest.param("a```b", "```a\u02cb\u02cb\u02cbb```", id="fence"),
        pytest.param("x`", "```x\u02cb```", id="trailing-backtick"),
        pytest.param("", "``` ```", id="empty"),
        pytest.param("&" * 3000, "```" + "&amp;" * 578 + "```", id="cut-between-entities"),
    ],
)
def test_a_slack_code_block_cannot_be_closed_or_cut_inside_an_entity(text, expected):
    assert notify.slack_code(text) == expected
    assert len(notify.slack_code(text)) <= 2900


@pytest.mark.parametrize(
    ("late", "says_late"),
    [(12.0, False), (60.0, False), (480.0, True), (None, False)],
)
def test_a_success_seen_late_says_when_it_really_ended(late, says_late):
    """The doctor saw the retried try's end `late` s after it (a stopped stack): past a minute the
    message says when the retry ended by Airflow's clock and how late it is."""
    from airflow_doctor.models import FailureRef

    verification = {
        "outcome": "succeeded",
        "state": "success",
        "try_number": 2,
        "retry_ended_at": "2026-12-07T10:00:12.400000+00:00",
        "verified_late_seconds": late,
    }
    msg = notify.build_message(
        FailureRef(**REF),
        EXCERPT,
        DIAGNOSIS,
        {"verdict": "auto_retry", "reasons": ["r"]},
        MEMORY,
        {"cleared": True, "actor": "doctor"},
        "doctor-run-1",
        verification=verification,
    )
    action = dict(msg["fields"])["Action taken"]
    assert "the retried try 2 ended success" in action
    assert (
        "at 2026-12-07 10:00:12 UTC by Airflow's clock; this message is 8 min late" in action
    ) is says_late
    assert ("late" in msg["text"]) is says_late

"""Storms: failures grouped by fingerprint, a burst claimed whole, one digest per group and route."""

from __future__ import annotations

import pytest

from airflow_doctor import pipeline as stages
from airflow_doctor.capture.failures import StormWatch, claim_reported, report_failures
from airflow_doctor.knowledge.store import KnowledgeBase
from airflow_doctor.models import Diagnosed, FailureRef, Group, GroupDecision, Memory
from airflow_doctor.notifications import messages as notify
from airflow_doctor.remediation.groups import group_failures


class LogsByTask:
    """Stands in for the Airflow API's log endpoint only: a plain-text log per task_id."""

    def __init__(self, logs: dict[str, str]) -> None:
        self.logs = logs

    def get_log(self, ref: FailureRef) -> list:
        if ref.task_id not in self.logs:
            raise ConnectionError("log server unreachable")
        return self.logs[ref.task_id].splitlines()


def _ref(task_id: str, map_index: int = -1) -> dict:
    return FailureRef(dag_id="d", run_id="r", task_id=task_id, map_index=map_index, try_number=1).model_dump(
        mode="json"
    )


SHARD_LOG = (
    "Traceback (most recent call last):\n"
    '  File "/dags/burst.py", line 40, in fail_together\n'
    "RuntimeError: upstream export for shard {i} is missing: s3://demo-bucket/export/{i}.csv\n"
)


def test_failures_with_one_fingerprint_form_one_group_and_unreadable_logs_stay_alone():
    logs = {f"shard{i}": SHARD_LOG.format(i=i) for i in range(4)}
    logs["report"] = "Traceback (most recent call last):\nKeyError: 'customer_id'\n"
    refs = [_ref(f"shard{i}") for i in range(4)] + [_ref("report"), _ref("lost1"), _ref("lost2")]

    groups = group_failures(refs, api=LogsByTask(logs))

    assert [[m["task_id"] for m in g["members"]] for g in groups] == [
        ["shard0", "shard1", "shard2", "shard3"],
        ["report"],
        ["lost1"],
        ["lost2"],
    ]
    assert groups[0]["label"] == "d.shard0 +3 more"
    assert groups[1]["label"] == "d.report"
    assert groups[0]["excerpt"]["exception_type"] == "RuntimeError"
    assert groups[2]["excerpt"]["error"].startswith("log unavailable")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(notify, "CHANNEL_BACKOFF_SECONDS", 0.01)


def _storm(n: int) -> tuple[dict, dict]:
    members = [_ref("fail_together", i) for i in range(n)]
    excerpt = {"exception_type": "RuntimeError", "message": "upstream export for shard <n> is missing"}
    decision = {"verdict": "escalate", "reasons": ["policy: the DAG is tagged doctor:notify-only"]}
    judged = {
        "embedding": None,
        "memory": {"neighbours": []},
        "diagnosis": {
            "diagnosis": {
                "error_class": "missing_upstream_data",
                "root_cause": "The upstream export has not landed.",
                "transient": False,
                "recommended_action": "notify",
                "confidence": 0.86,
                "fix_steps": ["Check the export job"],
            },
            "diagnoser": "offline",
        },
        "decisions": [decision] * n,
        "doctor_clears": [0] * n,
    }
    group = {
        "key": "fingerprint:x",
        "label": "d.fail_together[0] +49 more",
        "members": members,
        "excerpt": excerpt,
    }
    return group, judged


def per_member(group: dict, results: list) -> dict:
    """Results listed in the members' order, as the stages hand them on: by member key."""
    return {
        FailureRef.model_validate(m).member_key: r
        for m, r in zip(group["members"], results, strict=True)
        if r
    }


def notify_group(group, judged, escalations, run_id, api=None):
    """The notify_humans stage with the outputs of the stages before it (escalations in member order)."""
    decided = {
        "decisions": judged["decisions"],
        "doctor_clears": judged["doctor_clears"],
        "diagnosed_at": "x",
    }
    return stages.notify_humans(
        Group.model_validate(group),
        Memory.model_validate(judged["memory"]),
        Diagnosed.model_validate(judged["diagnosis"]),
        GroupDecision.model_validate(decided),
        per_member(group, escalations),
        run_id,
        api=api,
    )


def test_a_storm_of_fifty_sends_one_digest_per_channel_naming_every_member(sinks):
    group, judged = _storm(50)
    escalations = [{"escalated": True, "why": "policy"}] * 50

    results = notify_group(group, judged, escalations, "asset_triggered__storm")

    assert [(r["email"], r["slack"]) for r in results] == [("sent", "sent")]
    [mail] = sinks.mails()
    assert (
        mail["subject"] == "[airflow-doctor] storm: 50 failures of missing_upstream_data in d: 50 escalated"
    )
    for i in range(50):
        assert f"d.fail_together[{i}], run r, try 1: escalated" in mail["html"]
    assert "Check the export job" in mail["html"] and "0.86" in mail["html"]
    [post] = sinks.posts()
    blocks = post["body"]["blocks"]
    listed = next(b for b in blocks if b.get("text", {}).get("text", "").startswith("*Task instances*"))
    assert len(listed["text"]["text"]) <= 3000 and "d.fail_together[0]" in listed["text"]["text"]


def test_a_group_of_one_gets_the_ordinary_message(sinks):
    group, judged = _storm(1)
    notify_group(group, judged, [{"escalated": True, "why": "policy"}], None)
    [mail] = sinks.mails()
    assert mail["subject"].startswith("[airflow-doctor] escalated: d.fail_together")


def test_when_the_gate_failed_every_member_is_escalated_and_reported(sinks):
    group, _ = _storm(3)
    escalations = stages.escalate(Group.model_validate(group), None, None, dry_run=True)
    assert [e["escalated"] for e in escalations.values()] == [True] * 3 and len(escalations) == 3
    stages.notify_humans(Group.model_validate(group), None, None, None, escalations, None)
    [mail] = sinks.mails()
    assert "storm: 3 failures" in mail["subject"] and "its gate failed" in mail["html"]


class NoTags:
    """The Airflow API as fetch_logs reads it: no DAG is opted out (nothing else answers)."""

    def get_dag_tags(self, dag_id):
        return []


def test_a_storm_has_settled_once_no_failure_arrived_for_the_quiet_time():
    """The wait fetch_logs defers to the triggerer (StormSettledTrigger observes the inbox with it)."""
    watch = StormWatch(3, 0.0, quiet_seconds=2.0, max_wait_seconds=60.0)
    arrivals = [(0.5, 4), (1.0, 5), (2.5, 5)]  # two more failures arrive in the first second
    assert not any(watch.observe(count, at) for at, count in arrivals)
    assert watch.observe(5, 3.0)  # last arrival at 1.0 s, then 2 s of quiet
    assert watch.count == 5


def test_a_storm_that_keeps_arriving_is_claimed_at_the_longest_wait():
    watch = StormWatch(3, 0.0, quiet_seconds=2.0, max_wait_seconds=10.0)
    assert not any(watch.observe(3 + i, float(i)) for i in range(1, 10))
    assert watch.observe(13, 10.0)


def test_fewer_failures_than_the_storm_threshold_are_claimed_without_waiting(kb: KnowledgeBase):
    event = {"extra": {"failure": {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1}}}
    reported = report_failures([event], {}, kb=kb, api=NoTags())
    assert reported["storm"] is False
    assert [r["task_id"] for r in claim_reported(reported, "run", kb=kb)] == ["t"]


class NoDagDetails:
    """Stands in for the Airflow API's DAG details (routing falls back to the defaults)."""

    def get_dag_details(self, dag_id):
        return {}


def test_a_digest_shows_hostile_ids_and_log_text_as_text(sinks, monkeypatch):
    monkeypatch.setattr(notify, "_ui_base", lambda: "http://airflow.example")
    group, judged = _storm(2)
    for member in group["members"]:
        member["run_id"] = "r<!channel>|<https://evil.example|Approve retry>"
    group["excerpt"] = {"exception_type": "RuntimeError", "message": "<@U1> ```\n[x](https://evil.example)"}
    judged["diagnosis"]["diagnosis"]["fix_steps"] = ["Ask <!subteam^S1> & <#C1>"]
    escalations = [{"escalated": True, "why": "policy"}] * 2

    notify_group(group, judged, escalations, "run1", api=NoDagDetails())

    [post] = sinks.posts()
    blocks = {b.get("text", {}).get("text", "").split("\n")[0]: b for b in post["body"]["blocks"]}
    assert blocks["*Error*"]["text"] == {
        "type": "mrkdwn",
        "text": "*Error*\n```RuntimeError: &lt;@U1&gt; \u02cb\u02cb\u02cb\n[x](https://evil.example)```",
        "verbatim": True,
    }
    assert (
        blocks["*Fix steps*"]["text"]["text"] == "*Fix steps*\n1. Ask &lt;!subteam^S1&gt; &amp; &lt;#C1&gt;"
    )
    url = "http://airflow.example/dags/d/runs/r%3C%21channel%3E%7C%3Chttps%3A//evil.example%7CApprove%20retry%3E"
    assert blocks["*Task instances*"]["text"] == {
        "type": "mrkdwn",
        "text": "*Task instances*\n"
        f"<{url}/tasks/fail_together/mapped/0?try_number=1|d.fail_together[0], "
        "run r&lt;!channel&gt;|&lt;https://evil.example|Approve retry&gt;, try 1: escalated>\n"
        f"<{url}/tasks/fail_together/mapped/1?try_number=1|d.fail_together[1], "
        "run r&lt;!channel&gt;|&lt;https://evil.example|Approve retry&gt;, try 1: escalated>",
        "verbatim": True,
    }
    [mail] = sinks.mails()
    assert (
        "<li><a href='" + url + "/tasks/fail_together/mapped/0?try_number=1'>d.fail_together[0], "
        "run r&lt;!channel&gt;|&lt;https://evil.example|Approve retry&gt;, try 1: escalated</a></li>"
    ) in mail["html"]


def test_a_log_cannot_add_a_header_line_to_the_subject():
    group, _ = _storm(2)
    excerpt = {"exception_type": "Boom\r\nBcc: everyone@example.com", "message": "x"}
    items = [
        {
            "ref": m,
            "decision": {"verdict": "escalate"},
            "remediation": None,
            "escalation": None,
            "verification": None,
        }
        for m in group["members"]
    ]
    digest = notify.build_digest(items, excerpt, None, None)
    assert digest["subject"] == (
        "[airflow-doctor] storm: 2 failures of Boom Bcc: everyone@example.com in d: 2 escalated"
    )


def test_a_rejection_in_required_actions_is_recorded_as_a_persons_permanent(kb: KnowledgeBase):
    from airflow_doctor.remediation.actions import escalate_member
    from airflow_doctor.remediation.groups import record_group

    group, judged = _storm(2)
    group["excerpt"] = {**group["excerpt"], "fingerprint": "fp-rejected", "text": "x"}
    judged["diagnosis"]["diagnosis"].update(transient=True, recommended_action="retry")
    judged["decisions"] = [{"verdict": "approval", "reasons": ["grey zone"]}] * 2
    approval = {"chosen_options": ["Reject"], "responded_by_user": {"id": "7", "name": "ana"}}
    escalations = [
        escalate_member(member, judged["decisions"][i], judged["diagnosis"], None, approval, dry_run=True)
        for i, member in enumerate(group["members"])
    ]
    assert [e["rejected_by"] for e in escalations] == ["ana", "ana"]
    timed_out = escalate_member(
        group["members"][0], judged["decisions"][0], judged["diagnosis"], None, None, True
    )
    assert timed_out["rejected_by"] is None  # nobody answered: not a person's answer

    record_group(group, judged, None, None, "doc-run", per_member(group, escalations), kb=kb)
    [latest, *_] = kb.find_by_fingerprint("fp-rejected", None)
    assert latest.actor == "human" and latest.judged_permanent


def test_every_message_sent_is_recorded_per_failure_for_the_doctor_tab(sinks, kb, doctor_db_conn):
    from airflow_doctor.knowledge.store import UIStore

    kb.migrate()
    group, judged = _storm(3)
    notify_group(group, judged, [{"escalated": True, "why": "policy"}] * 3, "run1")

    [mail] = sinks.mails()
    held = UIStore(dsn=kb.dsn).task_instance_cases("d", "r", "fail_together", 1)
    [sent] = held["notifications"]
    assert sent["kind"] == "digest" and sent["subject"] == mail["subject"]
    assert (sent["email"], sent["slack"], sent["try_number"]) == ("sent", "sent", 1)


def test_a_dead_knowledge_base_does_not_stop_the_message(sinks, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DOCTOR_DB", '{"conn_type": "postgres", "host": "127.0.0.1", "port": 9}')
    group, judged = _storm(1)
    [result] = notify_group(group, judged, [{"escalated": True, "why": "policy"}], None)
    assert (result["email"], result["slack"]) == ("sent", "sent") and len(sinks.mails()) == 1

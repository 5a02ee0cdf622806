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


# -- issue 24: every verdict and who made it ---------------------------------------------------------

CASE = {
    "id": 7,
    "dag_id": "d",
    "run_id": "r",
    "task_id": "t",
    "map_index": -1,
    "try_number": 1,
    "operator": "_PythonDecoratedOperator",
    "fingerprint": "f" * 16,
    "excerpt": "ValueError: boom",
    "doctor_run_id": "doc1",
    "created_at": _at(40),
    "cleared_at": None,
    "failed_at": _at(1),
}
DIAG = {
    "diagnoser": "llm",
    "model": "m",
    "error_class": "warehouse_connection_reset",
    "root_cause": "reset",
    "transient": True,
    "recommended_action": "retry",
    "confidence": 0.6,
    "fix_steps": [],
    "evidence": [],
    "created_at": _at(40),
}


def _rem(**kw) -> dict:
    row = {
        "id": 1,
        "decision": "approval",
        "reasons": ["judgement: grey zone", "memory: 1 verified retry"],
        "similarity": None,
        "actor": "doctor",
        "acted_at": _at(40),
        "cleared": False,
        "outcome": "escalated",
        "verified_at": None,
    }
    return row | kw


def _view(remediations, case=None, approvals=(), policy=(), answers=(), user=None, **facts):
    details = {"diagnoses": [DIAG], "remediations": remediations, "answers": list(answers), "similar": []}
    held = {"cases": [case or CASE], "inbox": [], "notifications": []}
    airflow = {"approvals": list(approvals), **facts}
    return tab_view(held, details, airflow=airflow, policy=list(policy), user=user)


#: An inbox row claimed by doctor run doc1 (no case recorded yet).
CLAIMED = {
    "dag_id": "d",
    "run_id": "r",
    "task_id": "t",
    "try_number": 1,
    "source": "listener",
    "failed_at": _at(1),
    "received_at": _at(2),
    "claimed_by": "doc1",
    "claimed_at": _at(3),
}
APPROVED_BY_ALICE = {
    "subject": "Retry d.t (try 1)?",
    "created_at": _at(10),
    "responded_at": _at(30),
    "responded_by": "alice",
    "chosen": "Approve",
    "map_index": 0,
}


def test_an_approved_retry_names_the_approver_and_is_the_decision_not_a_persons_reason():
    row = _rem(actor="human", cleared=True, outcome="succeeded", verified_at=_at(50))
    view = _view([row], case={**CASE, "cleared_at": _at(35)}, approvals=[APPROVED_BY_ALICE])

    assert view["decision"] is not None and view["decision"]["decision"] == "approval"
    assert view["people"] == []
    assert view["banner"]["text"] == (
        "Approved by alice in Required Actions at 2026-12-05 01:00:30 UTC: cleared for retry; the retry succeeded."
    )
    assert {"at": _at(30), "who": "alice in Required Actions", "what": "chose Approve"} in view["verdicts"]
    assert not view["can_retry"]  # healed: no "retry it now"


def test_an_approved_retry_without_airflows_record_still_reads_as_approved():
    view = _view([_rem(actor="human", cleared=True, outcome="pending")])
    assert view["banner"]["text"].startswith(
        "Approved by an engineer (name not recorded) in Required Actions"
    )


def test_a_rejected_retry_says_who_rejected_it():
    rejection = _rem(
        id=2, actor="human", acted_at=_at(45), reasons=["bob rejected the retry in Required Actions"]
    )
    view = _view([_rem(), rejection])
    assert view["banner"] == {
        "cls": "bad",
        "text": "Rejected by bob in Required Actions at 2026-12-05 01:00:45 UTC: left failed, not retried.",
    }
    assert view["decision"]["actor"] == "doctor"
    assert any(v["who"] == "a person in Required Actions" for v in view["verdicts"])


def test_an_unanswered_approval_says_nobody_answered():
    timeout = {**APPROVED_BY_ALICE, "responded_by": None, "chosen": "Reject"}
    view = _view([_rem()], approvals=[timeout])
    assert view["banner"]["text"].startswith("Nobody answered the approval request in time")
    assert {
        "at": _at(30),
        "who": "nobody in Required Actions",
        "what": "no answer in time: Reject by default",
    } in view["verdicts"]


def test_a_dry_run_and_airflows_own_retry_are_told_apart():
    dry = _view([_rem(decision="auto_retry")], dry_run=True)
    assert dry["banner"]["text"] == "Dry run: the doctor would have retried this try; nothing was cleared."
    assert dry["verdicts"][0]["who"] == "the doctor's gate (dry run: nothing is cleared)"
    airflow = _view(
        [_rem(decision="airflow_retry", actor="airflow", outcome="succeeded", reasons=["next try succeeded"])]
    )
    assert (
        airflow["banner"]["text"] == "Airflow's own retry (the doctor decided nothing): next try succeeded."
    )
    assert airflow["verdicts"][0]["who"] == "Airflow's own retry"


def test_the_retry_policys_decisions_are_verdicts_and_tries():
    policy = [
        {
            "try_number": 1,
            "action": "retry",
            "reason": "transient here: 3 verified retries",
            "decided_at": _at(2),
            "verdict": "succeeded",
        },
        {"try_number": 2, "action": "fail", "reason": "permanent", "decided_at": _at(59), "verdict": None},
    ]
    held = {"cases": [CASE], "inbox": [], "notifications": []}
    details = {"diagnoses": [DIAG], "remediations": [_rem(decision="escalate")], "answers": [], "similar": []}

    newest = tab_view(held, details, policy=policy)
    assert newest["tries"] == [1, 2] and newest["try_number"] == 2  # try 2: judged by the policy only
    assert newest["policy"] == [policy[1]]
    assert newest["verdicts"] == [
        {"at": _at(59), "who": "the task's DoctorRetryPolicy", "what": "fail: permanent"}
    ]
    first = tab_view(held, details, 1, policy=policy)
    assert {
        "at": _at(2),
        "who": "the task's DoctorRetryPolicy",
        "what": "retry: transient here: 3 verified retries",
    } in first["verdicts"]


def test_a_waiting_approval_shows_the_diagnosis_and_the_gates_reasons():
    box = CLAIMED
    pending = {
        "diagnosis": {**DIAG, "created_at": None},
        "decision": {"verdict": "approval", "reasons": ["judgement: grey zone"]},
    }
    waiting = {**APPROVED_BY_ALICE, "responded_at": None, "responded_by": None, "chosen": None}
    view = tab_view({"cases": [], "inbox": [box]}, None, airflow={"approvals": [waiting], "pending": pending})
    assert view["state"] == "awaiting_approval"
    assert view["diagnosis"]["error_class"] == "warehouse_connection_reset"
    assert view["decision"]["reasons"] == ["judgement: grey zone"]
    assert "approval requested in Required Actions" in [e["what"] for e in view["timeline"]]


def test_the_timeline_puts_the_diagnosis_before_the_clear_it_led_to():
    row = _rem(decision="auto_retry", cleared=True, outcome="succeeded", verified_at=_at(55))
    view = _view([row], case={**CASE, "cleared_at": _at(20)})
    whats = [e["what"] for e in view["timeline"]]
    diag = next(i for i, w in enumerate(whats) if w.startswith("diagnosis (llm, m)"))
    gate = next(i for i, w in enumerate(whats) if w.startswith("the gate decided auto_retry"))
    clear = whats.index("cleared for retry through the REST API")
    assert diag < gate < clear < whats.index("the retried try succeeded")
    assert "recorded at 2026-12-05 01:00:40 UTC" in whats[diag]
    assert view["timeline"][diag]["at"] is None and view["timeline"][diag]["before"] < _at(20)


def test_operators_are_named_as_written():
    from airflow_doctor.ui.views import operator_label

    assert operator_label("_PythonDecoratedOperator") == "Python (@task)"
    assert operator_label("_FooDecoratedOperator") == "Foo (@task.foo)"
    assert operator_label("PostgresHook") == "not recorded (the log named the hook PostgresHook)"
    assert operator_label(None) == "not recorded"
    assert operator_label("BashOperator") == "BashOperator"


def test_similar_rows_say_what_differs_and_duplicates_merge():
    n = {
        "id": 1,
        "kind": "observed",
        "error_class": "x",
        "dag_id": "d",
        "run_id": "r1",
        "task_id": "t",
        "map_index": -1,
        "try_number": 1,
        "similarity": 0.9,
        "outcome": "succeeded",
        "actor": "doctor",
        "answer": None,
        "created_at": _at(1),
    }
    details = {
        "diagnoses": [DIAG],
        "remediations": [_rem()],
        "answers": [],
        "similar": [n, {**n, "id": 2}, {**n, "id": 3, "run_id": "r2"}],
    }
    view = tab_view({"cases": [CASE], "inbox": []}, details)
    assert [(s["run_id"], s["count"]) for s in view["similar"]] == [("r1", 2), ("r2", 1)]
    assert view["similar"][0]["link"] == "/dags/d/runs/r1/tasks/t/plugin/doctor"


def test_undo_is_offered_only_for_ones_own_newest_answer():
    from airflow_doctor.ui.views import undoable_answer

    mine = {"id": 5, "user_name": "alice", "undone_at": None}
    theirs = {"id": 6, "user_name": "bob", "undone_at": None}
    assert undoable_answer([mine], "alice") == 5
    assert undoable_answer([theirs, mine], "alice") is None
    assert undoable_answer([{**mine, "undone_at": _at(1)}], "alice") is None


# -- the dashboard for a team lead ------------------------------------------------------------------


def _case_row(i, decision, *, decided_by="doctor", cleared=False, outcome="escalated", rejected=False):
    return {
        "id": i,
        "dag_id": "d",
        "run_id": f"r{i}",
        "task_id": "t",
        "map_index": -1,
        "try_number": 1,
        "fingerprint": "fp",
        "error_class": "c",
        "created_at": _at(i),
        "failed_at": _at(0),
        "decision": decision,
        "decided_by": decided_by,
        "cleared": cleared,
        "outcome": outcome,
        "rejected": rejected,
        "verified_at": _at(i + 30) if outcome in {"succeeded", "failed"} else None,
        "heal_seconds": None,
        "diagnoser": "offline",
        "answer": None,
    }


def test_the_dashboard_counts_approved_rejected_and_policy_heals_and_pages_avoided(monkeypatch):
    from datetime import timedelta

    from airflow_doctor.ui.views import dashboard_figures

    monkeypatch.setenv("DOCTOR_UI_MINUTES_PER_PAGE", "20")
    rows = [
        _case_row(1, "auto_retry", cleared=True, outcome="succeeded"),
        _case_row(2, "approval", decided_by="human", cleared=True, outcome="succeeded"),
        _case_row(3, "approval", rejected=True),
        _case_row(4, "approval"),
        _case_row(5, "escalate"),
    ]
    policy = [{"action": "retry", "healed": True}, {"action": "fail", "healed": False}]
    f = dashboard_figures(rows, _at(0) - timedelta(hours=1), _at(0) + timedelta(hours=1), policy)
    assert f["approvals"] == {"total": 3, "approved": 1, "rejected": 1, "unanswered": 1}
    assert (f["auto_healed"], f["approved_healed"]) == (1, 1)
    assert f["retries_held"] == {"held": 2, "failed": 0, "share": 1.0}
    assert f["time_to_heal"]["n"] == 2
    assert f["policy"] == {"decisions": 2, "healed": 1, "by_action": {"retry": 1, "fail": 1}}
    assert (f["pages_avoided"], f["minutes_saved"]) == (2, 40.0)
    assert "not decided" not in f["top_fingerprints"][0]["outcomes"]
    assert f["top_fingerprints"][0]["outcomes"]["approved: healed"] == 1
    assert f["top_fingerprints"][0]["latest_case_id"] == 5


def test_health_is_summarised_for_what_it_shows():
    from airflow_doctor.ui.views import health_summary

    assert health_summary({"knowledge base": "reachable", "LLM": "not configured"}) == {
        "ok": True,
        "text": "every part reachable",
    }
    assert (
        health_summary({"SMTP": "unreachable (ConnectionRefusedError)"})["text"]
        == "1 part(s) not reachable: SMTP"
    )


def test_open_escalations_are_the_ones_still_failed_oldest_first():
    from airflow_doctor.ui.views import open_escalations

    rows = [
        {
            "dag_id": "d",
            "run_id": f"r{i}",
            "task_id": "t",
            "map_index": -1,
            "try_number": 1,
            "escalated_at": _at(i),
            "decision": "escalate",
            "error_class": "c",
        }
        for i in (1, 2, 3)
    ]
    shown = open_escalations(rows, _at(59), still_failed={("d", "r1", "t", -1, 1), ("d", "r3", "t", -1, 1)})
    assert [(r["run_id"], r["age_s"]) for r in shown] == [("r1", 58.0), ("r3", 56.0)]
    assert shown[0]["link"] == "/dags/d/runs/r1/tasks/t/plugin/doctor"
    assert len(open_escalations(rows, _at(59), None)) == 3


def test_xcom_values_are_read_as_plain_data():
    from airflow_doctor.ui.airflow_facts import plain

    wrapped = {
        "__classname__": "airflow_doctor.models.GroupDecision",
        "__version__": 1,
        "__data__": {
            "decisions": [
                {"__classname__": "x.Decision", "__version__": 1, "__data__": {"verdict": "approval"}}
            ]
        },
    }
    assert plain(wrapped) == {"decisions": [{"verdict": "approval"}]}
    assert plain({"__type": "dict", "__var": {"a": [1]}}) == {"a": [1]}


def test_airflows_record_of_the_operator_wins_over_a_hook_the_log_named():
    case = {**CASE, "operator": "PostgresHook"}
    assert _view([_rem()], case=case)["operator"] == "not recorded (the log named the hook PostgresHook)"
    assert _view([_rem()], case=case, operator="_PythonDecoratedOperator")["operator"] == "Python (@task)"


def test_a_dry_run_that_recorded_nothing_shows_the_gates_verdict_from_its_xcoms():
    box = {**CLAIMED, "source": "manual"}
    pending = {
        "diagnosis": {**DIAG, "created_at": None},
        "decision": {"verdict": "auto_retry", "reasons": ["rules: retry-safe"]},
    }
    view = tab_view(
        {"cases": [], "inbox": [box]}, None, airflow={"dry_run": True, "approvals": [], "pending": pending}
    )
    assert view["state"] == "dry_run"
    assert view["decision"]["decision"] == "auto_retry" and view["decision"]["reasons"] == [
        "rules: retry-safe"
    ]
    assert tab_view({"cases": [], "inbox": [box]}, None)["state"] == "in_progress"

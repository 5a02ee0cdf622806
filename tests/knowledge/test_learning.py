"""Learning from people: what a person did after an escalation becomes memory the gate reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_doctor.hooks.airflow_api import AirflowAPIError
from airflow_doctor.judgement.gate import decide
from airflow_doctor.knowledge.learning import SETTLE_TIME, learn_from_people
from airflow_doctor.knowledge.store import KnowledgeBase, UIStore
from airflow_doctor.models import Action, Diagnosis, FailureRef
from airflow_doctor.settings import DoctorSettings

FINGERPRINT = "fp-connection-reset"
TRANSIENT = Diagnosis(
    error_class="connection_reset_by_remote",
    root_cause="the warehouse dropped the connection",
    transient=True,
    recommended_action=Action.retry,
    confidence=0.9,
)
CONNECTION_RESET = {
    "exception_type": "ConnectionResetError",
    "message": "[Errno 104] Connection reset by peer",
    "causes": [],
    "source": "traceback",
}
LATER = datetime.now(UTC) + SETTLE_TIME + timedelta(hours=1)


class FakeAirflow:
    """The one AirflowAPI method learning uses: task instances by task_id (a dict, or an exception)."""

    def __init__(self, task_instances: dict[str, dict | Exception]) -> None:
        self.task_instances = task_instances
        self.calls: list[str] = []

    def get_task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
        self.calls.append(task_id)
        found = self.task_instances[task_id]
        if isinstance(found, Exception):
            raise found
        return dict(found)


def failure(task: str, try_number: int = 1) -> FailureRef:
    return FailureRef(dag_id="etl", run_id="scheduled__1", task_id=task, try_number=try_number)


def escalate(
    kb: KnowledgeBase, task: str, *, verdict: str = "escalate", fingerprint: str = FINGERPRINT
) -> int:
    """Record a case the doctor escalated (no retry), as the doctor DAG's record_case does."""
    return kb.record_case(
        ref=failure(task),
        case={"operator": "PythonOperator", "fingerprint": fingerprint, "excerpt": "ConnectionResetError"},
        diagnosis={**TRANSIENT.model_dump(mode="json"), "confidence": 0.5},
        decision={"verdict": verdict, "reasons": ["judgement: confidence 0.50 < 0.80"]},
        cleared=False,
        doctor_run_id="doctor-run-1",
    )


def latest(kb: KnowledgeBase, case_id: int) -> dict:
    with kb.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT r.actor, r.outcome, r.cleared, r.decision, r.verified_at, c.transient "
            "FROM doctor.remediations r JOIN doctor.failure_cases c ON c.id = r.case_id "
            "WHERE r.case_id = %s ORDER BY r.acted_at DESC LIMIT 1",
            (case_id,),
        )
        return dict(
            zip(
                ("actor", "outcome", "cleared", "decision", "verified_at", "transient"),
                cur.fetchone(),
                strict=True,
            )
        )


def memory(kb: KnowledgeBase, task: str = "load"):
    """The fingerprint matches the gate sees for the next failure of the same kind: by default the
    same task's, in the next DAG run."""
    return kb.find_by_fingerprint(
        FINGERPRINT, FailureRef(dag_id="etl", run_id="scheduled__2", task_id=task, try_number=1)
    )


def gate(kb: KnowledgeBase, excerpt: dict | None = CONNECTION_RESET):
    return decide(TRANSIENT, [], memory(kb), 0, [], DoctorSettings(), excerpt=excerpt)


def test_a_clear_that_succeeded_is_a_verified_transient_case(kb: KnowledgeBase):
    case_id = escalate(kb, "load")
    api = FakeAirflow({"load": {"state": "success", "try_number": 2}})
    assert learn_from_people(api=api, kb=kb)["transient"] == 1
    row = latest(kb, case_id)
    assert (row["actor"], row["outcome"], row["cleared"], row["transient"]) == (
        "human",
        "succeeded",
        True,
        True,
    )
    assert row["decision"] == "escalate" and row["verified_at"] is not None
    [match] = memory(kb)
    assert match.actor == "human" and match.retry_verified and not match.judged_permanent


def test_a_clear_that_failed_again_is_a_failed_retry(kb: KnowledgeBase):
    case_id = escalate(kb, "load", verdict="approval")  # the approval was rejected or not answered
    api = FakeAirflow({"load": {"state": "failed", "try_number": 2}})
    assert learn_from_people(api=api, kb=kb)["failed_again"] == 1
    assert latest(kb, case_id)["outcome"] == "failed"
    [match] = memory(kb)
    assert match.retry_failed and not match.retry_verified


def test_a_later_try_the_doctor_cleared_means_the_persons_clear_did_not_help(kb: KnowledgeBase):
    case_id = escalate(kb, "load")
    kb.record_clear(failure("load", try_number=2), "doctor-run-2")  # try 2 failed for good too
    api = FakeAirflow({"load": {"state": "success", "try_number": 3}})  # the doctor's retry worked
    assert learn_from_people(api=api, kb=kb)["failed_again"] == 1
    assert latest(kb, case_id)["outcome"] == "failed"


def test_left_failed_past_the_settle_time_is_a_persons_permanent(kb: KnowledgeBase):
    case_id = escalate(kb, "load")
    api = FakeAirflow({"load": {"state": "failed", "try_number": 1}})
    assert learn_from_people(api=api, kb=kb)["waiting"] == 1  # people have had no time yet
    assert latest(kb, case_id)["actor"] == "doctor"
    assert learn_from_people(api=api, kb=kb, now=LATER)["permanent"] == 1
    row = latest(kb, case_id)
    assert (row["actor"], row["outcome"], row["cleared"], row["transient"]) == (
        "human",
        "escalated",
        False,
        False,
    )
    [match] = memory(kb)
    assert match.judged_permanent and not match.retry_verified


def test_a_failure_left_failed_says_permanent_for_its_own_task_only(kb: KnowledgeBase):
    """People leave a failure failed for many reasons (a notify-only DAG, a next run that made it
    moot): that is their "permanent" for this task, not a veto on the same error everywhere. A
    person's explicit answer stays global (the Doctor tab says so)."""
    case_id = escalate(kb, "load")
    learn_from_people(api=FakeAirflow({"load": {"state": "failed", "try_number": 1}}), kb=kb, now=LATER)
    [same_task] = memory(kb)
    [other_task] = memory(kb, task="export")
    assert same_task.judged_permanent
    assert not other_task.judged_permanent and other_task.outcome == "none"
    assert decide(TRANSIENT, [], [other_task], 0, [], DoctorSettings(), excerpt=CONNECTION_RESET).verdict == (
        "auto_retry"
    )
    UIStore(dsn=kb.dsn).record_answer(case_id, answer="permanent", user_name="oncall")
    [answered] = memory(kb, task="export")
    assert answered.judged_permanent


@pytest.mark.parametrize(
    "task_instance",
    [
        pytest.param({"state": "running", "try_number": 2}, id="running"),
        pytest.param({"state": None, "try_number": 2}, id="just-cleared"),
        pytest.param({"state": "queued", "try_number": 2}, id="queued"),
        pytest.param({"state": "up_for_retry", "try_number": 2}, id="up-for-retry"),
        pytest.param({"state": "success", "try_number": 1}, id="marked-success-without-a-retry"),
    ],
)
def test_nothing_is_recorded_while_the_outcome_is_open(kb: KnowledgeBase, task_instance):
    case_id = escalate(kb, "load")
    counts = learn_from_people(api=FakeAirflow({"load": task_instance}), kb=kb, now=LATER)
    assert counts["waiting"] == 1 and counts["looked_at"] == 1
    assert latest(kb, case_id)["actor"] == "doctor"


def test_a_case_is_judged_once(kb: KnowledgeBase):
    case_id = escalate(kb, "load")
    api = FakeAirflow({"load": {"state": "success", "try_number": 2}})
    learn_from_people(api=api, kb=kb)
    api.task_instances["load"] = {"state": "failed", "try_number": 3}  # it failed later, for another reason
    assert learn_from_people(api=api, kb=kb, now=LATER)["looked_at"] == 0
    assert api.calls == ["load"]
    assert latest(kb, case_id)["outcome"] == "succeeded"
    assert (
        kb.record_human_outcome(
            case_id, decision="escalate", cleared=False, outcome="escalated", transient=False, reasons=["x"]
        )
        is False
    )


def test_an_api_error_for_one_case_does_not_stop_the_others(kb: KnowledgeBase):
    broken, fine = escalate(kb, "broken"), escalate(kb, "fine")
    api = FakeAirflow(
        {
            "broken": AirflowAPIError("TaskInstanceApi: HTTP 503"),
            "fine": {"state": "success", "try_number": 2},
        }
    )
    counts = learn_from_people(api=api, kb=kb)
    assert counts == {
        "looked_at": 2,
        "transient": 1,
        "failed_again": 0,
        "permanent": 0,
        "waiting": 0,
        "errors": 1,
    }
    assert latest(kb, broken)["actor"] == "doctor" and latest(kb, fine)["outcome"] == "succeeded"
    api.task_instances["broken"] = {"state": "success", "try_number": 2}
    assert learn_from_people(api=api, kb=kb)["transient"] == 1  # looked at again next sweep


def test_cases_outside_the_window_or_not_escalated_are_not_looked_at(kb: KnowledgeBase):
    escalate(kb, "old")
    kb.record_case(
        ref=failure("retried"),
        case={"fingerprint": FINGERPRINT},
        diagnosis=TRANSIENT.model_dump(mode="json"),
        decision={"verdict": "auto_retry", "reasons": []},
        cleared=True,
        doctor_run_id="doctor-run-1",
    )
    api = FakeAirflow({})
    assert learn_from_people(api=api, kb=kb, now=datetime.now(UTC) + timedelta(days=8))["looked_at"] == 0
    assert (
        learn_from_people(api=FakeAirflow({"old": {"state": "running", "try_number": 2}}), kb=kb)["looked_at"]
        == 1
    )


def test_a_dead_knowledge_base_is_logged_not_raised():
    dead = KnowledgeBase(dsn="postgresql://postgres@127.0.0.1:1/doctor", connect_timeout=1)
    api = FakeAirflow({})
    assert learn_from_people(api=api, kb=dead)["errors"] == 1
    assert api.calls == []


def test_the_gate_retries_from_a_persons_verified_success(kb: KnowledgeBase):
    escalate(kb, "load")
    assert gate(kb, excerpt=None).verdict != "auto_retry"  # an escalation alone is no memory
    learn_from_people(api=FakeAirflow({"load": {"state": "success", "try_number": 2}}), kb=kb)
    decision = gate(kb)
    assert decision.verdict == "auto_retry" and decision.memory_match
    assert any("a person's retry succeeded here" in r for r in decision.reasons)
    assert gate(kb, excerpt=None).verdict == "auto_retry"  # memory alone now backs the retry


@pytest.mark.parametrize(
    ("task_instance", "now", "reason"),
    [
        pytest.param(
            {"state": "failed", "try_number": 1}, LATER, "a person said case", id="persons-permanent"
        ),
        pytest.param(
            {"state": "failed", "try_number": 2}, None, "retried and failed again", id="failed-again"
        ),
    ],
)
def test_the_gate_does_not_retry_what_people_learnt_is_not_transient(
    kb: KnowledgeBase, task_instance, now, reason
):
    escalate(kb, "load")
    assert gate(kb).verdict == "auto_retry"  # the catalogue alone would retry a connection reset
    learn_from_people(api=FakeAirflow({"load": task_instance}), kb=kb, now=now)
    decision = gate(kb)
    assert decision.verdict != "auto_retry"
    assert any(reason in r for r in decision.reasons)

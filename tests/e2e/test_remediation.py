"""End to end on a real Airflow: the retry budget, grey-zone approvals answered through the API,
the sweeper, and what the messages say."""

from __future__ import annotations

import json
import time

import psycopg2
import pytest

from scripts.demo import api_for, case_for, kb_for, sink_messages, trigger, wait_for_dags, wait_until
from scripts.stack import down, up
from tests.e2e.conftest import stack_config
from tests.e2e.graph import settled_stage_states

pytestmark = pytest.mark.e2e


def _rows(stack, query: str, params: tuple) -> list[tuple]:
    with psycopg2.connect(stack.database_uri("doctor")) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def test_a_task_that_keeps_failing_is_cleared_at_most_max_auto_retries_times(stack, forget_run):
    api, kb = api_for(stack), kb_for(stack)
    run = trigger(api, "example_flaky_warehouse", {"outage_tries": 99})
    forget_run.append(run)

    def escalated():
        rows = [r for r in kb.case_report("example_flaky_warehouse") if r["run_id"] == run]
        return rows if any(r["decision"] == "escalate" for r in rows) else None

    rows = wait_until(escalated, 300, "the doctor to give up on a task that keeps failing")
    # The doctor stops as soon as a retry of this error verifiably failed again (memory), and at the
    # latest after doctor_max_auto_retries (2) clears (policy), whichever it learns first: verify_retry
    # may record the first retry's failure before or after the second failure is judged.
    tries = [r["try_number"] for r in rows]
    assert tries in ([1, 2], [1, 2, 3])
    assert [r["decision"] for r in rows] == ["auto_retry"] * (len(rows) - 1) + ["escalate"]
    assert any(
        "retry did not help" in reason or "retried and failed again" in reason
        for reason in rows[-1]["reasons"]
    )
    [(clears,)] = _rows(stack, "SELECT count(*) FROM doctor.clears WHERE run_id = %s", (run,))
    assert clears == len(rows) - 1 <= 2  # never more than doctor_max_auto_retries
    time.sleep(5)
    ti = api.get_task_instance("example_flaky_warehouse", run, "load_orders")
    assert ti["state"] == "failed" and ti["try_number"] == tries[-1]

    # The verified outcomes of the two retries are recorded as failed (verify_retry polls every 5 s,
    # so the second one may land after the escalation).
    def outcomes():
        rows = _rows(
            stack,
            "SELECT r.outcome FROM doctor.remediations r JOIN doctor.failure_cases c "
            "ON c.id = r.case_id WHERE c.run_id = %s ORDER BY c.try_number",
            (run,),
        )
        found = [o for (o,) in rows]
        return found if found == ["failed"] * (len(tries) - 1) + ["escalated"] else None

    wait_until(outcomes, 90, "both retries verified as failed")

    def escalation_mail():
        return next(
            (m for m in sink_messages(stack)[0] if "escalated" in m["subject"] and run in m["text"]), None
        )

    mail = wait_until(escalation_mail, 60, "the escalation mail")
    if len(tries) == 3:
        assert "retry did not help" in mail["text"] and "History" in mail["text"]
        assert "already cleared this task instance 2 time(s)" in mail["html"]
    else:
        assert "retried and failed again" in mail["text"]


@pytest.fixture(scope="module")
def grey_zone(tmp_path_factory):
    """A stack of its own whose confidence threshold, 0.99, puts a recognised transient failure in the
    grey zone: `[doctor] confidence_threshold` is a deployment setting, fixed when the processes start."""
    cfg = stack_config(
        tmp_path_factory, "grey-zone-stack", extra_env={"AIRFLOW__DOCTOR__CONFIDENCE_THRESHOLD": "0.99"}
    )
    try:
        up(cfg)
        wait_for_dags(api_for(cfg), ["doctor", "example_flaky_warehouse"])
        yield cfg
    finally:
        down(cfg)


def _answer_approval(api, dag_run_marker: str, option: str, timeout: float = 240) -> dict:
    """Wait for the doctor's approval request about a run, then answer it through the API."""

    def pending():
        details = api.list_hitl_details("doctor", "~", response_received=False)
        return next((d for d in details if dag_run_marker in (d.get("body") or "")), None)

    detail = wait_until(pending, timeout, "an approval request")
    ti = detail["task_instance"]

    def awaiting_input():
        state = api.get_task_instance("doctor", ti["dag_run_id"], ti["task_id"], ti["map_index"]).get("state")
        return state if state in {"awaiting_input", "deferred"} else None

    # An answer within a fraction of a second of the request can race the scheduler, which then
    # fails the approval task (Airflow 3.3); a person never answers that fast, so wait like one.
    wait_until(awaiting_input, 60, "the approval task to wait for input", poll=0.5)
    time.sleep(3)
    api.update_hitl_detail("doctor", ti["dag_run_id"], ti["task_id"], ti["map_index"], [option])
    return {"subject": detail["subject"], "body": detail.get("body")}


def test_an_approved_grey_zone_retry_is_cleared(grey_zone):
    stack = grey_zone
    api, kb = api_for(stack), kb_for(stack)
    run = trigger(api, "example_flaky_warehouse")
    request = _answer_approval(api, run, "Approve")
    assert request["subject"].startswith("Retry example_flaky_warehouse.load_orders")
    assert "Confidence" in request["body"] and "Diagnosis" in request["body"]

    def healed():
        ti = api.get_task_instance("example_flaky_warehouse", run, "load_orders")
        return ti if ti.get("state") == "success" else None

    ti = wait_until(healed, 240, "the approved retry to succeed")
    assert ti["try_number"] == 2 and "approved by admin" in (ti.get("note") or "")
    case = wait_until(lambda: case_for(kb, "example_flaky_warehouse", run, "load_orders"), 60, "the case")
    assert case["decision"] == "approval" and case["cleared"]
    graph = settled_stage_states(api, case["doctor_run_id"], "example_flaky_warehouse.load_orders")
    assert graph == {
        **{
            s: "success"
            for s in (
                "embed_failure",
                "retrieve_similar",
                "diagnose",
                "gate_on_confidence",
                "prepare_approval",
                "request_approval",
                "act_on_approval",
                "record_case",
                "verify_retry",
                "report_retry",
            )
        },
        **{s: "skipped" for s in ("clear_and_retry", "escalate", "notify_humans")},
    }
    [(actor,)] = _rows(
        stack,
        "SELECT r.actor FROM doctor.remediations r JOIN doctor.failure_cases c "
        "ON c.id = r.case_id WHERE c.run_id = %s",
        (run,),
    )
    assert actor == "human"


def test_a_rejected_grey_zone_retry_is_escalated(grey_zone):
    stack = grey_zone  # its own stack: the rejection, a person's "permanent", is no other test's memory
    api, kb = api_for(stack), kb_for(stack)
    run = trigger(api, "example_flaky_warehouse")
    _answer_approval(api, run, "Reject")
    case = wait_until(lambda: case_for(kb, "example_flaky_warehouse", run, "load_orders"), 240, "the case")
    assert case["decision"] == "approval" and not case["cleared"]

    def answered():
        rows = _rows(
            stack,
            "SELECT r.actor, c.transient FROM doctor.remediations r JOIN doctor.failure_cases c "
            "ON c.id = r.case_id WHERE c.run_id = %s AND r.actor = 'human'",
            (run,),
        )
        return rows or None

    assert wait_until(answered, 60, "the rejection recorded as a person's answer") == [("human", False)]

    def noted():
        ti = api.get_task_instance("example_flaky_warehouse", run, "load_orders")
        return ti if "admin chose Reject" in (ti.get("note") or "") else None

    ti = wait_until(noted, 60, "the note saying who rejected the retry")
    assert ti["state"] == "failed" and ti["try_number"] == 1

    def rejection_mail():
        return next(
            (m for m in sink_messages(stack)[0] if "escalated" in m["subject"] and run in m["text"]), None
        )

    assert "admin chose Reject" in wait_until(rejection_mail, 60, "the escalation mail")["text"]


def test_a_task_killed_by_sigkill_is_picked_up_by_the_sweeper(stack):
    api, kb = api_for(stack), kb_for(stack)
    run = trigger(api, "example_oom_killed")

    def failed():
        ti = api.get_task_instance("example_oom_killed", run, "crunch")
        return ti if ti.get("state") == "failed" else None

    wait_until(failed, 180, "the killed task to be marked failed")
    time.sleep(3)
    # No listener ran: nothing reported it, unless the sweeper's own schedule (every few minutes)
    # happened to sweep it already.
    reported = _rows(stack, "SELECT source FROM doctor.inbox WHERE run_id = %s", (run,))
    assert all(source == "sweeper" for (source,) in reported), reported
    trigger(api, "doctor_sweeper")
    case = wait_until(
        lambda: case_for(kb, "example_oom_killed", run, "crunch"), 240, "the doctor to handle it"
    )
    [(source,)] = _rows(stack, "SELECT source FROM doctor.inbox WHERE run_id = %s", (run,))
    assert source == "sweeper"
    assert case["decision"] == "escalate" and not case["cleared"]


def test_the_messages_carry_what_a_person_needs(stack):
    run = trigger(api_for(stack), "example_orders_report")

    def delivered():
        mails, posts = sink_messages(stack)
        mail = next((m for m in mails if run in m["text"]), None)
        post = next((p for p in posts if run in json.dumps(p["body"])), None)
        return (mail, post) if mail and post else None

    mail, post = wait_until(delivered, 240, "the escalation on both channels")
    assert mail["subject"].startswith("[airflow-doctor] escalated: example_orders_report.build_report")
    for field in (
        "Diagnosis",
        "Confidence",
        "Similarity",
        "Action taken",
        "Fix steps",
        "Similar cases",
        "/dags/example_orders_report/runs/",
        "/dags/doctor/runs/",
    ):
        assert field in mail["html"], field
    assert "Fix steps" in mail["text"]  # the HTML as a reader sees it (the provider sends HTML only)
    kinds = [b["type"] for b in post["body"]["blocks"]]
    assert kinds[0] == "header" and "actions" in kinds and "section" in kinds

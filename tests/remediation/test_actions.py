"""An engineer's answer in Required Actions, read one way for the clear, the note and the record;
time to heal from Airflow's timestamps; the doctor run's note."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_doctor.models import Decision, FailureRef
from airflow_doctor.remediation.actions import (
    NOTE_MAX_CHARS,
    approval_answer,
    approver,
    check_retry,
    escalation_reason,
    heal_times,
    rejecter,
    summarize_run,
)

ASKED = Decision(verdict="approval", reasons=["r"])


@pytest.mark.parametrize(
    ("result", "approved_by", "rejected_by", "why"),
    [
        pytest.param(
            {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "ana"}},
            "ana",
            None,
            "ana chose Approve",
            id="approved",
        ),
        pytest.param(
            {"chosen_options": ["Reject"], "responded_by_user": {"id": "8", "name": "bo"}},
            None,
            "bo",
            "bo chose Reject",
            id="rejected-by-a-person",
        ),
        pytest.param(
            {"chosen_options": ["Reject"], "responded_by_user": None},
            None,
            None,
            "nobody approved the retry in time",
            id="timed-out",
        ),
        pytest.param(None, None, None, "the approval request was not answered", id="no-answer"),
        pytest.param(
            {"chosen_options": ["Approve"], "responded_by_user": None},
            "an engineer",
            None,
            "nobody chose Approve",
            id="approved-by-an-unnamed-user",
        ),
    ],
)
def test_one_reading_of_the_answer_names_who_decided(result, approved_by, rejected_by, why):
    assert approver(result) == approved_by
    assert rejecter(result) == rejected_by
    assert escalation_reason(ASKED, None, result) == why


def test_an_older_result_naming_the_person_by_responded_by_is_read_too():
    assert approval_answer({"chosen_options": ["Reject"], "responded_by": "cy"}) == ("Reject", "cy")


# -- time to heal, from Airflow's own timestamps (issue #24 item 8) ----------------------------------

FAILED_END = datetime(2026, 12, 7, 23, 0, 0, tzinfo=UTC)


class RetriedTaskInstance:
    """The REST API after a retry that succeeded 12.5 s after the failure: the task instance shows the
    retried try (2), the try history the failed one (1)."""

    def get_task_instance(self, dag_id, run_id, task_id, map_index=-1):
        return {
            "state": "success",
            "try_number": 2,
            "start_date": (FAILED_END + timedelta(seconds=4)).isoformat(),
            "end_date": (FAILED_END + timedelta(seconds=12.5)).isoformat().replace("+00:00", "Z"),
        }

    def get_try(self, ref, try_number=None):
        assert try_number == 1
        return {"state": "failed", "end_date": FAILED_END.isoformat()}


def test_time_to_heal_is_read_from_airflow_timestamps_not_from_when_the_doctor_saw_it(kb):
    """A verify_retry deferred while the stack was down sees the outcome 8 minutes late: the heal
    time stays what Airflow recorded (the failed try's end to the retried try's end)."""
    ref = FailureRef(dag_id="d", run_id="r", task_id="t", try_number=1, failed_at=FAILED_END)
    kb.record_case(
        ref=ref,
        case={"fingerprint": "f" * 64, "excerpt": "boom"},
        diagnosis=None,
        decision={"verdict": "auto_retry", "reasons": ["r"]},
        cleared=True,
        doctor_run_id="doctor-run",
    )
    cleared = {"cleared": True, "cleared_at": (datetime.now(UTC) - timedelta(minutes=8)).isoformat()}

    result = check_retry(ref.model_dump(mode="json"), cleared, api=RetriedTaskInstance(), kb=kb)

    assert result["outcome"] == "succeeded" and result["heal_seconds"] == 12.5
    assert result["retry_ended_at"] == (FAILED_END + timedelta(seconds=12.5)).isoformat()
    assert result["verified_late_seconds"] > 60  # and the message can say how late it is
    with kb.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT outcome, failed_ended_at, retry_started_at, retry_ended_at, heal_seconds"
            " FROM doctor.remediations"
        )
        assert cur.fetchall() == [
            (
                "succeeded",
                FAILED_END,
                FAILED_END + timedelta(seconds=4),
                FAILED_END + timedelta(seconds=12.5),
                12.5,
            )
        ]


def test_heal_times_without_a_readable_failed_try_count_from_the_failure_s_own_time():
    ref = FailureRef(dag_id="d", run_id="r", task_id="t", try_number=1, failed_at=FAILED_END)
    ended = {"start_date": None, "end_date": FAILED_END + timedelta(seconds=3)}
    now = FAILED_END + timedelta(seconds=63)
    assert heal_times(ref, ended, {}, now=now) == {
        "failed_ended_at": FAILED_END,
        "retry_started_at": None,
        "retry_ended_at": FAILED_END + timedelta(seconds=3),
        "heal_seconds": 3.0,
        "verified_late_seconds": 60.0,
    }
    # Unverified (the retry never ended): no heal time at all.
    assert heal_times(ref, {}, {}, now=now)["heal_seconds"] is None


# -- the doctor run's note ------------------------------------------------------------------------


class NoteAPI:
    """Keeps the DAG run notes written."""

    def __init__(self) -> None:
        self.notes: dict[str, str] = {}

    def set_dag_run_note(self, dag_id, run_id, note):
        self.notes[run_id] = note


class NoCases:
    def cases_of_run(self, doctor_run_id):
        return []


def test_a_run_that_handled_nothing_says_why_in_its_note():
    api = NoteAPI()
    taken = ["Handled elsewhere (...):", "d.t try 1: already taken by doctor run doctor-run-1"]
    note = summarize_run("doctor-run-2", remarks=taken, api=api, kb=NoCases())
    assert note == "airflow-doctor handled no failure in this run.\n" + "\n".join(taken)
    assert api.notes == {"doctor-run-2": note}
    assert summarize_run("doctor-run-3", api=api, kb=NoCases()) == (
        "airflow-doctor: no unhandled failure in this run."
    )


def test_a_dry_run_note_gives_the_verdict_its_reasons_and_who_would_have_been_told():
    verdicts = [["- d.t try 1: would leave it failed (escalate). Why: r. Would tell: a@x by email"]]
    note = summarize_run("dry", dry_run=True, dry_run_verdicts=verdicts, api=NoteAPI())
    assert note.startswith("airflow-doctor dry run: nothing was sent, cleared, noted or recorded.")
    assert verdicts[0][0] in note
    long = summarize_run("dry", dry_run=True, dry_run_verdicts=[["x" * 600], ["y" * 600]], api=NoteAPI())
    assert len(long) == NOTE_MAX_CHARS


def test_the_demo_shows_only_messages_about_its_own_failures():
    """A success message about an older failure that arrives during the demo (a verify_retry that
    waited out a stopped stack) is not printed as this demo's."""
    from scripts.demo import about_runs

    ours = {
        "subject": "[airflow-doctor] escalated",
        "text": "Task instance: d.t, run manual__2026-12-08T00:00",
    }
    stale = {"body": {"text": "retried: d.t, run manual__2026-12-07T23:51, try 1"}}
    assert about_runs([ours, stale], ["manual__2026-12-08T00:00"]) == ([ours], [stale])

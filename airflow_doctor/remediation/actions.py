"""Remediation: clearing a failed task instance for retry, or escalating it, and recording it.

Writes: the clear (REST API `clearTaskInstances`, dry_run false), notes on the failed task
instance, an audit row per clear (`doctor.clears`) and the case with its diagnosis and decision
(`doctor.failure_cases`, `doctor.diagnoses`, `doctor.remediations`).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

from airflow_doctor.models import Decision, FailureRef
from airflow_doctor.settings import settings as load_settings

log = logging.getLogger(__name__)


def summary_note(ref: FailureRef, diagnosis: dict | None, decision: Decision, action: str) -> str:
    """The note the doctor writes on a task instance: what it found and what it did (<= 1000 chars)."""
    if diagnosis:
        found = (
            f"{diagnosis['error_class']} ({'transient' if diagnosis['transient'] else 'permanent'}, "
            f"confidence {diagnosis['confidence']:.2f}, {diagnosis.get('diagnoser', 'offline')} diagnosis)"
        )
    else:
        found = "no diagnosis could be made"
    sim = f", similarity {decision.similarity:.2f}" if decision.similarity is not None else ""
    why = "; ".join(decision.reasons)
    return f"airflow-doctor: try {ref.try_number} failed: {found}{sim}. {action}. Why: {why}"[:1000]


def clear_member(
    ref_data: dict,
    decision_data: dict,
    diagnosis_result: dict | None,
    doctor_run_id: str,
    dry_run: bool = False,
    approved_by: str | None = None,
    *,
    api=None,
    kb=None,
) -> dict[str, Any]:
    """Clear the failed task instance so Airflow runs it again: only when the gate said auto_retry,
    or said approval and an engineer approved (`approved_by`).

    Waits until the API shows the task instance `failed` with this try (the listener fires just
    before Airflow records the failure), records the clear in `doctor.clears` (the first writer
    wins, so two doctor runs never both clear a try), then calls `clearTaskInstances` and writes a
    note on the task instance. The decision's backoff is waited by the caller
    (`groups.clear_group`, once per group).

    Args:
        ref_data: FailureRef as dict. decision_data: Decision as dict. diagnosis_result: the
            diagnose stage's output. doctor_run_id: this doctor run. dry_run: touch nothing.
            approved_by: the engineer who approved a grey-zone retry, or None.
    Returns:
        {"cleared": bool, "cleared_at": iso str | None, "reason": str, "note": str,
        "actor": "doctor" | "human"}. Never raises:
        any failure is a reason, and the case is escalated by the caller's flow.
    """
    from airflow_doctor.hooks.airflow_api import AirflowAPI
    from airflow_doctor.knowledge.store import KnowledgeBase

    ref = FailureRef.model_validate(ref_data)
    decision = Decision.model_validate(decision_data)
    diagnosis = (diagnosis_result or {}).get("diagnosis")
    out: dict[str, Any] = {
        "cleared": False,
        "cleared_at": None,
        "reason": "",
        "note": "",
        "actor": "human" if approved_by else "doctor",
    }
    if not (decision.verdict == "auto_retry" or (decision.verdict == "approval" and approved_by)):
        out["reason"] = f"gate verdict is {decision.verdict}"
        return out
    if dry_run:
        out["reason"] = "dry_run: would have cleared the task instance"
        return out
    settings = load_settings()
    try:
        api = api or AirflowAPI()
        ti = _wait_until_failed(api, ref, settings.failed_state_timeout_seconds)
        if int(ti.get("try_number") or 0) != ref.try_number or str(ti.get("state")) != "failed":
            out["reason"] = (
                f"not cleared: the task instance moved on (state {ti.get('state')}, try "
                f"{ti.get('try_number')}); someone else already retried it"
            )
            return out
        if not (kb or KnowledgeBase()).record_clear(ref, doctor_run_id):
            out["reason"] = "not cleared: another doctor run already cleared this try"
            return out
        action = (
            f"Cleared for retry, approved by {approved_by}"
            if approved_by
            else "Cleared for retry by the doctor"
        )
        note = summary_note(ref, diagnosis, decision, action)
        cleared = api.clear_task_instance(ref)
        out.update(
            cleared=bool(cleared),
            cleared_at=datetime.now(UTC).isoformat(),
            note=note,
            reason="cleared" if cleared else "the API cleared nothing (no failed task instance)",
        )
        if cleared:
            _write_note(api, ref, note)
            log.info("Cleared %s for retry", ref.label)
    except Exception as exc:  # noqa: BLE001 - a failed clear is escalated, never retried blindly
        out["reason"] = f"not cleared: {type(exc).__name__}: {exc}"[:500]
        log.error("Could not clear %s: %s", ref.label, out["reason"])
    return out


def try_settled(ti: dict, try_number: int) -> bool:
    """Whether a task instance (REST dict) shows try `try_number` as failed, or a later try: Airflow
    records a failed try only after its process exits, and the doctor may clear only then."""
    return str(ti.get("state")) == "failed" or int(ti.get("try_number") or 0) != try_number


def _wait_until_failed(api, ref: FailureRef, timeout: float, poll: float = 0.25) -> dict:
    """Poll the task instance until it shows this try as failed, or a later try (it moved on).

    Raises:
        TimeoutError: neither within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        ti = api.get_task_instance(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
        if try_settled(ti, ref.try_number):
            return ti
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ref.label} is still {ti.get('state')!r} after {timeout:.0f}s")
        time.sleep(poll)


def escalate_member(
    ref_data: dict,
    decision_data: dict,
    diagnosis_result: dict | None,
    remediation: dict | None = None,
    approval: dict | None = None,
    dry_run: bool = False,
    *,
    api=None,
) -> dict[str, Any]:
    """Leave the task instance failed for a person, with a note saying what the doctor found and why
    it did not retry: the gate escalated, an engineer rejected the retry or did not answer in time,
    or a clear that was decided could not be carried out.

    Args:
        remediation: clear_and_retry's output (None when it did not run).
        approval: what the approval request returned (chosen option, who answered), or None.
        dry_run: write no note.
    Returns:
        {"escalated": bool, "note": str, "note_written": bool, "why": str, "rejected_by": str | None
        (the engineer who chose Reject in Required Actions: a person's "do not retry")}; escalated
        is False when the task instance was cleared (nothing to escalate). Never raises.
    """

    ref = FailureRef.model_validate(ref_data)
    decision = Decision.model_validate(decision_data)
    if remediation and remediation.get("cleared"):
        return {"escalated": False, "note": "", "note_written": False, "why": "cleared"}
    why = escalation_reason(decision, remediation, approval)
    note = summary_note(ref, (diagnosis_result or {}).get("diagnosis"), decision, f"Not retried: {why}")
    written = False if dry_run else _write_note(api, ref, note)
    return {
        "escalated": True,
        "note": note,
        "note_written": written,
        "why": why,
        "rejected_by": rejecter(approval) if decision.verdict == "approval" else None,
    }


def escalation_reason(decision: Decision, remediation: dict | None, approval: dict | None) -> str:
    """Why a failure went to a person, in one phrase."""
    if decision.verdict == "approval":
        if not approval:
            return "the approval request was not answered"
        answer = approval_answer(approval)
        if answer.choice == "Reject" and answer.person is None:
            return "nobody approved the retry in time"
        return f"{answer.person or 'nobody'} chose {answer.choice or '?'}"
    if decision.verdict == "auto_retry":
        return f"the clear failed ({(remediation or {}).get('reason') or 'did not run'})"
    return "escalated to a human"


def _write_note(api, ref: FailureRef, note: str) -> bool:
    """Write the note on the task instance; True if written. The note is a courtesy: a failure is
    logged and the notification still goes out."""
    from airflow_doctor.hooks.airflow_api import AirflowAPI

    try:
        (api or AirflowAPI()).set_task_instance_note(ref, note)
        return True
    except Exception as exc:  # noqa: BLE001
        log.warning("Could not write the note on %s: %s", ref.label, exc)
        return False


def record_member(
    ref_data: dict,
    excerpt: dict | None,
    embedding: dict | None,
    diagnosis_result: dict | None,
    decision_data: dict | None,
    remediation: dict | None,
    doctor_run_id: str,
    *,
    kb=None,
) -> int | None:
    """Write the case, its diagnosis and the decision into the knowledge base.

    Returns:
        the case id, or None when the knowledge base is unreachable (logged; the humans were
        already notified).
    """
    from airflow_doctor.knowledge.store import KnowledgeBase

    ref = FailureRef.model_validate(ref_data)
    excerpt = excerpt or {}
    decision = decision_data or {"verdict": "escalate", "reasons": ["the gate did not run"]}
    diag = dict((diagnosis_result or {}).get("diagnosis") or {})
    if diag:
        diag.update(
            {
                k: (diagnosis_result or {}).get(k)
                for k in ("input_tokens", "output_tokens", "cached_tokens", "latency_ms")
            }
        )
    try:
        return (kb or KnowledgeBase()).record_case(
            ref=ref,
            case={
                "operator": excerpt.get("operator"),
                "fingerprint": excerpt.get("fingerprint"),
                "excerpt": excerpt.get("text"),
                "embedding": (embedding or {}).get("embedding"),
                "embedding_model": (embedding or {}).get("model"),
            },
            diagnosis=diag or None,
            decision=decision,
            cleared=bool((remediation or {}).get("cleared")),
            doctor_run_id=doctor_run_id,
            actor=(remediation or {}).get("actor") or "doctor",
        )
    except Exception as exc:  # noqa: BLE001
        log.error("Could not record the case of %s: %s: %s", ref.label, type(exc).__name__, exc)
        return None


def check_retry(ref_data: dict, remediation: dict, *, api=None, kb=None) -> dict | None:
    """One poke of verify_retry: has the retried try ended? If so, record its outcome and its times.

    Args:
        ref_data: the failure (its try_number is the failed try).
        remediation: clear_and_retry's output (cleared, cleared_at).
    Returns:
        None while the retried try has not ended; else {"outcome": "succeeded" | "failed" |
        "unverified", "state": str, "try_number": int, "seconds_after_clear": float, and
        heal_times' keys}. The outcome is written to the case's remediation (a verified success is
        what makes it memory for the gate), with Airflow's timestamps (record_heal_times).
        "unverified": no ending within [doctor] verify_timeout_seconds.
    Raises:
        nothing on API or database errors: they are logged and the poke reports "not yet".
    """
    from airflow_doctor.hooks.airflow_api import AirflowAPI
    from airflow_doctor.knowledge.store import KnowledgeBase

    ref = FailureRef.model_validate(ref_data)
    cleared_at = datetime.fromisoformat(remediation["cleared_at"])
    waited = (datetime.now(UTC) - cleared_at).total_seconds()
    api = api or AirflowAPI()
    try:
        ti = api.get_task_instance(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
    except Exception as exc:  # noqa: BLE001 - try again at the next poke
        log.warning("verify_retry: cannot read %s: %s", ref.label, exc)
        return None
    state, try_number = str(ti.get("state")), int(ti.get("try_number") or 0)
    if try_number > ref.try_number and state in TERMINAL_STATES:
        outcome = "succeeded" if state == "success" else "failed"
    elif waited > load_settings().verify_timeout_seconds:
        outcome, state = "unverified", state
    else:
        return None
    times = heal_times(ref, ti if outcome != "unverified" else {}, _failed_try(api, ref))
    try:
        kb = kb or KnowledgeBase()
        kb.set_outcome(ref, outcome)
        record_heal_times(kb, ref, times)
    except Exception as exc:  # noqa: BLE001
        log.error("verify_retry: could not record the outcome of %s: %s", ref.label, exc)
    log.info(
        "Retry of %s %s (try %s is %s, %.0fs after the clear; healed in %s s by Airflow's clock)",
        ref.label,
        outcome,
        try_number,
        state,
        waited,
        times["heal_seconds"],
    )
    return {
        "outcome": outcome,
        "state": state,
        "try_number": try_number,
        "seconds_after_clear": round(waited, 1),
        **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in times.items()},
    }


def _failed_try(api, ref: FailureRef) -> dict:
    """The failed try as Airflow recorded it (REST task instance try), {} when unreadable."""
    try:
        return api.get_try(ref, ref.try_number) or {}
    except Exception as exc:  # noqa: BLE001 - the FailureRef's failed_at stands in
        log.warning("verify_retry: cannot read try %s of %s: %s", ref.try_number, ref.label, exc)
        return {}


def _when(value) -> datetime | None:
    """A REST timestamp (ISO string or datetime) as an aware datetime; None for none."""
    if value in (None, ""):
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def heal_times(ref: FailureRef, retried_ti: dict, failed_try: dict, now: datetime | None = None) -> dict:
    """Time to heal from Airflow's own timestamps, whatever the delay before it was verified.

    Args:
        ref: the failure (its failed_at stands in when the failed try's end_date is unknown).
        retried_ti: the task instance (REST dict) after its retried try ended: its start_date and
            end_date are the retried try's; {} when the retry did not end (unverified).
        failed_try: the failed try (REST task instance try): its end_date is the failure.
        now: when the outcome was seen (default: now).
    Returns:
        {"failed_ended_at", "retry_started_at", "retry_ended_at" (aware datetimes or None),
        "heal_seconds" (retry_ended_at - failed_ended_at, s, 0.1 s; None when either is unknown),
        "verified_late_seconds" (now - retry_ended_at, s: how long after the retry ended the doctor
        saw it, e.g. the minutes a stopped stack held a deferred verify_retry; None)}.
    """
    now = now or datetime.now(UTC)
    failed = _when(failed_try.get("end_date")) or _when(ref.failed_at)
    started, ended = _when(retried_ti.get("start_date")), _when(retried_ti.get("end_date"))
    return {
        "failed_ended_at": failed,
        "retry_started_at": started,
        "retry_ended_at": ended,
        "heal_seconds": round((ended - failed).total_seconds(), 1) if failed and ended else None,
        "verified_late_seconds": round((now - ended).total_seconds(), 1) if ended else None,
    }


#: Writes heal_times' timestamps on the latest remediation of the failure's case (the row
#: set_outcome updated; include/sql/009_heal_times.sql adds the columns).
SET_HEAL_TIMES = """
UPDATE doctor.remediations SET failed_ended_at = %(failed_ended_at)s,
    retry_started_at = %(retry_started_at)s, retry_ended_at = %(retry_ended_at)s
WHERE id = (
    SELECT max(r.id) FROM doctor.remediations r JOIN doctor.failure_cases c ON c.id = r.case_id
    WHERE (c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number)
        = (%(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s)
)
"""


def record_heal_times(kb, ref: FailureRef, times: dict) -> int:
    """Store heal_times' timestamps on the failure's latest remediation (heal_seconds follows).

    Returns:
        rows updated (0 when the case was not recorded).
    Raises:
        psycopg2 errors: the knowledge base cannot be written.
    """
    keys = ("dag_id", "run_id", "task_id", "map_index", "try_number")
    with kb.connection() as conn, conn.cursor() as cur:
        cur.execute(
            SET_HEAL_TIMES,
            {
                **dict(zip(keys, ref.key, strict=True)),
                **{k: times.get(k) for k in ("failed_ended_at", "retry_started_at", "retry_ended_at")},
            },
        )
        return cur.rowcount


TERMINAL_STATES = {"success", "failed", "skipped", "upstream_failed", "removed"}


class ApprovalAnswer(NamedTuple):
    """An engineer's answer in Required Actions, read once from request_approval's result."""

    choice: str | None  # "Approve", "Reject", or None when there is no answer at all
    person: str | None  # who answered; None for nobody (a timeout answers "Reject" by nobody)


def approval_answer(approval: dict | None) -> ApprovalAnswer:
    """Read the HITL operator's result: {"chosen_options": [...], "responded_by_user": {"id",
    "name"} | None, ...} (the standard provider; older results carry "responded_by").

    Returns:
        ApprovalAnswer; (None, None) for no result.
    """
    if not approval:
        return ApprovalAnswer(None, None)
    chosen = (approval.get("chosen_options") or [None])[0]
    user = approval.get("responded_by_user") or approval.get("responded_by") or None
    person = (user.get("name") or user.get("id")) if isinstance(user, dict) else user
    return ApprovalAnswer(str(chosen) if chosen else None, str(person) if person else None)


def rejecter(approval: dict | None) -> str | None:
    """Who rejected a grey-zone retry; None unless a person chose "Reject" (a timeout also answers
    "Reject", with nobody behind it)."""
    answer = approval_answer(approval)
    return answer.person if answer.choice == "Reject" else None


def approver(approval: dict | None) -> str | None:
    """Who approved a grey-zone retry; None unless it was "Approve"."""
    answer = approval_answer(approval)
    return (answer.person or "an engineer") if answer.choice == "Approve" else None


#: Characters a note may hold (Airflow's note content column is 1000 characters long).
NOTE_MAX_CHARS = 1000


def summarize_run(
    doctor_run_id: str,
    dry_run: bool = False,
    *,
    remarks: list[str] | None = None,
    dry_run_verdicts: list | None = None,
    api=None,
    kb=None,
) -> str:
    """Write the doctor DAG run's note: every failure it handled and what it did, then `remarks`.
    Never raises.

    Args:
        remarks: what fetch_logs has to say about this run's claim (XCom "remarks": a manual
            trigger re-diagnosed or refused and why, failures a concurrent doctor run took).
        dry_run_verdicts: in a dry run, the gate's lines per group (pipeline.dry_run_verdict):
            the verdict, its reasons, who would have been told.
    Returns:
        the note, at most NOTE_MAX_CHARS characters (also when it could not be written).
    """
    from airflow_doctor.hooks.airflow_api import AirflowAPI
    from airflow_doctor.knowledge.store import KnowledgeBase

    remarks = [str(r) for r in remarks or [] if r]
    if dry_run:
        lines = [
            line
            for lines in dry_run_verdicts or []
            for line in (lines if isinstance(lines, list) else [lines])
        ]
        note = "airflow-doctor dry run: nothing was sent, cleared, noted or recorded. " + (
            "What the doctor would have done:\n" + "\n".join(lines) if lines else "No failure was diagnosed."
        )
    else:
        try:
            rows = (kb or KnowledgeBase()).cases_of_run(doctor_run_id)
            lines = [
                f"- {r['dag_id']}.{r['task_id']} try {r['try_number']}: {r['error_class'] or 'no diagnosis'}"
                f" -> {r['decision']}{' (cleared)' if r['cleared'] else ''}"
                for r in rows
            ]
            if rows:
                note = f"airflow-doctor handled {len(rows)} failure(s):\n" + "\n".join(lines)
            elif remarks:
                note = "airflow-doctor handled no failure in this run."
            else:
                note = "airflow-doctor: no unhandled failure in this run."
        except Exception as exc:  # noqa: BLE001
            note = f"airflow-doctor: could not read this run's cases ({type(exc).__name__}: {exc})"
    if remarks:
        note += "\n" + "\n".join(remarks)
    note = note[:NOTE_MAX_CHARS]
    try:
        (api or AirflowAPI()).set_dag_run_note("doctor", doctor_run_id, note)
    except Exception as exc:  # noqa: BLE001
        log.warning("Could not write the note of doctor run %s: %s", doctor_run_id, exc)
    return note

"""Remediation: clearing a failed task instance for retry, or escalating it, and recording it.

Writes: the clear (REST API `clearTaskInstances`, dry_run false), notes on the failed task
instance, an audit row per clear (`doctor.clears`) and the case with its diagnosis and decision
(`doctor.failure_cases`, `doctor.diagnoses`, `doctor.remediations`).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from include.doctor.config import settings as load_settings
from include.doctor.models import Decision, FailureRef

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


def clear_and_retry(
    ref_data: dict,
    decision_data: dict,
    diagnosis_result: dict | None,
    doctor_run_id: str,
    dry_run: bool = False,
    *,
    api=None,
    kb=None,
) -> dict[str, Any]:
    """Clear the failed task instance so Airflow runs it again, if and only if the gate said auto_retry.

    Waits until the API shows the task instance `failed` with this try (the listener fires just
    before Airflow records the failure), waits the decision's backoff, records the clear in
    `doctor.clears` (the first writer wins, so two doctor runs never both clear a try), then calls
    `clearTaskInstances` and writes a note on the task instance.

    Args:
        ref_data: FailureRef as dict. decision_data: Decision as dict. diagnosis_result: the
            diagnose stage's output. doctor_run_id: this doctor run. dry_run: touch nothing.
    Returns:
        {"cleared": bool, "cleared_at": iso str | None, "reason": str, "note": str}. Never raises:
        any failure is a reason, and the case is escalated by the caller's flow.
    """
    from include.doctor.airflow_api import AirflowAPI
    from include.doctor.store import KnowledgeBase

    ref = FailureRef.model_validate(ref_data)
    decision = Decision.model_validate(decision_data)
    diagnosis = (diagnosis_result or {}).get("diagnosis")
    out: dict[str, Any] = {"cleared": False, "cleared_at": None, "reason": "", "note": ""}
    if decision.verdict != "auto_retry":
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
        if decision.backoff_seconds > 0:
            log.info("Backing off %.0fs before clearing %s", decision.backoff_seconds, ref.label)
            time.sleep(decision.backoff_seconds)
        if not (kb or KnowledgeBase()).record_clear(ref, doctor_run_id):
            out["reason"] = "not cleared: another doctor run already cleared this try"
            return out
        note = summary_note(ref, diagnosis, decision, "Cleared for retry by the doctor")
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


def _wait_until_failed(api, ref: FailureRef, timeout: float, poll: float = 0.25) -> dict:
    """Poll the task instance until it shows this try as failed, or a later try (it moved on).

    Raises:
        TimeoutError: neither within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        ti = api.get_task_instance(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
        if str(ti.get("state")) == "failed" or int(ti.get("try_number") or 0) != ref.try_number:
            return ti
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ref.label} is still {ti.get('state')!r} after {timeout:.0f}s")
        time.sleep(poll)


def escalate(
    ref_data: dict, decision_data: dict, diagnosis_result: dict | None, dry_run: bool = False, *, api=None
) -> dict[str, Any]:
    """Leave the task instance failed for a person, with a note saying what the doctor found.

    Args:
        dry_run: write no note.
    Returns:
        {"note": str, "note_written": bool}. Never raises.
    """
    from include.doctor.airflow_api import AirflowAPI

    ref = FailureRef.model_validate(ref_data)
    decision = Decision.model_validate(decision_data)
    note = summary_note(
        ref, (diagnosis_result or {}).get("diagnosis"), decision, "Not retried: escalated to a human"
    )
    written = False
    if dry_run:
        return {"note": note, "note_written": False}
    try:
        _write_note(api or AirflowAPI(), ref, note)
        written = True
    except Exception as exc:  # noqa: BLE001 - the note is a courtesy; notification still goes out
        log.warning("Could not write the note on %s: %s", ref.label, exc)
    return {"note": note, "note_written": written}


def _write_note(api, ref: FailureRef, note: str) -> None:
    try:
        api.set_task_instance_note(ref, note)
    except Exception as exc:  # noqa: BLE001
        log.warning("Could not write the note on %s: %s", ref.label, exc)


def record_case(
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
    from include.doctor.store import KnowledgeBase

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
        )
    except Exception as exc:  # noqa: BLE001
        log.error("Could not record the case of %s: %s: %s", ref.label, type(exc).__name__, exc)
        return None

"""Learning from people: what a person did after the doctor escalated a failure, kept as memory.

docs/gate.md: outcomes come from the doctor's own verified retries and from people. When the
doctor escalates a failure (the gate said escalate, or said approval and nobody approved), the
person who gets the message decides: they clear the task instance, or they leave it failed. This
module watches that through the REST API (tasks cannot open Airflow's metadata DB) and records it
in the knowledge base with actor 'human', so the gate reads it through `Neighbour`:

- cleared, and the newest try succeeded: outcome 'succeeded', case transient -> `retry_verified`;
- cleared, and the newest try failed again: outcome 'failed' -> `retry_failed` (a veto);
- left failed for `SETTLE_TIME` after the escalation: outcome 'escalated', case not transient ->
  `judged_permanent` (a veto: "a person's permanent").

Writes one `doctor.remediations` row per case (actor 'human', once ever) and the case's
`transient` (include/sql/queries/record_human_outcome.sql). Run by the doctor_sweeper DAG, beside
its twin for Airflow's own retries (airflow_doctor/knowledge/airflow_retries.py, actor 'airflow').
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

log = logging.getLogger(__name__)

#: Only cases created this many days ago or later are looked at. A person acts on a message within
#: days or not at all; older cases would cost an API call every sweep for nothing.
WINDOW_DAYS = 7
#: At most this many cases per sweep (newest first), so one sweep stays a few seconds of API calls
#: (each a `GET .../taskInstances/...`) even after a storm of escalations.
MAX_CASES_PER_SWEEP = 200
#: A task instance left failed this long after the escalation is a person's "permanent": whoever
#: got the message had a working day to clear it and did not.
SETTLE_TIME = timedelta(hours=24)
#: After this many errors in a row (API or knowledge base unreachable) the pass stops; the cases
#: not looked at are looked at next sweep, instead of each waiting out its own timeout.
MAX_CONSECUTIVE_ERRORS = 3

Kind = Literal["transient", "failed_again", "permanent"]


@dataclass(frozen=True)
class Verdict:
    """What a person's action says about one escalated case.

    Attributes:
        kind: the counter it adds to ("transient", "failed_again", "permanent").
        cleared: whether the person cleared the task instance.
        outcome: the remediation outcome recorded ("succeeded", "failed", "escalated").
        transient: the case's new `transient`, or None to leave the diagnosis's.
        reason: what was observed, in words (the remediation's reasons).
    """

    kind: Kind
    cleared: bool
    outcome: str
    transient: bool | None
    reason: str


def judge(case: dict, task_instance: dict, now: datetime) -> Verdict | None:
    """Read a person's action on an escalated case from its task instance as the API shows it now.

    Args:
        case: a row of `KnowledgeBase.escalated_cases`: try_number (the failed try the case is
            about), escalated_at (timezone-aware datetime), later_doctor_clears (int).
        task_instance: `AirflowAPI.get_task_instance` of the case's task instance: state (str or
            None right after a clear), try_number (int). Clearing a task instance starts a new try.
        now: the time to measure the settle time against (timezone-aware).
    Returns:
        None while there is nothing to learn yet: the retry a person started has not ended (None,
        scheduled, queued, running, up_for_retry, deferred ...) or ended without running (skipped,
        upstream_failed, removed); the task instance is failed for less than `SETTLE_TIME`; a person
        marked it success without a retry (that says nothing about the error). Otherwise:
        - the doctor cleared a later try (`later_doctor_clears` > 0): that try failed for good, so
          the person's clear did not help: "failed_again" (whatever the newest try did since);
        - a later try exists and the newest try is `success`: "transient", the case becomes transient;
        - a later try exists and the newest try is `failed`: "failed_again" (Airflow's own retries,
          which a clear resets, are part of the person's retry);
        - still the failed try, `failed`, and at least `SETTLE_TIME` since the escalation:
          "permanent", the case becomes not transient.
    """
    failed_try = int(case["try_number"])
    try_number = int(task_instance.get("try_number") or 0)
    state = str(task_instance.get("state") or "")
    if int(case.get("later_doctor_clears") or 0) > 0:
        return Verdict(
            "failed_again",
            cleared=True,
            outcome="failed",
            transient=None,
            reason=f"a person cleared try {failed_try}; a later try failed for good (the doctor cleared it)",
        )
    if try_number > failed_try:
        if state == "success":
            return Verdict(
                "transient",
                cleared=True,
                outcome="succeeded",
                transient=True,
                reason=f"a person cleared try {failed_try}; try {try_number} succeeded",
            )
        if state == "failed":
            return Verdict(
                "failed_again",
                cleared=True,
                outcome="failed",
                transient=None,
                reason=f"a person cleared try {failed_try}; try {try_number} failed again",
            )
        return None
    escalated_at = case["escalated_at"]
    if escalated_at.tzinfo is None:
        escalated_at = escalated_at.replace(tzinfo=UTC)
    left_for = now - escalated_at
    if try_number == failed_try and state == "failed" and left_for >= SETTLE_TIME:
        return Verdict(
            "permanent",
            cleared=False,
            outcome="escalated",
            transient=False,
            reason=(
                f"left failed for {left_for.total_seconds() / 3600:.0f} h after the escalation "
                f"(settle time {SETTLE_TIME.total_seconds() / 3600:.0f} h): a person's 'permanent'"
            ),
        )
    return None


def begin_pass(list_rows, *, kb, api, counts: dict, what: str):
    """The start of a learning pass of the doctor_sweeper (people's actions, Airflow's retries):
    migrate the knowledge base (a sweeper task does not wait for the one that migrates), list the
    rows to look at, and build one REST client (one token) for the pass only when there are rows.

    Args:
        list_rows: KnowledgeBase -> list of rows to look at.
        kb, api: given ones (tests, the CLI), or None for the connections `doctor_db` and
            `doctor_airflow_api`.
        counts: the pass's counts; "errors" gains one when the pass cannot run.
        what: names the pass in the log line ("this sweep").
    Returns:
        (kb, api, rows), or None when there is nothing to do: no rows, a dead knowledge base
        (logged), or no API client. Never raises.
    """
    try:
        from airflow_doctor.knowledge.store import KnowledgeBase

        kb = kb or KnowledgeBase()
        kb.migrate()
        rows = list_rows(kb)
    except Exception as exc:  # noqa: BLE001 - degrade: nothing learnt this sweep
        log.error("Knowledge base unavailable, learning nothing %s: %s: %s", what, type(exc).__name__, exc)
        counts["errors"] += 1
        return None
    if not rows:
        return None
    if api is None:
        from airflow_doctor.hooks.airflow_api import default_api

        api = default_api()  # one client (and one token) for the whole pass
        if api is None:
            counts["errors"] += 1
            return None
    return kb, api, rows


def learn_from_people(*, api=None, kb=None, now: datetime | None = None) -> dict:
    """Record what people did about the doctor's recent escalations (the doctor_sweeper DAG).

    Looks at the escalated cases of the last `WINDOW_DAYS` days that no person's outcome is recorded
    for, newest first, at most `MAX_CASES_PER_SWEEP`; reads each one's task instance through the REST
    API and records what `judge` reads in it, with actor 'human'. Each case is judged once; a case
    with nothing to learn yet is looked at again next sweep.

    Args:
        api: an AirflowAPI (default: connection `doctor_airflow_api`, built only when there are
            cases to look at).
        kb: a KnowledgeBase (default: connection `doctor_db`).
        now: the current time (timezone-aware; default the clock): the window and the settle time
            are measured from it.
    Returns:
        counts {"looked_at", "transient", "failed_again", "permanent", "waiting", "errors"}:
        looked_at is the cases whose task instance was read (or tried); errors counts the cases an
        API or database error left for the next sweep, plus one when the pass could not run at all
        (dead knowledge base, no API client). Never raises: errors are logged.
    """
    counts = dict.fromkeys(("looked_at", "transient", "failed_again", "permanent", "waiting", "errors"), 0)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    opened = begin_pass(
        lambda kb: kb.escalated_cases(now - timedelta(days=WINDOW_DAYS), MAX_CASES_PER_SWEEP),
        kb=kb,
        api=api,
        counts=counts,
        what="this sweep",
    )
    if opened is None:
        return counts
    kb, api, cases = opened

    in_a_row = 0
    for case in cases:
        if in_a_row >= MAX_CONSECUTIVE_ERRORS:
            log.warning(
                "%d errors in a row; the other %d case(s) are looked at next sweep",
                in_a_row,
                len(cases) - counts["looked_at"],
            )
            break
        counts["looked_at"] += 1
        label = f"{case['dag_id']}.{case['task_id']}" + (
            f"[{case['map_index']}]" if case["map_index"] >= 0 else ""
        )
        try:
            ti = api.get_task_instance(case["dag_id"], case["run_id"], case["task_id"], case["map_index"])
        except Exception as exc:  # noqa: BLE001 - this case is looked at next sweep
            log.warning("Cannot read %s (case %s): %s", label, case["case_id"], exc)
            counts["errors"] += 1
            in_a_row += 1
            continue
        verdict = judge(case, ti, now)
        if verdict is None:
            counts["waiting"] += 1
            in_a_row = 0
            continue
        try:
            written = kb.record_human_outcome(
                case["case_id"],
                decision=case["decision"],
                cleared=verdict.cleared,
                outcome=verdict.outcome,
                transient=verdict.transient,
                reasons=[verdict.reason],
            )
        except Exception as exc:  # noqa: BLE001 - this case is looked at next sweep
            log.error("Could not record a person's outcome of case %s: %s", case["case_id"], exc)
            counts["errors"] += 1
            in_a_row += 1
            continue
        in_a_row = 0
        if written:
            counts[verdict.kind] += 1
            log.info("Case %s (%s try %s): %s", case["case_id"], label, case["try_number"], verdict.reason)
    log.info("Learnt from people: %s", counts)
    return counts

"""Learning from Airflow's own retries: what the next try did after a failed try, kept as memory.

docs/gate.md: outcomes come from the doctor's verified retries, from people, and from Airflow's own
retries. A task with `retries` left goes to `up_for_retry` when a try fails, and Airflow runs it
again after `retry_delay`: an experiment the doctor did not have to make. The listener notes each
such try in `doctor.retried_tries` (airflow_doctor/listeners/failures.py); the history import
(`import_history`: `python -m airflow_doctor history`, and the doctor_sweeper's first runs) notes
the failed tries of the last days that another try followed. The doctor_sweeper then reads, through
the REST API only (tasks cannot open Airflow's metadata DB), what the next try did (`judge_retry`)
and records it in the knowledge base with actor 'airflow' and decision 'airflow_retry', so the gate
reads it through `Neighbour`:

- the next try succeeded on the same DAG version, nobody acting in between: outcome 'succeeded', case
  transient -> `retry_verified`;
- it succeeded on a newer DAG version: 'fixed_by_change'; after a person's action (a clear, a
  connection or Variable changed): 'fixed_by_person'; both not transient -> `fixed`;
- it failed again with the same fingerprint on the same DAG version: 'failed' -> `retry_failed`.

A case carries the rules' class of the failed try's log (`judgement/reading.py`), its fingerprint
and, when one can be had cheaply, its embedding: the stored vector of a case with the same
fingerprint, or the embedding service's (`[doctor] embed_url`). The sweeper never loads the
embedding model for this; a case without a vector is still found by its fingerprint.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

log = logging.getLogger(__name__)

#: At most this many retried tries are judged per sweep (oldest first): each costs 2-6 REST calls
#: (its tries, the audit log, one or two logs), so a sweep stays well under a minute of API calls.
MAX_ROWS_PER_SWEEP = 50
#: After this many errors in a row (API or knowledge base unreachable) a pass stops; what was not
#: looked at is looked at next sweep (as learning.MAX_CONSECUTIVE_ERRORS).
MAX_CONSECUTIVE_ERRORS = 3
#: A retried try still unjudged this long after it was noted (its next try never ended, or its log
#: or audit log stayed unreadable) is given up: recorded as learnt with verdict 'gave_up'.
GIVE_UP_AFTER = timedelta(days=7)
#: The `doctor_run_id` of the cases recorded here: no doctor run handled them.
DOCTOR_RUN_ID = "airflow"
#: States in which a try has ended (Airflow's State.finished, plus up_for_retry).
ENDED_STATES = frozenset({"success", "failed", "up_for_retry", "skipped", "upstream_failed", "removed"})
#: States of a try that failed (a try going to up_for_retry is recorded as `failed` in its history).
FAILED_STATES = frozenset({"failed", "up_for_retry"})

#: Audit-log events of a person acting on a task instance (Airflow 3.3: the REST API records the
#: endpoint's function name, `airflow/api_fastapi/logging/decorators.py`; the CLI records
#: `cli_<function>`, `airflow/utils/cli_action_loggers.py`): clears of task instances or DAG runs and
#: a state set on a task instance or a task group. A clear with `dry_run` is not recorded by Airflow.
TASK_EVENTS = (
    "post_clear_task_instances",
    "patch_task_instance",
    "patch_task_group_instances",
    "clear_dag_run",
    "clear_dag_runs",
    "cli_task_clear",
    "cli_dag_clear",
)
#: Audit-log events of a connection or Variable created, changed or deleted (REST API and CLI, as
#: TASK_EVENTS): any of them between two tries may be what fixed the second.
CONFIG_EVENTS = (
    "post_variable",
    "patch_variable",
    "delete_variable",
    "bulk_variables",
    "cli_variables_set",
    "cli_variables_delete",
    "cli_variables_import",
    "post_connection",
    "patch_connection",
    "delete_connection",
    "bulk_connections",
    "create_default_connections",
    "cli_connections_add",
    "cli_connections_delete",
    "cli_connections_import",
)
#: At most this many audit-log records are read per question (those of the task's DAG; connections
#: and Variables): one is enough to say a person acted.
MAX_EVENTS = 50

#: The history import's window, in days, when the sweeper runs it (the CLI's `--days` default too).
HISTORY_DAYS = 30
#: Task instances per page of `GET /api/v2/dags/~/dagRuns/~/taskInstances` (the API's default
#: `[api] maximum_page_limit` is 100).
HISTORY_PAGE_SIZE = 100
#: The try numbers asked of the API (its `try_number` filter is exact: `try_number IN (...)`): task
#: instances with 2 to 64 tries. One with more is rare and left out.
HISTORY_TRY_NUMBERS = tuple(range(2, 65))
#: Task instances a sweep imports while no history import has finished: one `.../tries` call each,
#: so a sweep's slice costs about HISTORY_SLICE * HISTORY_SLEEP_SECONDS plus the calls themselves.
HISTORY_SLICE = 200
#: The CLI's default cap on task instances read in one run (`--max-task-instances`).
HISTORY_MAX_TASK_INSTANCES = 10_000
#: Default cap on failed tries noted in one import run (it stops, resumably, at either cap).
HISTORY_MAX_TRIES = 20_000
#: Seconds to wait before each REST call of the import: at most ~20 calls a second, so a history
#: import never crowds out the scheduler's and the UI's use of the API server.
HISTORY_SLEEP_SECONDS = 0.05
#: A progress line every this many task instances.
PROGRESS_EVERY = 100

Kind = Literal["succeeded", "failed", "fixed_by_change", "fixed_by_person", "other"]


@dataclass(frozen=True)
class RetryVerdict:
    """What the next try says about one failed try that Airflow (or someone) retried.

    Attributes:
        kind: the counter it adds to: an outcome below, or "other" (nothing is recorded).
        outcome: the remediation outcome recorded ("succeeded", "failed", "fixed_by_change",
            "fixed_by_person"), or None for "other".
        transient: the case's `transient`: True (a plain retry healed it), False (a change or a
            person did), or None (unknown: a retry that failed says nothing about whether a later
            one would succeed).
        reason: what was observed, in words (the remediation's reasons, the case's title).
    """

    kind: Kind
    outcome: str | None
    transient: bool | None
    reason: str

    @property
    def records(self) -> bool:
        """Whether this verdict is recorded as a case (every kind but "other")."""
        return self.outcome is not None


def judge_retry(
    failed_try: dict,
    next_try: dict | None,
    person_events: list[dict],
    failed_fingerprint: str | None,
    next_fingerprint: str | None,
) -> RetryVerdict | None:
    """Read what the try after a failed try did. Pure: no I/O.

    Args:
        failed_try: the failed try as the REST API's `.../tries` shows it (or a `models.TryRecord`
            dict): try_number, state, dag_version (the DAG version's version_number, or the API's
            {"version_number": int, ...}), start_date, end_date (datetimes or ISO 8601 strings);
            dag_id, dag_run_id (or run_id), task_id, map_index to match audit-log records; and
            optionally max_tries (the retries it had: `try_number > max_tries` means none were left).
        next_try: the try after it (the smallest higher try_number), shaped alike; None while there
            is none yet.
        person_events: Airflow audit-log records (`GET /api/v2/eventLogs`: event, when, dag_id,
            run_id, task_id, extra) read for the time between the two tries; only those of
            TASK_EVENTS about this task instance and of CONFIG_EVENTS, between the failed try's end
            and the next try's start, count as a person's action.
        failed_fingerprint, next_fingerprint: the fingerprints of the two tries' primary errors
            (logs/fingerprint.py), None when unknown or not read.
    Returns:
        None while the next try has not ended (there is none yet, or it is scheduled, queued,
        running, deferred ...). Otherwise, in this order:
        - the next try `success` on a NEWER DAG version than the failed try, or on the same version
          number with another bundle version (a versioned bundle's commit that changed only task
          code): "fixed_by_change", transient False (the code or the DAG changed);
        - `success` after a person's action in between (a clear or a state set on this task
          instance recorded in Airflow's audit log, a connection or Variable created, changed or
          deleted between the failed try's end and the next try's start, or a failed try with no
          retries left, whose next try can only come from a clear): "fixed_by_person", transient
          False;
        - `success` on the same DAG version, nobody acting in between: "succeeded", transient True
          ("Airflow's retry on the same DAG version succeeded");
        - `failed` (or `up_for_retry`) on the same DAG version with the same fingerprint: "failed",
          transient None (a retry that did not help);
        - anything else records nothing: "other", outcome None, with the reason: the next try failed
          with another fingerprint (another failure, not this one again) or an unknown one, ran on
          another DAG version than a failure comparable with this one, on an OLDER version, with an
          unknown DAG version, or ended without running (skipped, upstream_failed, removed), or the
          state was set on the same try without a new one.
    """
    if next_try is None:
        return None
    state = _state(next_try)
    if state not in ENDED_STATES:
        return None
    n_failed, n_next = _try_number(failed_try), _try_number(next_try)
    if n_next <= n_failed:
        return _other(f"try {n_failed} was set to {state} without a new try (no retry ran)")
    v_failed, v_next = _version(failed_try), _version(next_try)
    if state == "success":
        if v_failed is None or v_next is None:
            return _other(f"try {n_next} succeeded, but a DAG version is unknown: nothing to compare")
        b_failed, b_next = _bundle(failed_try), _bundle(next_try)
        if v_next > v_failed or (v_next == v_failed and b_failed and b_next and b_failed != b_next):
            return RetryVerdict(
                "fixed_by_change",
                "fixed_by_change",
                False,
                f"try {n_next} succeeded on DAG version {v_next}"
                + (f" (bundle {b_next})" if b_next and b_next != b_failed else "")
                + f", newer code than try {n_failed}'s {v_failed}"
                + (f" (bundle {b_failed})" if b_failed and b_next != b_failed else "")
                + ": the DAG or its code changed",
            )
        if v_next < v_failed:
            return _other(
                f"try {n_next} succeeded on DAG version {v_next}, older than try {n_failed}'s {v_failed}"
            )
        acted = person_actions(failed_try, next_try, person_events)
        if acted:
            return RetryVerdict(
                "fixed_by_person",
                "fixed_by_person",
                False,
                f"try {n_next} succeeded after a person acted between the tries: {'; '.join(acted[:3])}",
            )
        return RetryVerdict(
            "succeeded",
            "succeeded",
            True,
            f"Airflow's retry on the same DAG version succeeded: try {n_failed} failed, try {n_next} "
            f"succeeded on DAG version {v_next}",
        )
    if state in FAILED_STATES:
        if v_failed is None or v_next is None or v_next != v_failed:
            return _other(
                f"try {n_next} failed on DAG version {_shown(v_next)}, try {n_failed} on "
                f"{_shown(v_failed)}: not the same DAG, so not a retry of the same failure"
            )
        if failed_fingerprint is None or next_fingerprint is None:
            return _other(f"try {n_next} failed, but a fingerprint is unknown: maybe another failure")
        if failed_fingerprint != next_fingerprint:
            return _other(
                f"try {n_next} failed with another error (fingerprint {next_fingerprint}, not "
                f"{failed_fingerprint}): another failure, not this one again"
            )
        return RetryVerdict(
            "failed",
            "failed",
            None,
            f"Airflow's retry did not help: try {n_next} failed again with the same error on DAG "
            f"version {v_next}",
        )
    return _other(f"try {n_next} ended {state} without running")


def person_actions(failed_try: dict, next_try: dict, events: list[dict]) -> list[str]:
    """What people did between two tries, in words, oldest first. Pure.

    Counts (see `judge_retry`): a TASK_EVENTS record about this task instance (its DAG; its run and
    task when the record names them; a clear's `task_ids` when its extra lists them; a
    `patch_task_instance` only when it set a state, not a note alone), any CONFIG_EVENTS record,
    each between the failed try's end and the next try's start when both are known; and a failed
    try that had no retries left (`try_number > max_tries`).

    Returns:
        e.g. ["post_clear_task_instances by alice at 2026-01-01T10:00:00+00:00"], empty when nobody acted.
    """
    acted = []
    max_tries = failed_try.get("max_tries")
    if isinstance(max_tries, int) and _try_number(failed_try) > max_tries:
        acted.append(f"try {_try_number(failed_try)} had no retries left, so a clear started the next")
    after, before = _when(failed_try.get("end_date")), _when(next_try.get("start_date"))
    for event in sorted(events, key=lambda e: str(e.get("when") or "")):
        name = event.get("event")
        when = _when(event.get("when"))
        if when is not None and ((after and when <= after) or (before and when >= before)):
            continue
        if name in CONFIG_EVENTS or (name in TASK_EVENTS and _about(event, failed_try)):
            acted.append(f"{name} by {event.get('owner') or 'someone'} at {event.get('when')}")
    return acted


def _about(event: dict, ti: dict) -> bool:
    """Whether a TASK_EVENTS record may be about this task instance."""
    if event.get("dag_id") not in (None, ti.get("dag_id")):
        return False
    if event.get("run_id") not in (None, _run_id(ti)):
        return False
    if event.get("task_id") not in (None, ti.get("task_id")):
        return False
    extra = _extra(event)
    if event.get("event") == "patch_task_instance":
        return extra is None or "new_state" in extra  # a note alone (the doctor writes them) is no action
    task_ids = extra.get("task_ids") if extra else None
    if isinstance(task_ids, list) and task_ids:
        map_index = -1 if ti.get("map_index") is None else int(ti["map_index"])
        for entry in task_ids:
            if entry == ti.get("task_id"):
                return True
            if (
                isinstance(entry, list)
                and entry
                and entry[0] == ti.get("task_id")
                and (len(entry) < 2 or entry[1] == map_index)
            ):
                return True
        return False
    return True


def _extra(event: dict) -> dict | None:
    raw = event.get("extra")
    if isinstance(raw, dict):
        return raw
    try:
        data = json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _other(reason: str) -> RetryVerdict:
    return RetryVerdict("other", None, None, reason)


def _state(try_: dict) -> str:
    state = try_.get("state")
    return str(getattr(state, "value", state) or "")


def _try_number(try_: dict) -> int:
    return int(try_.get("try_number") or 0)


def _run_id(try_: dict) -> str | None:
    return try_.get("dag_run_id") or try_.get("run_id")


def _version(try_: dict) -> int | None:
    """The DAG version's version_number a try ran on: an int, or the API's {"version_number": ...}."""
    version = try_.get("dag_version")
    if isinstance(version, dict):
        version = version.get("version_number")
    return int(version) if isinstance(version, int) and not isinstance(version, bool) else None


def _bundle(try_: dict) -> str | None:
    """The DAG bundle version a try ran on (a versioned bundle's commit: Airflow keeps the
    version_number and moves this pointer when only task code changed); None for a local folder."""
    version = try_.get("dag_version")
    return version.get("bundle_version") if isinstance(version, dict) else try_.get("bundle_version")


def _shown(version: int | None) -> str:
    return "unknown" if version is None else str(version)


def _when(value: Any) -> datetime | None:
    """A datetime (UTC when naive) from a datetime or an ISO 8601 string; None when neither."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- the REST API, through AirflowAPI.request_json only ---------------------------------------------


def _seg(value: Any) -> str:
    """One path segment, percent-encoded (run ids hold ':' and '+')."""
    return quote(str(value), safe="~")


def _path(path: str, params: dict) -> str:
    """`path?query`, None values left out, lists as repeated keys, datetimes as ISO 8601."""
    query = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items() if v is not None}
    return f"{path}?{urlencode(query, doseq=True)}" if query else path


def read_tries(api, row: dict) -> list[dict]:
    """Every try of a task instance (`GET .../taskInstances/{task_id}[/{map_index}]/tries`), by
    try_number; each as the API gives it (state, start_date, end_date, max_tries, dag_version ...).

    Raises:
        AirflowAPIError: the API refused (404: no such task instance any more) or was unreachable.
    """
    mapped = f"/{int(row['map_index'])}" if int(row["map_index"]) >= 0 else ""
    path = (
        f"/api/v2/dags/{_seg(row['dag_id'])}/dagRuns/{_seg(row['run_id'])}/taskInstances/"
        f"{_seg(row['task_id'])}{mapped}/tries"
    )
    data = api.request_json("GET", path) or {}
    return sorted(data.get("task_instances") or [], key=_try_number)


def read_person_events(api, failed_try: dict, next_try: dict) -> list[dict]:
    """Audit-log records of TASK_EVENTS in the task's DAG and of CONFIG_EVENTS anywhere, between the
    failed try's end and the next try's start (`GET /api/v2/eventLogs`, at most MAX_EVENTS each).

    Raises:
        AirflowAPIError: the API refused (the account may lack audit-log read access) or was unreachable.
    """
    window = {
        "after": _when(failed_try.get("end_date")),
        "before": _when(next_try.get("start_date")),
        "order_by": "-when",  # the newest first: those nearest the next try
        "limit": MAX_EVENTS,
    }
    asked = (
        {"dag_id": failed_try.get("dag_id"), "included_events": list(TASK_EVENTS)},
        {"included_events": list(CONFIG_EVENTS)},
    )
    events: list[dict] = []
    for params in asked:
        data = api.request_json("GET", _path("/api/v2/eventLogs", {**params, **window})) or {}
        events.extend(data.get("event_logs") or [])
    return events


def _pick(tries: list[dict], try_number: int) -> tuple[dict | None, dict | None]:
    """(the failed try, the try after it) among a task instance's tries. The try after it is the
    one with the smallest higher try_number; without one, a second record of the same try_number
    whose state has ended (a state set by hand on the same try), else None."""
    same = [t for t in tries if _try_number(t) == try_number]
    failed = next((t for t in same if _state(t) in FAILED_STATES), same[0] if same else None)
    later = [t for t in tries if _try_number(t) > try_number]
    if later:
        return failed, later[0]
    other = [t for t in same if t is not failed and _state(t) in ENDED_STATES]
    return failed, (other[0] if other else None)


def _excerpt(api, row: dict, try_number: int) -> dict:
    """The excerpt of one try's log (logs.excerpt.fetch_failure_excerpt: an `error` when unreadable)."""
    from airflow_doctor.logs.excerpt import fetch_failure_excerpt

    ref = {k: row[k] for k in ("dag_id", "run_id", "task_id", "map_index")} | {"try_number": try_number}
    return fetch_failure_excerpt(ref, api=api)


def _fingerprint(excerpt: dict) -> str | None:
    """The excerpt's fingerprint when it names an error (as memory_of looks cases up), else None."""
    if excerpt.get("error") or not (excerpt.get("exception_type") or excerpt.get("message")):
        return None
    return excerpt.get("fingerprint")


# -- recording ----------------------------------------------------------------------------------


def _settings():
    try:
        from airflow_doctor.settings import settings as load_settings

        return load_settings()
    except Exception as exc:  # noqa: BLE001 - defaults then
        log.warning("Could not read the doctor's settings (%s); using the defaults", exc)
        from airflow_doctor.settings import DoctorSettings

        return DoctorSettings()


def _embedding(kb, excerpt: dict, configured: str) -> tuple[list[float] | None, str]:
    """(vector, model name): the stored vector of a case with this fingerprint, else the embedding
    service's when `[doctor] embed_url` is set, else None. Never loads the model; never raises."""
    import os

    from airflow_doctor.knowledge import embeddings

    name = embeddings.model_name(configured)
    fingerprint = excerpt.get("fingerprint")
    if not fingerprint or not excerpt.get("signature"):
        return None, name
    try:
        known = kb.embedding_for_fingerprint(fingerprint, name)
    except Exception as exc:  # noqa: BLE001 - without a vector the case is found by fingerprint
        log.info("No stored embedding looked up: %s", exc)
        known = None
    if known is not None:
        return known, name
    try:
        from airflow_doctor.settings import read_option

        url = (read_option("embed_url") or os.environ.get(embeddings.EMBED_URL_ENV, "")).strip()
    except Exception:  # noqa: BLE001
        url = ""
    if not url:
        return None, name
    try:
        text = embeddings.embedding_text(excerpt.get("signature") or "", excerpt.get("text") or "")
        return embeddings.embed_via_service(url, [text], configured)[0], name
    except Exception as exc:  # noqa: BLE001 - found by fingerprint alone
        log.info("Embedding service unusable for Airflow's retry (%s): no vector", exc)
        return None, name


def _record(kb, row: dict, failed_try: dict, excerpt: dict, verdict: RetryVerdict, settings) -> int:
    """Write the case of Airflow's retry (actor 'airflow'); its id.

    Raises:
        psycopg2.Error: the knowledge base refused or was unreachable.
    """
    from airflow_doctor.judgement.reading import read
    from airflow_doctor.models import Action, FailureRef

    reading = read(excerpt, local_services=settings.local_services)
    error_class = str(reading.rule.error_class) if reading.rule else "unknown"
    action = {
        "succeeded": Action.retry,
        "fixed_by_change": Action.notify,
        "fixed_by_person": Action.notify,
    }.get(verdict.kind)
    vector, model = _embedding(kb, excerpt, settings.embedding_model)
    ref = FailureRef(
        dag_id=row["dag_id"],
        run_id=row["run_id"],
        task_id=row["task_id"],
        map_index=row["map_index"],
        try_number=row["try_number"],
        source="sweeper",
        failed_at=row.get("failed_at"),
    )
    return kb.record_case(
        ref=ref,
        case={
            "operator": failed_try.get("operator") or excerpt.get("operator"),
            "fingerprint": _fingerprint(excerpt),
            "excerpt": excerpt.get("text"),
            "embedding": vector,
            "embedding_model": model if vector is not None else None,
        },
        diagnosis={
            "error_class": error_class,
            "transient": verdict.transient,
            "recommended_action": action.value if action else None,
            "root_cause": verdict.reason,
            "fix_steps": [],
            "diagnoser": "airflow",
        },
        decision={"verdict": "airflow_retry", "reasons": [verdict.reason]},
        cleared=False,
        doctor_run_id=DOCTOR_RUN_ID,
        outcome=verdict.outcome,
        actor="airflow",
    )


def _label(row: dict) -> str:
    suffix = f"[{row['map_index']}]" if int(row["map_index"]) >= 0 else ""
    return f"{row['dag_id']}.{row['task_id']}{suffix} try {row['try_number']}"


COUNTS = (
    "looked_at",
    "succeeded",
    "failed",
    "fixed_by_change",
    "fixed_by_person",
    "other",
    "waiting",
    "skipped",
    "errors",
)


def learn_from_airflow(
    *,
    api=None,
    kb=None,
    now: datetime | None = None,
    limit: int = MAX_ROWS_PER_SWEEP,
    progress: Callable[[str], Any] | None = None,
) -> dict:
    """Record what the next try did after each noted retried try (the doctor_sweeper DAG, the CLI).

    For unlearnt `doctor.retried_tries` rows (those looked at least often first, then oldest first;
    at most `limit`): reads the task instance's tries through the REST API; when the next try has
    ended, reads the audit log between the two tries (only when the next try succeeded on the same
    DAG version), the failed try's log excerpt (`logs.excerpt.fetch_failure_excerpt`) and the next
    try's (only when both failed on the same DAG version, to compare fingerprints), judges
    (`judge_retry`) and records the case with actor 'airflow' (`KnowledgeBase.record_case`). Each
    row is judged once: it is then marked learnt with its verdict; a row with nothing to learn yet
    is looked at again next sweep, and given up (verdict 'gave_up') `GIVE_UP_AFTER` after it was
    noted. A row the doctor's own record covers (a final failure it was told about) is marked
    'doctor_case' without a call; one whose task instance is gone (HTTP 404) 'gone'. The pass stops
    after MAX_CONSECUTIVE_ERRORS errors in a row.

    Args:
        api: an AirflowAPI (default: connection `doctor_airflow_api`, built only when there are rows).
        kb: a KnowledgeBase (default: connection `doctor_db`).
        now: the current time (timezone-aware; default the clock): the give-up time is measured from it.
        limit: at most this many rows.
        progress: called with a line every PROGRESS_EVERY rows (the CLI prints them), or None.
    Returns:
        counts {"looked_at", "succeeded", "failed", "fixed_by_change", "fixed_by_person", "other",
        "waiting", "skipped", "errors"}: an outcome counts the cases recorded; "other" the tries
        judged with nothing to record; "waiting" those whose next try has not ended; "skipped" the
        doctor's own, gone, given up or already recorded ones; "errors" the rows an API or database
        error left for the next sweep, plus one when the pass could not run at all (dead knowledge
        base, no API client). Never raises: errors are logged.
    """
    counts = dict.fromkeys(COUNTS, 0)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    from airflow_doctor.knowledge.learning import begin_pass

    opened = begin_pass(
        lambda kb: kb.unlearnt_retried_tries(limit),
        kb=kb,
        api=api,
        counts=counts,
        what="from Airflow's retries",
    )
    if opened is None:
        return counts
    kb, api, rows = opened
    settings = _settings()

    in_a_row = 0
    for row in rows:
        if in_a_row >= MAX_CONSECUTIVE_ERRORS:
            log.warning(
                "%d errors in a row; the other %d retried tr(ies) are looked at next sweep",
                in_a_row,
                len(rows) - counts["looked_at"],
            )
            break
        counts["looked_at"] += 1
        if progress and counts["looked_at"] % PROGRESS_EVERY == 0:
            progress(
                f"learn: {counts['looked_at']} of {len(rows)} retried tries looked at: {_summary(counts)}"
            )
        try:
            kind, verdict = _learn_one(api, kb, row, now, settings)
        except Exception as exc:  # noqa: BLE001 - this row is looked at next sweep
            log.warning("Cannot learn from %s: %s: %s", _label(row), type(exc).__name__, str(exc)[:300])
            counts["errors"] += 1
            in_a_row += 1
            try:
                _wait(kb, row, now)  # looked at once more, or given up when noted long ago
            except Exception as mark_exc:  # noqa: BLE001 - the error is counted already
                log.info("%s not marked as looked at: %s", _label(row), mark_exc)
            continue
        in_a_row = 0
        counts[kind] += 1
        if verdict is not None and verdict.records:
            log.info("%s: %s", _label(row), verdict.reason)
    log.info("Learnt from Airflow's retries: %s", counts)
    return counts


def _learn_one(api, kb, row: dict, now: datetime, settings) -> tuple[str, RetryVerdict | None]:
    """Judge one retried try and write what was learnt; (the counter it adds to, the verdict).

    Raises:
        AirflowAPIError, psycopg2.Error, or anything a log could not be read with: the row waits.
    """
    from airflow_doctor.hooks.airflow_api import AirflowAPIError

    if row.get("doctor_case") or row.get("recorded"):
        kb.mark_retried_try(row, "doctor_case" if row.get("doctor_case") else "recorded")
        return "skipped", None
    try:
        tries = read_tries(api, row)
    except AirflowAPIError as exc:
        if exc.status == 404:
            log.info("%s: the task instance is gone (%s)", _label(row), exc)
            kb.mark_retried_try(row, "gone")
            return "skipped", None
        raise
    failed_try, next_try = _pick(tries, int(row["try_number"]))
    if failed_try is None:
        kb.mark_retried_try(row, "gone")
        return "skipped", None
    failed_try = {**failed_try, "dag_id": row["dag_id"], "run_id": row["run_id"], "task_id": row["task_id"]}
    failed_try.setdefault("map_index", row["map_index"])
    if not failed_try.get("end_date") and row.get("failed_at"):
        failed_try["end_date"] = row["failed_at"]
    if next_try is None or _state(next_try) not in ENDED_STATES:
        return _wait(kb, row, now)

    same_version = _version(failed_try) is not None and _version(failed_try) == _version(next_try)
    state = _state(next_try)
    events: list[dict] = []
    failed_fp = next_fp = None
    failed_excerpt: dict | None = None
    if state == "success" and same_version:
        events = read_person_events(api, failed_try, next_try)  # an error: the row waits
    if state in FAILED_STATES and same_version:
        failed_excerpt = _excerpt(api, row, int(row["try_number"]))
        if failed_excerpt.get("error"):
            raise RuntimeError(failed_excerpt["error"])
        failed_fp = _fingerprint(failed_excerpt)
        if failed_fp is not None:
            next_excerpt = _excerpt(api, row, _try_number(next_try))
            if next_excerpt.get("error"):
                raise RuntimeError(next_excerpt["error"])
            next_fp = _fingerprint(next_excerpt)
    verdict = judge_retry(failed_try, next_try, events, failed_fp, next_fp)
    if verdict is None:
        return _wait(kb, row, now)
    if verdict.records:
        if failed_excerpt is None:
            failed_excerpt = _excerpt(api, row, int(row["try_number"]))
            if failed_excerpt.get("error"):
                raise RuntimeError(failed_excerpt["error"])
        _record(kb, row, failed_try, failed_excerpt, verdict, settings)
    kb.mark_retried_try(row, verdict.kind)
    return verdict.kind, verdict


def _wait(kb, row: dict, now: datetime) -> tuple[str, None]:
    """Nothing to learn yet: wait for the next sweep, or give up GIVE_UP_AFTER after it was noted."""
    received = _when(row.get("received_at"))
    if received is not None and now - received >= GIVE_UP_AFTER:
        log.info("%s: nothing learnt in %s; given up", _label(row), GIVE_UP_AFTER)
        kb.mark_retried_try(row, "gave_up")
        return "skipped", None
    kb.mark_retried_try(row, None)
    return "waiting", None


def _summary(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v and k != "looked_at") or "nothing yet"


# -- the history import ---------------------------------------------------------------------------


def import_history(
    days: int = HISTORY_DAYS,
    *,
    api=None,
    kb=None,
    max_task_instances: int = HISTORY_MAX_TASK_INSTANCES,
    max_tries: int = HISTORY_MAX_TRIES,
    sleep: float = HISTORY_SLEEP_SECONDS,
    progress: Callable[[str], Any] | None = print,
    now: datetime | None = None,
) -> dict:
    """Note the failed tries of the last `days` days that another try followed, for
    `learn_from_airflow` to judge (one code path for verdicts).

    Reads task instances that ended in the window with a try_number of 2 or more
    (`GET /api/v2/dags/~/dagRuns/~/taskInstances`, end_date_gte/end_date_lte, try_number in
    HISTORY_TRY_NUMBERS, ordered by end_date, paged by limit/offset), skipping the doctor's own DAGs
    and DAGs tagged doctor:off; for each, its tries (`.../tries`); every failed try with a later try
    becomes a `doctor.retried_tries` row with source 'history' (`KnowledgeBase.record_retried_tries`:
    a try already noted, or one the doctor handled itself, is skipped). Resumable: progress is kept
    in `doctor.history_imports`; an unfinished import is resumed after its cursor (the end_date of the
    last whole group of task instances read: those ending at the same time are read together)
    within its own window, whatever `days` says, and the window ends when that import started (the
    listener notes what came later). Bounded: it stops, to resume later, at `max_task_instances`
    task instances or `max_tries` tries noted (after finishing the group it is in), or after
    MAX_CONSECUTIVE_ERRORS API errors in a row (resumed before them; a task instance whose tries
    cannot be read otherwise is skipped, logged); it waits `sleep` seconds before each REST call.
    Reads nothing but the REST API and the knowledge base.

    Args:
        days: the window, in days before now (a new import only).
        api: an AirflowAPI (default: connection `doctor_airflow_api`).
        kb: a KnowledgeBase (default: connection `doctor_db`).
        max_task_instances: at most this many task instances read in this call.
        max_tries: at most this many failed tries noted in this call.
        sleep: seconds before each REST call (HISTORY_SLEEP_SECONDS: ~20 calls a second at most).
        progress: called with a line every PROGRESS_EVERY task instances and at the end (default
            print), or None.
        now: the current time (timezone-aware; default the clock).
    Returns:
        counts {"import_id", "task_instances" (read), "tries" (failed tries with a later try found),
        "new" (rows noted now), "errors", "finished" (the whole window is read)}. Never raises:
        errors are logged and counted.
    """
    counts: dict[str, Any] = {
        "import_id": None,
        "task_instances": 0,
        "tries": 0,
        "new": 0,
        "errors": 0,
        "finished": False,
    }
    say = progress or (lambda _line: None)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        from airflow_doctor.knowledge.store import KnowledgeBase

        kb = kb or KnowledgeBase()
        kb.migrate()
        job = kb.open_history_import(now - timedelta(days=days))
    except Exception as exc:  # noqa: BLE001
        log.error("Knowledge base unavailable, no history imported: %s: %s", type(exc).__name__, exc)
        counts["errors"] += 1
        return counts
    counts["import_id"] = job["id"]
    if api is None:
        from airflow_doctor.hooks.airflow_api import default_api

        api = default_api()
        if api is None:
            counts["errors"] += 1
            return counts
    resumed = job["cursor"] is not None
    start = job["cursor"] if resumed else job["since"]
    say(
        f"history: {'resuming' if resumed else 'importing'} task instances that ended "
        f"{'after' if resumed else 'from'} {start.isoformat()} until {job['started_at'].isoformat()} "
        f"(import {job['id']})"
    )
    tags: dict[str, list[str]] = {}
    # The cursor moves only past a whole group of task instances with the same end_date (a DAG run
    # marked failed ends all its task instances at once), and never during a streak of errors: a
    # stop never splits a group, and the resumed import (end_date > cursor) misses none.
    cursor = None
    group_end: datetime | None = None  # end_date of the group being read
    pending: list[dict] = []  # tries to note, flushed with the cursor after each page
    read_since_flush = 0
    offset = 0
    in_a_row = 0
    stop = False

    def flush(finished: bool = False) -> None:
        nonlocal pending, read_since_flush
        new = kb.record_retried_tries(pending, "history") if pending else 0
        kb.update_history_import(
            job["id"], cursor=cursor, task_instances=read_since_flush, tries=len(pending), finished=finished
        )
        counts["new"] += new
        pending, read_since_flush = [], 0

    try:
        while not stop:
            params = {
                "end_date_gt" if resumed else "end_date_gte": start,
                "end_date_lte": job["started_at"],
                "try_number": list(HISTORY_TRY_NUMBERS),
                "order_by": "end_date",
                "limit": HISTORY_PAGE_SIZE,
                "offset": offset,
            }
            time.sleep(sleep)
            try:
                page = api.request_json("GET", _path("/api/v2/dags/~/dagRuns/~/taskInstances", params)) or {}
            except Exception as exc:  # noqa: BLE001 - resumable: the cursor stays where it was
                log.warning("history: cannot list task instances: %s: %s", type(exc).__name__, exc)
                counts["errors"] += 1
                in_a_row += 1
                if in_a_row >= MAX_CONSECUTIVE_ERRORS:
                    break
                continue
            listed = page.get("task_instances") or []
            total = page.get("total_entries")
            offset += len(listed)
            for ti in listed:
                ended = _when(ti.get("end_date"))
                if ended != group_end:
                    if group_end is not None and in_a_row == 0:
                        cursor = group_end  # every task instance of that group is read
                    if counts["task_instances"] >= max_task_instances or counts["tries"] >= max_tries:
                        stop = True
                        break
                    group_end = ended
                if int(ti.get("try_number") or 0) < 2:
                    continue  # the API's filter should have left it out already
                counts["task_instances"] += 1
                read_since_flush += 1
                if counts["task_instances"] % PROGRESS_EVERY == 0:
                    say(
                        f"history: {counts['task_instances']} task instances read, {counts['tries']} "
                        f"retried tries found, up to {ti.get('end_date')}"
                    )
                try:
                    found = _retried_tries_of(api, ti, tags, sleep)
                except Exception as exc:  # noqa: BLE001 - lost unless a streak stops the import
                    counts["errors"] += 1
                    in_a_row += 1
                    log.warning(
                        "history: cannot read the tries of %s.%s (run %s): %s: %s",
                        ti.get("dag_id"),
                        ti.get("task_id"),
                        ti.get("dag_run_id"),
                        type(exc).__name__,
                        str(exc)[:300],
                    )
                    if in_a_row >= MAX_CONSECUTIVE_ERRORS:
                        stop = True  # the cursor stays before this streak: read again next time
                        break
                    continue
                in_a_row = 0
                pending.extend(found)
                counts["tries"] += len(found)
            if stop:
                break
            if not listed or (isinstance(total, int) and offset >= total):
                counts["finished"] = True  # (a page may be shorter than asked: [api] maximum_page_limit)
                if in_a_row == 0 and group_end is not None:
                    cursor = group_end
                break
            flush()
        flush(finished=counts["finished"])
    except Exception as exc:  # noqa: BLE001 - resumable: what was flushed stays
        log.error("history: import stopped: %s: %s", type(exc).__name__, exc)
        counts["errors"] += 1
        counts["finished"] = False
    say(
        f"history: {'finished' if counts['finished'] else 'stopped (run again to resume)'}: "
        f"{counts['task_instances']} task instances read, {counts['tries']} retried tries found, "
        f"{counts['new']} new, {counts['errors']} error(s)"
    )
    return counts


def _retried_tries_of(api, ti: dict, tags: dict[str, list[str]], sleep: float) -> list[dict]:
    """The failed tries of one listed task instance that a later try followed, as rows for
    `KnowledgeBase.record_retried_tries`; none for the doctor's own DAGs or one tagged doctor:off.

    Raises:
        AirflowAPIError: a REST call failed (a DAG whose tags cannot be read is kept, logged).
    """
    from airflow_doctor.settings import DOCTOR_DAG_IDS, TAG_OFF

    dag_id = ti["dag_id"]
    if dag_id in DOCTOR_DAG_IDS:
        return []
    if dag_id not in tags:
        time.sleep(sleep)
        try:
            dag = api.request_json("GET", f"/api/v2/dags/{_seg(dag_id)}") or {}
            tags[dag_id] = [t.get("name") for t in dag.get("tags") or [] if isinstance(t, dict)]
        except Exception as exc:  # noqa: BLE001 - kept: learning is passive
            log.info("history: tags of %s not read (%s); kept", dag_id, exc)
            tags[dag_id] = []
    if TAG_OFF in tags[dag_id]:
        return []
    row = {
        "dag_id": dag_id,
        "run_id": ti["dag_run_id"],
        "task_id": ti["task_id"],
        "map_index": int(ti.get("map_index", -1) if ti.get("map_index") is not None else -1),
    }
    time.sleep(sleep)
    tries = read_tries(api, row)
    numbers = [_try_number(t) for t in tries]
    return [
        {**row, "try_number": _try_number(t), "failed_at": _when(t.get("end_date"))}
        for t in tries
        if _state(t) in FAILED_STATES and any(n > _try_number(t) for n in numbers)
    ]


# -- the doctor_sweeper's task ---------------------------------------------------------------------


def learn_during_sweep(*, api=None, kb=None) -> dict:
    """The doctor_sweeper's `learn_from_airflow` task: while no history import has finished, import
    a slice of the history (HISTORY_SLICE task instances of the last HISTORY_DAYS days, resumed next
    sweep), then `learn_from_airflow`.

    Returns:
        {"history": import_history's counts, or None when a history import has finished (or the
        knowledge base could not say), "learnt": learn_from_airflow's counts}. Never raises.
    """
    from airflow_doctor.knowledge.store import KnowledgeBase

    kb = kb or KnowledgeBase()
    out: dict[str, Any] = {"history": None, "learnt": None}
    try:
        kb.migrate()
        imported = kb.history_import_finished()
    except Exception as exc:  # noqa: BLE001 - learn_from_airflow logs the same and counts it
        log.warning("Cannot tell whether the history is imported: %s: %s", type(exc).__name__, exc)
        imported = True
    if not imported:
        if api is None:
            from airflow_doctor.hooks.airflow_api import default_api

            api = default_api()
        if api is not None:
            out["history"] = import_history(
                HISTORY_DAYS, api=api, kb=kb, max_task_instances=HISTORY_SLICE, progress=log.info
            )
    out["learnt"] = learn_from_airflow(api=api, kb=kb)
    return out

"""Capture: turning a failed task instance into a FailureRef that reaches the doctor exactly once.

The listener (airflow_doctor/listeners/failures.py) calls `report_failure` inside the failing
task's process (or the API server's, when a person marks a task failed): it writes the FailureRef to
the inbox table and posts an asset event for `doctor://task-failures` with the ref in `extra`. The
doctor DAG's first task, fetch_logs, calls `report_failures` (the triggering events' refs and a
manual trigger's Params into the inbox; is a storm arriving?), waits out a storm in the triggerer
(`StormWatch`), then `claim_reported`, which claims every unhandled failure waiting in the inbox.

Input from outside (Params, asset-event extras, the sweeper's API listing) is validated into a
FailureRef before any REST API call or database write; a malformed one is reported with the field
and the rule it breaks (`models.describe_errors`) and never stops the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from airflow_doctor.models import FailureRef, Identifier, MapIndex, TryNumberOrLatest, describe_errors
from airflow_doctor.settings import DOCTOR_DAG_IDS

log = logging.getLogger(__name__)


def failed_for_good(task_instance: Any) -> bool:
    """True when this failure is final: state `failed` (not `up_for_retry`).

    Airflow 3 calls `on_task_instance_failed` for both; the task runner sets `ti.state` before it
    calls listeners, and the API server's TaskInstance carries its new state.
    """
    state = getattr(task_instance, "state", None)
    return str(getattr(state, "value", state)) == "failed"


def ref_from_task_instance(task_instance: Any, source: str = "listener") -> FailureRef:
    """Build a FailureRef from a RuntimeTaskInstance (worker) or an ORM TaskInstance (API server).

    Raises:
        pydantic.ValidationError: the task instance lacks an id field.
    """
    map_index = getattr(task_instance, "map_index", -1)
    return FailureRef(
        dag_id=task_instance.dag_id,
        run_id=task_instance.run_id,
        task_id=task_instance.task_id,
        map_index=-1 if map_index is None else int(map_index),
        try_number=max(1, int(getattr(task_instance, "try_number", 1) or 1)),
        source=source,
        failed_at=getattr(task_instance, "end_date", None) or datetime.now(UTC),
    )


def report_failure(ref: FailureRef, *, kb=None, api=None) -> dict[str, Any]:
    """Record a failure in the inbox and post its asset event. Never raises.

    Args:
        ref: the failure.
        kb: a KnowledgeBase (default: connection `doctor_db`).
        api: an AirflowAPI (default: connection `doctor_airflow_api`).
    Returns:
        {"inbox": bool, "event_id": int | None, "errors": [str]}; both channels are tried even if
        one fails, since either alone gets the failure handled (the sweeper covers both failing).
    """
    result: dict[str, Any] = {"inbox": False, "event_id": None, "errors": []}
    if ref.dag_id in DOCTOR_DAG_IDS:
        return result
    try:
        from airflow_doctor.knowledge.store import KnowledgeBase

        (kb or KnowledgeBase(connect_timeout=3)).record_failures([ref])
        result["inbox"] = True
    except Exception as exc:  # noqa: BLE001 - must never raise into the task
        result["errors"].append(f"inbox: {type(exc).__name__}: {exc}")
    try:
        from airflow_doctor.hooks.airflow_api import AirflowAPI

        result["event_id"] = (api or AirflowAPI(timeout=5.0)).post_failure_event(ref)
    except Exception as exc:  # noqa: BLE001 - must never raise into the task
        result["errors"].append(f"asset event: {type(exc).__name__}: {exc}")
    if result["errors"]:
        log.warning("airflow-doctor could not fully report %s: %s", ref.label, "; ".join(result["errors"]))
    else:
        log.info(
            "airflow-doctor reported %s (try %s), asset event %s",
            ref.label,
            ref.try_number,
            result["event_id"],
        )
    return result


def refs_from_events(events: list[Any]) -> tuple[list[FailureRef], list[str]]:
    """FailureRefs carried in asset events' `extra["failure"]`.

    Args:
        events: asset events (objects with `.extra`, or dicts with "extra").
    Returns:
        (valid refs, one error string per malformed event); a malformed event is reported, not
        fatal. An error names the fields and rules broken, never the (possibly huge) values.
    """
    refs, errors = [], []
    for n, event in enumerate(events):
        extra = event.get("extra") if isinstance(event, dict) else getattr(event, "extra", None)
        payload = extra.get("failure") if isinstance(extra, dict) else None
        if payload is None:
            errors.append(f"asset event {n} has no extra.failure (extra is {type(extra).__name__})")
            continue
        try:
            refs.append(FailureRef.model_validate(payload))
        except ValidationError as exc:
            errors.append(f"asset event {n} carries a malformed FailureRef: {describe_errors(exc)}"[:1000])
    return refs, errors


class ManualTrigger(BaseModel):
    """The doctor DAG's Params that name one failure (the manual trigger form).

    The same rules as FailureRef, except that try_number 0 means the task instance's latest try.
    """

    model_config = ConfigDict(extra="ignore")

    dag_id: Identifier
    run_id: Identifier
    task_id: Identifier
    map_index: MapIndex = -1
    try_number: TryNumberOrLatest = 0


#: The Params that name a failed task instance (the trigger form's ids).
ID_PARAMS = ("dag_id", "run_id", "task_id")


def _empty(value: Any) -> bool:
    """A form field left empty: the trigger form sends null (type null) or "" for it."""
    return value is None or value == ""


def ref_from_params(params: dict[str, Any] | None, api=None) -> FailureRef | None:
    """The FailureRef a manual trigger names, or None when the Params name no failure (every id
    empty: the run handles what waits in the inbox).

    The Params are validated before anything is asked of the API. `try_number` 0 or empty means
    the task instance's latest try, read through the API; `map_index` empty means -1. A form
    without run_id is completed first by `latest_failed_params` (report_failures).

    Args:
        params: the run's Params (None or {} when there are none).
    Raises:
        ValueError: the Params are incomplete or malformed (the message names each field and rule).
    """
    params = params or {}
    named = [k for k in ID_PARAMS if not _empty(params.get(k))]
    if not named:
        return None
    missing = [k for k in ID_PARAMS if k not in named]
    if missing:
        raise ValueError(
            f"the manual trigger names {', '.join(named)} but not {', '.join(missing)}: fill dag_id and "
            "task_id (run_id may stay empty: the task's latest failed try), or leave every id empty to "
            "handle only what waits in the inbox"
        )
    given = {k: params.get(k) for k in ("dag_id", "run_id", "task_id", "map_index", "try_number")}
    if given["map_index"] in (None, ""):
        given["map_index"] = -1
    if given["try_number"] in (None, ""):
        given["try_number"] = 0
    try:
        wanted = ManualTrigger.model_validate(given)
        try_number = wanted.try_number
        if try_number == 0:
            from airflow_doctor.hooks.airflow_api import AirflowAPI

            ti = (api or AirflowAPI()).get_task_instance(
                wanted.dag_id, wanted.run_id, wanted.task_id, wanted.map_index
            )
            try_number = ti.get("try_number") or 1
        return FailureRef(
            **wanted.model_dump(exclude={"try_number"}),
            try_number=try_number,
            source="manual",
            failed_at=datetime.now(UTC),
        )
    except ValidationError as exc:
        raise ValueError(f"malformed manual trigger params: {describe_errors(exc)}") from exc


def latest_failed_params(params: dict[str, Any] | None, api=None) -> dict[str, Any] | None:
    """Complete a form that names a dag_id and a task_id but no run_id: its task's latest failed try
    (the failed task instance that ended last, read through the REST API), so a person need not
    paste a run id. Any other form is returned as it came (ref_from_params judges it).

    Args:
        params: the run's Params. api: the REST client; None leaves the form as it came.
    Returns:
        the Params with run_id, map_index and try_number (0: that task instance's latest try) set.
    Raises:
        ValueError: the ids are malformed (named as ref_from_params names them), the API cannot be
            read, or the task has no failed task instance (the message says to fill run_id).
    """
    params = params or {}
    if (
        api is None
        or not _empty(params.get("run_id"))
        or any(_empty(params.get(k)) for k in ("dag_id", "task_id"))
    ):
        return params
    try:
        wanted = ManualTrigger.model_validate(
            {"dag_id": params["dag_id"], "run_id": "latest", "task_id": params["task_id"]}
        )
    except ValidationError as exc:
        raise ValueError(f"malformed manual trigger params: {describe_errors(exc)}") from exc
    try:
        failed = api.list_task_instances(wanted.dag_id, "~", task_id=wanted.task_id, state=["failed"])
    except Exception as exc:  # noqa: BLE001 - the person is told why, in the run's note
        raise ValueError(
            f"run_id is empty and the failed tries of {wanted.dag_id}.{wanted.task_id} could not be read "
            f"({type(exc).__name__}): fill run_id"
        ) from exc
    if not _empty(params.get("map_index")):
        failed = [ti for ti in failed if ti.get("map_index", -1) == params["map_index"]]
    if not failed:
        raise ValueError(
            f"run_id is empty and {wanted.dag_id}.{wanted.task_id} has no failed task instance: copy the "
            "run id of the failed try from the Grid view"
        )
    latest = max(failed, key=lambda ti: str(ti.get("end_date") or ""))
    log.info(
        "Manual trigger without run_id: the latest failed try of %s is in run %s",
        wanted.task_id,
        latest["dag_run_id"],
    )
    return {
        **params,
        "run_id": latest["dag_run_id"],
        "map_index": latest.get("map_index", -1),
        "try_number": 0 if _empty(params.get("try_number")) else params["try_number"],
    }


def _still_failed(ref: FailureRef, api) -> tuple[FailureRef | None, str | None]:
    """Check the task instance a manual trigger names before it is diagnosed.

    Returns:
        (ref, None) when its try is the failed latest one (or the API cannot tell: the clear
        checks again); (the latest try's ref, remark) when a later try failed since, which is
        the one diagnosed; (None, remark) when the task instance is no longer failed (it succeeded,
        is running, was cleared): nothing to diagnose, and the remark says so in the run's note.
        The ref's failed_at is the try's end_date (Airflow's own time of the failure).
    """
    if api is None:
        return ref, None
    try:
        ti = api.get_task_instance(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
    except Exception as exc:  # noqa: BLE001 - the clear reads it again and reports
        log.warning("Could not read %s before diagnosing it: %s", ref.label, exc)
        return ref, None
    if "state" not in ti:
        return ref, None
    state, latest = str(ti.get("state")), int(ti.get("try_number") or ref.try_number)
    if state != "failed":
        return None, (
            f"{ref.label} try {ref.try_number} was not diagnosed: the task instance is no longer failed "
            f"(it is {state} at try {latest}); only a failed try can be diagnosed and retried"
        )
    remark = None
    if latest != ref.try_number:
        remark = (
            f"{ref.label}: try {ref.try_number} is not the latest, try {latest} failed since and is diagnosed"
        )
    fields = ref.model_dump() | {"try_number": latest, "failed_at": ti.get("end_date") or ref.failed_at}
    return FailureRef.model_validate(fields), remark


def _without_opted_out(refs: list[FailureRef], api=None) -> list[FailureRef]:
    """Drop failures of DAGs tagged doctor:off (kept when the tags cannot be read: the gate decides)."""
    from airflow_doctor.settings import TAG_OFF

    tags: dict[str, list[str]] = {}
    kept = []
    for ref in refs:
        if ref.dag_id not in tags:
            try:
                from airflow_doctor.hooks.airflow_api import AirflowAPI

                tags[ref.dag_id] = (api or AirflowAPI()).get_dag_tags(ref.dag_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("Could not read the tags of %s: %s", ref.dag_id, exc)
                tags[ref.dag_id] = []
        if TAG_OFF in tags[ref.dag_id]:
            log.info("Ignoring %s: its DAG is tagged %s", ref.label, TAG_OFF)
        else:
            kept.append(ref)
    return kept


def _ensure_llm_pool(api=None) -> None:
    """Make sure the pool that bounds concurrent diagnose tasks exists (else they would never run)."""
    from airflow_doctor.settings import LLM_POOL
    from airflow_doctor.settings import settings as load_settings

    try:
        from airflow_doctor.hooks.airflow_api import AirflowAPI

        if (api or AirflowAPI()).ensure_pool(
            LLM_POOL, load_settings().llm_pool_slots, "airflow-doctor: concurrent diagnoses (LLM calls)"
        ):
            log.info("Created the Airflow pool %s", LLM_POOL)
    except Exception as exc:  # noqa: BLE001 - the stack or a person may have created it already
        log.warning("Could not check the Airflow pool %s: %s", LLM_POOL, exc)


def report_failures(events: list[Any], params: dict[str, Any] | None, *, kb=None, api=None) -> dict:
    """Put the failures this doctor run was triggered for in the inbox, and say whether a storm waits.

    Refs from the triggering asset events and from manual Params are put in the inbox first; the
    inbox is then claimed as a whole (`claim_reported`), so a failure whose event was coalesced
    into an earlier run or left waiting is still handled, and a failure reported twice is handled
    once.

    Args:
        events: the run's triggering asset events (all assets flattened).
        params: the run's Params (manual trigger form), or None.
    Returns:
        a JSON-safe dict (it is carried across a deferral): "refs" (the FailureRefs reported, as
        dicts), "manual" (the manual ref as a dict, or None), "dry_run", "inbox" (False when the knowledge
        base could not be written: the claim then handles "refs" themselves), "unclaimed" (failures
        waiting in the inbox) and "storm" (at least `storm_threshold` of them wait: the caller waits
        for the burst to settle before claiming, so one doctor run claims it whole).
        "params_error": why the manual Params were not used, when they were malformed but the run's
        asset events named failures (those are still reported; the caller tells people), else None.
        "remarks": [str] for the doctor run's note: why the failure a manual trigger named is not
        diagnosed (its task instance is no longer failed, its DAG is opted out) or which try is.
    Raises:
        ValueError: manual Params are malformed and no asset event names a failure (the run fails
            with that message; nothing is lost).
    """
    from airflow_doctor.knowledge.store import KnowledgeBase
    from airflow_doctor.settings import settings as load_settings

    params = params or {}
    refs, errors = refs_from_events(events)
    for error in errors:
        log.warning("Ignoring asset event: %s", error)
    if api is None:
        from airflow_doctor.hooks.airflow_api import default_api

        api = default_api()  # one client (and one token) for the whole task
    params_error, remarks = None, []
    try:
        manual = ref_from_params(latest_failed_params(params, api), api=api)
        if manual is not None:
            manual, remark = _still_failed(manual, api)
            remarks += [remark] if remark else []
    except ValueError as exc:
        if not refs:
            raise  # a manual trigger alone: the run fails with the message
        # The run's asset events still name failures: they are not lost to a malformed form.
        params_error, manual = str(exc), None
        log.error(
            "Manual trigger params not used (%s); handling the %d failure(s) its events report",
            exc,
            len(refs),
        )
    if manual:
        refs.append(manual)
    refs = [r for r in refs if r.dag_id not in DOCTOR_DAG_IDS]
    refs = _without_opted_out(refs, api)
    if manual and manual not in refs:
        remarks.append(
            f"{manual.label} was not diagnosed: the doctor never diagnoses its own DAGs or a DAG "
            "tagged doctor:off"
        )
        manual = None
    reported = {
        "refs": [r.model_dump(mode="json") for r in refs],
        "manual": manual.model_dump(mode="json") if manual else None,
        "dry_run": bool(params.get("dry_run")),
        "params_error": params_error,
        "remarks": remarks,
        "inbox": False,
        "unclaimed": 0,
        "storm": False,
    }
    if reported["dry_run"]:
        return reported
    _ensure_llm_pool(api)
    kb = kb or KnowledgeBase()
    try:
        kb.migrate()
        kb.record_failures(refs)
        unclaimed = kb.count_unclaimed()
    except Exception as exc:  # noqa: BLE001 - degrade: claim_reported handles what the events carry
        log.error(
            "Knowledge base unavailable (%s: %s): the failures cannot be put in the inbox",
            type(exc).__name__,
            exc,
        )
        return reported
    storm = unclaimed >= load_settings().storm_threshold
    if storm:
        log.info("Storm: %d failures waiting; waiting for the burst to settle", unclaimed)
    return {**reported, "inbox": True, "unclaimed": unclaimed, "storm": storm}


def claim_reported(
    reported: dict, doctor_run_id: str, *, kb=None, api=None, remarks: list[str] | None = None
) -> list[dict]:
    """Claim every unclaimed failure in the inbox for this doctor run (`report_failures` first).

    A failure a manual trigger names that an earlier doctor run already handled is re-diagnosed on
    request (a person asked; the earlier case stays in the knowledge base), unless a doctor run is
    handling it right now. A failure this run's asset events named that another doctor run claimed
    first (runs created together split the inbox) is named in `remarks` with that run.

    Args:
        reported: report_failures' result.
        doctor_run_id: this doctor DAG run's run_id (the claim's owner).
        api: the REST client, to see whether the run holding a failure is still running (None:
            connection doctor_airflow_api).
        remarks: a list this appends the lines of the run's note to (report_failures' "remarks"
            first, then what the claim found).
    Returns (with `dry_run`: the reported refs, unclaimed):
        the claimed FailureRefs as JSON-safe dicts, oldest first; with a dead knowledge base, the
        reported refs themselves (handled without the exactly-once guarantee, logged).
    """
    from airflow_doctor.knowledge.store import KnowledgeBase

    remarks = remarks if remarks is not None else []
    remarks += [r for r in reported.get("remarks") or [] if r not in remarks]

    refs = [FailureRef.model_validate(r) for r in reported.get("refs") or []]
    unique = list({r.key: r for r in refs}.values())
    if reported.get("dry_run"):
        # A dry run looks and tells; it claims nothing, so the real handling is not pre-empted.
        log.info("dry_run: handling %d failure(s) without claiming them", len(unique))
        return [r.model_dump(mode="json") for r in unique]
    claimed: list[FailureRef] | None = None
    if reported.get("inbox"):
        try:
            claimed = (kb or KnowledgeBase()).claim_failures(doctor_run_id)
        except Exception as exc:  # noqa: BLE001 - degrade as below
            log.error("Knowledge base unavailable for the claim (%s: %s)", type(exc).__name__, exc)
    if claimed is None:
        log.error("Handling the %d failure(s) the events carry without the inbox", len(unique))
        claimed = unique
    manual = FailureRef.model_validate(reported["manual"]) if reported.get("manual") else None
    if manual and all(c.key != manual.key for c in claimed):
        again, remark = _handled_before(manual, doctor_run_id, kb, api)
        remarks.append(remark)
        claimed += [manual] if again else []
    if reported.get("inbox"):
        taken = [r for r in unique if all(c.key != r.key for c in claimed) and r != manual]
        remarks += _taken_by_others(taken, kb)
    log.info("Claimed %d failure(s): %s", len(claimed), ", ".join(c.label for c in claimed) or "none")
    return [c.model_dump(mode="json") for c in claimed]


#: Who holds one failed try: the doctor run that claimed it from the inbox, and its recorded case
#: (include/sql/001_schema.sql: doctor.inbox, doctor.failure_cases; both keyed by the try).
HOLDER_OF_TRY = """
SELECT i.claimed_by, c.doctor_run_id, c.error_class, c.id IS NOT NULL AS recorded
FROM (SELECT 1) one
LEFT JOIN doctor.inbox i ON (i.dag_id, i.run_id, i.task_id, i.map_index, i.try_number)
    = (%(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s)
LEFT JOIN doctor.failure_cases c ON c.kind = 'observed'
    AND (c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number)
    = (%(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s)
"""


def _holder(kb, ref: FailureRef) -> dict:
    """{"claimed_by": the doctor run that claimed `ref`'s try, "doctor_run_id": the run that recorded
    its case, "error_class", "recorded": bool}; {} when the knowledge base cannot be read."""
    from airflow_doctor.knowledge.store import KnowledgeBase

    keys = ("dag_id", "run_id", "task_id", "map_index", "try_number")
    try:
        with (kb or KnowledgeBase()).connection() as conn, conn.cursor() as cur:
            cur.execute(HOLDER_OF_TRY, dict(zip(keys, ref.key, strict=True)))
            row = cur.fetchone()
    except Exception as exc:  # noqa: BLE001 - the note then says less
        log.warning("Could not read the doctor's record of %s: %s", ref.label, exc)
        return {}
    return dict(zip(("claimed_by", "doctor_run_id", "error_class", "recorded"), row, strict=True))


def _handled_before(ref: FailureRef, doctor_run_id: str, kb, api) -> tuple[bool, str]:
    """Whether a manual trigger's failure, claimed by an earlier doctor run, is diagnosed again here.

    Returns:
        (True, remark) to re-diagnose it: a person asked, the earlier run has ended (or cannot be
        read); the earlier case stays in the knowledge base and on the Doctor tab. (False, remark)
        when a doctor run that recorded no case for it yet is still running: handling it twice at
        once could notify twice.
    """
    held = _holder(kb, ref)
    holder = held.get("doctor_run_id") or held.get("claimed_by")
    if holder and holder != doctor_run_id and not held.get("recorded"):
        try:
            if api is None:
                from airflow_doctor.hooks.airflow_api import default_api

                api = default_api()
            state = str(api.get_dag_run("doctor", holder).get("state")) if api else None
        except Exception as exc:  # noqa: BLE001 - unknown: re-diagnose, as asked
            log.warning("Could not read doctor run %s: %s", holder, exc)
            state = None
        if state in {"queued", "running"}:
            return False, (
                f"{ref.label} try {ref.try_number} was not diagnosed again: doctor run {holder} is handling "
                "it right now; its note will say what it did"
            )
    before = f"by doctor run {holder}" if holder else "before"
    earlier = f" (diagnosed {held.get('error_class') or 'without a class'})" if held.get("recorded") else ""
    log.info("%s try %s was handled %s; re-diagnosing it on request", ref.label, ref.try_number, before)
    return True, (
        f"{ref.label} try {ref.try_number} was handled {before}{earlier}; re-diagnosed here on request. "
        "The earlier case stays in the knowledge base and on the Doctor tab"
    )


#: Failures named one by one in a run's note when another doctor run took them (then "+N more").
NAMED_IN_NOTE = 3


def _taken_by_others(refs: list[FailureRef], kb) -> list[str]:
    """Lines for the run's note: which of `refs` (this run's failures it did not claim) another doctor
    run took, and which one (at most NAMED_IN_NOTE named; the inbox read for each)."""
    if not refs:
        return []
    lines = []
    for ref in refs[:NAMED_IN_NOTE]:
        held = _holder(kb, ref)
        holder = held.get("claimed_by") or held.get("doctor_run_id") or "another doctor run"
        lines.append(f"{ref.label} try {ref.try_number}: already taken by doctor run {holder}")
    more = len(refs) - NAMED_IN_NOTE
    head = "Handled elsewhere (each failure is handled once; doctor runs created together split the inbox):"
    return [head, *lines] + ([f"+{more} more"] if more > 0 else [])


@dataclass
class StormWatch:
    """Whether a storm has settled: no new failure for `quiet_seconds`, or `max_wait_seconds` since
    `started` (times in seconds on one clock). triggers.StormSettledTrigger observes the inbox's
    unclaimed count with it."""

    count: int
    started: float
    quiet_seconds: float
    max_wait_seconds: float
    changed: float | None = None

    def observe(self, count: int, now: float) -> bool:
        """Record the unclaimed count seen at `now`; True once the storm has settled."""
        if self.changed is None:
            self.changed = self.started
        if count != self.count:
            self.count, self.changed = count, now
        elif now - self.changed >= self.quiet_seconds:
            return True
        return now - self.started >= self.max_wait_seconds


def sweep(lookback_minutes: float | None = None, *, kb=None, api=None) -> dict:
    """Find failed task instances no one reported and report them (the doctor_sweeper DAG).

    Lists task instances in state `failed` that ended in the last `lookback_minutes` (Variable
    `doctor_sweeper_lookback_minutes`, default 60) through the REST API, skips the doctor's own DAGs
    and DAGs tagged `doctor:off`, puts the rest in the inbox (a failure already there is left alone)
    and posts one asset event if anything was new.

    Returns:
        {"seen": int, "new": int, "event_id": int | None}.
    Raises:
        AirflowAPIError or psycopg2 errors: the sweep could not run (the task fails and retries).
    """
    from datetime import timedelta

    from airflow_doctor.hooks.airflow_api import AirflowAPI
    from airflow_doctor.knowledge.store import KnowledgeBase
    from airflow_doctor.settings import TAG_OFF
    from airflow_doctor.settings import settings as load_settings

    api = api or AirflowAPI()
    kb = kb or KnowledgeBase()
    minutes = lookback_minutes or load_settings().sweeper_lookback_minutes
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    failed = api.list_failed_task_instances(since)
    tags: dict[str, list[str]] = {}
    refs = []
    for ti in failed:
        if ti["dag_id"] in DOCTOR_DAG_IDS:
            continue
        if ti["dag_id"] not in tags:
            tags[ti["dag_id"]] = api.get_dag_tags(ti["dag_id"])
        if TAG_OFF in tags[ti["dag_id"]]:
            continue
        try:
            refs.append(
                FailureRef(
                    dag_id=ti["dag_id"],
                    run_id=ti["dag_run_id"],
                    task_id=ti["task_id"],
                    map_index=ti.get("map_index", -1),
                    try_number=ti.get("try_number") or 1,
                    source="sweeper",
                    failed_at=ti.get("end_date"),
                )
            )
        except ValidationError as exc:  # one odd task instance must not hide the others
            log.warning("Sweeper skipped a task instance of %.250s: %s", ti["dag_id"], describe_errors(exc))
    kb.migrate()
    new = kb.record_failures(refs)
    event_id = None
    if new:
        log.info("Sweeper found %d failure(s) no one reported", new)
        newest = refs[-1]
        event_id = api.post_failure_event(newest)
    return {"seen": len(refs), "new": new, "event_id": event_id}

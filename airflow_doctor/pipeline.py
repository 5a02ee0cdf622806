"""The doctor DAG's stages: one function per task of `dags/doctor.py`, in the order of the card.

    fetch_logs (claims the failures, reads their logs) -> handle_failures (mapped, one per group):
        embed_failure -> retrieve_similar -> diagnose (pool doctor_llm) -> gate_on_confidence
        -> clear_and_retry | prepare_approval -> request_approval -> act_on_approval | escalate
        -> record_case -> verify_retry -> report_retry;  escalate -> notify_humans
    -> summarize_run

Each function takes what its upstream tasks returned (XCom, JSON) and returns JSON for the next.
The shapes are the Pydantic models of `models.py` (Group, Embedding, Memory, GroupDecision), checked
once at each boundary. A stage that cannot do its job raises `StageError` *after* pushing what it
has as its XCom: the task shows red in the Graph view, and the downstream stages (trigger rule
`all_done`) still read the partial result and escalate. A branch not taken is skipped.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_doctor.models import Embedding, Group, GroupDecision, Memory

log = logging.getLogger(__name__)

# Task ids inside the mapped task group (dags/doctor.py); the gate's branch returns some of them.
GROUP_ID = "handle_failures"
CLEAR = f"{GROUP_ID}.clear_and_retry"
ASK = f"{GROUP_ID}.prepare_approval"
ESCALATE = f"{GROUP_ID}.escalate"


class StageError(RuntimeError):
    """A stage could not do its job; its partial output was pushed and the run escalates."""


def _push_and_fail(result: dict, message: str) -> None:
    """Store `result` as this task's return value, then raise StageError(message).

    Raises:
        StageError: always.
    """
    try:
        from airflow.sdk import get_current_context

        get_current_context()["ti"].xcom_push(key="return_value", value=result)
    except Exception as exc:  # noqa: BLE001 - outside a task (tests): the caller gets the error only
        log.debug("No task context to push the partial result: %s", exc)
    raise StageError(message)


def _group(data: dict | None) -> Group:
    """The Group; also primes this task process's settings with the run's snapshot (config.prime)."""
    from airflow_doctor.settings import prime

    group = Group.model_validate(data)
    prime(group.settings)
    return group


def _memory(data: dict | None, n: int) -> Memory:
    """The Memory, or (its task failed without output) one that knows nothing and fails closed."""
    if data:
        return Memory.model_validate(data)
    return Memory(doctor_clears=[None] * n, error="retrieve_similar produced nothing")


def _decided(data: dict | None, group: Group) -> GroupDecision:
    """The gate's decisions, or (the gate failed) an escalation of every member."""
    from airflow_doctor.models import Decision

    if data:
        decided = GroupDecision.model_validate(data)
        if len(decided.decisions) == len(group.members):
            return decided
    n = len(group.members)
    why = Decision(verdict="escalate", reasons=["the doctor could not judge this failure (its gate failed)"])
    return GroupDecision(decisions=[why] * n, doctor_clears=[None] * n, diagnosed_at=_now())


def _no_sleep(seconds: float) -> None:
    """The backoff is waited before the task, deferred in the triggerer (operators.py)."""


def _skip(reason: str) -> None:
    """Mark this task skipped: a branch not taken for this group.

    The gate's branch skips the tasks it does not follow, but a mapped task group's downstream task
    instances may not exist yet when the branch runs (they are expanded later), so each branch task
    checks the verdicts itself as well (measured on Airflow 3.3.2: an escalate not followed ran).

    Raises:
        AirflowSkipException: always.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    raise AirflowSkipException(reason)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _judged(
    group: Group, embedding: dict | None, memory: dict | None, diagnosis: dict | None, decided: dict | None
) -> dict:
    """The shape `groups.py` and `notify.py` read: embedding, memory, diagnosis, decisions, clears."""
    mem = _memory(memory, len(group.members))
    dec = _decided(decided, group)
    return {
        "embedding": embedding,
        "memory": mem.for_member(0),
        "diagnosis": diagnosis,
        "decisions": [d.model_dump(mode="json") for d in dec.decisions],
        "doctor_clears": dec.doctor_clears,
    }


def _escalate_members(
    group: Group,
    judged: dict,
    indexes: list[int],
    clears: list | None,
    approval: dict | None,
    dry_run: bool = False,
    *,
    api=None,
) -> list:
    """remediation.escalate for the members at `indexes` (a note each); None for the others."""
    from airflow_doctor.hooks.airflow_api import default_api
    from airflow_doctor.remediation.actions import escalate as escalate_one
    from airflow_doctor.remediation.groups import cleared

    out: list = [None] * len(group.members)
    if not indexes:
        return out
    api = api or default_api()  # None: the notes fail, the escalation still stands
    for i in indexes:
        out[i] = escalate_one(
            group.members[i].model_dump(mode="json"),
            judged["decisions"][i],
            judged["diagnosis"],
            cleared(clears, index=i),
            approval,
            dry_run=dry_run,
            api=api,
        )
    return out


def _leave_for_people(
    group_data: dict,
    judged: dict,
    decided_data: dict | None,
    indexes: list[int],
    clears: list | None,
    approval: dict | None,
    doctor_run_id: str,
    *,
    api=None,
) -> dict:
    """Escalate the members at `indexes` (a note each) and tell people at once.

    Returns:
        {"escalations": [escalate's output or None per member], "notified": [deliver() results]}
        (nothing escalated or sent when `indexes` is empty).
    """
    group = _group(group_data)
    escalations = _escalate_members(group, judged, indexes, clears, approval, api=api)
    if not indexes:
        return {"escalations": escalations, "notified": []}
    notified = notify_humans(
        group_data,
        None,
        judged["diagnosis"],
        decided_data,
        escalations,
        doctor_run_id,
        clears=clears,
        api=api,
    )
    return {"escalations": escalations, "notified": notified}


# -- before the groups -------------------------------------------------------------------------


def fetch_logs(
    events: list[Any], params: dict[str, Any] | None, doctor_run_id: str, *, kb=None, api=None
) -> list[dict]:
    """The fetch_logs stage in one process: `report_failures`, the storm's wait slept here
    (capture.settle_storm), then `fetch_reported`. The doctor DAG's FetchLogsOperator runs the same
    steps but waits for a storm in the triggerer (triggers.StormSettledTrigger).

    Args and Returns: as `report_failures` and `fetch_reported`.
    Raises:
        ValueError: manual Params are malformed (capture.ref_from_params; nothing is claimed).
    """
    from airflow_doctor.capture.failures import wait_out_storm
    from airflow_doctor.knowledge.store import KnowledgeBase

    if api is None:
        from airflow_doctor.hooks.airflow_api import default_api

        api = default_api()  # one client (and one token) for the claim, the logs and the tags
    kb = kb or KnowledgeBase()
    reported = report_failures(events, params, kb=kb, api=api)
    wait_out_storm(reported, kb)
    return fetch_reported(reported, doctor_run_id, kb=kb, api=api)


def report_failures(events: list[Any], params: dict[str, Any] | None, *, kb=None, api=None) -> dict:
    """First half of fetch_logs: put the reported failures (the triggering asset events, a manual
    trigger's Params) in the inbox and say whether a storm is arriving (capture.report_failures).

    Args:
        events: the run's triggering asset events (all assets flattened).
        params: the run's Params (manual trigger form), or None.
    Returns:
        capture.report_failures' JSON-safe dict ("storm": wait before `fetch_reported`).
    Raises:
        ValueError: manual Params are malformed (nothing is claimed).
    """
    from airflow_doctor.capture.failures import report_failures as report

    return report(events, dict(params or {}), kb=kb, api=api)


def fetch_reported(reported: dict, doctor_run_id: str, *, kb=None, api=None) -> list[dict]:
    """Second half of fetch_logs: claim every unhandled failure (each exactly once; capture.
    claim_reported), read each claimed failure's log (bounded, redacted excerpt) and group the
    failures by fingerprint (groups.group_failures). One task, so one scheduling hop less stands
    before every clear and escalation; the DAG runs one fetch_logs at a time
    (max_active_tis_per_dag=1) so that a storm is claimed whole.

    Args:
        reported: report_failures' result (carried across the storm's deferral).
        doctor_run_id: this doctor DAG run's run_id (the claim's owner).
    Returns:
        [Group as dict], oldest first, each with the settings read here (one read of the Variables
        per doctor run; the later tasks `prime` them); [] when nothing was claimed. Never raises for
        one bad log: an unreadable log is a group of one whose excerpt carries the error.
    """
    import time

    from airflow_doctor.capture.failures import claim_reported
    from airflow_doctor.remediation.groups import group_failures
    from airflow_doctor.settings import snapshot

    t0 = time.monotonic()
    # Read once per doctor run; the group's later tasks use this snapshot (config.prime).
    settings = snapshot()
    t1 = time.monotonic()
    if api is None:
        from airflow_doctor.hooks.airflow_api import default_api

        api = default_api()  # one client (and one token) for the logs and the tags
    refs = claim_reported(reported, doctor_run_id, kb=kb)
    t2 = time.monotonic()
    if not refs:
        log.info("fetch_logs: settings %.2f s, claim %.2f s, nothing claimed", t1 - t0, t2 - t1)
        return []
    groups = group_failures(refs, api=api)
    t3 = time.monotonic()
    out = [
        Group.model_validate(
            {**g, "settings": settings, "dag_tags": _known_tags(api, [m["dag_id"] for m in g["members"]])}
        ).model_dump(mode="json")
        for g in groups
    ]
    log.info(
        "fetch_logs: settings %.2f s, claim %.2f s, %d log(s) %.2f s", t1 - t0, t2 - t1, len(refs), t3 - t2
    )
    return out


def _known_tags(api, dag_ids: list[str]) -> dict[str, list[str]] | None:
    """{dag_id: tags} for `dag_ids` as `api` read them for the claim (capture._without_opted_out;
    the client keeps what it read), or None when it could not read them all."""
    if api is None:
        return None
    try:
        return {d: api.get_dag_tags(d) for d in dict.fromkeys(dag_ids)}
    except Exception as exc:  # noqa: BLE001 - the gate reads them itself (and fails closed)
        log.warning("Tags not carried to the gate: %s", exc)
        return None


class _CarriedTags:
    """The one REST call the gate makes (AirflowAPI.get_dag_tags), answered from the tags
    fetch_logs read for the claim: the gate task then needs no connection lookup, token or request.

    Raises:
        KeyError: a DAG whose tags were not carried (the gate fails closed on it).
    """

    def __init__(self, tags: dict[str, list[str]]) -> None:
        self._tags = tags

    def get_dag_tags(self, dag_id: str) -> list[str]:
        return list(self._tags[dag_id])


# -- per group ---------------------------------------------------------------------------------


def embed_failure(group_data: dict, *, kb=None) -> dict:
    """The group's vector (embeddings.embed_failure on the representative's excerpt).

    Returns:
        Embedding as dict. Raises StageError (after pushing the Embedding with its error) when no
        vector could be made: retrieval then uses the fingerprint alone.
    """
    from airflow_doctor.knowledge.embeddings import embed_failure as embed

    group = _group(group_data)
    result = Embedding.model_validate(embed(group.excerpt, kb=kb)).model_dump(mode="json")
    if result["embedding"] is None:
        _push_and_fail(result, f"no embedding: {result['error']}")
    return result


def retrieve_similar(group_data: dict, embedding: dict | None, *, kb=None) -> dict:
    """Similar cases and same-fingerprint cases for the representative, and every member's retry
    budget used so far (store.retrieve_similar; KnowledgeBase.count_doctor_clears).

    Returns:
        Memory as dict. Raises StageError (after pushing the Memory, which then knows nothing and
        makes the gate fail closed) when the knowledge base is unreachable.
    """
    from airflow_doctor.knowledge.store import KnowledgeBase
    from airflow_doctor.knowledge.store import retrieve_similar as retrieve
    from airflow_doctor.remediation.groups import _doctor_clears

    group = _group(group_data)
    kb = kb or KnowledgeBase()
    members = [m.model_dump(mode="json") for m in group.members]
    found = retrieve(members[0], group.excerpt, embedding, kb=kb)
    clears = [found.get("doctor_clears")] + [
        None if found.get("error") else _doctor_clears(kb, m) for m in members[1:]
    ]
    memory = Memory.model_validate({**found, "doctor_clears": clears}).model_dump(mode="json")
    if memory["error"]:
        _push_and_fail(memory, memory["error"])
    return memory


def diagnose(group_data: dict, memory: dict | None) -> dict:
    """Diagnose the group once (diagnosis.diagnose: memory first, then Claude, else the rules).

    Returns:
        diagnose's output. Raises StageError (after pushing it) when no diagnosis came out: the
        LLM failed or answered nonsense (its error is in the output), and the gate escalates.
    """
    from airflow_doctor.judgement.diagnosis import diagnose as run

    group = _group(group_data)
    mem = _memory(memory, len(group.members))
    result = run(group.members[0].model_dump(mode="json"), group.excerpt, mem.for_member(0))
    if result.get("diagnosis") is None:
        _push_and_fail(result, f"no diagnosis ({result.get('diagnoser')}): {result.get('error')}")
    return result


def gate_on_confidence(
    group_data: dict, memory: dict | None, diagnosis: dict | None, *, api=None
) -> tuple[dict, list[str]]:
    """Gate each member (gate.gate_on_confidence) and choose the branches to follow.

    Returns:
        (GroupDecision as dict, branch task ids): clear_and_retry when a member is to be
        auto-retried, prepare_approval when one is in the grey zone, escalate when one is left to
        people. Never raises: without memory or a diagnosis every member escalates.
    """
    from airflow_doctor.hooks.airflow_api import default_api
    from airflow_doctor.judgement.gate import gate_on_confidence as gate

    group = _group(group_data)
    mem = _memory(memory, len(group.members))
    carried = group.dag_tags or {}
    if api is None and all(m.dag_id in carried for m in group.members):
        api = _CarriedTags(carried)  # read by fetch_logs for the claim, seconds ago
    api = api or default_api()  # None: the gate fails closed (unknown tags)
    decisions = [
        gate(member.model_dump(mode="json"), diagnosis, mem.for_member(i), group.excerpt, api=api)
        for i, member in enumerate(group.members)
    ]
    decided = GroupDecision.model_validate(
        {"decisions": decisions, "doctor_clears": list(mem.doctor_clears), "diagnosed_at": _now()}
    )
    return decided.model_dump(mode="json"), branches(decided)


def branches(decided: GroupDecision) -> list[str]:
    """The task ids the gate's branch follows: one per verdict present among the members."""
    chosen = {"auto_retry": CLEAR, "approval": ASK, "escalate": ESCALATE}
    return [chosen[v] for v in ("auto_retry", "approval", "escalate") if decided.members_with(v)]


def retry_at(group_data: dict, decided_data: dict) -> datetime | None:
    """When the auto-retried members may be cleared: the latest failure time + backoff among them
    (a backoff counts from the failure, as Airflow's retry_delay does). None: clear now."""
    group = _group(group_data)
    decided = _decided(decided_data, group)
    latest = None
    for i in decided.members_with("auto_retry"):
        backoff = float(decided.decisions[i].backoff_seconds or 0)
        if backoff <= 0:
            continue
        failed_at = group.members[i].failed_at or datetime.now(UTC)
        failed_at = failed_at if failed_at.tzinfo else failed_at.replace(tzinfo=UTC)
        at = failed_at + timedelta(seconds=backoff)
        latest = at if latest is None or at > latest else latest
    return latest


def members_not_failed_yet(group_data: dict, decided_data: dict, *, api=None) -> list[dict]:
    """The auto-retried members whose task instance does not show their try as failed yet (Airflow
    records a failed try after its process exits, and the listener reports from inside it): still
    this try and not in state failed. clear_and_retry waits for them in the triggerer
    (triggers.FailedStateTrigger) instead of polling in the task.

    Returns:
        FailureRefs (dicts) to wait for; [] when every member can be cleared now, or when the API
        cannot be read (remediation.clear_and_retry then waits and reports itself).
    """
    group = _group(group_data)
    members = [group.members[i] for i in _decided(decided_data, group).members_with("auto_retry")]
    if not members:
        return []
    try:
        if api is None:
            from airflow_doctor.hooks.airflow_api import default_api

            api = default_api()
        from airflow_doctor.remediation.actions import try_settled

        return [
            ref.model_dump(mode="json")
            for ref in members
            if not try_settled(
                api.get_task_instance(ref.dag_id, ref.run_id, ref.task_id, ref.map_index), ref.try_number
            )
        ]
    except Exception as exc:  # noqa: BLE001 - the clear's own wait handles it
        log.warning("Could not read the task instances before clearing: %s", exc)
        return []


def clear_and_retry(
    group_data: dict,
    decided_data: dict,
    diagnosis: dict | None,
    doctor_run_id: str,
    dry_run: bool = False,
    *,
    api=None,
    kb=None,
) -> dict:
    """Clear the members the gate sent to auto-retry (remediation.clear_and_retry, once each; the
    backoff was already waited in the triggerer). A member whose clear failed is escalated and
    people are told at once.

    Returns:
        {"clears": [clear_and_retry's output or None per member], "escalations": [escalate's
        output or None per member], "notified": [deliver() results]}. Skips (AirflowSkipException)
        when no member is to be auto-retried. Raises StageError (after
        pushing it) when a decided clear failed.
    """
    from airflow_doctor.remediation.groups import clear_group

    group = _group(group_data)
    if not _decided(decided_data, group).members_with("auto_retry"):
        _skip("the gate sent no member of this group to auto-retry")
    judged = _judged(group, None, None, diagnosis, decided_data)
    clears = clear_group(
        group.model_dump(mode="json"), judged, doctor_run_id, dry_run=dry_run, api=api, kb=kb, sleep=_no_sleep
    )
    failed = [
        i
        for i in _decided(decided_data, group).members_with("auto_retry")
        if not (clears[i] or {}).get("cleared")
    ]
    out: dict[str, Any] = {"clears": clears, "escalations": [None] * len(clears), "notified": []}
    if failed and not dry_run:
        out |= _leave_for_people(
            group_data, judged, decided_data, failed, clears, None, doctor_run_id, api=api
        )
        _push_and_fail(out, f"{len(failed)} decided clear(s) failed: {clears[failed[0]]['reason']}")
    return out


def prepare_approval(
    group_data: dict,
    memory: dict | None,
    diagnosis: dict | None,
    decided_data: dict,
    doctor_run_id: str,
    *,
    api=None,
) -> dict:
    """Send the "approval requested" message for the group's grey-zone members (one answer covers
    them all) and return the subject and body of the Required Actions request.

    Returns:
        {"subject": str, "body": str, "delivery": dict}. Raises AirflowSkipException when no
        member is in the grey zone (the gate failed, so the approval path does not apply).
    """
    from airflow_doctor.remediation.groups import approval_request

    group = _group(group_data)
    judged = _judged(group, None, memory, diagnosis, decided_data)
    ask = approval_request(group.model_dump(mode="json"), judged, doctor_run_id, api=api)
    if ask is None:
        _skip("no member of this group is in the grey zone")
    return ask


def act_on_approval(
    group_data: dict,
    decided_data: dict,
    diagnosis: dict | None,
    answer: dict | None,
    doctor_run_id: str,
    *,
    api=None,
    kb=None,
) -> dict:
    """Carry out the engineer's answer from Required Actions for the grey-zone members: "Approve"
    clears them (actor human); "Reject", a timeout (answered "Reject" by nobody) or no answer at
    all leaves them failed with a note saying who decided.

    Args:
        answer: request_approval's result ({"chosen_options", "responded_by_user", ...}) or None.
    Members left failed are noted and reported (notify_humans) at once.

    Returns:
        {"clears": [...], "escalations": [...]} aligned with the members (None where not asked),
        "notified": [deliver() results].
        Skips (AirflowSkipException) when no member was in the grey zone.
    """
    from airflow_doctor.remediation.actions import approver
    from airflow_doctor.remediation.groups import clear_group

    group = _group(group_data)
    judged = _judged(group, None, None, diagnosis, decided_data)
    asked = _decided(decided_data, group).members_with("approval")
    if not asked:
        _skip("no member of this group was in the grey zone")
    who = approver(answer)
    clears: list = [None] * len(group.members)
    if who:
        clears = clear_group(
            group.model_dump(mode="json"),
            judged,
            doctor_run_id,
            approved_by=who,
            api=api,
            kb=kb,
            sleep=_no_sleep,
        )
    left = [i for i in asked if not (clears[i] or {}).get("cleared")]
    # Rejected, unanswered or a failed clear: whoever else watches the DAG learns it stays failed.
    return {
        "clears": clears,
        **_leave_for_people(group_data, judged, decided_data, left, clears, answer, doctor_run_id, api=api),
    }


def escalate(
    group_data: dict, decided_data: dict, diagnosis: dict | None, dry_run: bool = False, *, api=None
) -> list:
    """Leave the members the gate escalated failed for a person, each with a note saying what the
    doctor found and why it did not retry (remediation.escalate).

    Returns:
        [escalate's output, or None for a member the gate did not escalate]. Skips
        (AirflowSkipException) when the gate escalated no member.
    """
    group = _group(group_data)
    judged = _judged(group, None, None, diagnosis, decided_data)
    chosen = _decided(decided_data, group).members_with("escalate")
    if not chosen:
        _skip("the gate escalated no member of this group")
    return _escalate_members(group, judged, chosen, None, None, dry_run=dry_run, api=api)


def notify_humans(
    group_data: dict,
    memory: dict | None,
    diagnosis: dict | None,
    decided_data: dict | None,
    escalations: list | None,
    doctor_run_id: str | None,
    *,
    clears: list | None = None,
    verifications: list | None = None,
    api=None,
) -> list:
    """Tell people about the members that need them (escalated ones, failed clears) or, after
    verify_retry, about retried ones as the policy says (notify.notify_members): one message for a
    lone failure, one digest per route for a group.

    Returns:
        [deliver()'s result per message] or [{"skipped": reason}] (the policy sends nothing).
        Skips (AirflowSkipException) when no member is to be reported here.
    """
    from airflow_doctor.notifications.messages import notify_members

    group = _group(group_data)
    judged = _judged(group, None, memory, diagnosis, decided_data)
    items = []
    for i, member in enumerate(group.members):
        escalation = (escalations or [None] * len(group.members))[i]
        clear = (clears or [None] * len(group.members))[i]
        verification = (verifications or [None] * len(group.members))[i]
        if escalation is None and clear is None:
            continue  # not this message's member: handled (and reported) on another branch
        items.append(
            {
                "ref": member.model_dump(mode="json"),
                "decision": judged["decisions"][i],
                "remediation": clear,
                "escalation": escalation,
                "verification": verification,
                "doctor_clears": judged["doctor_clears"][i],
            }
        )
    if not items:
        _skip("no member of this group to report on")
    return notify_members(items, group.excerpt, judged, doctor_run_id, api=api)


def record_case(
    group_data: dict,
    embedding: dict | None,
    diagnosis: dict | None,
    decided_data: dict | None,
    retried: dict | None,
    approved: dict | None,
    escalated: list | None,
    doctor_run_id: str,
    *,
    kb=None,
) -> list:
    """Record every member as a case (groups.record_group), with what happened to it on whichever
    branch handled it; an engineer's rejection in Required Actions is recorded as their answer.

    Returns:
        [case id or None per member]. Raises StageError when no case could be recorded.
    """
    from airflow_doctor.remediation.groups import record_group

    group = _group(group_data)
    judged = _judged(group, embedding, None, diagnosis, decided_data)
    escalations = _merge(
        len(group.members), escalated, (retried or {}).get("escalations"), (approved or {}).get("escalations")
    )
    ids = record_group(
        group.model_dump(mode="json"),
        judged,
        (retried or {}).get("clears"),
        (approved or {}).get("clears"),
        doctor_run_id,
        escalations,
        kb=kb,
    )
    if ids and all(i is None for i in ids):
        _push_and_fail({"case_ids": ids}, "the knowledge base recorded no case (unreachable?)")
    return ids


def _merge(n: int, *lists: list | None) -> list:
    """Per member, the first non-None entry among aligned lists."""
    out: list = [None] * n
    for values in lists:
        for i, v in enumerate(values or []):
            if i < n and out[i] is None and v is not None:
                out[i] = v
    return out


def cleared_members(retried: dict | None, approved: dict | None, n: int) -> list:
    """Per member, the clear that happened (auto or approved), else None."""
    from airflow_doctor.remediation.groups import cleared

    return [cleared((retried or {}).get("clears"), (approved or {}).get("clears"), index=i) for i in range(n)]

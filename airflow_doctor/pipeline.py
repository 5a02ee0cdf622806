"""The doctor's flow: one function per task of the `doctor` DAG, taking and returning the models.

    fetch_logs (capture.report_failures, fetch_reported: claims the failures, reads and groups them)
    -> per Group (mapped task group `handle_failures`):
        embed_failure -> retrieve_similar -> diagnose (pool doctor_llm) -> gate_on_confidence
        -> clear_and_retry | prepare_approval -> request_approval -> act_on_approval | escalate
        -> record_case -> verify_retry -> report_retry;  escalate -> notify_humans
    -> summarize_run

The four steps up to the gate are pure of Airflow: they take a `Group` and what the steps before
returned (`Embedding`, `Memory`, `Diagnosed`) and return the next model, never raising; `judge`
runs them in one process, and `eval` and the CLI call it, so they judge exactly as the DAG does.
The DAG's tasks pass the models through XCom (the Task SDK serialises Pydantic models) and call
`stage_result`: a stage that could not do its job pushes what it has and raises `StageError`, so the
task shows red in the Graph view while the stages after it (trigger rule `all_done`) read the
partial result and escalate. A branch not taken is skipped.

Settings and DAG tags are read once, by fetch_logs, and travel in the Group as values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from airflow_doctor.models import (
    Decision,
    Diagnosed,
    Diagnosis,
    Embedding,
    FailureRef,
    Group,
    GroupDecision,
    Memory,
    PerMember,
)
from airflow_doctor.settings import DoctorSettings

if TYPE_CHECKING:
    from airflow_doctor.judgement.reading import Reading

StageOutput = TypeVar("StageOutput")

log = logging.getLogger(__name__)


class StageError(RuntimeError):
    """A stage could not do its job; its partial output was pushed and the run escalates."""


def _push_and_fail(result: Any, message: str) -> None:
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


def stage_result(value: StageOutput) -> StageOutput:
    """A task's return value: `value`, or, when its stage could not do its job, `value` pushed as
    the task's XCom and then StageError (the task shows red; the stages after it read the partial
    result and escalate).

    Raises:
        StageError: an Embedding without a vector, a Memory with an error, a Diagnosed without a
            diagnosis.
    """
    if isinstance(value, Embedding) and value.embedding is None:
        _push_and_fail(value, f"no embedding: {value.error}")
    if isinstance(value, Memory) and value.error:
        _push_and_fail(value, value.error)
    if isinstance(value, Diagnosed) and value.diagnosis is None:
        _push_and_fail(value, f"no diagnosis ({value.diagnoser}): {value.error}")
    return value


def _decided(decided: GroupDecision | None, group: Group) -> GroupDecision:
    """The gate's decisions, or (the gate failed) an escalation of every member."""
    if decided is not None and len(decided.decisions) == len(group.members):
        return decided
    n = len(group.members)
    why = Decision(verdict="escalate", reasons=["the doctor could not judge this failure (its gate failed)"])
    return GroupDecision(decisions=[why] * n, doctor_clears=[None] * n, diagnosed_at=_now())


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
    group: Group,
    embedding: Embedding | None,
    memory: Memory | None,
    diagnosed: Diagnosed | None,
    decided: GroupDecision | None,
) -> dict:
    """The JSON shape `remediation/groups.py` and `notifications/` read: embedding, memory,
    diagnosis (diagnose's output), decisions and doctor_clears (both aligned with the members)."""
    memory = memory or _knows_nothing(group, "retrieve_similar produced nothing")
    decided = _decided(decided, group)
    return {
        "embedding": embedding.model_dump(mode="json") if embedding else None,
        "memory": memory.for_member(0),
        "diagnosis": diagnosed.model_dump(mode="json") if diagnosed else None,
        "decisions": [d.model_dump(mode="json") for d in decided.decisions],
        "doctor_clears": decided.doctor_clears,
    }


def _escalate_members(
    group: Group,
    judged: dict,
    indexes: list[int],
    clears: PerMember | None,
    approval: dict | None,
    dry_run: bool = False,
    *,
    api=None,
) -> PerMember:
    """actions.escalate_member for the members at `indexes` (a note each), by member_key."""
    from airflow_doctor.hooks.airflow_api import default_api
    from airflow_doctor.remediation.actions import escalate_member
    from airflow_doctor.remediation.groups import cleared

    out: PerMember = {}
    if not indexes:
        return out
    api = api or default_api()  # None: the notes fail, the escalation still stands
    for i in indexes:
        key = group.members[i].member_key
        out[key] = escalate_member(
            group.members[i].model_dump(mode="json"),
            judged["decisions"][i],
            judged["diagnosis"],
            cleared(clears, key=key),
            approval,
            dry_run=dry_run,
            api=api,
        )
    return out


def _leave_for_people(
    group: Group,
    judged: dict,
    indexes: list[int],
    clears: PerMember | None,
    approval: dict | None,
    doctor_run_id: str,
    *,
    api=None,
) -> dict:
    """Escalate the members at `indexes` (a note each) and tell people at once.

    Returns:
        {"escalations": PerMember of escalate_member's output, "notified": [deliver() results]}
        (nothing escalated or sent when `indexes` is empty).
    """
    escalations = _escalate_members(group, judged, indexes, clears, approval, api=api)
    if not indexes:
        return {"escalations": escalations, "notified": []}
    notified = _notify(group, judged, escalations, doctor_run_id, clears=clears, api=api)
    return {"escalations": escalations, "notified": notified}


# -- before the groups -------------------------------------------------------------------------


def fetch_reported(
    reported: dict, doctor_run_id: str, *, kb=None, api=None, remarks: list[str] | None = None
) -> list[Group]:
    """Second half of fetch_logs (the first is capture.report_failures, then a storm's wait in the
    triggerer): claim every unhandled failure (each exactly once; capture.
    claim_reported), read each claimed failure's log (bounded, redacted excerpt) and group the
    failures by fingerprint (groups.group_failures). One task, so one scheduling hop less stands
    before every clear and escalation; the DAG runs one fetch_logs at a time
    (max_active_tis_per_dag=1) so that a storm is claimed whole.

    Args:
        reported: report_failures' result (carried across the storm's deferral).
        doctor_run_id: this doctor DAG run's run_id (the claim's owner).
        remarks: a list the lines for the run's note are appended to (capture.claim_reported: a
            manual trigger re-diagnosed or refused, failures another doctor run took).
    Returns:
        [Group], oldest first, each carrying the settings read here and its members' DAG tags (one
        read per doctor run; the later tasks use these values); [] when nothing was claimed. Never raises for
        one bad log: an unreadable log is a group of one whose excerpt carries the error.
    """
    import time

    from airflow_doctor.capture.failures import claim_reported
    from airflow_doctor.remediation.groups import group_failures
    from airflow_doctor.settings import snapshot

    t0 = time.monotonic()
    # Read once per doctor run; the group's later tasks use this value (settings_of).
    settings = snapshot()
    t1 = time.monotonic()
    if api is None:
        from airflow_doctor.hooks.airflow_api import default_api

        api = default_api()  # one client (and one token) for the logs and the tags
    refs = claim_reported(reported, doctor_run_id, kb=kb, api=api, remarks=remarks)
    t2 = time.monotonic()
    if not refs:
        log.info("fetch_logs: settings %.2f s, claim %.2f s, nothing claimed", t1 - t0, t2 - t1)
        return []
    groups = group_failures(refs, api=api)
    t3 = time.monotonic()
    out = [
        Group.model_validate(
            {
                **g,
                "settings": settings,
                "dag_tags": _read_tags(api, [m["dag_id"] for m in g["members"]]) if api else None,
            }
        )
        for g in groups
    ]
    t4 = time.monotonic()
    runs = int(settings.get("history_runs", 10)) if isinstance(settings, dict) else 10
    for group, g in zip(out, groups, strict=True):
        group.history = read_task_histories(group, api, runs=runs, failed_log=g.get("log") or None)
    log.info(
        "fetch_logs: settings %.2f s, claim %.2f s, %d log(s) %.2f s, tags %.2f s, history %.2f s",
        t1 - t0,
        t2 - t1,
        len(refs),
        t3 - t2,
        t4 - t3,
        time.monotonic() - t4,
    )
    return out


def read_task_histories(group: Group, api, *, runs: int = 10, failed_log=None) -> dict:
    """What Airflow recorded about each member's task instance and task (capture.history.
    read_histories: DAG versions, recent outcomes, and for the representative what only the failed
    try printed against the task's last success), as {member_key: TaskHistory}.

    Args:
        api: the REST client; None reads nothing.
        runs: the task's other DAG runs to read (`[doctor] history_runs`); 0 reads nothing.
        failed_log: the representative's failed log as fetch_logs read it (not fetched again).
    Returns:
        {FailureRef.member_key: TaskHistory}; {} when nothing is read (the gate then has no
        corroboration from the record). Never raises.
    """
    if api is None or runs <= 0:
        return {}
    from airflow_doctor.capture.history import read_histories

    try:
        return read_histories(api, group.members, runs=runs, first_log=failed_log)
    except Exception as exc:  # noqa: BLE001 - no history is no corroboration, never a stop
        log.warning("Could not read the task history of %s: %s", group.label, exc)
        return {}


def _read_tags(api, dag_ids: list[str]) -> dict[str, list[str]]:
    """{dag_id: tags} for those of `dag_ids` whose tags `api` could read (the others are logged and
    left out: the gate fails closed on a DAG whose tags are unknown). For the claim's DAGs the client
    answers from what capture._without_opted_out read."""
    tags: dict[str, list[str]] = {}
    for dag_id in dict.fromkeys(dag_ids):
        try:
            tags[dag_id] = api.get_dag_tags(dag_id)
        except Exception as exc:  # noqa: BLE001 - unknown tags fail closed in decide()
            log.warning("Could not read the DAG tags of %s: %s", dag_id, exc)
    return tags


# -- per group: the pure flow the DAG's tasks, `eval` and the CLI all run ----------------------


def settings_of(group: Group) -> DoctorSettings:
    """The settings fetch_logs read for this doctor run (carried in the Group), as a value.

    Returns:
        DoctorSettings; the process's own reading when the Group carries none (a Group built by
        hand). Also lets `settings()` answer with them in this process (settings.prime), for the
        modules that still read settings themselves (the messages' routing).
    """
    from airflow_doctor.settings import prime, settings

    return prime(group.settings) or settings()


def reading_of(group: Group, settings: DoctorSettings) -> Reading:
    """The rules' reading of the group's excerpt (judgement.reading.read): one per group and process,
    passed to every judge that asks the rules."""
    from airflow_doctor.judgement.reading import read

    return read(group.excerpt, local_services=settings.local_services)


def embed_failure(group: Group, *, kb=None) -> Embedding:
    """The group's vector (embeddings.embed_excerpt on the representative's excerpt).

    Returns:
        Embedding; `embedding` is None (and `error` says why) when no vector could be made:
        retrieval then uses the fingerprint alone. Never raises.
    """
    from airflow_doctor.knowledge.embeddings import embed_excerpt

    settings = settings_of(group)
    return Embedding.model_validate(
        embed_excerpt(group.excerpt, kb=kb, embedding_model=settings.embedding_model)
    )


def retrieve_similar(
    group: Group, embedding: Embedding | None, *, kb=None, reading: Reading | None = None
) -> Memory:
    """Similar cases and same-fingerprint cases for the representative, and every member's retry
    budget used so far (store.memory_of; KnowledgeBase.count_doctor_clears).

    Args:
        reading: the rules' reading of the group's excerpt, when the caller has it (`reading_of`).
    Returns:
        Memory; with `error` set (knowing nothing, so the gate fails closed) when the knowledge
        base is unreachable. Never raises.
    """
    from airflow_doctor.knowledge.store import KnowledgeBase, memory_of
    from airflow_doctor.remediation.groups import _doctor_clears

    settings = settings_of(group)
    kb = kb or KnowledgeBase()
    found = memory_of(
        group.members[0],
        group.excerpt,
        embedding.embedding if embedding else None,
        kb=kb,
        k=settings.neighbours,
        reading=reading or reading_of(group, settings),
    )
    clears = [found.get("doctor_clears")] + [
        None if found.get("error") else _doctor_clears(kb, m.model_dump(mode="json"))
        for m in group.members[1:]
    ]
    return Memory.model_validate({**found, "doctor_clears": clears})


#: A diagnoser: "auto" (the LLM when connection doctor_llm exists, else offline), "offline", "llm",
#: or a function of the Group returning a Diagnosis (eval's oracle).
Diagnoser = Literal["auto", "offline", "llm"] | Callable[[Group], Diagnosis]


def diagnose(
    group: Group, memory: Memory | None, *, diagnoser: Diagnoser = "auto", reading: Reading | None = None
) -> Diagnosed:
    """Diagnose the group once, from its representative (diagnosis.diagnose_failure: memory first,
    then Claude, else the rules).

    Returns:
        Diagnosed; its `diagnosis` is None (and `error` says why) when none came out: the LLM
        failed or answered nonsense, and the gate escalates. Never raises.
    """
    if callable(diagnoser):
        return Diagnosed(diagnosis=diagnoser(group), diagnoser="oracle")
    from airflow_doctor.judgement.diagnosis import diagnose_failure

    settings = settings_of(group)
    return diagnose_failure(
        group.members[0],
        group.excerpt,
        memory or _knows_nothing(group, "retrieve_similar produced nothing"),
        settings,
        use_llm=None if diagnoser == "auto" else diagnoser == "llm",
        reading=reading or reading_of(group, settings),
        history=group.history.get(group.members[0].member_key),
    )


def gate_on_confidence(
    group: Group,
    memory: Memory | None,
    diagnosed: Diagnosed | None,
    *,
    api=None,
    reading: Reading | None = None,
) -> GroupDecision:
    """Gate each member (gate.decide) with its own retry budget and its DAG's tags.

    The tags are the ones fetch_logs read for the claim (Group.dag_tags); a DAG whose tags were not
    carried is read through `api` (the REST client when None), and unknown tags fail closed.

    Returns:
        GroupDecision, one Decision per member. Never raises: without memory or a diagnosis every
        member escalates.
    """
    from airflow_doctor.judgement.gate import decide

    settings = settings_of(group)
    reading = reading or reading_of(group, settings)
    memory = memory or _knows_nothing(group, "retrieve_similar produced nothing")
    diagnosis = diagnosed.diagnosis if diagnosed else None
    tags = _dag_tags(group, api)
    decisions = [
        decide(
            diagnosis,
            memory.neighbours,
            memory.fingerprint_matches,
            memory.doctor_clears[i] if i < len(memory.doctor_clears) else None,
            tags.get(member.dag_id),
            settings,
            excerpt=group.excerpt,
            class_outcomes=memory.class_outcomes,
            reading=reading,
            history=group.history.get(member.member_key),
        )
        for i, member in enumerate(group.members)
    ]
    return GroupDecision(decisions=decisions, doctor_clears=list(memory.doctor_clears), diagnosed_at=_now())


class Judged(NamedTuple):
    """What the per-group flow found for a group, stage by stage, and the rules' reading it used."""

    embedding: Embedding
    memory: Memory
    diagnosed: Diagnosed
    decided: GroupDecision
    reading: Reading


def judge(
    group: Group, *, kb=None, embedding: Embedding | None = None, diagnoser: Diagnoser = "auto", api=None
) -> Judged:
    """The per-group flow up to the gate in one process: embed_failure -> retrieve_similar ->
    diagnose -> gate_on_confidence, the same functions the DAG's tasks call one per task.

    Args:
        embedding: a vector already made (eval embeds a whole pass in one batch); None embeds.
        diagnoser: see `Diagnoser`.
    Returns:
        Judged. Never raises.
    """
    reading = reading_of(group, settings_of(group))
    embedding = embedding or embed_failure(group, kb=kb)
    memory = retrieve_similar(group, embedding, kb=kb, reading=reading)
    diagnosed = diagnose(group, memory, diagnoser=diagnoser, reading=reading)
    decided = gate_on_confidence(group, memory, diagnosed, api=api, reading=reading)
    return Judged(embedding, memory, diagnosed, decided, reading)


def _knows_nothing(group: Group, why: str) -> Memory:
    """A Memory that knows nothing and fails closed (its task failed without output)."""
    return Memory(doctor_clears=[None] * len(group.members), error=why)


def _dag_tags(group: Group, api) -> dict[str, list[str]]:
    """{dag_id: tags} for the members' DAGs: those fetch_logs carried, the others read once each
    through `api` (the REST client when None); a DAG whose tags stay unknown is absent."""
    tags = dict(group.dag_tags or {})
    missing = [m.dag_id for m in group.members if m.dag_id not in tags]
    if missing:
        if api is None:
            from airflow_doctor.hooks.airflow_api import default_api

            api = default_api()
        if api is not None:
            tags |= _read_tags(api, missing)
    return tags


def retry_at(group: Group, decided: GroupDecision | None) -> datetime | None:
    """When the auto-retried members may be cleared: the latest failure time + backoff among them
    (a backoff counts from the failure, as Airflow's retry_delay does). None: clear now."""
    decided = _decided(decided, group)
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


def members_not_failed_yet(group: Group, decided: GroupDecision | None, *, api=None) -> list[FailureRef]:
    """The auto-retried members whose task instance does not show their try as failed yet (Airflow
    records a failed try after its process exits, and the listener reports from inside it): still
    this try and not in state failed. clear_and_retry waits for them in the triggerer
    (triggers.FailedStateTrigger) instead of polling in the task.

    Returns:
        FailureRefs to wait for; [] when every member can be cleared now, or when the API cannot be
        read (actions.clear_member then waits and reports itself).
    """
    members = [group.members[i] for i in _decided(decided, group).members_with("auto_retry")]
    if not members:
        return []
    try:
        if api is None:
            from airflow_doctor.hooks.airflow_api import default_api

            api = default_api()
        from airflow_doctor.remediation.actions import try_settled

        return [
            ref
            for ref in members
            if not try_settled(
                api.get_task_instance(ref.dag_id, ref.run_id, ref.task_id, ref.map_index), ref.try_number
            )
        ]
    except Exception as exc:  # noqa: BLE001 - the clear's own wait handles it
        log.warning("Could not read the task instances before clearing: %s", exc)
        return []


def clear_and_retry(
    group: Group,
    decided: GroupDecision | None,
    diagnosed: Diagnosed | None,
    doctor_run_id: str,
    dry_run: bool = False,
    *,
    api=None,
    kb=None,
) -> dict:
    """Clear the members the gate sent to auto-retry (actions.clear_member, once each; the
    backoff was already waited in the triggerer). A member whose clear failed is escalated and
    people are told at once.

    Returns:
        {"clears": PerMember of clear_member's output, "escalations": PerMember of
        escalate_member's output, "notified": [deliver() results]}. Skips (AirflowSkipException)
        when no member is to be auto-retried. Raises StageError (after pushing it) when a decided
        clear failed.
    """
    from airflow_doctor.remediation.groups import clear_group

    decided = _decided(decided, group)
    retried = decided.members_with("auto_retry")
    if not retried:
        _skip("the gate sent no member of this group to auto-retry")
    judged = _judged(group, None, None, diagnosed, decided)
    clears = clear_group(
        group.model_dump(mode="json"), judged, doctor_run_id, dry_run=dry_run, api=api, kb=kb
    )
    failed = [i for i in retried if not (clears.get(group.members[i].member_key) or {}).get("cleared")]
    out: dict[str, Any] = {"clears": clears, "escalations": {}, "notified": []}
    if failed and not dry_run:
        out |= _leave_for_people(group, judged, failed, clears, None, doctor_run_id, api=api)
        first = clears.get(group.members[failed[0]].member_key) or {}
        _push_and_fail(out, f"{len(failed)} decided clear(s) failed: {first.get('reason')}")
    return out


def prepare_approval(
    group: Group,
    memory: Memory | None,
    diagnosed: Diagnosed | None,
    decided: GroupDecision | None,
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

    judged = _judged(group, None, memory, diagnosed, decided)
    ask = approval_request(group.model_dump(mode="json"), judged, doctor_run_id, api=api)
    if ask is None:
        _skip("no member of this group is in the grey zone")
    return ask


def act_on_approval(
    group: Group,
    decided: GroupDecision | None,
    diagnosed: Diagnosed | None,
    answer: dict | None,
    doctor_run_id: str,
    *,
    api=None,
    kb=None,
) -> dict:
    """Carry out the engineer's answer from Required Actions for the grey-zone members: "Approve"
    clears them (actor human); "Reject", a timeout (answered "Reject" by nobody) or no answer at
    all leaves them failed with a note saying who decided. Members left failed are noted and
    reported at once.

    Args:
        answer: request_approval's result ({"chosen_options", "responded_by_user", ...}) or None.

    Returns:
        {"clears": PerMember, "escalations": PerMember} of the members asked, "notified": [deliver()
        results]. Skips (AirflowSkipException) when no member was in the grey zone.
    """
    from airflow_doctor.remediation.actions import approver
    from airflow_doctor.remediation.groups import clear_group

    judged = _judged(group, None, None, diagnosed, decided)
    asked = _decided(decided, group).members_with("approval")
    if not asked:
        _skip("no member of this group was in the grey zone")
    who = approver(answer)
    clears: PerMember = {}
    if who:
        clears = clear_group(
            group.model_dump(mode="json"),
            judged,
            doctor_run_id,
            approved_by=who,
            api=api,
            kb=kb,
        )
    left = [i for i in asked if not (clears.get(group.members[i].member_key) or {}).get("cleared")]
    # Rejected, unanswered or a failed clear: whoever else watches the DAG learns it stays failed.
    return {
        "clears": clears,
        **_leave_for_people(group, judged, left, clears, answer, doctor_run_id, api=api),
    }


def escalate(
    group: Group,
    decided: GroupDecision | None,
    diagnosed: Diagnosed | None,
    dry_run: bool = False,
    *,
    api=None,
) -> PerMember:
    """Leave the members the gate escalated failed for a person, each with a note saying what the
    doctor found and why it did not retry (actions.escalate_member).

    Returns:
        PerMember of escalate_member's output. Skips (AirflowSkipException) when the gate escalated
        no member.
    """
    chosen = _decided(decided, group).members_with("escalate")
    if not chosen:
        _skip("the gate escalated no member of this group")
    judged = _judged(group, None, None, diagnosed, decided)
    return _escalate_members(group, judged, chosen, None, None, dry_run=dry_run, api=api)


def notify_humans(
    group: Group,
    memory: Memory | None,
    diagnosed: Diagnosed | None,
    decided: GroupDecision | None,
    escalations: PerMember | None,
    doctor_run_id: str | None,
    *,
    clears: PerMember | None = None,
    verifications: PerMember | None = None,
    api=None,
) -> list:
    """Tell people about the members that need them (escalated ones, failed clears) or, after
    verify_retry, about retried ones as the policy says (notify.notify_members): one message for a
    lone failure, one digest per route for a group.

    Returns:
        [deliver()'s result per message] or [{"skipped": reason}] (the policy sends nothing).
        Skips (AirflowSkipException) when no member is to be reported here.
    """
    judged = _judged(group, None, memory, diagnosed, decided)
    return _notify(
        group, judged, escalations, doctor_run_id, clears=clears, verifications=verifications, api=api
    )


def _notify(
    group: Group,
    judged: dict,
    escalations: PerMember | None,
    doctor_run_id: str | None,
    *,
    clears: PerMember | None = None,
    verifications: PerMember | None = None,
    api=None,
) -> list:
    """notify_humans on an already assembled `_judged` shape."""
    from airflow_doctor.notifications.messages import notify_members

    items = []
    for i, member in enumerate(group.members):
        key = member.member_key
        escalation = (escalations or {}).get(key)
        clear = (clears or {}).get(key)
        if escalation is None and clear is None:
            continue  # not this message's member: handled (and reported) on another branch
        items.append(
            {
                "ref": member.model_dump(mode="json"),
                "decision": judged["decisions"][i],
                "remediation": clear,
                "escalation": escalation,
                "verification": (verifications or {}).get(key),
                "doctor_clears": judged["doctor_clears"][i],
                "history": group.history[key].model_dump(mode="json") if key in group.history else None,
            }
        )
    if not items:
        _skip("no member of this group to report on")
    return notify_members(items, group.excerpt, judged, doctor_run_id, api=api)


def record_case(
    group: Group,
    embedding: Embedding | None,
    diagnosed: Diagnosed | None,
    decided: GroupDecision | None,
    retried: dict | None,
    approved: dict | None,
    escalated: PerMember | None,
    doctor_run_id: str,
    *,
    kb=None,
) -> dict[str, int | None]:
    """Record every member as a case (groups.record_group), with what happened to it on whichever
    branch handled it; an engineer's rejection in Required Actions is recorded as their answer.

    Returns:
        {member_key: case id or None}. Raises StageError when no case could be recorded.
    """
    from airflow_doctor.remediation.groups import record_group

    judged = _judged(group, embedding, None, diagnosed, decided)
    escalations = _first_of(
        escalated, (retried or {}).get("escalations"), (approved or {}).get("escalations")
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
    if ids and all(i is None for i in ids.values()):
        _push_and_fail({"case_ids": ids}, "the knowledge base recorded no case (unreachable?)")
    return ids


def _first_of(*results: PerMember | None) -> PerMember:
    """Per member, the first result among the branches' (a member is handled on one branch)."""
    out: PerMember = {}
    for result in results:
        for key, value in (result or {}).items():
            if value is not None:
                out.setdefault(key, value)
    return out


def cleared_members(retried: dict | None, approved: dict | None, group: Group) -> PerMember:
    """Per member, the clear that happened (auto or approved), else its attempt; members without one
    are absent."""
    from airflow_doctor.remediation.groups import cleared

    clears = {
        m.member_key: cleared((retried or {}).get("clears"), (approved or {}).get("clears"), key=m.member_key)
        for m in group.members
    }
    return {key: clear for key, clear in clears.items() if clear is not None}


def follow_after_record(retried: dict | None, approved: dict | None, group: Group) -> list[str]:
    """The task ids record_case's branch follows: verify_retry when a member of the group was
    cleared (automatically or after an approval), else none (verify_retry and report_retry are
    skipped by the scheduler, with no task process started for them)."""
    from airflow_doctor.operators.doctor import GROUP_ID

    clears = cleared_members(retried, approved, group)
    return [f"{GROUP_ID}.verify_retry"] if any(c.get("cleared") for c in clears.values()) else []


#: What each gate verdict would have done, as a dry run's note says it.
DRY_RUN_ACTIONS = {
    "auto_retry": "clear it for retry",
    "approval": "ask for approval in Required Actions",
    "escalate": "leave it failed for a person (escalate)",
}


def dry_run_verdict(group: Group, decided: GroupDecision | None, *, api=None) -> list[str]:
    """What a dry run's gate would have done with each member, for the doctor run's note: the
    verdict, its reasons and who would have been told (messages.route: the recipients and Slack
    connection a real run would use; nothing is sent).

    Returns:
        one line per member, "- dag.task[i] try N: would <action>. Why: <reasons>. Would tell:
        <who>". Never raises: recipients that cannot be read say so.
    """
    from airflow_doctor.notifications.messages import route

    settings = settings_of(group)
    decided = _decided(decided, group)
    if api is None:
        from airflow_doctor.hooks.airflow_api import default_api

        api = default_api()
    lines = []
    for member, decision in zip(group.members, decided.decisions, strict=True):
        try:
            details = api.get_dag_details(member.dag_id) if api is not None else {}
            recipients, slack = route(member.dag_id, settings, details)
            who = f"{', '.join(recipients) or 'no email recipient'} by email, Slack connection {slack}"
        except Exception as exc:  # noqa: BLE001 - the verdict still stands in the note
            who = f"unknown (the DAG's routing could not be read: {type(exc).__name__})"
        action = DRY_RUN_ACTIONS[decision.verdict]
        if decision.verdict == "auto_retry":
            if decision.backoff_seconds:
                action += f" after a {float(decision.backoff_seconds):.0f} s backoff"
            if settings.notify_on_retry == "none":
                who = f"nobody unless the retry fails ({who})"
            else:
                who += f" (notify_on_retry={settings.notify_on_retry})"
        lines.append(
            f"- {member.label} try {member.try_number}: would {action}. "
            f"Why: {'; '.join(decision.reasons) or 'no reason given'}. Would tell: {who}"
        )
    return lines

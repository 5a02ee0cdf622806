"""Groups: the failures one doctor run handles, grouped by fingerprint, each group judged once.

A lone failure is a group of one. When many failures arrive together (an upstream outage, a
mapped task whose instances all hit the same error) they share a fingerprint: the group is
diagnosed once (one embedding, one retrieval, at most one LLM call), the gate then decides for
each member (its own retry budget and its DAG's opt-out tags), every member is cleared, noted,
escalated and recorded on its own, and people get one digest per group instead of one message
per failure (`airflow_doctor/notifications/messages.py`, `notify_members`).

The doctor's flow (`pipeline.py`) calls these functions with JSON shapes: `group` is one
of fetch_logs' groups, `judged` is {"embedding", "memory", "diagnosis", "decisions",
"doctor_clears"} assembled from the stages' outputs (`pipeline._judged`), and per-member results are
keyed by the member (`models.PerMember`: {FailureRef.member_key: result}; absent where a stage did
nothing for that member).
"""

from __future__ import annotations

import logging

from airflow_doctor.models import FailureRef, PerMember

log = logging.getLogger(__name__)


def group_key(excerpt: dict, ref: FailureRef) -> str:
    """The group a failure belongs to: its fingerprint when its log gave an error to fingerprint,
    else the failure itself (an unreadable log is never grouped with another failure)."""
    if (
        excerpt.get("fingerprint")
        and not excerpt.get("error")
        and (excerpt.get("exception_type") or excerpt.get("message"))
    ):
        return f"fingerprint:{excerpt['fingerprint']}"
    return "failure:" + "|".join(map(str, ref.key))


def group_failures(refs: list[dict], *, api=None) -> list[dict]:
    """Read each failure's log excerpt and group the failures by fingerprint.

    Args:
        refs: FailureRefs as dicts (collect_failures' claim), oldest first.
    Returns:
        groups, oldest first: {"key": str, "label": str (the representative's `dag.task[i]`,
        plus "+N more"), "members": [FailureRef dict], "excerpt": the first member's excerpt (the
        representative: members share the fingerprint, so the excerpt differs only in ids and
        numbers), "log": the representative's log records (read once, for the task history's log
        diff; not carried further)}. Never raises: an unreadable log makes a group of one.
    """
    from airflow_doctor.logs.excerpt import fetch_failure_excerpt

    groups: dict[str, dict] = {}
    for data in refs:
        ref = FailureRef.model_validate(data)
        records: list = []
        excerpt = fetch_failure_excerpt(data, api=api, keep_log=records)
        group = groups.setdefault(
            group_key(excerpt, ref),
            {"key": group_key(excerpt, ref), "members": [], "excerpt": excerpt, "log": records},
        )
        group["members"].append(ref.model_dump(mode="json"))
    out = list(groups.values())
    for group in out:
        first = FailureRef.model_validate(group["members"][0])
        more = len(group["members"]) - 1
        group["label"] = first.label + (f" +{more} more" if more else "")
    if any(len(g["members"]) > 1 for g in out):
        log.info(
            "%d failure(s) in %d group(s): %s",
            len(refs),
            len(out),
            ", ".join(f"{g['label']} ({len(g['members'])})" for g in out),
        )
    return out


def _doctor_clears(kb, member: dict) -> int | None:
    """The member's retry budget used so far; None (the gate fails closed) when unreadable."""
    try:
        return kb.count_doctor_clears(FailureRef.model_validate(member))
    except Exception as exc:  # noqa: BLE001
        log.error("Could not read the doctor's clears of %s: %s", member.get("task_id"), exc)
        return None


def judged_or_escalate(judged: dict | None, group: dict) -> dict:
    """judge_group's output, or, when that task failed, one that escalates every member."""
    if judged and len(judged.get("decisions") or []) == len(group["members"]):
        return judged
    n = len(group["members"])
    reasons = ["the doctor could not judge this failure (its diagnose task failed)"]
    return {
        "embedding": None,
        "memory": {},
        "diagnosis": None,
        "decisions": [{"verdict": "escalate", "reasons": reasons}] * n,
        "doctor_clears": [None] * n,
    }


def approval_request(group: dict, judged: dict, doctor_run_id: str, *, api=None) -> dict | None:
    """Ask once for the group's grey-zone members: send the request, return its subject and body.

    Returns:
        notify_approval_request's output, or None when no member is in the grey zone.
    """
    from airflow_doctor.notifications.messages import notify_approval_request

    asked = with_verdict(judged, "approval")
    if not asked:
        return None
    first, others = asked[0], [group["members"][i] for i in asked[1:]]
    memory = {**judged["memory"], "doctor_clears": judged["doctor_clears"][first]}
    return notify_approval_request(
        group["members"][first],
        group["excerpt"],
        judged["diagnosis"],
        judged["decisions"][first],
        memory,
        doctor_run_id,
        others,
        api=api,
    )


def with_verdict(judged: dict, verdict: str) -> list[int]:
    """Indexes of the members whose gate verdict is `verdict`."""
    return [i for i, d in enumerate(judged["decisions"]) if d["verdict"] == verdict]


def clear_group(
    group: dict,
    judged: dict,
    doctor_run_id: str,
    dry_run: bool = False,
    approved_by: str | None = None,
    *,
    api=None,
    kb=None,
) -> PerMember:
    """Clear every member the gate sent to auto-retry (or, with `approved_by`, every member in the
    grey zone) through `actions.clear_member`. The backoff was waited before (the
    clear_and_retry task waits until pipeline.retry_at, in the triggerer when it is long).

    Returns:
        {member_key: clear_member's output} for the eligible members.
    """
    from airflow_doctor.hooks.airflow_api import default_api
    from airflow_doctor.remediation.actions import clear_member

    targets = with_verdict(judged, "approval" if approved_by else "auto_retry")
    out: PerMember = {}
    if not targets:
        return out
    api = api or default_api()  # None: clear_member reports the error per member
    for i in targets:
        out[_key(group["members"][i])] = clear_member(
            group["members"][i],
            judged["decisions"][i],
            judged["diagnosis"],
            doctor_run_id,
            dry_run=dry_run,
            approved_by=approved_by,
            api=api,
            kb=kb,
        )
    return out


def _key(member: dict) -> str:
    """A member's `FailureRef.member_key`, from its JSON form."""
    return FailureRef.model_validate(member).member_key


def cleared(*results: PerMember | None, key: str) -> dict | None:
    """The member's clear that happened (auto or approved), else its attempted clear, else None."""
    attempts = [r[key] for r in results if r and r.get(key)]
    return next((a for a in attempts if a.get("cleared")), attempts[0] if attempts else None)


def record_group(
    group: dict,
    judged: dict | None,
    retried: PerMember | None,
    approved: PerMember | None,
    doctor_run_id: str,
    escalations: PerMember | None = None,
    *,
    kb=None,
) -> dict[str, int | None]:
    """Record every member as a case with the group's diagnosis and its own decision.

    A member whose grey-zone retry an engineer rejected in Required Actions (its escalation's
    "rejected_by") also gets that person's answer: a remediation with actor human that marks the
    case not transient, which the gate reads as a person's "permanent" for its fingerprint.

    Returns:
        {member_key: case id, or None (knowledge base unreachable, logged)} for every member.
    """
    from airflow_doctor.knowledge.store import KnowledgeBase
    from airflow_doctor.remediation.actions import record_member

    kb = kb or KnowledgeBase()
    judged = judged_or_escalate(judged, group)
    ids = {
        _key(member): record_member(
            member,
            group["excerpt"],
            judged["embedding"],
            judged["diagnosis"],
            judged["decisions"][i],
            cleared(retried, approved, key=_key(member)),
            doctor_run_id,
            kb=kb,
        )
        for i, member in enumerate(group["members"])
    }
    for key, case_id in ids.items():
        who = ((escalations or {}).get(key) or {}).get("rejected_by")
        if case_id is None or not who:
            continue
        try:
            kb.record_human_outcome(
                case_id,
                decision="approval",
                cleared=False,
                outcome="escalated",
                transient=False,
                reasons=[f"{who} rejected the retry in Required Actions"],
            )
        except Exception as exc:  # noqa: BLE001 - the case itself is recorded; the sweeper learns later
            log.warning("Could not record the rejection of case %s: %s", case_id, exc)
    return ids


def check_group(group: dict, clears: PerMember, *, api=None, kb=None) -> dict:
    """One poke of verify_retry for the group: have all retried tries ended?

    Args:
        clears: the members' clears (pipeline.cleared_members).
    Returns:
        {"done": bool, "verifications": {member_key: check_retry's result}} for the cleared members
        whose retried try has ended; done when every cleared member's has (each outcome is recorded
        as it is seen).
    """
    from airflow_doctor.hooks.airflow_api import AirflowAPI
    from airflow_doctor.remediation.actions import check_retry

    api = api or AirflowAPI()
    out: PerMember = {}
    done = True
    for member in group["members"]:
        clear = clears.get(_key(member))
        if not (clear and clear.get("cleared")):
            continue
        result = check_retry(member, clear, api=api, kb=kb)
        if result is None:
            done = False
        else:
            out[_key(member)] = result
    return {"done": done, "verifications": out}

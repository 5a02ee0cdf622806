"""What the Doctor tab and the Doctor dashboard show (issue 14), built from the knowledge base.

Pure functions from rows of `UIStore` (airflow_doctor/knowledge/store.py) to plain dicts the templates of
airflow_doctor/ui/templates/ render; nothing here talks to Airflow. Nothing is unredacted: excerpts and
evidence were redacted before they were stored (airflow_doctor/logs/redact.py); the templates still
escape every value.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from airflow_doctor.notifications.messages import LATE_AFTER_SECONDS

#: A line that names an exception: `module.SomeError: message` (also Exit/Interrupt/Timeout types).
_EXCEPTION_LINE = re.compile(
    r"^\s*(?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Timeout|Failure)\b.*"
)
#: Time-to-heal histogram buckets, upper bounds in seconds (the last is open): a local heal takes
#: seconds (README "Time to heal"), a queued one minutes, a person's hours.
TTH_BUCKETS = [
    (30, "< 30 s"),
    (60, "30-60 s"),
    (120, "1-2 min"),
    (300, "2-5 min"),
    (900, "5-15 min"),
    (3600, "15-60 min"),
    (math.inf, "> 1 h"),
]
#: USD per million tokens for the dashboard's LLM cost: the defaults of `evaluate.Prices` (their
#: source is given there); input, output, cache-read.
PRICE_INPUT, PRICE_OUTPUT, PRICE_CACHED = 2.0, 10.0, 0.20


def ui_link(
    dag_id: str,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
    page: str | None = None,
) -> str:
    """The Airflow UI path of a DAG, DAG run or task instance (React UI routes of Airflow 3.3)."""
    from urllib.parse import quote

    path = f"/dags/{quote(dag_id, safe='')}"
    if run_id is not None:
        path += f"/runs/{quote(run_id, safe='')}"
        if task_id is not None:
            path += f"/tasks/{quote(task_id, safe='')}"
            if map_index is not None and map_index >= 0:
                path += f"/mapped/{map_index}"
    if page:
        path += f"/{page}"
    return path


def primary_error(excerpt: str | None) -> str | None:
    """The line of a redacted excerpt that names the exception, the last one; else its last line."""
    lines = [ln.rstrip() for ln in (excerpt or "").splitlines() if ln.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line.strip()
    return lines[-1].strip() if lines else None


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return list(value) if isinstance(value, list | tuple) else [value]


#: How a person's rejection in Required Actions is recorded (remediation/groups.py, record_group):
#: a 'human' remediation whose reason ends with this text.
REJECTED_IN_REQUIRED_ACTIONS = "rejected the retry in Required Actions"
#: Operators Airflow's decorators create, as people write them in a DAG file (the class name is an
#: implementation detail: `@task` builds a `_PythonDecoratedOperator`).
DECORATED = {
    "_PythonDecoratedOperator": "Python (@task)",
    "_BranchPythonDecoratedOperator": "Python (@task.branch)",
    "_ShortCircuitDecoratedOperator": "Python (@task.short_circuit)",
    "_PythonVirtualenvDecoratedOperator": "Python (@task.virtualenv)",
    "_BranchPythonVirtualenvDecoratedOperator": "Python (@task.branch_virtualenv)",
    "_PythonExternalDecoratedOperator": "Python (@task.external_python)",
    "_BashDecoratedOperator": "Bash (@task.bash)",
    "_DockerDecoratedOperator": "Docker (@task.docker)",
    "_KubernetesDecoratedOperator": "Kubernetes (@task.kubernetes)",
    "_SensorDecoratedOperator": "Sensor (@task.sensor)",
}
_DECORATED = re.compile(r"^_(\w+?)DecoratedOperator$")


def operator_label(operator: str | None) -> str:
    """The task's operator as a person reads it.

    `@task` operators are shown by their decorator ("_PythonDecoratedOperator" -> "Python (@task)";
    other `_XDecoratedOperator` -> "X (@task.x)"); a hook's class name (the excerpt named a hook, not
    the operator) and a missing value say the operator was not recorded; anything else as it is.
    """
    if not operator:
        return "not recorded"
    if operator in DECORATED:
        return DECORATED[operator]
    m = _DECORATED.match(operator)
    if m:
        return f"{m.group(1)} (@task.{m.group(1).lower()})"
    if operator.endswith("Hook"):
        return f"not recorded (the log named the hook {operator})"
    return operator


def _active(answers: list[dict], family: set[str]) -> dict | None:
    return next((a for a in answers if a["answer"] in family and a["undone_at"] is None), None)


def _decision_row(remediations: list[dict]) -> dict | None:
    """The remediation `record_case` wrote with the case: its first one that is not a person's later
    outcome (learning.py and the rejection add those after it)."""
    for r in remediations:
        if r["actor"] in {"doctor", "airflow"} or (
            r["actor"] == "human" and r["decision"] == "approval" and r.get("cleared")
        ):
            return r
    return None


def _approval_for(approvals: list[dict], case: dict | None, box: dict | None) -> dict | None:
    """The Required Actions request about this try among the doctor run's (airflow_facts): the one
    naming the task instance, else the only one."""
    if not approvals:
        return None
    row = case or box or {}
    label = f"{row.get('dag_id')}.{row.get('task_id')}"
    named = [a for a in approvals if label in (a.get("subject") or "")]
    if len(named) == 1:
        return named[0]
    return approvals[0] if len(approvals) == 1 else None


def _person(answer: dict | None) -> str | None:
    return (answer or {}).get("responded_by") or None


def _verdicts(
    decision: dict | None,
    people: list[dict],
    answers: list[dict],
    approval: dict | None,
    policy: list[dict],
    dry_run: bool,
) -> list[dict]:
    """Every verdict on the try and who made it: [{"at", "who", "what"}], oldest first."""
    out: list[dict] = []
    if decision and decision["actor"] == "airflow":
        out.append(
            {
                "at": decision["acted_at"],
                "who": "Airflow's own retry",
                "what": "; ".join(decision["reasons"]) or decision["outcome"],
            }
        )
    elif decision:
        who = "the doctor's gate" + (" (dry run: nothing is cleared)" if dry_run else "")
        out.append({"at": decision["acted_at"], "who": who, "what": f"decided {decision['decision']}"})
    if approval and approval.get("responded_at"):
        person = _person(approval)
        chosen = approval.get("chosen") or "?"
        out.append(
            {
                "at": approval["responded_at"],
                "who": f"{person} in Required Actions" if person else "nobody in Required Actions",
                "what": f"chose {chosen}" if person else f"no answer in time: {chosen} by default",
            }
        )
    elif decision and decision["actor"] == "human":
        out.append(
            {
                "at": decision["acted_at"],
                "who": "a person in Required Actions (name not recorded)",
                "what": "chose Approve",
            }
        )
    for p in people:
        text = "; ".join(p["reasons"]) or p["outcome"]
        if REJECTED_IN_REQUIRED_ACTIONS in text and approval and approval.get("responded_at"):
            continue  # the same answer as Required Actions' row above
        where = (
            "in Required Actions"
            if REJECTED_IN_REQUIRED_ACTIONS in text
            else "outside the doctor (seen by the sweeper)"
        )
        out.append({"at": p["acted_at"], "who": f"a person {where}", "what": text})
    for a in answers:
        label = a["answer"].replace("_", " ") + (f" ({a['error_class']})" if a.get("error_class") else "")
        state = f", undone by {a.get('undone_by') or 'someone'}" if a.get("undone_at") else ""
        out.append(
            {"at": a["answered_at"], "who": f"{a['user_name']} on the Doctor tab", "what": label + state}
        )
    for d in policy:
        out.append(
            {
                "at": d.get("decided_at"),
                "who": "the task's DoctorRetryPolicy",
                "what": f"{d.get('action')}: {d.get('reason') or ''}".rstrip(": "),
            }
        )
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(out, key=lambda v: v["at"] or far)


def _banner(
    decision: dict | None, approval: dict | None, people: list[dict], dry_run: bool, case: dict | None
) -> dict | None:
    """The one-line verdict at the top of the tab: {"cls": "good" | "bad" | "warn" | "", "text"}."""
    if not decision:
        return None
    outcome_text = {
        "succeeded": "the retry succeeded",
        "failed": "the retry failed again",
        "pending": "the retry is running",
        "unverified": "the retry's outcome is unverified",
    }
    verb, outcome = decision["decision"], decision["outcome"]
    when = (approval or {}).get("responded_at")
    if decision["actor"] == "airflow":
        return {
            "cls": "",
            "text": "Airflow's own retry (the doctor decided nothing): "
            + ("; ".join(decision["reasons"]) or outcome)
            + ".",
        }
    if verb == "approval":
        person = _person(approval)
        if decision["actor"] == "human" and decision.get("cleared"):
            who = person or "an engineer (name not recorded)"
            return {
                "cls": "good" if outcome == "succeeded" else ("bad" if outcome == "failed" else "warn"),
                "text": f"Approved by {who} in Required Actions"
                + (f" at {_when(when)}" if when else "")
                + f": cleared for retry; {outcome_text.get(outcome, outcome)}.",
            }
        rejected = next((p for p in people if REJECTED_IN_REQUIRED_ACTIONS in "; ".join(p["reasons"])), None)
        if (approval and approval.get("chosen") == "Reject" and person) or rejected:
            who = person or "; ".join(rejected["reasons"]).replace(f" {REJECTED_IN_REQUIRED_ACTIONS}", "")
            at = when or (rejected or {}).get("acted_at")
            return {
                "cls": "bad",
                "text": f"Rejected by {who} in Required Actions"
                + (f" at {_when(at)}" if at else "")
                + ": left failed, not retried.",
            }
        if approval and approval.get("responded_at"):
            return {
                "cls": "bad",
                "text": "Nobody answered the approval request in time: left failed, not retried.",
            }
        return {"cls": "bad", "text": "Sent for approval; no retry was approved: left failed."}
    if verb == "auto_retry":
        if decision.get("cleared") or (case or {}).get("cleared_at"):
            return {
                "cls": "good" if outcome == "succeeded" else ("bad" if outcome == "failed" else "warn"),
                "text": f"Auto-retried by the doctor: {outcome_text.get(outcome, outcome)}.",
            }
        if dry_run:
            return {
                "cls": "warn",
                "text": "Dry run: the doctor would have retried this try; nothing was cleared.",
            }
        return {
            "cls": "bad",
            "text": "The gate decided auto_retry, but the try was not cleared: left failed.",
        }
    return {"cls": "bad", "text": "Escalated to a human: not retried."}


def _when(at) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "-"


def _similar_rows(similar: list[dict]) -> list[dict]:
    """The similar cases as rows that say what differs (run, date, outcome); rows identical in every
    shown column are merged, with how many they stand for ("count")."""
    rows: dict[tuple, dict] = {}
    for n in similar:
        row = {
            **n,
            "similarity": float(n["similarity"]),
            "link": ui_link(n["dag_id"], n["run_id"], n["task_id"], n["map_index"], page="plugin/doctor")
            if n["kind"] == "observed" and n.get("dag_id") and n.get("run_id") and n.get("task_id")
            else None,
            "verified": _verified_label(n),
        }
        key = (
            row["kind"],
            row.get("error_class"),
            row["verified"],
            row.get("dag_id"),
            row.get("run_id"),
            row.get("task_id"),
            row.get("map_index"),
            row.get("try_number"),
            row.get("runbook_id"),
            round(row["similarity"], 2),
        )
        if key in rows:
            rows[key]["count"] += 1
        else:
            rows[key] = {**row, "count": 1}
    return list(rows.values())


def tab_view(
    held: dict,
    details: dict | None,
    try_number: int | None = None,
    *,
    airflow: dict | None = None,
    policy: list[dict] | None = None,
    user: str | None = None,
) -> dict:
    """The Doctor tab of one task instance.

    Args:
        held: `UIStore.task_instance_cases` ({"cases", "inbox", "notifications"}).
        details: `UIStore.case_details` of the selected case (None when there is none).
        try_number: the try asked for; None selects the newest try the doctor handled.
        airflow: what Airflow's metadata holds about the doctor run of the selected try
            (`airflow_facts.doctor_run_facts`: {"dry_run": bool, "approvals": [...], "pending":
            {"diagnosis", "decision"} | None}, and "operator": Airflow's record of the task
            instance's operator, `airflow_facts.task_operator`); None when unknown.
        policy: the task's DoctorRetryPolicy decisions of this task instance
            (`UIStore.policy_decisions_of`), any try.
        user: the signed-in person's user name (Undo is offered on their own latest answer only).
    Returns:
        {"state": "never_seen" | "queued" | "in_progress" | "awaiting_approval" | "dry_run"
        (a dry run handled it: nothing was recorded, the gate's verdict is from its XComs) | "handled",
        "tries": [int], "try_number", "case" | None, "inbox" | None, "operator" (str),
        "primary_error", "excerpt_lines": [{"text", "evidence": bool}], "diagnosis" | None,
        "similar": [rows, see _similar_rows], "decision" (the gate's remediation with "reasons") |
        None, "banner" ({"cls", "text"}) | None, "verdicts": [{"at", "who", "what"}], "people",
        "answers", "verdict" / "right_class" (active answers) | None, "approval" (the Required
        Actions request) | None, "policy": [...], "can_retry": bool, "undo_id": int | None,
        "timeline": [{"at": datetime | None, "what": str}], "doctor_run_id" | None}.
    """
    airflow = airflow or {}
    policy_all = policy or []
    cases, inbox = held["cases"], held["inbox"]
    tries = sorted(
        {c["try_number"] for c in cases}
        | {i["try_number"] for i in inbox}
        | {int(p["try_number"]) for p in policy_all if p.get("try_number") is not None}
    )
    selected = try_number if try_number in tries else (tries[-1] if tries else None)
    case = next((c for c in cases if c["try_number"] == selected), None)
    box = next((i for i in inbox if i["try_number"] == selected), None)
    policy_rows = [p for p in policy_all if p.get("try_number") == selected]
    approval = _approval_for(airflow.get("approvals") or [], case, box)
    view: dict = {
        "tries": tries,
        "try_number": selected,
        "case": case,
        "inbox": box,
        "operator": operator_label(airflow.get("operator") or (case or {}).get("operator")),
        "primary_error": None,
        "excerpt_lines": [],
        "diagnosis": None,
        "similar": [],
        "decision": None,
        "banner": None,
        "verdicts": [],
        "people": [],
        "answers": [],
        "verdict": None,
        "right_class": None,
        "approval": approval,
        "policy": policy_rows,
        "can_retry": False,
        "undo_id": None,
        "timeline": [],
        "doctor_run_id": (case or {}).get("doctor_run_id") or (box or {}).get("claimed_by"),
    }
    if case is None:
        view["state"] = (
            "never_seen" if box is None else ("queued" if not box.get("claimed_by") else "in_progress")
        )
        pending = airflow.get("pending") or {}
        waiting = approval and not approval.get("responded_at")
        if box is not None and box.get("claimed_by") and (waiting or (airflow.get("dry_run") and pending)):
            view["state"] = "awaiting_approval" if waiting else "dry_run"
            view["diagnosis"] = _diagnosis(pending.get("diagnosis"))
            if pending.get("decision"):
                view["decision"] = {
                    "decision": pending["decision"].get("verdict"),
                    "reasons": [str(x) for x in pending["decision"].get("reasons") or []],
                    "similarity": pending["decision"].get("similarity"),
                    "acted_at": None,
                    "actor": "doctor",
                }
        view["verdicts"] = _verdicts(None, [], [], approval, policy_rows, False)
        view["timeline"] = _timeline(case, box, None, [], [], _sent(held, selected), approval, policy_rows)
        return view
    details = details or {"diagnoses": [], "remediations": [], "answers": [], "similar": []}
    view["state"] = "handled"
    diagnosis = _diagnosis(details["diagnoses"][0] if details["diagnoses"] else None)
    view["diagnosis"] = diagnosis
    evidence = {e.strip() for e in (diagnosis or {}).get("evidence", []) if e.strip()}
    view["primary_error"] = primary_error(case.get("excerpt"))
    view["excerpt_lines"] = [
        {"text": line, "evidence": bool(line.strip()) and line.strip() in evidence}
        for line in (case.get("excerpt") or "").splitlines()
    ]
    remediations = [
        {**r, "reasons": [str(x) for x in _as_list(r.get("reasons"))]} for r in details["remediations"]
    ]
    decision = _decision_row(remediations)
    dry_run = bool(airflow.get("dry_run"))
    view["decision"] = decision
    view["people"] = [r for r in remediations if r["actor"] == "human" and r is not decision]
    view["answers"] = details["answers"]
    view["verdict"] = _active(details["answers"], {"transient", "permanent"})
    view["right_class"] = _active(details["answers"], {"wrong_class"})
    view["banner"] = _banner(decision, approval, view["people"], dry_run, case)
    view["verdicts"] = _verdicts(decision, view["people"], details["answers"], approval, policy_rows, dry_run)
    view["similar"] = _similar_rows(details["similar"])
    cleared = (
        bool(case.get("cleared_at"))
        or any(r.get("cleared") for r in remediations)
        or any(a.get("cleared") for a in details["answers"])
    )
    view["can_retry"] = not cleared and selected == tries[-1]
    view["undo_id"] = undoable_answer(details["answers"], user)
    view["timeline"] = _timeline(
        case, box, diagnosis, remediations, details["answers"], _sent(held, selected), approval, policy_rows
    )
    return view


def undoable_answer(answers: list[dict], user: str | None) -> int | None:
    """The id of the answer `user` may undo on this case: the case's newest answer (any person's),
    when it is still in force and was given by `user`; None otherwise.

    Args:
        answers: the case's answers, newest first (`UIStore.answers_of`).
    """
    if not answers or not user:
        return None
    newest = answers[0]
    return newest["id"] if newest["undone_at"] is None and newest["user_name"] == user else None


def _diagnosis(row: dict | None) -> dict | None:
    if not row:
        return None
    return {
        **row,
        "fix_steps": _as_list(row.get("fix_steps")),
        "evidence": [str(e) for e in _as_list(row.get("evidence"))],
    }


def _sent(held: dict, try_number: int | None) -> list[dict]:
    """The messages sent about the selected try (held["notifications"], if the store gave them)."""
    return [n for n in held.get("notifications") or [] if n["try_number"] == try_number]


def _verified_label(n: dict) -> str:
    """What is known of a neighbour's outcome, in words a person reads."""
    if n["kind"] == "runbook":
        return "runbook entry"
    if n.get("answer") == "permanent":
        return "a person said permanent"
    if n.get("answer") == "transient":
        return "a person said transient"
    who = {"human": "a person's", "airflow": "Airflow's"}.get(n.get("actor") or "", "the doctor's")
    return {
        "succeeded": f"{who} retry succeeded",
        "failed": f"{who} retry failed again",
        "escalated": "escalated, left failed",
        "pending": "retry in flight",
        "unverified": "retried, outcome unverified",
        "fixed_by_change": "fixed by a change of the DAG",
        "fixed_by_person": "fixed by a person",
    }.get(n.get("outcome") or "", "no outcome yet")


def _timeline(case, box, diagnosis, remediations, answers, sent=(), approval=None, policy=()) -> list[dict]:
    """The events of one failed try in the order they happened; events without a time come last.

    Times are when each event happened, except the diagnosis and the gate's decision, which the
    doctor records together with the case after it acted: they happened before the try was cleared
    (the clear follows from them), so they are placed before the clear and say when they were
    recorded.
    """
    events: list[dict] = []

    def add(at, what, key=None):
        events.append({"at": at, "what": what, "key": key or at})

    for n in sent:
        kind = {"digest": "digest", "approval_request": "approval request"}.get(n["kind"], "message")
        add(n["sent_at"], f"{kind} sent: \u201c{n['subject']}\u201d (email {n['email']}, Slack {n['slack']})")

    if box:
        add(box.get("failed_at"), f"try {box['try_number']} failed")
        add(box.get("received_at"), f"reported to the doctor by the {box['source']}")
        if box.get("claimed_at"):
            add(box["claimed_at"], f"claimed by doctor run {box['claimed_by']}")
    elif case:
        add(case.get("failed_at"), f"try {case['try_number']} failed")
    # What happened first bounds when the diagnosis and the decision were made.
    acted = [
        t
        for t in (
            (case or {}).get("cleared_at"),
            (approval or {}).get("created_at"),
        )
        if t
    ]
    before = min(acted) - timedelta(microseconds=1) if acted else None

    def made(recorded):
        if recorded and before and recorded > before:
            return before, f" (made before it was acted on; recorded at {_when(recorded)})"
        return recorded, ""

    if diagnosis:
        who = diagnosis["diagnoser"] + (f", {diagnosis['model']}" if diagnosis.get("model") else "")
        key, note = made(diagnosis["created_at"])
        events.append(
            {
                "at": None if note else diagnosis["created_at"],
                "key": key,
                "what": f"diagnosis ({who}): {diagnosis['error_class']}, "
                f"confidence {float(diagnosis['confidence']):.2f}{note}",
            }
        )
    if approval:
        add(approval.get("created_at"), "approval requested in Required Actions")
        if approval.get("responded_at"):
            person = approval.get("responded_by")
            add(
                approval["responded_at"],
                f"{person} chose {approval.get('chosen') or '?'} in Required Actions"
                if person
                else f"nobody answered in time ({approval.get('chosen') or 'Reject'} by default)",
            )
    decision = _decision_row(remediations)
    for r in remediations:
        if r is decision and r["actor"] != "airflow":
            key, note = made(r["acted_at"])
            events.append(
                {
                    "at": None if note else r["acted_at"],
                    "key": key,
                    "what": f"the gate decided {r['decision']}{note}",
                }
            )
        elif r["actor"] == "airflow":
            add(r["acted_at"], "Airflow's own retry: " + "; ".join(r["reasons"][:1] or [r["outcome"]]))
        else:
            add(r["acted_at"], "a person: " + "; ".join(r["reasons"][:1] or [r["outcome"]]))
        if r.get("verified_at") and r["outcome"] in {"succeeded", "failed", "unverified"}:
            what = {
                "succeeded": "the retried try succeeded",
                "failed": "the retried try failed again",
                "unverified": "gave up waiting for the retried try",
            }[r["outcome"]]
            ended = r.get("retry_ended_at") if r["outcome"] != "unverified" else None
            if ended:
                # When it ended by Airflow's clock (migration 009), not when the doctor saw it: a
                # verify_retry deferred while the triggerer was stopped sees it minutes late.
                if r.get("heal_seconds") is not None:
                    what += f", {float(r['heal_seconds']):.1f} s after the failure (Airflow's timestamps)"
                late = (r["verified_at"] - ended).total_seconds()
                if late > LATE_AFTER_SECONDS:
                    what += f"; the doctor saw it {late:.0f} s later, at {_when(r['verified_at'])}"
            add(ended or r["verified_at"], what)
    if case and case.get("cleared_at"):
        add(case["cleared_at"], "cleared for retry through the REST API")
    for a in answers:
        label = a["answer"].replace("_", " ") + (f" ({a['error_class']})" if a.get("error_class") else "")
        add(a["answered_at"], f"{a['user_name']} answered on the Doctor tab: {label}")
        if a.get("undone_at"):
            add(a["undone_at"], f"{a.get('undone_by') or 'someone'} undid: {label}")
    for d in policy:
        add(
            d.get("decided_at"),
            f"the task's DoctorRetryPolicy: {d.get('action')}: {d.get('reason') or ''}".rstrip(": "),
        )
    far = datetime.max.replace(tzinfo=UTC)
    return [
        {"at": e["at"], "what": e["what"], "before": None if e["at"] else e["key"]}
        for e in sorted(events, key=lambda e: e["key"] or far)
    ]


# -- the dashboard -------------------------------------------------------------------------------


def delivery_health(sent: dict) -> dict[str, str]:
    """The dashboard's "last hour" rows for email and Slack, from UIStore.delivery_failures.

    Returns:
        {"email, last hour": str, "Slack, last hour": str}; a row starts with "unreachable" (shown
        as degraded) when at least one delivery on that channel failed.
    """
    n = int(sent.get("messages") or 0)
    out = {}
    for channel, key in (("email", "email_failed"), ("Slack", "slack_failed")):
        failed = int(sent.get(key) or 0)
        out[f"{channel}, last hour"] = (
            f"unreachable for {failed} of {n} message(s) sent"
            if failed
            else f"{n} message(s) sent, none failed"
        )
    return out


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


#: Engineer minutes one page costs (reading the alert, opening the log, deciding the failure was
#: transient and clearing the task), for the dashboard's "engineer minutes saved". An assumption of
#: this project, not a measurement (docs/ui.md, "The Doctor dashboard"): set the environment variable
#: DOCTOR_UI_MINUTES_PER_PAGE on the API server to your team's own figure.
MINUTES_PER_PAGE_DEFAULT = 15.0


def minutes_per_page() -> float:
    """`DOCTOR_UI_MINUTES_PER_PAGE` (minutes, > 0), else MINUTES_PER_PAGE_DEFAULT (also for a bad value)."""
    import os

    try:
        value = float(os.environ.get("DOCTOR_UI_MINUTES_PER_PAGE") or MINUTES_PER_PAGE_DEFAULT)
    except ValueError:
        return MINUTES_PER_PAGE_DEFAULT
    return value if value > 0 else MINUTES_PER_PAGE_DEFAULT


def _heal_seconds(row: dict) -> float | None:
    """Failure to healed: Airflow's own times when recorded (remediations.heal_seconds, migration
    009: the failed try's end to the retried try's end), else the failure to the verification."""
    if row.get("heal_seconds") is not None:
        return float(row["heal_seconds"])
    if row.get("verified_at") and row.get("failed_at"):
        return (row["verified_at"] - row["failed_at"]).total_seconds()
    return None


def _approved(row: dict) -> bool:
    return row["decision"] == "approval" and row.get("decided_by") == "human" and bool(row["cleared"])


def _outcome_label(row: dict) -> str:
    """What became of a dashboard case, in words: who decided and how it ended."""
    if row.get("answer") == "permanent":
        return "permanent (a person)"
    retry = {"succeeded": "healed", "failed": "retry failed", "unverified": "retry unverified"}
    if row["decision"] == "auto_retry":
        if not row["cleared"]:
            return "auto_retry, not cleared"
        return retry.get(row["outcome"], "retry in flight")
    if row["decision"] == "approval":
        if _approved(row):
            return "approved: " + retry.get(row["outcome"], "retry in flight")
        if row.get("rejected"):
            return "rejected by a person"
        return "approval not answered in time"
    if row["decision"] == "escalate":
        return "escalated"
    return "not decided"


def dashboard_figures(
    rows: list[dict], since: datetime, until: datetime, policy: list[dict] | None = None
) -> dict:
    """The Doctor dashboard's figures from `UIStore.dashboard_cases` rows.

    Args:
        rows: the cases in the range (each: decision, decided_by (the actor of the decision row:
            "doctor", or "human" for a retry approved in Required Actions), cleared, outcome,
            rejected, verified_at, failed_at, created_at, fingerprint, error_class, diagnoser, token
            counts, answer, run_id, map_index, try_number).
        since, until: the range (timezone-aware); the counts-over-time chart has one bucket per hour
            for a range up to 2 days, else one per day.
        policy: the DoctorRetryPolicy decisions in the range (`UIStore.policy_decisions`), each with
            "action" and "healed" (bool).
    Returns:
        {"failures_seen", "auto_healed" (the doctor's auto-retries that held), "approved_healed",
        "escalated", "approvals": {"total", "approved", "rejected", "unanswered"},
        "retries_held": {"held", "failed", "share" | None} (every verified retry: the doctor's and
        approved ones), "time_to_heal": {"n", "p50_s", "p95_s"}, "policy": {"decisions", "healed",
        "by_action"}, "pages_avoided", "minutes_per_page", "minutes_saved", "llm": {"calls",
        "input_tokens", "output_tokens", "cached_tokens", "cost_usd"}, "top_fingerprints":
        [{"fingerprint", "error_class", "count", "dags", "outcomes": {label: n}, "latest_case_id"}]
        (at most 10), "series": {"labels", "healed", "escalated", "other"}, "tth_histogram"}.
    """
    policy = policy or []
    healed = [
        r
        for r in rows
        if r["decision"] in {"auto_retry", "approval"}
        and r["cleared"]
        and r["outcome"] == "succeeded"
        and (r["decision"] == "auto_retry" or _approved(r))
    ]
    auto_healed = [r for r in healed if r["decision"] == "auto_retry"]
    verified = [r for r in rows if r["cleared"] and r["outcome"] in {"succeeded", "failed"}]
    held = sum(r["outcome"] == "succeeded" for r in verified)
    heal_times = [t for t in (_heal_seconds(r) for r in healed) if t is not None]
    llm = [r for r in rows if r.get("diagnoser") == "llm"]
    tokens = {
        k: sum(int(r.get(k) or 0) for r in llm) for k in ("input_tokens", "output_tokens", "cached_tokens")
    }
    cost = (
        tokens["input_tokens"] * PRICE_INPUT
        + tokens["output_tokens"] * PRICE_OUTPUT
        + tokens["cached_tokens"] * PRICE_CACHED
    ) / 1e6

    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("fingerprint"):
            groups[r["fingerprint"]].append(r)
    top = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]

    hourly = until - since <= timedelta(days=2)
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    start = since.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        start = start.replace(hour=0)
    n_buckets = max(1, min(400, math.ceil((until - start) / step)))
    labels = [(start + i * step).strftime("%m-%d %H:00" if hourly else "%Y-%m-%d") for i in range(n_buckets)]
    series = {
        "labels": labels,
        "healed": [0] * n_buckets,
        "escalated": [0] * n_buckets,
        "other": [0] * n_buckets,
    }
    for r in rows:
        i = int((r["created_at"] - start) / step)
        if 0 <= i < n_buckets:
            label = _outcome_label(r)
            key = "healed" if label.endswith("healed") else ("escalated" if label == "escalated" else "other")
            series[key][i] += 1

    hist = [0] * len(TTH_BUCKETS)
    for t in heal_times:
        hist[next(i for i, (bound, _) in enumerate(TTH_BUCKETS) if t < bound)] += 1

    asked = [r for r in rows if r["decision"] == "approval"]
    approved = [r for r in asked if _approved(r)]
    rejected = [r for r in asked if not _approved(r) and r.get("rejected")]
    policy_healed = sum(bool(p.get("healed")) for p in policy)
    pages_avoided = len(auto_healed) + policy_healed
    per_page = minutes_per_page()
    return {
        "failures_seen": len(rows),
        "auto_healed": len(auto_healed),
        "approved_healed": len(healed) - len(auto_healed),
        "escalated": sum(r["decision"] == "escalate" for r in rows),
        "approvals": {
            "total": len(asked),
            "approved": len(approved),
            "rejected": len(rejected),
            "unanswered": len(asked) - len(approved) - len(rejected),
        },
        "retries_held": {
            "held": held,
            "failed": len(verified) - held,
            "share": held / len(verified) if verified else None,
        },
        "time_to_heal": {
            "n": len(heal_times),
            "p50_s": percentile(heal_times, 50),
            "p95_s": percentile(heal_times, 95),
        },
        "policy": {
            "decisions": len(policy),
            "healed": policy_healed,
            "by_action": dict(Counter(str(p.get("action")) for p in policy).most_common()),
        },
        "pages_avoided": pages_avoided,
        "minutes_per_page": per_page,
        "minutes_saved": pages_avoided * per_page,
        "llm": {"calls": len(llm), **tokens, "cost_usd": cost},
        "top_fingerprints": [
            {
                "fingerprint": fp,
                "error_class": next((r["error_class"] for r in members if r.get("error_class")), None),
                "count": len(members),
                "dags": sorted({r["dag_id"] for r in members}),
                "outcomes": dict(Counter(_outcome_label(r) for r in members).most_common()),
                "latest_case_id": max(members, key=lambda r: (r["created_at"], r["id"]))["id"],
            }
            for fp, members in top
        ],
        "series": series,
        "tth_histogram": {"labels": [label for _, label in TTH_BUCKETS], "counts": hist},
    }


def latest_cases(top: list[dict], cases: list[dict]) -> list[dict]:
    """The top fingerprints with their latest case: its redacted primary error ("error") and a link
    to its Doctor tab ("link").

    Args:
        top: dashboard_figures()["top_fingerprints"].
        cases: `UIStore.cases_by_id` of their latest_case_id (id, dag_id, run_id, task_id,
            map_index, try_number, excerpt: redacted before it was stored).
    """
    by_id = {c["id"]: c for c in cases}
    out = []
    for t in top:
        c = by_id.get(t["latest_case_id"])
        out.append(
            {
                **t,
                "error": primary_error(c.get("excerpt")) if c else None,
                "link": tab_link(c) if c else None,
                "latest": f"{c['dag_id']}.{c['task_id']}, run {c['run_id']}, try {c['try_number']}"
                if c
                else None,
            }
        )
    return out


def tab_link(row: dict) -> str:
    """The Airflow UI path of a case's Doctor tab (its task instance's plugin view)."""
    return ui_link(row["dag_id"], row["run_id"], row["task_id"], row.get("map_index"), page="plugin/doctor")


def open_escalations(rows: list[dict], now: datetime, still_failed: set | None = None) -> list[dict]:
    """Escalations waiting on people, oldest first, with their age and a link to the Doctor tab.

    Args:
        rows: `UIStore.open_escalations` (dag_id, run_id, task_id, map_index, try_number,
            escalated_at, decision, error_class).
        now: the time ages are measured to.
        still_failed: the task instance keys (dag_id, run_id, task_id, map_index, try_number) Airflow
            still shows failed at that try (`airflow_facts.still_failed`); None when unknown (every
            row is kept).
    Returns:
        [{**row, "age_s": float, "link": str}].
    """
    out = []
    for r in rows:
        key = (r["dag_id"], r["run_id"], r["task_id"], r["map_index"], r["try_number"])
        if still_failed is not None and key not in still_failed:
            continue
        out.append({**r, "age_s": (now - r["escalated_at"]).total_seconds(), "link": tab_link(r)})
    return sorted(out, key=lambda r: -r["age_s"])


def health_summary(health: dict[str, str]) -> dict:
    """The heading of the dashboard's health section: {"ok": bool, "text": str}; ok when no part
    is unreachable or unhealthy ("not configured" parts degrade the doctor by design)."""
    bad = [k for k, v in health.items() if v.startswith("unreachable") or "unhealthy" in v]
    if not bad:
        return {"ok": True, "text": "every part reachable"}
    return {"ok": False, "text": f"{len(bad)} part(s) not reachable: {', '.join(bad)}"}

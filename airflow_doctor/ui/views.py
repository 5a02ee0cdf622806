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


def _active(answers: list[dict], family: set[str]) -> dict | None:
    return next((a for a in answers if a["answer"] in family and a["undone_at"] is None), None)


def tab_view(held: dict, details: dict | None, try_number: int | None = None) -> dict:
    """The Doctor tab of one task instance.

    Args:
        held: `UIStore.task_instance_cases` ({"cases", "inbox"}).
        details: `UIStore.case_details` of the selected case (None when there is none).
        try_number: the try asked for; None selects the newest try the doctor handled.
    Returns:
        {"state": "never_seen" | "queued" | "in_progress" | "handled", "tries": [int], "try_number",
        "case" (the selected case row) | None, "inbox" (its inbox row) | None, "primary_error",
        "excerpt_lines": [{"text", "evidence": bool}], "diagnosis" | None, "similar": [...],
        "decision" (the doctor's remediation with "reasons": [str]) | None, "people": [human
        remediations], "answers": [...], "verdict" / "right_class" (active answers) | None,
        "timeline": [{"at": datetime | None, "what": str}], "doctor_run_id" | None}.
    """
    cases, inbox = held["cases"], held["inbox"]
    tries = sorted({c["try_number"] for c in cases} | {i["try_number"] for i in inbox})
    selected = try_number if try_number in tries else (tries[-1] if tries else None)
    case = next((c for c in cases if c["try_number"] == selected), None)
    box = next((i for i in inbox if i["try_number"] == selected), None)
    view: dict = {
        "tries": tries,
        "try_number": selected,
        "case": case,
        "inbox": box,
        "primary_error": None,
        "excerpt_lines": [],
        "diagnosis": None,
        "similar": [],
        "decision": None,
        "people": [],
        "answers": [],
        "verdict": None,
        "right_class": None,
        "timeline": [],
        "doctor_run_id": (case or {}).get("doctor_run_id") or (box or {}).get("claimed_by"),
    }
    if case is None:
        view["state"] = (
            "never_seen" if box is None else ("queued" if not box.get("claimed_by") else "in_progress")
        )
        view["timeline"] = _timeline(case, box, None, [], [], _sent(held, selected))
        return view
    details = details or {"diagnoses": [], "remediations": [], "answers": [], "similar": []}
    view["state"] = "handled"
    diagnosis = details["diagnoses"][0] if details["diagnoses"] else None
    if diagnosis:
        diagnosis = {
            **diagnosis,
            "fix_steps": _as_list(diagnosis.get("fix_steps")),
            "evidence": [str(e) for e in _as_list(diagnosis.get("evidence"))],
        }
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
    view["decision"] = next((r for r in remediations if r["actor"] == "doctor"), None)
    view["people"] = [r for r in remediations if r["actor"] == "human"]
    view["answers"] = details["answers"]
    view["verdict"] = _active(details["answers"], {"transient", "permanent"})
    view["right_class"] = _active(details["answers"], {"wrong_class"})
    view["similar"] = [
        {
            **n,
            "similarity": float(n["similarity"]),
            "link": ui_link(n["dag_id"], n["run_id"], n["task_id"], n["map_index"])
            if n["kind"] == "observed" and n.get("dag_id") and n.get("run_id") and n.get("task_id")
            else None,
            "verified": _verified_label(n),
        }
        for n in details["similar"]
    ]
    view["timeline"] = _timeline(
        case, box, diagnosis, remediations, details["answers"], _sent(held, selected)
    )
    return view


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
    who = "a person's" if n.get("actor") == "human" else "the doctor's"
    return {
        "succeeded": f"{who} retry succeeded",
        "failed": f"{who} retry failed again",
        "escalated": "escalated, left failed",
        "pending": "retry in flight",
        "unverified": "retried, outcome unverified",
    }.get(n.get("outcome") or "", "no outcome yet")


def _timeline(case, box, diagnosis, remediations, answers, sent=()) -> list[dict]:
    """The events of one failed try, oldest first; events without a time come last."""
    events: list[dict] = []

    def add(at, what):
        events.append({"at": at, "what": what})

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
    if diagnosis:
        who = diagnosis["diagnoser"] + (f", {diagnosis['model']}" if diagnosis.get("model") else "")
        add(
            diagnosis["created_at"],
            f"diagnosis recorded ({who}): {diagnosis['error_class']}, "
            f"confidence {float(diagnosis['confidence']):.2f}",
        )
    for r in remediations:
        actor = "the doctor" if r["actor"] == "doctor" else "a person"
        if r["actor"] == "doctor":
            add(
                r["acted_at"],
                f"decision recorded: {r['decision']}" + (", the try was cleared" if r["cleared"] else ""),
            )
        else:
            add(r["acted_at"], f"{actor}: " + "; ".join(r["reasons"][:1] or [r["outcome"]]))
        if r.get("verified_at") and r["outcome"] in {"succeeded", "failed", "unverified"}:
            add(
                r["verified_at"],
                {
                    "succeeded": "the retried try succeeded",
                    "failed": "the retried try failed again",
                    "unverified": "gave up waiting for the retried try",
                }[r["outcome"]],
            )
    if case and case.get("cleared_at"):
        add(case["cleared_at"], "cleared for retry through the REST API")
    for a in answers:
        label = a["answer"].replace("_", " ") + (f" ({a['error_class']})" if a.get("error_class") else "")
        add(a["answered_at"], f"{a['user_name']} answered: {label}")
        if a.get("undone_at"):
            add(a["undone_at"], f"{a.get('undone_by') or 'someone'} undid: {label}")
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(events, key=lambda e: e["at"] or far)


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


def _outcome_label(row: dict) -> str:
    if row.get("answer") == "permanent":
        return "permanent (a person)"
    if row["decision"] == "auto_retry":
        return {"succeeded": "healed", "failed": "retry failed"}.get(row["outcome"], "retry in flight")
    if row["decision"] == "approval":
        return "approval"
    if row["decision"] == "escalate":
        return "escalated"
    return "not decided"


def dashboard_figures(rows: list[dict], since: datetime, until: datetime) -> dict:
    """The Doctor dashboard's figures from `UIStore.dashboard_cases` rows.

    Args:
        rows: the cases in the range (each: decision, cleared, outcome, verified_at, failed_at,
            created_at, fingerprint, error_class, diagnoser, token counts, answer).
        since, until: the range (timezone-aware); the counts-over-time chart has one bucket per hour
            for a range up to 2 days, else one per day.
    Returns:
        {"failures_seen", "auto_healed", "escalated", "approvals", "retries_held": {"held", "failed",
        "share" | None}, "time_to_heal": {"n", "p50_s", "p95_s"}, "llm": {"calls", "input_tokens",
        "output_tokens", "cached_tokens", "cost_usd"}, "top_fingerprints": [{"fingerprint",
        "error_class", "count", "outcomes": {label: n}}] (at most 10), "series": {"labels": [str],
        "healed": [int], "escalated": [int], "other": [int]}, "tth_histogram": {"labels", "counts"}}.
    """
    healed = [r for r in rows if r["decision"] == "auto_retry" and r["outcome"] == "succeeded"]
    verified = [r for r in rows if r["cleared"] and r["outcome"] in {"succeeded", "failed"}]
    held = sum(r["outcome"] == "succeeded" for r in verified)
    heal_times = [
        (r["verified_at"] - r["failed_at"]).total_seconds()
        for r in healed
        if r.get("verified_at") and r.get("failed_at")
    ]
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
            key = "healed" if label == "healed" else ("escalated" if label == "escalated" else "other")
            series[key][i] += 1

    hist = [0] * len(TTH_BUCKETS)
    for t in heal_times:
        hist[next(i for i, (bound, _) in enumerate(TTH_BUCKETS) if t < bound)] += 1

    return {
        "failures_seen": len(rows),
        "auto_healed": len(healed),
        "escalated": sum(r["decision"] == "escalate" for r in rows),
        "approvals": sum(r["decision"] == "approval" for r in rows),
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
        "llm": {"calls": len(llm), **tokens, "cost_usd": cost},
        "top_fingerprints": [
            {
                "fingerprint": fp,
                "error_class": next((r["error_class"] for r in members if r.get("error_class")), None),
                "count": len(members),
                "dags": sorted({r["dag_id"] for r in members}),
                "outcomes": dict(Counter(_outcome_label(r) for r in members).most_common()),
            }
            for fp, members in top
        ],
        "series": series,
        "tth_histogram": {"labels": [label for _, label in TTH_BUCKETS], "counts": hist},
    }

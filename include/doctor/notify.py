"""Notifications: what the doctor found and did, by email (SMTP provider) and Slack (Slack provider).

Email goes through connection `doctor_smtp` as multipart/alternative (plain text and HTML); Slack
through an incoming-webhook connection (`doctor_slack`, or one per DAG tag from Variable
`doctor_slack_connections`) with Block Kit. Recipients come from Variable `doctor_recipients`
(per dag_id), else the DAG's default_args["email"], else `doctor_email_to`. Each channel is tried
with bounded retries and backoff; a failed channel is logged and never stops the other or the
doctor. A missing connection skips its channel with a log line.

When to send (Variable `doctor_notify_on_retry`): always on escalation and approval requests; an
auto-retry gets one message when the retried try has ended ("outcome", the default), also one when
the clear is issued ("both"), or none ("none").
"""

from __future__ import annotations

import html
import logging
import time
from collections import Counter
from collections.abc import Callable
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import quote

from include.doctor.config import SLACK_CONN_ID, SMTP_CONN_ID, DoctorSettings, connection_exists
from include.doctor.config import settings as load_settings
from include.doctor.models import FailureRef

log = logging.getLogger(__name__)

CHANNEL_ATTEMPTS = 3
CHANNEL_BACKOFF_SECONDS = 1.0  # doubled per attempt: 1 s, 2 s


def _ui_base() -> str:
    try:
        from airflow.configuration import conf

        return conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")
    except Exception:  # noqa: BLE001
        return "http://localhost:8080"


def links(ref: FailureRef, doctor_run_id: str | None) -> dict[str, str]:
    """UI links: the failed try's log and the doctor run that handled it."""
    base = _ui_base()
    ti_path = f"/dags/{quote(ref.dag_id)}/runs/{quote(ref.run_id)}/tasks/{quote(ref.task_id)}"
    if ref.map_index >= 0:
        ti_path += f"/mapped/{ref.map_index}"
    out = {"log": f"{base}{ti_path}?try_number={ref.try_number}"}
    if doctor_run_id:
        out["doctor_run"] = f"{base}/dags/doctor/runs/{quote(doctor_run_id)}"
    return out


def headline(
    decision: dict, remediation: dict | None, escalation: dict | None, verification: dict | None
) -> str:
    """The verdict as people read it: auto-retried (and how it went), escalated, approval requested."""
    if remediation and remediation.get("cleared"):
        who = "retried (approved)" if remediation.get("actor") == "human" else "auto-retried"
        outcome = (verification or {}).get("outcome")
        return f"{who}, {outcome}" if outcome else who
    if decision.get("verdict") == "approval" and not escalation:
        return "approval requested"
    return "escalated"


def diagnosis_fields(diagnosis_result: dict | None) -> list[tuple[str, str]]:
    """The diagnosis as (label, value) fields: class and root cause, transient, action, confidence."""
    diag = (diagnosis_result or {}).get("diagnosis")
    if not diag:
        error = (diagnosis_result or {}).get("error") or "the diagnosis stage did not run"
        return [("Diagnosis", f"none: {error}")]
    diagnoser = (diagnosis_result or {}).get("diagnoser") or "offline"
    label = {
        "offline": "offline diagnosis (no LLM configured)",
        "memory": "recognised from memory, no LLM call",
    }.get(diagnoser, f"LLM diagnosis ({diag.get('model')})")
    return [
        ("Diagnosis", f"{diag['error_class']}: {diag.get('root_cause') or ''}"),
        ("Transient", "yes" if diag["transient"] else "no"),
        ("Recommended action", str(diag["recommended_action"])),
        ("Confidence", f"{diag['confidence']:.2f} ({label})"),
    ]


def _error_line(excerpt: dict | None) -> str | None:
    if excerpt and (excerpt.get("exception_type") or excerpt.get("message")):
        return f"{excerpt.get('exception_type') or 'Error'}: {excerpt.get('message', '')}"[:300]
    return None


def _similar(memory: dict | None) -> list[str]:
    return [
        f"{n.get('similarity', 0):.2f} {n.get('kind')} {n.get('error_class')} "
        f"(transient={n.get('transient')}, outcome={n.get('outcome')})"
        for n in (memory or {}).get("neighbours", [])[:3]
    ]


def build_message(
    ref: FailureRef,
    excerpt: dict | None,
    diagnosis_result: dict | None,
    decision: dict | None,
    memory: dict | None,
    remediation: dict | None,
    doctor_run_id: str | None,
    escalation: dict | None = None,
    verification: dict | None = None,
) -> dict[str, Any]:
    """The content of both channels, as plain data.

    Returns:
        dict with subject, verdict, fields (list of (label, value)), fix_steps, similar (list of
        str), evidence (list of str), links, text (the plain-text body).
    """
    diag = (diagnosis_result or {}).get("diagnosis")
    decision = decision or {"verdict": "escalate", "reasons": ["the gate did not run"]}
    verdict = headline(decision, remediation, escalation, verification)
    fields: list[tuple[str, str]] = [
        ("Task instance", f"{ref.label}, run {ref.run_id}, try {ref.try_number}")
    ]
    fields += diagnosis_fields(diagnosis_result)
    if decision.get("similarity") is not None:
        fields.append(("Similarity", f"{decision['similarity']:.2f} (best match in the knowledge base)"))
    if remediation and remediation.get("cleared"):
        action = "Cleared the task instance for retry" + (
            " (approved by an engineer)" if remediation.get("actor") == "human" else ""
        )
        if verification:
            action += f"; the retried try {verification.get('try_number')} ended {verification.get('state')}"
    elif verdict == "approval requested":
        action = "Waiting for an engineer to approve or reject a retry (Required Actions in the Airflow UI)"
    else:
        action = "Left failed for a human: " + ((escalation or {}).get("why") or "escalated")
    fields.append(("Action taken", action))
    fields.append(("Why", "; ".join(decision.get("reasons", []))))
    clears = (memory or {}).get("doctor_clears")
    if clears:
        fields.append(("History", f"the doctor already cleared this task instance {clears} time(s)"))
    if _error_line(excerpt):
        fields.append(("Error", _error_line(excerpt)))
    similar = _similar(memory)
    link = links(ref, doctor_run_id)
    subject = f"[airflow-doctor] {verdict}: {ref.dag_id}.{ref.task_id}"
    if diag:
        subject += f" ({diag['error_class']})"
    tail = [f"Log: {link['log']}"] + ([f"Doctor run: {link['doctor_run']}"] if "doctor_run" in link else [])
    return _assemble(subject, verdict, fields, diag, similar, link, tail)


def _assemble(
    subject: str,
    verdict: str,
    fields: list[tuple[str, str]],
    diag: dict | None,
    similar: list[str],
    link: dict[str, str],
    tail: list[str],
) -> dict[str, Any]:
    """A message as plain data; its text is the fields, fix steps, similar cases, then `tail`."""
    text_lines = [subject, ""] + [f"{k}: {v}" for k, v in fields]
    if diag and diag.get("fix_steps"):
        text_lines += ["", "Fix steps:"] + [f"  {i}. {s}" for i, s in enumerate(diag["fix_steps"], 1)]
    if similar:
        text_lines += ["", "Similar cases:"] + [f"  - {s}" for s in similar]
    return {
        "subject": subject,
        "verdict": verdict,
        "fields": fields,
        "fix_steps": list((diag or {}).get("fix_steps") or []),
        "similar": similar,
        "evidence": list((diag or {}).get("evidence") or []),
        "links": link,
        "text": "\n".join(text_lines + [""] + tail),
    }


DIGEST_LINES = 100  # members listed by name in a digest's text and HTML; Slack lists fewer


def build_digest(
    items: list[dict], excerpt: dict | None, judged: dict | None, doctor_run_id: str | None
) -> dict:
    """One message about many failures of one group (same fingerprint, same route): a storm digest.

    Args:
        items: per member {"ref", "decision", "remediation", "escalation", "verification"}
            (see groups.notify_group), at least two.
        excerpt: the group's representative excerpt. judged: groups.judge_group's output or None.
    Returns:
        build_message's shape plus "members": [(line, log url)], one per member.
    """
    diagnosis_result = (judged or {}).get("diagnosis")
    diag = (diagnosis_result or {}).get("diagnosis")
    refs = [FailureRef.model_validate(it["ref"]) for it in items]
    verdicts = [
        headline(
            it["decision"] or {"verdict": "escalate"}, it["remediation"], it["escalation"], it["verification"]
        )
        for it in items
    ]
    summary = ", ".join(f"{n} {v}" for v, n in Counter(verdicts).most_common())
    what = (diag or {}).get("error_class") or (excerpt or {}).get("exception_type") or "one error"
    dags = sorted({r.dag_id for r in refs})
    where = dags[0] if len(dags) == 1 else f"{len(dags)} DAGs"
    subject = f"[airflow-doctor] storm: {len(items)} failures of {what} in {where}: {summary}"
    first = items[0]["decision"] or {"reasons": ["the gate did not run"]}
    fields = [("Failures", f"{len(items)} task instances in {len(dags)} DAG(s): {', '.join(dags)}"[:500])]
    fields += diagnosis_fields(diagnosis_result)
    if first.get("similarity") is not None:
        fields.append(("Similarity", f"{first['similarity']:.2f} (best match in the knowledge base)"))
    fields.append(("Action taken", summary + " (the diagnosis was made once for the whole group)"))
    fields.append(("Why", "; ".join(first.get("reasons", []))))
    if _error_line(excerpt):
        fields.append(("Error", _error_line(excerpt)))
    members = [
        (f"{r.label}, run {r.run_id}, try {r.try_number}: {v}", links(r, None)["log"])
        for r, v in zip(refs, verdicts, strict=True)
    ]
    link = {"log": members[0][1]}
    if doctor_run_id:
        link["doctor_run"] = links(refs[0], doctor_run_id)["doctor_run"]
    similar = _similar((judged or {}).get("memory"))
    tail = ["Task instances:"] + [f"  - {line} ({url})" for line, url in members[:DIGEST_LINES]]
    if len(members) > DIGEST_LINES:
        tail.append(f"  ... and {len(members) - DIGEST_LINES} more")
    if "doctor_run" in link:
        tail += ["", f"Doctor run: {link['doctor_run']}"]
    return {**_assemble(subject, summary, fields, diag, similar, link, tail), "members": members}


def render_html(msg: dict[str, Any]) -> str:
    """The email's HTML part."""
    esc = html.escape
    rows = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in msg["fields"])
    steps = "".join(f"<li>{esc(s)}</li>" for s in msg["fix_steps"])
    similar = "".join(f"<li>{esc(s)}</li>" for s in msg["similar"])
    listed = msg.get("members", [])
    members = "".join(f"<li><a href='{esc(u)}'>{esc(line)}</a></li>" for line, u in listed[:DIGEST_LINES])
    if len(listed) > DIGEST_LINES:
        members += f"<li>... and {len(listed) - DIGEST_LINES} more</li>"
    link_html = " | ".join(
        f"<a href='{esc(u)}'>{esc(k.replace('_', ' '))}</a>" for k, u in msg["links"].items()
    )
    return (
        f"<h2>{esc(msg['subject'])}</h2><table>{rows}</table>"
        + (f"<h3>Fix steps</h3><ol>{steps}</ol>" if steps else "")
        + (f"<h3>Similar cases</h3><ul>{similar}</ul>" if similar else "")
        + (f"<h3>Task instances</h3><ul>{members}</ul>" if members else "")
        + f"<p>{link_html}</p>"
    )


def render_blocks(msg: dict[str, Any]) -> list[dict]:
    """The Slack Block Kit blocks: header, fields, fix steps, similar cases, links."""
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": msg["subject"][:150]}}]
    blocks.append(
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:2000]} for k, v in msg["fields"][:10]],
        }
    )
    if msg["fix_steps"]:
        steps = "\n".join(f"{i}. {s}" for i, s in enumerate(msg["fix_steps"], 1))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Fix steps*\n{steps}"[:3000]}})
    if msg["similar"]:
        text = ("*Similar cases*: " + "; ".join(msg["similar"]))[:3000]
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
    if msg.get("members"):
        lines = [f"<{u}|{line}>" for line, u in msg["members"]]
        text, shown = "*Task instances*", 0
        for line in lines:  # a section's text holds at most 3000 characters
            if len(text) + len(line) + 40 > 3000:
                break
            text, shown = text + "\n" + line, shown + 1
        if shown < len(lines):
            text += f"\n... and {len(lines) - shown} more"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": k.replace("_", " ").title()},
                    "url": u,
                }
                for k, u in msg["links"].items()
            ],
        }
    )
    return blocks


def _with_retries(name: str, send: Callable[[], None]) -> str:
    """Run `send` up to CHANNEL_ATTEMPTS times with exponential backoff; "sent" or the last error."""
    error = ""
    for attempt in range(1, CHANNEL_ATTEMPTS + 1):
        try:
            send()
            return "sent"
        except Exception as exc:  # noqa: BLE001 - one channel's failure must not stop the other
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("%s attempt %d/%d failed: %s", name, attempt, CHANNEL_ATTEMPTS, error)
            if attempt < CHANNEL_ATTEMPTS:
                time.sleep(CHANNEL_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return f"failed: {error}"


def _dag_details(dag_id: str, api=None) -> dict:
    try:
        from include.doctor.airflow_api import AirflowAPI

        return (api or AirflowAPI()).get_dag_details(dag_id)
    except Exception as exc:  # noqa: BLE001 - routing falls back to the defaults
        log.warning("Could not read the details of DAG %s for routing: %s", dag_id, exc)
        return {}


def route(dag_id: str, settings: DoctorSettings, details: dict) -> tuple[list[str], str]:
    """Recipients and Slack connection for a DAG's failures.

    Returns:
        (email recipients, Slack webhook connection id): recipients from `settings.recipients[dag_id]`,
        else the DAG's default_args["email"], else `settings.email_to`; the Slack connection of the
        first DAG tag in `settings.slack_connections`, else `doctor_slack`.
    """
    recipients = settings.recipients.get(dag_id)
    if not recipients:
        email = (details.get("default_args") or {}).get("email")
        recipients = [email] if isinstance(email, str) else email
    recipients = [r for r in (recipients or settings.email_to) if r]
    tags = [t.get("name") if isinstance(t, dict) else str(t) for t in details.get("tags") or []]
    slack = next(
        (settings.slack_connections[t] for t in tags if t in settings.slack_connections), SLACK_CONN_ID
    )
    return recipients, slack


def send_email(recipients: list[str], msg: dict[str, Any]) -> None:
    """Send `msg` as multipart/alternative (plain text, then HTML) through the SMTP provider's hook.

    Raises:
        whatever the SMTP provider raises (connection refused, auth, ...).
    """
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
        client = getattr(hook, "_smtp_client", None)
        if client is None:  # a provider without the client attribute: HTML only, through its API
            hook.send_email_smtp(to=recipients, subject=msg["subject"], html_content=render_html(msg))
            return
        mime = MIMEMultipart("alternative")
        mime["Subject"] = msg["subject"]
        mime["From"] = hook.from_email or "airflow-doctor@localhost"
        mime["To"] = ", ".join(recipients)
        mime["Date"] = formatdate(localtime=True)
        mime["Message-ID"] = make_msgid(domain="airflow-doctor")
        mime.attach(MIMEText(msg["text"], "plain", "utf-8"))
        mime.attach(MIMEText(render_html(msg), "html", "utf-8"))
        client.sendmail(mime["From"], recipients, mime.as_string())


def deliver(msg: dict[str, Any], recipients: list[str], slack_conn_id: str) -> dict[str, str]:
    """Send one message on both channels. Never raises.

    Returns:
        {"email": "sent" | "skipped: ..." | "failed: ...", "slack": same, "subject": str}.
    """
    result = {"subject": msg["subject"]}
    if connection_exists(SMTP_CONN_ID):
        result["email"] = _with_retries("email", lambda: send_email(recipients, msg))
    else:
        result["email"] = f"skipped: no connection {SMTP_CONN_ID}"
        log.warning("No %s connection: email skipped", SMTP_CONN_ID)
    if connection_exists(slack_conn_id):

        def send_slack() -> None:
            from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

            SlackWebhookHook(slack_webhook_conn_id=slack_conn_id, timeout=10).send(
                text=msg["text"][:3000], blocks=render_blocks(msg)
            )

        result["slack"] = _with_retries("slack", send_slack)
    else:
        result["slack"] = f"skipped: no connection {slack_conn_id}"
        log.warning("No %s connection: Slack skipped", slack_conn_id)
    return result


def should_notify(
    decision: dict | None, remediation: dict | None, verification: dict | None, settings: DoctorSettings
) -> bool:
    """Whether notify_humans sends anything for this failure (module docstring, "When to send")."""
    if not (remediation and remediation.get("cleared")):
        return True  # escalated, or a decided clear that failed: a person must know
    if verification and verification.get("outcome") in {"failed", "unverified"}:
        return True
    if settings.notify_on_retry == "none":
        return False
    if settings.notify_on_retry == "both":
        return True
    return bool(verification)  # "outcome": one message once the retried try has ended


def notify_humans(
    ref_data: dict,
    excerpt: dict | None,
    diagnosis_result: dict | None,
    decision: dict | None,
    memory: dict | None,
    remediation: dict | None,
    doctor_run_id: str | None,
    escalation: dict | None = None,
    verification: dict | None = None,
    *,
    api=None,
) -> dict[str, str]:
    """Tell people what happened to one failure, if the policy says so.

    Returns:
        deliver()'s result, or {"skipped": reason}. Never raises.
    """
    item = {
        "ref": ref_data,
        "decision": decision,
        "remediation": remediation,
        "escalation": escalation,
        "verification": verification,
        "doctor_clears": (memory or {}).get("doctor_clears"),
    }
    judged = {"diagnosis": diagnosis_result, "memory": memory}
    return notify_members([item], excerpt, judged, doctor_run_id, api=api)[0]


def notify_members(
    items: list[dict], excerpt: dict | None, judged: dict | None, doctor_run_id: str | None, *, api=None
) -> list[dict[str, str]]:
    """Tell people about the failures of one group that the policy says to report: one message per
    route (recipients + Slack connection), a digest (`build_digest`) when a route has several.

    Args:
        items: per member {"ref", "decision", "remediation", "escalation", "verification",
            "doctor_clears"}. excerpt: the group's excerpt. judged: {"diagnosis", "memory"} or None.
    Returns:
        [deliver()'s result per message], or [{"skipped": reason}] when nothing is to be sent.
        Never raises.
    """
    settings = load_settings()
    chosen = [
        it for it in items if should_notify(it["decision"], it["remediation"], it["verification"], settings)
    ]
    if not chosen:
        return [{"skipped": f"doctor_notify_on_retry={settings.notify_on_retry}"}]
    if api is None:
        from include.doctor.airflow_api import default_api

        api = default_api()  # one client (one token, one read of each DAG's details) for the group
    routes: dict[tuple[tuple[str, ...], str], list[dict]] = {}
    for it in chosen:
        dag_id = it["ref"]["dag_id"]
        recipients, slack = route(dag_id, settings, _dag_details(dag_id, api))
        routes.setdefault((tuple(recipients), slack), []).append(it)
    results = []
    for (recipients, slack), group in routes.items():
        if len(group) == 1:
            it = group[0]
            memory = {**((judged or {}).get("memory") or {}), "doctor_clears": it.get("doctor_clears")}
            msg = build_message(
                FailureRef.model_validate(it["ref"]),
                excerpt,
                (judged or {}).get("diagnosis"),
                it["decision"],
                memory,
                it["remediation"],
                doctor_run_id,
                it["escalation"],
                it["verification"],
            )
        else:
            msg = build_digest(group, excerpt, judged, doctor_run_id)
        result = deliver(msg, list(recipients), slack)
        log.info(
            "Notified about %d failure(s): email %s, slack %s", len(group), result["email"], result["slack"]
        )
        results.append(result)
    return results


def notify_approval_request(
    ref_data: dict,
    excerpt: dict | None,
    diagnosis_result: dict | None,
    decision: dict,
    memory: dict | None,
    doctor_run_id: str | None,
    others: list[dict] | None = None,
    *,
    api=None,
) -> dict:
    """Send the "approval requested" message and return the approval's subject and body.

    Args:
        others: more FailureRef dicts of the same group that the one answer covers (a storm).
    Returns:
        {"subject": str, "body": str (markdown for the Required Actions page), "delivery": dict}.
    """
    settings = load_settings()
    ref = FailureRef.model_validate(ref_data)
    msg = build_message(ref, excerpt, diagnosis_result, decision, memory, None, doctor_run_id)
    subject = f"Retry {ref.label} (try {ref.try_number})?"
    if others:
        labels = [FailureRef.model_validate(o).label for o in others]
        msg["fields"].insert(1, ("Same failure", f"{len(labels)} more: {', '.join(labels)}"[:1000]))
        msg["text"] += f"\n\nOne answer covers {len(labels) + 1} task instances: " + ", ".join(labels)
        subject = f"Retry {ref.label} and {len(labels)} more task instance(s) with the same failure?"
    recipients, slack = route(ref.dag_id, settings, _dag_details(ref.dag_id, api))
    delivery = deliver(msg, recipients, slack)
    body = "\n".join(f"**{k}**: {v}  " for k, v in msg["fields"])
    if msg["fix_steps"]:
        body += "\n\n**Fix steps**\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(msg["fix_steps"], 1))
    body += f"\n\n[Log of the failed try]({msg['links']['log']})"
    return {"subject": subject, "body": body, "delivery": delivery}

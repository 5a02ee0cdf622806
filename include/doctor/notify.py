"""Notifications: what the doctor found and did, by email (SMTP provider) and Slack (Slack provider).

Email goes through connection `doctor_smtp`, Slack through the incoming-webhook connection
`doctor_slack` with Block Kit. Each channel is tried with bounded retries and backoff; a failed
channel is logged and never stops the other or the doctor. A missing connection skips its
channel with a log line.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from include.doctor.config import SLACK_CONN_ID, SMTP_CONN_ID
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


def build_message(
    ref: FailureRef,
    excerpt: dict | None,
    diagnosis_result: dict | None,
    decision: dict | None,
    memory: dict | None,
    remediation: dict | None,
    doctor_run_id: str | None,
) -> dict[str, Any]:
    """The content of both channels, as plain data.

    Returns:
        dict with subject, verdict, headline, fields (list of (label, value)), fix_steps,
        similar (list of str), evidence (list of str), links, text (plain text body).
    """
    diag = (diagnosis_result or {}).get("diagnosis")
    decision = decision or {"verdict": "escalate", "reasons": ["the gate did not run"]}
    cleared = bool((remediation or {}).get("cleared"))
    verdict = (
        "auto-retried"
        if cleared
        else ("escalated" if decision["verdict"] != "auto_retry" else "retry failed")
    )
    diagnoser = (diagnosis_result or {}).get("diagnoser") or "offline"
    label = (
        "offline diagnosis (no LLM configured)"
        if diagnoser == "offline"
        else f"LLM diagnosis ({diag and diag.get('model')})"
    )
    fields: list[tuple[str, str]] = [
        ("Task instance", f"{ref.label}, run {ref.run_id}, try {ref.try_number}")
    ]
    if diag:
        fields += [
            ("Diagnosis", f"{diag['error_class']}: {diag.get('root_cause') or ''}"),
            ("Transient", "yes" if diag["transient"] else "no"),
            ("Recommended action", str(diag["recommended_action"])),
            ("Confidence", f"{diag['confidence']:.2f} ({label})"),
        ]
    else:
        error = (diagnosis_result or {}).get("error") or "the diagnosis stage did not run"
        fields.append(("Diagnosis", f"none: {error}"))
    if decision.get("similarity") is not None:
        fields.append(("Similarity", f"{decision['similarity']:.2f} (best match in the knowledge base)"))
    action_taken = (
        "Cleared the task instance for retry"
        if cleared
        else "Left failed for a human"
        + (
            f" ({remediation['reason']})"
            if remediation and remediation.get("reason") and decision["verdict"] == "auto_retry"
            else ""
        )
    )
    fields.append(("Action taken", action_taken))
    fields.append(("Why", "; ".join(decision.get("reasons", []))))
    if excerpt and excerpt.get("exception_type"):
        fields.append(("Error", f"{excerpt['exception_type']}: {excerpt.get('message', '')}"[:300]))
    similar = [
        f"{n.get('similarity', 0):.2f} {n.get('kind')} {n.get('error_class')} "
        f"(transient={n.get('transient')}, outcome={n.get('outcome')})"
        for n in (memory or {}).get("neighbours", [])[:3]
    ]
    link = links(ref, doctor_run_id)
    subject = f"[airflow-doctor] {verdict}: {ref.dag_id}.{ref.task_id}"
    if diag:
        subject += f" ({diag['error_class']})"
    text_lines = [subject, ""] + [f"{k}: {v}" for k, v in fields]
    if diag and diag.get("fix_steps"):
        text_lines += ["", "Fix steps:"] + [f"  {i}. {s}" for i, s in enumerate(diag["fix_steps"], 1)]
    if similar:
        text_lines += ["", "Similar cases:"] + [f"  - {s}" for s in similar]
    text_lines += ["", f"Log: {link['log']}"] + (
        [f"Doctor run: {link['doctor_run']}"] if "doctor_run" in link else []
    )
    return {
        "subject": subject,
        "verdict": verdict,
        "fields": fields,
        "fix_steps": list((diag or {}).get("fix_steps") or []),
        "similar": similar,
        "evidence": list((diag or {}).get("evidence") or []),
        "links": link,
        "text": "\n".join(text_lines),
    }


def render_html(msg: dict[str, Any]) -> str:
    """The email's HTML body."""
    esc = html.escape
    rows = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in msg["fields"])
    steps = "".join(f"<li>{esc(s)}</li>" for s in msg["fix_steps"])
    similar = "".join(f"<li>{esc(s)}</li>" for s in msg["similar"])
    link_html = " | ".join(
        f"<a href='{esc(u)}'>{esc(k.replace('_', ' '))}</a>" for k, u in msg["links"].items()
    )
    return (
        f"<h2>{esc(msg['subject'])}</h2><table>{rows}</table>"
        + (f"<h3>Fix steps</h3><ol>{steps}</ol>" if steps else "")
        + (f"<h3>Similar cases</h3><ul>{similar}</ul>" if similar else "")
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
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Fix steps*\n"
                    + "\n".join(f"{i}. {s}" for i, s in enumerate(msg["fix_steps"], 1))[:3000],
                },
            }
        )
    if msg["similar"]:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": ("*Similar cases*: " + "; ".join(msg["similar"]))[:3000]}
                ],
            }
        )
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


def _connection_exists(conn_id: str) -> bool:
    try:
        from airflow.sdk import BaseHook

        BaseHook.get_connection(conn_id)
        return True
    except Exception:  # noqa: BLE001
        return False


def notify_humans(
    ref_data: dict,
    excerpt: dict | None,
    diagnosis_result: dict | None,
    decision: dict | None,
    memory: dict | None,
    remediation: dict | None,
    doctor_run_id: str | None,
) -> dict[str, str]:
    """Send the doctor's message by email and Slack.

    Returns:
        {"email": "sent" | "skipped: ..." | "failed: ...", "slack": same, "subject": str}. Never raises.
    """
    ref = FailureRef.model_validate(ref_data)
    msg = build_message(ref, excerpt, diagnosis_result, decision, memory, remediation, doctor_run_id)
    result = {"subject": msg["subject"]}

    if _connection_exists(SMTP_CONN_ID):
        recipients = load_settings().email_to

        def send_email() -> None:
            from airflow.providers.smtp.hooks.smtp import SmtpHook

            with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
                hook.send_email_smtp(to=recipients, subject=msg["subject"], html_content=render_html(msg))

        result["email"] = _with_retries("email", send_email)
    else:
        result["email"] = f"skipped: no connection {SMTP_CONN_ID}"
        log.warning("No %s connection: email skipped", SMTP_CONN_ID)

    if _connection_exists(SLACK_CONN_ID):

        def send_slack() -> None:
            from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

            SlackWebhookHook(slack_webhook_conn_id=SLACK_CONN_ID, timeout=10).send(
                text=msg["text"][:3000], blocks=render_blocks(msg)
            )

        result["slack"] = _with_retries("slack", send_slack)
    else:
        result["slack"] = f"skipped: no connection {SLACK_CONN_ID}"
        log.warning("No %s connection: Slack skipped", SLACK_CONN_ID)
    log.info("Notified about %s: email %s, slack %s", ref.label, result["email"], result["slack"])
    return result

"""Notifications: what the doctor found and did, by email (SMTP provider) and Slack (Slack provider).

Delivery goes through `DoctorNotifier` (notifier.py, the providers' public hooks): email through
connection `doctor_smtp` as HTML (templates/email.html); Slack through an incoming-webhook
connection (`doctor_slack`, or one per DAG tag from Variable `doctor_slack_connections`) with
Block Kit. Recipients come from Variable `doctor_recipients` (per dag_id), else the DAG's
default_args["email"], else `doctor_email_to`. Each channel is tried with bounded retries and
backoff (CHANNEL_ATTEMPTS, CHANNEL_BACKOFF_SECONDS); a failed channel is logged and never stops
the other or the doctor. A missing connection skips its channel with a log line.

When to send (Variable `doctor_notify_on_retry`): always on escalation and approval requests; an
auto-retry gets one message when the retried try has ended ("outcome", the default), also one when
the clear is issued ("both"), or none ("none").

Text from a log or from the LLM is data, never markup. Email HTML escapes it (`html.escape`).
Slack escapes its control characters `&`, `<`, `>` in every such piece (`slack_escape`), sets
`verbatim` on every mrkdwn text object (no auto-linked URLs, channel names or mentions), shows log
text in code blocks that it cannot close (`slack_code`) and turns unfurling off; the approval body
on the Required Actions page is plain Markdown that wraps, with every ASCII punctuation character of
such text backslash-escaped (`markdown_text`), so none of it forms a link, an image, HTML, an
autolink or any other markup. The only links are the doctor's own Airflow UI URLs (`links`).

The diagnosis is the diagnoser's opinion ("Diagnoser's opinion": transient or not, the action it
recommends) and the gate's verdict is its own field ("Gate's verdict": what is done, and why), so
an opinion of "transient" beside a verdict of "escalate" reads as what it is: the gate overruled it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow_doctor.models import FailureRef
from airflow_doctor.notifications.notifier import CHANNEL_ATTEMPTS, CHANNEL_BACKOFF_SECONDS, DoctorNotifier
from airflow_doctor.settings import SLACK_CONN_ID, SMTP_CONN_ID, DoctorSettings
from airflow_doctor.settings import settings as load_settings

log = logging.getLogger(__name__)

#: The messages' templates (the email's HTML), resolved from this module's location.
TEMPLATES = Path(__file__).resolve().parent / "templates"


# -- rendering untrusted text -------------------------------------------------------------------

#: Fields whose value is log text: shown as code in Slack (a code block of its own).
CODE_FIELDS = frozenset({"Error"})
#: Stands in for a backtick inside a Slack code block (MODIFIER LETTER GRAVE ACCENT): it looks the
#: same but cannot close the block, and mrkdwn has no escape for "`".
SLACK_BACKTICK = "\u02cb"
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def slack_escape(text: object) -> str:
    """Text with Slack's control characters as the entities Slack documents (`&amp;`, `&lt;`, `&gt;`).

    With them escaped no `<...>` sequence can form a mention (`<!channel>`, `<@U1>`,
    `<!subteam^S1>`, `<#C1>`) or a link (`<https://x|label>`); Slack shows the characters as typed.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: object) -> str:
    """Untrusted text for a mrkdwn object outside code: `slack_escape`d, and a run of three or more
    backticks made of SLACK_BACKTICK so the text cannot open a code block that swallows what follows.
    """
    return re.sub(r"`{3,}", lambda m: SLACK_BACKTICK * len(m.group()), slack_escape(text))


def _fit(escaped: str, limit: int) -> str:
    """Cut escaped text to `limit` characters (Slack's per-field limits) without splitting an entity."""
    if len(escaped) <= limit:
        return escaped
    return _PARTIAL_ENTITY.sub("", escaped[:limit])


def slack_code(text: str, limit: int = 2900) -> str:
    """A Slack code block showing `text` literally, at most `limit` characters long.

    Backticks become SLACK_BACKTICK so the text cannot close the block and go on as markup.
    """
    body = _fit(slack_escape(text.replace("`", SLACK_BACKTICK)), limit - 6) or " "
    return f"```{body}```"


def _mrkdwn(text: str) -> dict:
    """A mrkdwn text object; `verbatim` stops Slack auto-linking URLs, channel names and mentions."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def markdown_code(text: str) -> str:
    """A CommonMark fenced code block showing `text` literally (the Required Actions page's markdown).

    The fence is one backtick longer than the longest run of backticks in `text` (at least three),
    so no line of `text` can close it (CommonMark 0.31, "Fenced code blocks"); links, images and
    HTML inside it are shown as text.
    """
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


#: Characters that can start markup anywhere in a line (CommonMark 0.31 and GitHub's extensions:
#: emphasis, code, links and images, raw HTML, entities, tables, strikethrough, email autolinks,
#: headings, footnotes) and "/" (so no "scheme://" autolink forms); each is backslash-escaped, which
#: CommonMark allows for any ASCII punctuation ("Backslash escapes") and shows as the character.
_MD_ALWAYS = re.compile(r"([\\`*\[\]<>&|~!@#^/])")
#: A run of underscores opens or closes emphasis unless letters or digits are on both sides of it
#: ("intraword", CommonMark "Emphasis" rules 2 and 4): `manual__2026` stays as it is.
_MD_UNDERSCORES = re.compile(r"(?<![A-Za-z0-9_])_+(?![_])|(?<![_])_+(?![A-Za-z0-9_])")
#: What starts a block at the beginning of a line: a list item, a heading, a quote, a setext underline.
_MD_LINE_START = re.compile(r"^([-+=]|\d+(?=[.)]))")
_MD_WWW = re.compile(r"(?i)\b(www)\.")


def markdown_text(text: object) -> str:
    """Untrusted text (log lines, the LLM's words, ids) as inert CommonMark inline text.

    Backslash-escapes what could form markup (see _MD_ALWAYS, _MD_UNDERSCORES, _MD_LINE_START;
    "www." for the extended autolink), so no emphasis, link, image, HTML, entity, autolink, table,
    heading or list forms; leaves characters that cannot (":", ".", "-" inside a line, intraword
    "_"), so run ids such as `manual__2026-12-08T00:03:21+00:00` read as typed. Control characters
    become spaces; each line break becomes a hard line break (a backslash at the end of the line)
    and the next line's leading spaces are dropped (no indented code block).
    """
    lines = [_CONTROL.sub(" ", line).strip() for line in str(text).splitlines()] or [""]
    out = []
    for line in lines:
        line = _MD_ALWAYS.sub(r"\\\1", line)
        line = _MD_UNDERSCORES.sub(lambda m: "\\_" * len(m.group()), line)
        line = _MD_WWW.sub(r"\1\\.", line)
        m = _MD_LINE_START.match(line)
        if m:
            line = line[: m.end()] + "\\" + line[m.end() :] if m.group()[0].isdigit() else "\\" + line
        out.append(line)
    return "\\\n".join(out)


def one_line(text: str) -> str:
    """Text with control characters (newlines included) as single spaces: safe as a mail header."""
    return _CONTROL.sub(" ", text)


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


#: Seconds after the retried try ended beyond which a message about it says when it really ended
#: and how late it is: a deferred verify_retry polls every few seconds, so a minute late means the
#: stack (its triggerer) was stopped or overloaded meanwhile.
LATE_AFTER_SECONDS = 60.0


def late_notice(verification: dict | None) -> str:
    """ " (at <retry_ended_at> by Airflow's clock; this message is <n> min late)" when the doctor saw
    the retried try's end more than LATE_AFTER_SECONDS after it (`verified_late_seconds` of
    remediation.actions.heal_times), else ""."""
    late = (verification or {}).get("verified_late_seconds")
    ended = (verification or {}).get("retry_ended_at")
    if not isinstance(late, int | float) or late <= LATE_AFTER_SECONDS or not ended:
        return ""
    when = str(ended)[:19].replace("T", " ")
    return f" at {when} UTC by Airflow's clock; this message is {late / 60:.0f} min late"


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
    opinion = "transient" if diag["transient"] else "not transient"
    return [
        ("Diagnosis", f"{diag['error_class']}: {diag.get('root_cause') or ''}"),
        ("Diagnoser's opinion", f"{opinion}, recommends {diag['recommended_action']}"),
        ("Confidence", f"{diag['confidence']:.2f} ({label})"),
    ]


def gate_field(decision: dict) -> tuple[str, str]:
    """The gate's verdict and every reason, as one field: what the doctor does and why (the
    diagnoser's opinion is a field of its own, diagnosis_fields)."""
    reasons = "; ".join(decision.get("reasons", [])) or "no reason recorded"
    return ("Gate's verdict", f"{decision.get('verdict') or 'escalate'}, because: {reasons}")


def _error_line(excerpt: dict | None) -> str | None:
    if excerpt and (excerpt.get("exception_type") or excerpt.get("message")):
        return f"{excerpt.get('exception_type') or 'Error'}: {excerpt.get('message', '')}"[:300]
    return None


#: Line templates of "Only in the failed try" a message shows (the prompt gets all of them).
MESSAGE_NEW_LINES = 5


def history_fields(history: dict | None) -> list[tuple[str, str]]:
    """The fields that tell people what Airflow recorded: the failed try's DAG version against the
    task's last success, its recent successes on that version, and what only the failed try printed.

    Args:
        history: a TaskHistory as dict, or None (no fields).
    Returns:
        [(label, value)], values as plain text (log text unescaped; renderers escape).
    """
    if not history:
        return []
    from airflow_doctor.models import TaskHistory

    h = TaskHistory.model_validate(history)
    fields: list[tuple[str, str]] = []
    version = "unknown" if h.failed_version is None else str(h.failed_version)
    if h.last_success is None:
        what = (
            f"the failed try ran on DAG version {version}; no success of this task among the "
            f"{len(h.recent)} run(s) read"
        )
    else:
        last = "unknown" if h.last_success.dag_version is None else str(h.last_success.dag_version)
        what = (
            f"the failed try ran on DAG version {version}; the task's last success ({h.last_success.run_id}) "
            f"on version {last}"
            + (" - the DAG changed since" if h.changed_since_success else "")
            + f"; {h.successes_on_version} success(es) on version {version} among the last "
            f"{len(h.recent)} run(s)"
        )
    fields.append(("What changed", what))
    if h.new_lines:
        shown = h.new_lines[:MESSAGE_NEW_LINES]
        more = len(h.new_lines) - len(shown)
        fields.append(
            (
                "Only in the failed try",
                " | ".join(shown) + (f" (+{more} more)" if more else "") + f" (against {h.compared_with})",
            )
        )
    return fields


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
    history: dict | None = None,
) -> dict[str, Any]:
    """The content of both channels, as plain data.

    Args:
        history: the member's TaskHistory as dict (capture/history.py), or None: adds "What changed"
            (DAG versions, recent outcomes) and "Only in the failed try" (line templates the last
            successful try did not print; redacted log text, escaped by each renderer).

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
            action += late_notice(verification)
    elif verdict == "approval requested":
        action = "Waiting for an engineer to approve or reject a retry (Required Actions in the Airflow UI)"
    else:
        action = "Left failed for a human: " + ((escalation or {}).get("why") or "escalated")
    fields.append(("Action taken", action))
    fields.append(gate_field(decision))
    clears = (memory or {}).get("doctor_clears")
    if clears:
        fields.append(("History", f"the doctor already cleared this task instance {clears} time(s)"))
    if _error_line(excerpt):
        fields.append(("Error", _error_line(excerpt)))
    fields += history_fields(history)
    similar = _similar(memory)
    link = links(ref, doctor_run_id)
    subject = f"[airflow-doctor] {verdict}: {ref.dag_id}.{ref.task_id}"
    if diag:
        subject += f" ({diag['error_class']})"
    tail = [f"Log: {link['log']}"] + ([f"Doctor run: {link['doctor_run']}"] if "doctor_run" in link else [])
    return {
        **_assemble(subject, verdict, fields, diag, similar, link, tail),
        "gate": decision.get("verdict"),
        "reasons": [str(r) for r in decision.get("reasons", [])],
    }


def _assemble(
    subject: str,
    verdict: str,
    fields: list[tuple[str, str]],
    diag: dict | None,
    similar: list[str],
    link: dict[str, str],
    tail: list[str],
) -> dict[str, Any]:
    """A message as plain data; its text is the fields, fix steps, evidence, similar cases, then `tail`.

    Values are kept as they came (log and LLM text unescaped); each renderer escapes for its channel.
    """
    subject = one_line(subject)
    text_lines = [subject, ""] + [f"{k}: {v}" for k, v in fields]
    if diag and diag.get("fix_steps"):
        text_lines += ["", "Fix steps:"] + [f"  {i}. {s}" for i, s in enumerate(diag["fix_steps"], 1)]
    if diag and diag.get("evidence"):
        text_lines += ["", "Evidence (lines from the log):"] + [f"  {e}" for e in diag["evidence"]]
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
        excerpt: the group's representative excerpt. judged: {"diagnosis", "memory", ...}
            (stages._judged) or None.
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
    fields.append(gate_field({"verdict": first.get("verdict"), "reasons": first.get("reasons", [])}))
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


@cache
def _template(name: str):
    """A Jinja template from TEMPLATES, autoescaped: every value in a message is text, never markup."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"], default=True),
        keep_trailing_newline=False,
    )
    return env.get_template(name)


def render_html(msg: dict[str, Any]) -> str:
    """The email's HTML body (templates/email.html): subject, fields, fix steps, evidence, similar
    cases, a digest's task instances (DIGEST_LINES at most) and the doctor's links, every value
    escaped."""
    return _template("email.html").render(msg=msg, members=msg.get("members") or [], shown=DIGEST_LINES)


def render_blocks(msg: dict[str, Any]) -> list[dict]:
    """The Slack Block Kit blocks: header, fields, the error as code, fix steps, evidence as code,
    similar cases, task instances (a digest), links.

    Every value is escaped (`slack_text`) and every mrkdwn object is `verbatim`; log text is in
    code blocks (`slack_code`). The only links are msg["links"] and the members' log URLs, which
    `links` builds from the Airflow UI's base URL with each id percent-encoded.

    Returns:
        list of Block Kit blocks (dicts), each within Slack's limits (header 150 characters,
        section field 2000, section text 3000, 10 fields).
    """
    esc = slack_text
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": _fit(slack_escape(msg["subject"]), 150)}}
    ]
    plain = [(k, v) for k, v in msg["fields"] if k not in CODE_FIELDS]
    blocks.append(
        {"type": "section", "fields": [_mrkdwn(_fit(f"*{k}*\n{esc(v)}", 2000)) for k, v in plain[:10]]}
    )
    for k, v in msg["fields"]:
        if k in CODE_FIELDS:
            blocks.append({"type": "section", "text": _mrkdwn(f"*{k}*\n" + slack_code(str(v), 2900))})
    if msg["fix_steps"]:
        steps = "\n".join(f"{i}. {esc(s)}" for i, s in enumerate(msg["fix_steps"], 1))
        blocks.append({"type": "section", "text": _mrkdwn(_fit(f"*Fix steps*\n{steps}", 3000))})
    if msg.get("evidence"):
        code = slack_code("\n".join(msg["evidence"]), 2900)
        blocks.append({"type": "section", "text": _mrkdwn("*Evidence (lines from the log)*\n" + code)})
    if msg["similar"]:
        text = _fit("*Similar cases*: " + "; ".join(esc(s) for s in msg["similar"]), 3000)
        blocks.append({"type": "context", "elements": [_mrkdwn(text)]})
    if msg.get("members"):
        lines = [f"<{u}|{esc(line)}>" for line, u in msg["members"]]
        text, shown = "*Task instances*", 0
        for line in lines:  # a section's text holds at most 3000 characters
            if len(text) + len(line) + 40 > 3000:
                break
            text, shown = text + "\n" + line, shown + 1
        if shown < len(lines):
            text += f"\n... and {len(lines) - shown} more"
        blocks.append({"type": "section", "text": _mrkdwn(text)})
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


def slack_payload(msg: dict[str, Any]) -> dict[str, Any]:
    """What the doctor posts to a Slack incoming webhook for `msg`.

    Returns:
        {"text": the escaped subject (the notification's fallback), "blocks": render_blocks(msg),
        "unfurl_links": False, "unfurl_media": False}: no preview is fetched for a URL.
    """
    return {
        "text": _fit(slack_escape(msg["subject"]), 3000),
        "blocks": render_blocks(msg),
        "unfurl_links": False,
        "unfurl_media": False,
    }


#: Fields the approval body shows in its own place (the diagnosis first, the gate's reasons as a list).
_BODY_OWN_PLACE = ("Diagnosis", "Diagnoser's opinion", "Confidence", "Gate's verdict")


def render_approval_body(msg: dict[str, Any]) -> str:
    """The approval request's body: Markdown on the Required Actions page, readable at 1280 px.

    The diagnosis first, then the diagnoser's opinion, the gate's verdict with one reason per line,
    then the other fields (task instance, error, history) one per paragraph, fix steps and evidence
    as lists, and the doctor's own links. Plain paragraphs wrap (a code block would not: its longest
    line set the page's width). Every value that came from the log, the LLM or the ids is
    `markdown_text`: inert, shown as typed. The only links are the doctor's (msg["links"]).

    Args:
        msg: build_message's output (fields, fix_steps, evidence, links; "gate" and "reasons" when
            present, else the "Gate's verdict" field).
    Returns:
        the body, CommonMark.
    """
    fields = dict(msg["fields"])
    parts = []
    for label in ("Diagnosis", "Diagnoser's opinion", "Confidence"):
        if label in fields:
            parts.append(f"**{label}:** {markdown_text(fields[label])}")
    reasons = msg.get("reasons")
    if reasons is None and "Gate's verdict" in fields:
        reasons = [fields["Gate's verdict"]]
    gate = msg.get("gate")
    parts.append(
        f"**Gate's verdict:** {markdown_text(gate)}, because:" if gate else "**Gate's verdict**, because:"
    )
    parts.append("\n".join(f"- {markdown_text(r)}" for r in reasons or ["no reason recorded"]))
    for label, value in msg["fields"]:
        if label not in _BODY_OWN_PLACE:
            parts.append(f"**{markdown_text(label)}:** {markdown_text(value)}")
    if msg["fix_steps"]:
        parts.append("**Fix steps:**")
        parts.append("\n".join(f"{i}. {markdown_text(s)}" for i, s in enumerate(msg["fix_steps"], 1)))
    if msg.get("evidence"):
        parts.append("**Evidence (lines from the log):**")
        parts.append("\n".join(f"- {markdown_text(e)}" for e in msg["evidence"]))
    names = {"log": "Log of the failed try", "doctor_run": "Doctor run"}
    parts.append(" · ".join(f"[{names.get(k, k)}](<{u}>)" for k, u in msg["links"].items()))
    return "\n\n".join(parts)


def _dag_details(dag_id: str, api=None) -> dict:
    try:
        from airflow_doctor.hooks.airflow_api import AirflowAPI

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


def _notifier(msg: dict[str, Any], recipients: list[str], slack_conn_id: str) -> DoctorNotifier:
    """The notifier for one message: its HTML email and its Slack payload, with the retry policy."""
    return DoctorNotifier(
        to=recipients,
        subject=msg["subject"],
        html_content=render_html(msg),
        slack_payload=slack_payload(msg),
        smtp_conn_id=SMTP_CONN_ID,
        slack_conn_id=slack_conn_id,
        attempts=CHANNEL_ATTEMPTS,
        backoff_seconds=CHANNEL_BACKOFF_SECONDS,
    )


def send_email(recipients: list[str], msg: dict[str, Any]) -> None:
    """Send `msg` once as an HTML email through the SMTP provider's hook (`DoctorNotifier.send_email`).

    Raises:
        whatever the SMTP provider raises (connection refused, auth, ...).
    """
    _notifier(msg, recipients, SLACK_CONN_ID).send_email()


def deliver(msg: dict[str, Any], recipients: list[str], slack_conn_id: str) -> dict[str, str]:
    """Send one message on both channels (`DoctorNotifier.deliver`: bounded retries, a failed or
    missing channel never stops the other). Never raises.

    Returns:
        {"email": "sent" | "skipped: ..." | "failed: ...", "slack": same, "subject": str}.
    """
    return _notifier(msg, recipients, slack_conn_id).deliver()


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
    items: list[dict],
    excerpt: dict | None,
    judged: dict | None,
    doctor_run_id: str | None,
    *,
    api=None,
    kb=None,
) -> list[dict[str, str]]:
    """Tell people about the failures of one group that the policy says to report: one message per
    route (recipients + Slack connection), a digest (`build_digest`) when a route has several.

    Args:
        items: per member {"ref", "decision", "remediation", "escalation", "verification",
            "doctor_clears", optional "history" (TaskHistory as dict)}.
        excerpt: the group's excerpt. judged: {"diagnosis", "memory"} or None.
        kb: where each message sent is recorded (record_sent); None: the `doctor_db` connection.
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
        from airflow_doctor.hooks.airflow_api import default_api

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
                it.get("history"),
            )
        else:
            msg = build_digest(group, excerpt, judged, doctor_run_id)
        result = deliver(msg, list(recipients), slack)
        log.info(
            "Notified about %d failure(s): email %s, slack %s", len(group), result["email"], result["slack"]
        )
        record_sent(
            [it["ref"] for it in group], "message" if len(group) == 1 else "digest", msg, result, kb=kb
        )
        results.append(result)
    return results


def record_sent(refs: list[dict], kind: str, msg: dict[str, Any], result: dict, *, kb=None) -> None:
    """Record in the knowledge base that a message about `refs` was sent (the Doctor tab's timeline:
    KnowledgeBase.record_notifications). Best effort: a dead database is logged, never raised."""
    try:
        from airflow_doctor.knowledge.store import KnowledgeBase

        (kb or KnowledgeBase()).record_notifications(refs, kind, msg.get("subject") or "", result)
    except Exception as exc:  # noqa: BLE001 - the message went out; only its record is missing
        log.warning("Could not record the message sent about %d failure(s): %s", len(refs), exc)


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
    record_sent([ref_data, *(others or [])], "approval_request", {"subject": one_line(subject)}, delivery)
    return {"subject": one_line(subject), "body": render_approval_body(msg), "delivery": delivery}

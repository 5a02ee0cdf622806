"""Log understanding: from a failed try's log to a bounded, redacted error excerpt.

Reads Airflow 3's structured JSON task log (records with `event`, `level`, `logger`,
`timestamp` and, on errors, `error_detail` with exception type, value and frames) or plain
text (Airflow 1.x/2.x `[ts] {file.py:N} LEVEL - msg` lines, raw tracebacks). Writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from include.doctor.redact import redact

MAX_EXCERPT_BYTES = 8 * 1024  # default bound of an excerpt (issue "Memory and judgement")
CONTEXT_LINES = 8  # log lines kept before the last traceback

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_AIRFLOW_PREFIX = re.compile(
    r"^\s*\[?\d{4}-\d\d-\d\d[T ,]?\s?\d\d:\d\d:\d\d[.,\d]*\s*(?:[+-]\d{2}:?\d{2}|UTC|Z)?\]?\s*"
    r"(?:\{[^}]*\}\s*)?(?:(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\s*-\s*)?"
)
_RECORD_START = re.compile(r"^\s*\[?\d{4}-\d\d-\d\d")  # a new timestamped log record
_EXC_LINE = re.compile(
    r"^(?P<type>(?:[A-Za-z_][\w]*\.)*[A-Z][\w]*(?:Error|Exception|Exit|Interrupt|Timeout|Failure|Fault|"
    r"Refused|NotFound|Denied|Invalid|Warning|Exceeded|Unavailable|Missing|Conflict|Closed|Reset|"
    r"Expired|Killed|Abort|Aborted)?)(?::\s?(?P<msg>.*))?$"
)
_FAILURE_HINTS = re.compile(
    r"(?i)(error|exception|failed|failure|refused|timed? ?out|denied|not found|killed|sigkill|"
    r"returned non-zero|exit code|no such|unable to|cannot|could not|invalid|fatal)"
)


class Excerpt(BaseModel):
    """The part of a log that explains a failure.

    Attributes:
        exception_type: last exception's type as logged (e.g. `psycopg2.OperationalError`), or None.
        message: its message (first 500 characters), or the last error-looking line when no
            exception was logged.
        text: the excerpt itself: context lines, last traceback (chained causes included),
            at most MAX_EXCERPT_BYTES UTF-8 bytes, redacted.
        operator: operator or hook names seen in the log, if any.
        log_lines: how many lines the whole log had.
    """

    exception_type: str | None = None
    message: str = ""
    text: str = ""
    operator: str | None = None
    log_lines: int = 0


def to_text(value: Any) -> str:
    """Decode bytes (any encoding, invalid bytes replaced), drop ANSI colours and control characters."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    text = str(value)
    text = _ANSI.sub("", text)
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _render_error_detail(details: Any) -> list[str]:
    """Python-style traceback lines from a structured record's `error_detail` (causes first)."""
    lines: list[str] = []
    if not isinstance(details, list):
        return lines
    for i, exc in enumerate(details):
        if not isinstance(exc, dict):
            continue
        if i:
            lines.append("")
            lines.append(
                "The above exception was the direct cause of the following exception:"
                if exc.get("is_cause", True)
                else "During handling of the above exception, another exception occurred:"
            )
        lines.append("Traceback (most recent call last):")
        for frame in exc.get("frames") or []:
            if isinstance(frame, dict):
                lines.append(
                    f'  File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("name")}'
                )
        value = to_text(exc.get("exc_value", "")).rstrip()
        head = f"{exc.get('exc_type', 'Exception')}: {value}" if value else str(exc.get("exc_type"))
        lines.extend(head.split("\n"))
    # Airflow lists the outermost exception first; Python prints causes first.
    return lines


def render_log(log: Any) -> list[str]:
    """Flatten a log into lines.

    Args:
        log: list of structured records (dicts) and/or strings, as the logs endpoint returns, or a
            plain str / bytes log.
    Returns:
        lines of text, oldest first, without ANSI codes or control characters.
    """
    if isinstance(log, str | bytes | bytearray):
        return to_text(log).split("\n")
    lines: list[str] = []
    for record in log or []:
        if isinstance(record, dict):
            event = to_text(record.get("event", ""))
            level = str(record.get("level", "")).upper()
            logger = record.get("logger") or ""
            prefix = " ".join(p for p in (str(record.get("timestamp", ""))[:23], level, logger) if p)
            for j, part in enumerate(event.split("\n")):
                lines.append(f"{prefix} - {part}" if j == 0 and prefix else part)
            if record.get("error_detail"):
                details = record["error_detail"]
                lines.extend(
                    _render_error_detail(list(reversed(details)) if isinstance(details, list) else details)
                )
        else:
            lines.extend(to_text(record).split("\n"))
    return lines


def _strip_prefix(line: str) -> str:
    return _AIRFLOW_PREFIX.sub("", line, count=1)


def _last_traceback(lines: list[str]) -> tuple[int, int] | None:
    """(start, end) line indexes of the last traceback block, chained causes included."""
    starts = [i for i, ln in enumerate(lines) if "Traceback (most recent call last)" in ln]
    if not starts:
        return None
    last = starts[-1]
    # Walk back over chained causes: "... the direct cause of ..." / "During handling of ...".
    first = last
    for s in reversed(starts[:-1]):
        between = "\n".join(lines[s:first])
        if "direct cause of the following exception" in between or "During handling of the above" in between:
            first = s
        else:
            break
    end = last + 1
    while end < len(lines):
        stripped = _strip_prefix(lines[end])
        if (
            lines[end].startswith((" ", "\t"))
            or stripped.startswith(("File ", "^", "~"))
            or not stripped.strip()
        ):
            end += 1
            continue
        # the exception line itself, then any continuation lines until a new log record
        end += 1
        while (
            end < len(lines)
            and lines[end].strip()
            and not _RECORD_START.match(lines[end])
            and "Traceback (most recent call last)" not in lines[end]
        ):
            end += 1
        break
    return first, min(end, len(lines))


def _find_exception(lines: Iterable[str]) -> tuple[str | None, str]:
    """The last `Type: message` line that looks like an exception."""
    found: tuple[str | None, str] = (None, "")
    for raw in lines:
        line = _strip_prefix(raw).strip()
        if not line or line.startswith(("File ", "Traceback")):
            continue
        m = _EXC_LINE.match(line)
        if m and (m.group("msg") is not None or "." in m.group("type")):
            exc_type = m.group("type")
            if exc_type.split(".")[-1][0].isupper() and len(exc_type) < 120:
                found = (exc_type, (m.group("msg") or "").strip()[:500])
    return found


_OPERATOR = re.compile(r"\b([A-Z][A-Za-z0-9]*(?:Operator|Sensor|Hook))\b")


def extract_excerpt(log: Any, max_bytes: int = MAX_EXCERPT_BYTES) -> Excerpt:
    """Extract the error excerpt of a failed try's log.

    Args:
        log: structured records, strings, str or bytes (see `render_log`); may be empty or huge.
        max_bytes: bound of `Excerpt.text` in UTF-8 bytes.
    Returns:
        an Excerpt; for an empty log, an Excerpt with empty text and message "empty log".
    """
    lines = render_log(log)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return Excerpt(message="empty log", log_lines=0)
    block = _last_traceback(lines)
    if block:
        start, end = block
        before = [ln for ln in lines[max(0, start - CONTEXT_LINES) : start] if ln.strip()]
        core = lines[start:end]
        exc_type, message = _find_exception(core)
        tail = [ln for ln in lines[end : end + 4] if _FAILURE_HINTS.search(ln)]
        chosen = before + core + tail
    else:
        hits = [i for i, ln in enumerate(lines) if _FAILURE_HINTS.search(ln)]
        last_hit = hits[-1] if hits else len(lines) - 1
        chosen = lines[max(0, last_hit - CONTEXT_LINES - 4) : last_hit + 3]
        exc_type, message = _find_exception(chosen)
        if not message:
            message = _strip_prefix(lines[last_hit]).strip()[:500]
    operators = sorted(set(_OPERATOR.findall("\n".join(lines[-400:]))))
    text = redact("\n".join(chosen))
    return Excerpt(
        exception_type=exc_type,
        message=redact(message),
        text=_bound(text, max_bytes),
        operator=", ".join(operators[:3]) or None,
        log_lines=len(lines),
    )


def _bound(text: str, max_bytes: int) -> str:
    """Keep the head and the tail of `text` within `max_bytes` UTF-8 bytes (the tail holds the error)."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    marker = "\n[... excerpt cut by airflow-doctor ...]\n"
    budget = max_bytes - len(marker.encode())
    head = data[: budget // 4].decode("utf-8", errors="ignore")
    tail = data[-(budget - budget // 4) :].decode("utf-8", errors="ignore")
    return head + marker + tail


def fetch_failure_excerpt(ref_data: dict, *, api=None) -> dict:
    """The fetch_logs stage: the failed try's log through the REST API, reduced to its excerpt.

    Args:
        ref_data: a FailureRef as dict.
    Returns:
        an Excerpt as dict plus `fingerprint`, `signature` and `error` (None, or why the log could
        not be read; then the excerpt is empty and the failure is still diagnosed and escalated).
    """
    from include.doctor.airflow_api import AirflowAPI
    from include.doctor.fingerprint import fingerprint, signature
    from include.doctor.models import FailureRef

    ref = FailureRef.model_validate(ref_data)
    error = None
    try:
        records = (api or AirflowAPI()).get_log(ref)
        excerpt = extract_excerpt(records)
    except Exception as exc:  # noqa: BLE001 - a missing log is diagnosed as "unknown" and escalated
        error = f"log unavailable: {type(exc).__name__}: {exc}"[:500]
        excerpt = Excerpt(message=error)
    out = excerpt.model_dump()
    out["signature"] = signature(excerpt.exception_type, excerpt.message)
    out["fingerprint"] = fingerprint(excerpt.exception_type, excerpt.message)
    out["error"] = error
    return out

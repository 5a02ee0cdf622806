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
CONTEXT_LINES = 20  # log lines kept before the last traceback (a subprocess's own error sits there)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_AIRFLOW_PREFIX = re.compile(
    r"^\s*\[?\d{4}-\d\d-\d\d[T ,]?\s?\d\d:\d\d:\d\d[.,\d]*\s*(?:[+-]\d{2}:?\d{2}|UTC|Z)?\]?\s*"
    r"(?:\{[^}]*\}\s*)?(?:(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\s*-\s*)?"
)
_RECORD_START = re.compile(r"^\s*\[?\d{4}-\d\d-\d\d")  # a new timestamped log record
_EXC_LINE = re.compile(r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s?(?P<msg>.*))?$")
# The last name of an exception class: CamelCase ending in one of these words (or a dotted path).
_EXC_SUFFIX = re.compile(
    r"(Error|Exception|Exit|Interrupt|Timeout|Failure|Fault|Refused|NotFound|Denied|Invalid|Warning|"
    r"Exceeded|Unavailable|Available|Missing|Conflict|Closed|Reset|Expired|Killed|Abort|Aborted|Detected|"
    r"Violation|Iteration|Failed|Forbidden|Unauthorized|Exists|Disconnected)$"
)
# Exceptions that only wrap the real error (a subprocess, a remote job, a retry loop).
_WRAPPER = re.compile(
    r"(?i)bash command failed|returned a non-zero exit code|failed with terminal state|giving up|"
    r"cannot execute|task failed with exception|exited with (?:return|exit) code [1-9]\b|"
    r"job failed|process returned non-zero|no retries remaining|retries exhausted"
)
# A plain error line from a tool's output: "ERROR: ...", "fatal: ...", "Error: ...".
_ERROR_LINE = re.compile(r"^(?:error|fatal|exception|failure|failed)\b\s*[:!-]\s*\S", re.I)
_ELLIPSIS = {"[...]", "...", "…"}
# Airflow's own lines around a failure: they say that the task failed, never why.
_BOOKKEEPING = re.compile(
    r"(?i)task failed with exception|failed to execute job|marking task as|"
    r"exited with return code [0-9]|::group::|::endgroup::"
)
# A log record at ERROR level, or one whose text starts by saying an error happened.
_LOGGED_ERROR = re.compile(r"(?:\bERROR\b|\bCRITICAL\b|(?i: - (?:error|failed|exception)\b))")
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
        causes: the other error lines of the excerpt (chained causes, the exception a wrapper
            replaced), newest first, at most 5, redacted.
        log_lines: how many lines the whole log had.
    """

    exception_type: str | None = None
    message: str = ""
    text: str = ""
    operator: str | None = None
    causes: list[str] = []
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


def is_exception_type(name: str) -> bool:
    """Whether `name` looks like an exception class (`KeyError`, `kafka.errors.NoBrokersAvailable`),
    not a log field (`DETAIL`, `Location`, `User`)."""
    last = name.rsplit(".", 1)[-1]
    if not last or not last[0].isupper() or last.isupper():
        return False
    return bool(_EXC_SUFFIX.search(last)) or ("." in name and any(c.islower() for c in last))


def error_candidates(lines: Iterable[str]) -> list[tuple[str | None, str, bool]]:
    """Every line that states an error, oldest first: (exception type or None, message, is_wrapper)."""
    found: list[tuple[str | None, str, bool]] = []
    for raw in lines:
        line = _strip_prefix(raw).strip()
        if not line or line.startswith(("File ", "Traceback", "During handling", "The above exception")):
            continue
        m = _EXC_LINE.match(line)
        if (
            m
            and m.group("msg") is not None
            and is_exception_type(m.group("type"))
            and len(m.group("type")) < 120
        ):
            message = m.group("msg").strip()[:500]
            found.append((m.group("type"), message, bool(_WRAPPER.search(message))))
        elif _ERROR_LINE.match(line) or (
            _LOGGED_ERROR.search(raw) and _FAILURE_HINTS.search(line) and not _BOOKKEEPING.search(line)
        ):
            found.append((None, line[:500], bool(_WRAPPER.search(line))))
    return found


# `raise ValueError("Failed to ...")` after logging the real error: the idiom of task code that
# wraps a library's error in a generic one.
_GENERIC_TYPES = {"Exception", "RuntimeError", "ValueError", "AirflowException", "OSError", "IOError"}


def _is_generic_reraise(candidate: tuple[str | None, str, bool]) -> bool:
    exc_type, message, _ = candidate
    return (
        bool(exc_type)
        and exc_type.rsplit(".", 1)[-1] in _GENERIC_TYPES
        and bool(re.search(r"(?i)\b(fail(ed|ure|s)?|error|could not|unable to)\b", message))
    )


def primary_error(candidates: list[tuple[str | None, str, bool]]) -> tuple[str | None, str, list[str]]:
    """Choose the error that explains the failure and list the others as causes.

    The last exception is the one that ended the task; when it only wraps another (a failed bash
    command, a remote job, a retry loop that gave up), the last non-wrapper error before it is the
    real one.

    Returns:
        (exception type or None, message, other error lines as `Type: message`, newest first, at most 5).
    """
    if not candidates:
        return None, "", []
    chosen = candidates[-1]
    if chosen[2] or _is_generic_reraise(chosen):
        inner = [c for c in candidates[:-1] if not c[2]]
        if inner:
            chosen = inner[-1]
    causes = [f"{t}: {m}" if t else m for t, m, _ in reversed(candidates) if (t, m, _) != chosen]
    return chosen[0], chosen[1], causes[:5]


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
        tail = [ln for ln in lines[end : end + 4] if _FAILURE_HINTS.search(ln)]
        explained = before + lines[start:end]
        chosen = explained + tail
    else:
        hits = [i for i, ln in enumerate(lines) if _FAILURE_HINTS.search(ln)]
        last_hit = hits[-1] if hits else len(lines) - 1
        explained = chosen = lines[max(0, last_hit - CONTEXT_LINES) : last_hit + 3]
    # The error comes from the traceback and the lines before it; lines after it are Airflow's.
    exc_type, message, causes = primary_error(error_candidates(explained))
    if not message:
        hits = [ln for ln in chosen if _FAILURE_HINTS.search(ln)] or chosen
        message = _strip_prefix(hits[-1]).strip()[:500]
    operators = sorted(set(_OPERATOR.findall("\n".join(lines[-400:]))))
    text = redact("\n".join(chosen))
    return Excerpt(
        exception_type=exc_type,
        message=redact(message),
        text=_bound(text, max_bytes),
        operator=", ".join(operators[:3]) or None,
        causes=[redact(c) for c in causes],
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


def excerpt_record(excerpt: Excerpt, error: str | None = None) -> dict:
    """An Excerpt as the dict the later stages take: plus `signature`, `fingerprint` and `error`."""
    from include.doctor.fingerprint import fingerprint, signature

    out = excerpt.model_dump()
    out["signature"] = signature(excerpt.exception_type, excerpt.message)
    out["fingerprint"] = fingerprint(excerpt.exception_type, excerpt.message)
    out["error"] = error
    return out


def fetch_failure_excerpt(ref_data: dict, *, api=None) -> dict:
    """The fetch_logs stage: the failed try's log through the REST API, reduced to its excerpt.

    Args:
        ref_data: a FailureRef as dict.
    Returns:
        an Excerpt as dict plus `fingerprint`, `signature` and `error` (None, or why the log could
        not be read; then the excerpt is empty and the failure is still diagnosed and escalated).
    """
    from include.doctor.airflow_api import AirflowAPI
    from include.doctor.models import FailureRef

    ref = FailureRef.model_validate(ref_data)
    error = None
    try:
        records = (api or AirflowAPI()).get_log(ref)
        excerpt = extract_excerpt(records)
    except Exception as exc:  # noqa: BLE001 - a missing log is diagnosed as "unknown" and escalated
        error = f"log unavailable: {type(exc).__name__}: {exc}"[:500]
        excerpt = Excerpt(message=error)
    return excerpt_record(excerpt, error)

"""Log understanding: from a failed try's log to a bounded, redacted error excerpt.

Reads Airflow 3's structured JSON task log (records with `event`, `level`, `logger`,
`timestamp` and, on errors, `error_detail` with exception type, value and frames; either the REST
API's list of records or the JSON-lines text Airflow writes to its log files) or plain text
(Airflow 1.x/2.x `[ts] {file.py:N} LEVEL - msg` lines, raw tracebacks). Writes nothing.

The primary error comes from the authority when the log has one: the task runner's `Task failed
with exception` record and its `error_detail` (Airflow 3), or the traceback Airflow logs right
after its `Task failed with exception` line (Airflow 2). Everything printed around it is context:
it goes into the excerpt's text, never into the primary error. A wrapper (a failed bash command,
a remote job's terminal state, `raise ... from`) gives way to the error it wraps: its chained
cause, or for a subprocess or remote job the last error printed before it, never a later line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel

from airflow_doctor.logs.redact import MAX_LINE_CHARS, MAX_TEXT_BYTES, bound_text, redact, redact_lines

_logger = logging.getLogger(__name__)

MAX_EXCERPT_BYTES = 8 * 1024  # default bound of an excerpt (issue "Memory and judgement")
CONTEXT_LINES = 20  # log lines kept before the failing traceback (a subprocess's own error sits there)
MAX_MESSAGE_CHARS = 500  # of the primary error's message (the fingerprint normalises at most this much)
MAX_CAUSES = 5
MAX_EXCERPT_LINE_CHARS = 2048  # of one line of an excerpt's text: a quarter of MAX_EXCERPT_BYTES
MAX_CONTEXT_LINES = 8  # context lines of a log without a traceback
LATE_OUTPUT_LINES = 8  # task output lines kept from after Airflow 3's failure record
LATE_OUTPUT_SCAN = 40  # rendered lines after the failure record searched for them
# A rendered Airflow 3 record of what the task printed (`_render_record`: time, level, logger, event).
_TASK_OUTPUT = re.compile(r"^\S+ [A-Za-z]+ task\.std(?:out|err) - ")
MAX_CONTEXT_CHARS = 300
MAX_FIELD_CHARS = (
    MAX_LINE_CHARS  # of any one field of a record (an exception message, an event), head and tail
)
MAX_RECORDS = 100_000  # of a list of records; the last ones are kept (they hold the failure)
# Of one text record (a timestamped line and the bare lines after it) of a long log: its head and tail
# are kept, so a message of megabytes cannot push the rest of the log out (issue #23 item 3).
MAX_RECORD_CHARS = 256 * 1024
MAX_READ_CHARS = 4 * MAX_TEXT_BYTES  # of a text log read at all; the tail is kept
_RECORD_CUT = "[... record cut by airflow-doctor ...]"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Zero-width and bidi controls: invisible in a UI, they can hide or reorder text. Replaced by U+FFFD,
# not removed, so `Connection<ZWSP>ResetError` does not become a real class name.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_AIRFLOW_PREFIX = re.compile(
    r"^\s*\[?\d{4}-\d\d-\d\d[T ,]?\s?\d\d:\d\d:\d\d[.,\d]*\s*(?:[+-]\d{2}:?\d{2}|UTC|Z)?\]?\s*"
    r"(?:\{[^}]*\}\s*)?(?:(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\s*-\s*)?"
)
# The same prefix, but only up to "LEVEL - ": what a subprocess printed keeps its indentation.
_AIRFLOW_PREFIX_KEEP_INDENT = re.compile(
    r"^\s*\[?\d{4}-\d\d-\d\d[T ,]?\s?\d\d:\d\d:\d\d[.,\d]*\s*(?:[+-]\d{2}:?\d{2}|UTC|Z)?\]?\s*"
    r"(?:\{[^}]*\}\s*)?(?:(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\s*- ?)?"
)
_RECORD_START = re.compile(r"^\s*\[?\d{4}-\d\d-\d\d")  # a new timestamped log record
_EXC_LINE = re.compile(r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s?(?P<msg>.*))?$")
# The last name of an exception class: CamelCase ending in one of these words (or a dotted path).
_EXC_SUFFIX = re.compile(
    r"(Error|Exception|Exit|Interrupt|Timeout|Failure|Fault|Refused|NotFound|Denied|Invalid|Warning|"
    r"Exceeded|Unavailable|Available|Missing|Conflict|Closed|Reset|Expired|Killed|Abort|Aborted|Detected|"
    r"Violation|Iteration|Failed|Forbidden|Unauthorized|Exists|Disconnected|Pushed)$"
)
# Exceptions that only report that something else failed (a subprocess, a remote job, a retry
# loop): the error they wrap was printed before them.
_WRAPPER = re.compile(
    r"(?i)bash command failed|returned a non-zero exit code|failed with terminal state|giving up|"
    r"cannot execute|task failed with exception|exited with (?:return|exit) code [1-9]\b|"
    r"job failed|process returned non-zero|no retries remaining|retries exhausted|"
    r"non-zero exit status|command failed with (?:exit|return) code|RetryError\["
)
# dbt prints its error after this marker; the output before it is progress ("Found 5 models",
# a warning that a macro was "not found") that reads like errors. astronomer-cosmos raises an AirflowException
# whose message is dbt's output as a tuple of lines: ('dbt command failed ...', 'line', ...).
_DBT_MARKER = re.compile(r"Encountered an error:")
_TUPLE_SEPARATOR = re.compile(r"""['"],\s*['"]""")
_DBT_LINE_NOISE = re.compile(r"^(?:\\x1b\[[0-9;]*m|\x1b\[[0-9;]*m)*(?:\d\d:\d\d:\d\d\s+)?")


def dbt_error(message: str) -> str | None:
    """dbt's own error inside a one-line message that carries dbt's output (a cosmos wrapper), or None.

    Args:
        message: an exception message or log line, possibly a tuple repr of dbt's output lines.
    Returns:
        the lines after dbt's last "Encountered an error:" marker, one per line, without the tuple's
        quotes, ANSI resets and dbt's clock prefix; None when the marker is absent or nothing follows
        it on the same line (a multi-line log prints the error on its own lines).
    """
    found = list(_DBT_MARKER.finditer(message or ""))
    if not found:
        return None
    tail = message[found[-1].end() :]
    if not tail.split("\n", 1)[0].strip(" '\")"):
        return None
    lines = [_DBT_LINE_NOISE.sub("", part).strip(" '\"()") for part in _TUPLE_SEPARATOR.split(tail)]
    inner = "\n".join(line for line in lines if line)
    return inner or None


def _dbt_wrapper(exception_type: str | None, message: str) -> str:
    """The wrapper's own words before dbt's output: `Type: dbt command failed ...`."""
    head = _TUPLE_SEPARATOR.split(message, 1)[0].strip(" ('\"")[:MAX_MESSAGE_CHARS]
    return f"{exception_type}: {head}" if exception_type else head


# A plain error line from a tool's output: "ERROR: ...", "fatal: ...", "Error: ...".
_ERROR_LINE = re.compile(r"^(?:error|fatal|exception|failure|failed)\b\s*[:!-]\s*\S", re.I)
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
# Airflow 2's line before the traceback that failed the task ("Task failed with exception"), or
# Airflow 1's `{taskinstance.py:N} ERROR - <message>`.
_AUTHORITY_LINE = re.compile(r"(?i)task failed with exception")
_AIRFLOW1_AUTHORITY_LINE = re.compile(r"\{\{?taskinstance\.py:\d+\}\}? ERROR\b(?!.*callback)")
# Airflow 3's task runner record that carries the exception which failed the task.
_AUTHORITY_EVENT = re.compile(r"(?i)^\s*task failed with exception")
_CHAIN_CAUSE = "The above exception was the direct cause of the following exception:"
_CHAIN_CONTEXT = "During handling of the above exception, another exception occurred:"
_ELLIPSIS = {"[...]", "...", "…"}  # where a pasted or shortened log dropped lines

Source = Literal[
    "error_detail", "traceback", "wrapped_output", "log_line", "context", "cut_off", "audit_log", "none"
]


class Excerpt(BaseModel):
    """The part of a log that explains a failure.

    Attributes:
        exception_type: the primary error's type as logged (e.g. `psycopg2.OperationalError`), or None.
        message: its message (first 500 characters), or the last error-looking line when no
            exception was logged.
        text: the excerpt itself: context lines, the failing traceback (chained causes included),
            at most MAX_EXCERPT_BYTES UTF-8 bytes, redacted.
        operator: operator or hook names seen in the log, if any.
        causes: the primary error's chained causes and the wrapper it replaced, as `Type: message`,
            at most 5, redacted. Lines merely printed near the failure are not causes.
        source: where the primary error came from: `error_detail` (Airflow 3's failure record),
            `traceback` (the traceback that failed the task, or the log's last one), `wrapped_output`
            (a wrapper's subprocess or remote-job output), `log_line` (an error line of a log without
            any traceback: a lost worker, a pasted snippet), `context` (a line logged before a generic
            re-raise without a chained cause), `cut_off` (the log ends before the exception line of
            the traceback that failed the task: the error shown is one that was being handled when
            that exception was raised, so the error that failed the task is unknown), `audit_log`
            (no exception failed the task and Airflow's own audit log says what ended the try: a
            heartbeat timeout; `with_audit`) or `none`.
        context: for a log without a traceback (`source` log_line), the other lines around the error
            line (at most 8, redacted): a lost worker or a throttled call often says why on the next line.
        raised_from: the primary error's direct causes (`raise ... from`: Python's "The above exception
            was the direct cause ..."; Airflow 3's `is_cause`), innermost last, as `Type: message`, at
            most 5, redacted (each also in `causes`). The task raised the primary error because of
            them: a permanent one is evidence against a retry however the outer error reads.
        forged_names: the primary error or a cause names an exception with invisible or look-alike
            (non-ASCII) characters, which no library prints: the log is trying to pass for another.
        log_lines: how many lines the whole log had.
    """

    exception_type: str | None = None
    message: str = ""
    text: str = ""
    operator: str | None = None
    causes: list[str] = []
    source: Source = "none"
    context: list[str] = []
    raised_from: list[str] = []
    forged_names: bool = False
    log_lines: int = 0


def to_text(value: Any, max_chars: int = MAX_FIELD_CHARS) -> str:
    """The sanitiser of every field that leaves a log: decode bytes (invalid bytes replaced), make
    the text valid UTF-8 (a lone surrogate, e.g. from a non-UTF-8 file name, becomes U+FFFD), drop
    ANSI colours and control characters (NUL, ESC), make zero-width and bidi characters visible as
    U+FFFD, and bound it.

    Args:
        value: anything (str, bytes, a number, None, a dict: its str()).
        max_chars: bound of the result in characters; a longer text keeps its head and tail.
    Returns:
        a str that encodes to UTF-8 and Postgres accepts.
    """
    if isinstance(value, bytes | bytearray):
        value = bytes(value[-MAX_TEXT_BYTES:]).decode("utf-8", errors="replace")
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not lose the excerpt
        text = f"<unprintable {type(value).__name__}>"
    if len(text) > 4 * max_chars:  # bound before the regexes below run over it
        text = text[: 2 * max_chars] + "\n" + text[-2 * max_chars :]
    if text.isascii() and text.isprintable():  # nothing to clean: the common log line, fast
        return text if len(text) <= max_chars else _cut(text, max_chars)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: pairs are joined, the rest replaced
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = _ANSI.sub("", text)
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _INVISIBLE.sub("\ufffd", text)
    return text if len(text) <= max_chars else _cut(text, max_chars)


def _cut(text: str, max_chars: int) -> str:
    half = max_chars // 2
    return text[:half] + " [... cut by airflow-doctor ...] " + text[-half:]


# -- structured records ------------------------------------------------------------------------


def parse_records(log: Any) -> list[dict | str]:
    """A log as records: the REST API's list as it is; a text log split into lines, each line that
    is one JSON object with an `event` (Airflow 3's JSON-lines log file) parsed into a dict.

    Args:
        log: list of records (dicts and/or strings), one record dict, or a str / bytes log.
    Returns:
        dicts and strings, oldest first.
    """
    if isinstance(log, dict):
        return [log]
    if not isinstance(log, str | bytes | bytearray):
        try:
            records = list(log or [])[-MAX_RECORDS:]
        except TypeError:  # a number, an object: its text
            return [to_text(log)]
        size = 0  # the cap on bytes read, for records: the newest records whose events fit in it
        for kept, record in enumerate(reversed(records)):
            event = record.get("event") if isinstance(record, dict) else record
            size += len(event) if isinstance(event, str | bytes) else 100
            if size > MAX_TEXT_BYTES and kept:
                return records[len(records) - kept :]
        return records
    if isinstance(log, bytes | bytearray):
        log = bytes(log[-MAX_READ_CHARS:]).decode("utf-8", errors="replace")
    if len(log) > MAX_RECORD_CHARS:
        # A huge message (MBs on one line or many) is bounded before anything else is: whole, it would
        # push the head of the log, where the exception's type is, out of MAX_TEXT_BYTES.
        return _bounded_records(log[-MAX_READ_CHARS:])
    log = bound_text(log)  # bytes read and line length capped before any pattern runs
    out: list[dict | str] = []
    for line in log.replace("\r\n", "\n").split("\n"):
        record = _json_record(line)
        out.append(line if record is None else record)
    return out


def _json_record(line: str) -> dict | None:
    """The line as an Airflow 3 JSON-lines record (one JSON object with an `event`), or None."""
    stripped = line.strip()
    if not (stripped.startswith("{") and stripped.endswith("}") and '"event"' in stripped):
        return None
    try:
        record = json.loads(stripped)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "event" in record else None


def _bounded_records(log: str) -> list[dict | str]:
    """A long text log as records, each bounded before the whole is (issue #23 item 3).

    A JSON-lines record is parsed whole (`to_text` bounds its fields when it is rendered); a text line
    longer than MAX_LINE_CHARS keeps its head and tail; a text record (a timestamped line and the bare
    lines after it: a traceback, a multi-line message) longer than MAX_RECORD_CHARS keeps the lines of
    its first and last MAX_RECORD_CHARS / 2 characters around a marker line. Then the newest records
    within MAX_TEXT_BYTES characters are kept (a JSON record counts as its line's length, at most
    MAX_RECORD_CHARS).

    Args:
        log: the text, at most MAX_READ_CHARS characters.
    Returns:
        dicts and strings, oldest first, as `parse_records`.
    """
    items: list[tuple[dict | str, int]] = []
    group: list[str] = []

    def flush() -> None:
        size = sum(len(ln) + 1 for ln in group)
        if size > MAX_RECORD_CHARS:
            head, tail, budget = [], [], MAX_RECORD_CHARS // 2
            for ln in group:
                if budget - len(ln) < 0:
                    break
                head.append(ln)
                budget -= len(ln) + 1
            budget = MAX_RECORD_CHARS // 2
            for ln in reversed(group[len(head) :]):
                if budget - len(ln) < 0:
                    break
                tail.append(ln)
                budget -= len(ln) + 1
            group[:] = [*head, _RECORD_CUT, *reversed(tail)]
        items.extend((ln, len(ln) + 1) for ln in group)
        group.clear()

    for line in log.replace("\r\n", "\n").split("\n"):
        record = _json_record(line) if len(line) > 1 and line.lstrip()[:1] == "{" else None
        if record is not None:
            flush()
            items.append((record, min(len(line), MAX_RECORD_CHARS) + 1))  # its fields are bounded
            continue
        if len(line) > MAX_LINE_CHARS:
            line = _cut(line, MAX_LINE_CHARS)
        if _RECORD_START.match(line):
            flush()
        group.append(line)
    flush()
    kept, size = 0, 0
    for _, n in reversed(items):
        size += n
        if size > MAX_TEXT_BYTES and kept:
            break
        kept += 1
    return [item for item, _ in items[len(items) - kept :]]


def _stacks(details: Any) -> list[dict]:
    """`error_detail` as a list of exception dicts, the exception that was raised first, its
    `__cause__` / `__context__` after it (structlog's order). A dict is one exception; anything else
    (a string, a number) has none."""
    if isinstance(details, dict):
        return [details]
    if isinstance(details, list | tuple):
        return [d for d in details if isinstance(d, dict)]
    return []


def _detail(record: dict) -> Any:
    """A record's exception: Airflow 3's `error_detail`, or structlog's `exception` when it holds
    dicts (`dict_tracebacks`) rather than a formatted traceback."""
    detail = record.get("error_detail")
    if not detail and isinstance(record.get("exception"), list | dict):
        detail = record["exception"]
    return detail


def _exc_type(stack: dict) -> str:
    return to_text(stack.get("exc_type") or "Exception", 200).strip()


def _exc_value(stack: dict) -> str:
    return to_text(stack.get("exc_value") or "").strip()


def _members(stack: dict) -> list[list[dict]]:
    """An ExceptionGroup's member exceptions, each as its own chain of stacks."""
    members = stack.get("exceptions") or []
    if isinstance(members, dict):
        members = [members]
    if not isinstance(members, list | tuple):
        return []
    return [_stacks(m) for m in members if _stacks(m)]


def _render_stacks(stacks: list[dict], indent: str = "") -> list[str]:
    """Python-style traceback lines of an `error_detail` chain: causes first, as Python prints them."""
    lines: list[str] = []
    for i in range(len(stacks) - 1, -1, -1):
        exc = stacks[i]
        lines.append(indent + "Traceback (most recent call last):")
        frames = exc.get("frames") if isinstance(exc.get("frames"), list | tuple) else []
        for frame in frames[-50:]:
            if isinstance(frame, dict):
                lines.append(
                    f'{indent}  File "{to_text(frame.get("filename"), 300)}", '
                    f"line {to_text(frame.get('lineno'), 12)}, in {to_text(frame.get('name'), 200)}"
                )
                if frame.get("line"):  # the source line, when the formatter kept it
                    lines.append(f"{indent}    {to_text(frame.get('line'), 300).strip()}")
        value = _exc_value(exc)
        head = f"{_exc_type(exc)}: {value}" if value else _exc_type(exc)
        lines.extend(indent + part for part in head.split("\n"))
        notes = exc.get("exc_notes")
        for note in (notes if isinstance(notes, list | tuple) else [notes] if notes else [])[:20]:
            lines.extend(indent + part for part in to_text(note, MAX_CONTEXT_CHARS * 4).split("\n"))
        for n, member in enumerate(_members(exc)[:10], 1):
            lines.append(f"{indent}  +---------------- {n} ----------------")
            lines.extend(_render_stacks(member, indent + "    | "))
        if i:
            lines.append("")
            lines.append(indent + (_CHAIN_CAUSE if stacks[i].get("is_cause") else _CHAIN_CONTEXT))
            lines.append("")
    return lines


# Keys every structured record of an Airflow 3 task log carries (the task runner's and supervisor's
# structlog context, the rendered fields, the exception): not part of what a record says.
_RECORD_KEYS = frozenset(
    {
        "timestamp", "level", "event", "logger", "logger_name", "filename", "lineno", "func_name",
        "dag_id", "task_id", "run_id", "map_index", "ti_id", "try_number", "error_detail", "exception",
        "exc_info", "stack_info", "chan", "pid",
    }
)  # fmt: skip
_SAYS_LEVELS = frozenset({"WARNING", "WARN", "ERROR", "CRITICAL", "EXCEPTION", "FATAL"})


def _record_fields(record: dict) -> str:
    """A warning or error record's own fields as structlog's console renderer prints them
    (` key=value`, dicts as JSON): the supervisor's `detail={"current_state": ...}` or
    `exit_code=<Negsignal.SIGKILL: -9>` is what the record says, and the text form of the same log
    shows it. Bounded to MAX_CONTEXT_CHARS per field."""
    parts = []
    for key, value in list(record.items())[:20]:
        if key in _RECORD_KEYS or not isinstance(key, str) or value is None:
            continue
        if isinstance(value, dict | list):
            try:
                value = json.dumps(value, default=str)
            except (TypeError, ValueError):
                value = str(value)
        parts.append(f" {to_text(key, 40)}={to_text(value, MAX_CONTEXT_CHARS)}")
    return "".join(parts)


def _render_record(record: dict | str) -> list[str]:
    if not isinstance(record, dict):
        return to_text(record).split("\n")
    event = to_text(record.get("event", ""))
    level = to_text(record.get("level", ""), 20).upper()
    logger = to_text(record.get("logger") or "", 200)
    # The timestamp to the millisecond (23 characters), not cut in the middle like a long field.
    stamp = to_text(record.get("timestamp", ""), 64)[:23]
    prefix = " ".join(p for p in (stamp, level, logger) if p)
    if level in _SAYS_LEVELS:
        fields = _record_fields(record)
        if fields:
            event = event.rstrip("\n") + fields if "\n" not in event else event + "\n" + fields.strip()
    lines = [f"{prefix} - {part}" if j == 0 and prefix else part for j, part in enumerate(event.split("\n"))]
    detail = _detail(record)
    if _stacks(detail):
        lines.extend(_render_stacks(_stacks(detail)))
    elif detail:  # a string (or any other shape) where the exception should be: its text
        lines.extend(to_text(detail).split("\n"))
    elif isinstance(record.get("exception"), str):  # structlog's formatted traceback, as text
        lines.extend(to_text(record["exception"]).split("\n"))
    return lines


def render_log(log: Any) -> list[str]:
    """Flatten a log into lines.

    Args:
        log: list of structured records (dicts) and/or strings, as the logs endpoint returns, or a
            plain str / bytes log (JSON-lines records in it are rendered like the API's).
    Returns:
        lines of text, oldest first, without ANSI codes or control characters.
    """
    lines: list[str] = []
    for record in parse_records(log):
        lines.extend(_render_record(record))
    return lines


# -- error lines -------------------------------------------------------------------------------


def _strip_prefix(line: str) -> str:
    return _AIRFLOW_PREFIX.sub("", line, count=1)


def is_exception_type(name: str) -> bool:
    """Whether `name` looks like an exception class (`KeyError`, `kafka.errors.NoBrokersAvailable`),
    not a log field (`DETAIL`, `Location`, `User`). Library exception names are ASCII: a homoglyph
    (`ConnectionResetErrоr` with a Cyrillic о) is not one."""
    if not name.isascii():
        return False
    last = name.rsplit(".", 1)[-1]
    if not last or not last[0].isupper() or last.isupper():
        return False
    return bool(_EXC_SUFFIX.search(last)) or ("." in name and any(c.islower() for c in last))


def _exception_line(line: str) -> tuple[str, str] | None:
    """(type, message) when `line` is `Type: message` with an exception-like type."""
    m = _EXC_LINE.match(line)
    if m and is_exception_type(m.group("type")) and len(m.group("type")) < 120:
        return m.group("type"), (m.group("msg") or "").strip()
    return None


def error_candidates(lines: Iterable[str]) -> list[tuple[str | None, str, bool]]:
    """Every line that states an error, oldest first: (exception type or None, message, is_wrapper)."""
    found: list[tuple[str | None, str, bool]] = []
    for raw in lines:
        line = _strip_prefix(raw).strip()
        if not line or line.startswith(("File ", "Traceback", "During handling", "The above exception")):
            continue
        inner = dbt_error(line)
        m = _EXC_LINE.match(line)
        if m and m.group("msg") is not None and _exception_line(line):
            message = m.group("msg").strip()
            found.append((m.group("type"), message[:MAX_MESSAGE_CHARS], bool(_WRAPPER.search(message))))
        elif _ERROR_LINE.match(line) or (
            _LOGGED_ERROR.search(raw) and _FAILURE_HINTS.search(line) and not _BOOKKEEPING.search(line)
        ):
            found.append((None, line[:MAX_MESSAGE_CHARS], bool(_WRAPPER.search(line))))
        elif inner is not None:
            found.append((None, line[:MAX_MESSAGE_CHARS], True))
        else:
            continue
        if inner is not None:  # a cosmos wrapper carrying dbt's output: dbt's error is the one to read
            found[-1] = (found[-1][0], _dbt_wrapper(None, found[-1][1]), True)
            found.append((None, inner[:MAX_MESSAGE_CHARS], False))
    return found


# `raise ValueError("Failed to ...")` after logging the real error: the idiom of task code that
# wraps a library's error in a generic one.
_GENERIC_TYPES = {"Exception", "RuntimeError", "ValueError", "AirflowException", "OSError", "IOError"}
_GENERIC_MESSAGE = re.compile(r"(?i)\b(fail(ed|ure|s)?|error|could not|unable to)\b")


def is_wrapper(exception_type: str | None, message: str) -> bool:
    """An exception that only reports another failure: a failed subprocess or remote job, a retry
    loop that gave up (`_WRAPPER`), an ExceptionGroup, or a generic type whose message just says
    something failed."""
    if _WRAPPER.search(message or "") or _WRAPPER.search(exception_type or ""):
        return True
    if (exception_type or "").rsplit(".", 1)[-1] in {"ExceptionGroup", "BaseExceptionGroup"}:
        return True  # its members failed, the group only gathers them
    return (
        bool(exception_type)
        and exception_type.rsplit(".", 1)[-1] in _GENERIC_TYPES
        and bool(_GENERIC_MESSAGE.search(message.split("\n", 1)[0]))
    )


def _is_generic_reraise(candidate: tuple[str | None, str, bool]) -> bool:
    exc_type, message, _ = candidate
    return bool(exc_type) and not _WRAPPER.search(message) and is_wrapper(exc_type, message)


def primary_error(candidates: list[tuple[str | None, str, bool]]) -> tuple[str | None, str, list[str]]:
    """Choose, among error lines without a failing traceback, the error that explains the failure.

    The last error line is the one that ended the task; when it only wraps another (a failed bash
    command, a remote job, a retry loop that gave up, a generic re-raise), the last non-wrapper error
    before it is the real one. Never a later line.

    Returns:
        (exception type or None, message, the wrapper replaced, as `Type: message`, if any).
    """
    if not candidates:
        return None, "", []
    chosen = candidates[-1]
    replaced: list[str] = []
    if chosen[2] or _is_generic_reraise(chosen):
        inner = [c for c in candidates[:-1] if not c[2]]
        if inner:
            replaced = [f"{chosen[0]}: {chosen[1]}" if chosen[0] else chosen[1]]
            chosen = inner[-1]
    return chosen[0], chosen[1], replaced


# -- the failing exception ---------------------------------------------------------------------


class _Error(BaseModel):
    """One exception of a chain: its type (None for a line that names none) and whole message."""

    type: str | None
    message: str
    direct: bool = False  # the direct cause (`raise ... from`) of the exception before it in the chain

    @property
    def line(self) -> str:
        first = self.message.split("\n", 1)[0][:MAX_MESSAGE_CHARS]
        return f"{self.type}: {first}" if self.type else first


def _chain_from_detail(stacks: list[dict]) -> list[_Error]:
    """The chain of an `error_detail`, outermost first; an ExceptionGroup contributes its first member.
    Each message is redacted whole (bounded first), before anything cuts it."""
    chain = [
        _Error(type=_exc_type(exc), message=redact(_exc_value(exc)), direct=bool(i and exc.get("is_cause")))
        for i, exc in enumerate(stacks)
    ]
    members = _members(stacks[-1]) if stacks and stacks[-1].get("is_group") else []
    if members:
        chain.extend(_chain_from_detail(members[0]))
    return chain


MAX_CONTINUATION_LINES = 10  # of a multi-line exception message in a text traceback


def _parse_exception_head(line: str) -> _Error:
    parsed = _exception_line(line)
    if parsed:
        return _Error(type=parsed[0], message=parsed[1])
    if re.fullmatch(r"(?:[A-Za-z_]\w*\.)*[A-Z]\w*", line) and is_exception_type(line):
        return _Error(type=line, message="")  # `raise KeyError` without a message
    return _Error(type=None, message=line)


def _traceback_chain(lines: list[str], start: int) -> tuple[list[_Error], int, bool]:
    """Parse the traceback block at `lines[start]` ("Traceback (most recent call last):").

    A traceback that Airflow logged (its lines without a log prefix) ends at the next log record;
    one a subprocess printed (each line prefixed) ends after its exception line. A message's
    continuation lines belong to the message: a line in it that looks like another exception is
    not one.

    Returns:
        (the chain, outermost first; the index of the first line after the block; whether the block's
        last traceback ends without its exception line, i.e. the log was cut inside it).
    """
    prefixed = bool(_RECORD_START.match(lines[start]))
    printed: list[_Error] = []  # as Python prints them: innermost first
    current: _Error | None = None
    continued = 0
    in_frames = after_frame = False
    i = start
    while i < len(lines):
        raw = lines[i]
        if bool(_RECORD_START.match(raw)) != prefixed:
            break
        body = _AIRFLOW_PREFIX_KEEP_INDENT.sub("", raw, count=1) if prefixed else raw
        stripped = body.strip()
        if stripped in _ELLIPSIS:
            pass
        elif stripped.startswith("Traceback (most recent call last)"):
            in_frames, current, after_frame = True, None, False
        elif stripped in (_CHAIN_CAUSE, _CHAIN_CONTEXT):
            if printed and stripped == _CHAIN_CAUSE:
                printed[-1].direct = True  # the exception printed above is the next one's __cause__
            in_frames, current = False, None
        elif in_frames:
            # The line after a frame's `File ...` line is its source line, even where a log lost the
            # indentation, unless it reads as an exception (a frame without source).
            source_line = after_frame and not _exception_line(stripped)
            after_frame = stripped.startswith("File ")
            if stripped and not body[:1].isspace() and not after_frame and not source_line:
                current, continued, in_frames = _parse_exception_head(stripped), 0, False
                printed.append(current)
        elif current is not None and stripped:
            if prefixed or not stripped or continued >= MAX_CONTINUATION_LINES:
                break
            current.message = f"{current.message}\n{stripped}".strip()
            continued += 1
        elif current is not None and not prefixed:
            current = None  # a blank line ends the message
        elif stripped and printed:
            break
        i += 1
    return list(reversed(printed)), i, in_frames


def _choose(chain: list[_Error]) -> tuple[int, bool]:
    """Index of the primary error in an outermost-first chain and whether it is still a wrapper.

    A wrapper gives way to its chained cause or context; anything else is the primary error.
    """
    k = 0
    while k + 1 < len(chain) and is_wrapper(chain[k].type, chain[k].message):
        k += 1
    return k, is_wrapper(chain[k].type, chain[k].message)


def _authority_record(records: list[dict | str]) -> int | None:
    """Index of the record that failed the task: the last `Task failed with exception` record with an
    `error_detail`, else the last error-level record with one."""
    with_detail = [i for i, r in enumerate(records) if isinstance(r, dict) and _stacks(_detail(r))]
    named = [i for i in with_detail if _AUTHORITY_EVENT.match(to_text(records[i].get("event", "")))]
    if named:
        return named[-1]
    errors = [i for i in with_detail if str(records[i].get("level", "")).lower() in {"error", "critical"}]
    return errors[-1] if errors else None


def _last_traceback_start(lines: list[str]) -> int | None:
    """Start of the traceback that failed the task: the one right after Airflow's `Task failed with
    exception` line when the log has one, else the first of the log's last chained traceback."""
    starts = [i for i, ln in enumerate(lines) if "Traceback (most recent call last)" in ln]
    if not starts:
        return None
    for authority in (_AUTHORITY_LINE, _AIRFLOW1_AUTHORITY_LINE):
        for i in range(len(lines) - 1, -1, -1):
            if authority.search(lines[i]):
                after = [s for s in starts if i < s <= i + 2]
                if after:
                    return after[0]
    last = starts[-1]
    first = last
    for s in reversed(starts[:-1]):
        between = "\n".join(lines[s:first])
        if _CHAIN_CAUSE in between or _CHAIN_CONTEXT in between:
            first = s
        else:
            break
    return first


# The leading `Name:` of an error line, Unicode letters allowed: a class name with a homoglyph or an
# invisible character (shown as U+FFFD by `to_text`) in it.
_ANY_NAME = re.compile(r"^\s*((?:[^\W\d]|\ufffd)[\w.\ufffd]*)\s*:")


def _looks_forged(line: str) -> bool:
    m = _ANY_NAME.match(line or "")
    if not m or m.group(1).isascii():
        return False
    name = m.group(1)
    # Mixed scripts in one name (Latin with Cyrillic or Greek look-alikes) or an invisible character.
    return "\ufffd" in name or any(c.isascii() and c.isalpha() for c in name)


_OPERATOR = re.compile(r"\b([A-Z][A-Za-z0-9]{0,80}(?:Operator|Sensor|Hook))\b")
# The doctor's own logger: its listener runs in the failing task's process, so what it logs ("airflow-
# doctor reported ...") lands in the task's log after the failure record. It is not the task's.
_DOCTOR_LOGGER = "airflow_doctor"


def _doctors_own(record: dict | str) -> bool:
    """A structured record the doctor itself logged in the task's process (its listener)."""
    if not isinstance(record, dict):
        return False
    logger = str(record.get("logger") or record.get("logger_name") or "")
    return logger == _DOCTOR_LOGGER or logger.startswith(_DOCTOR_LOGGER + ".")


def extract_excerpt(log: Any, max_bytes: int = MAX_EXCERPT_BYTES) -> Excerpt:
    """Extract the error excerpt of a failed try's log.

    Args:
        log: structured records, strings, str or bytes (see `render_log`); may be empty or huge.
        max_bytes: bound of `Excerpt.text` in UTF-8 bytes.
    Returns:
        an Excerpt; for an empty log, an Excerpt with empty text and message "empty log".
    """
    records = [r for r in parse_records(log) if not _doctors_own(r)]
    authority = _authority_record(records)
    chain: list[_Error] = []
    if authority is not None:
        before = [ln for r in records[:authority] for ln in _render_record(r)]
        failing = _render_record(records[authority])
        after = [ln for r in records[authority + 1 :] for ln in _render_record(r)]
        # What the task printed reaches Airflow 3's log through the supervisor after the failure
        # record, even when printed before the exception (measured on Airflow 3.3: two print() lines
        # before a raise land after `::group::Post Execute`): the task's own last words, kept as
        # context after the failing block (LATE_OUTPUT_LINES at most).
        late = [n for n, ln in enumerate(after[:LATE_OUTPUT_SCAN]) if _TASK_OUTPUT.match(ln)][
            :LATE_OUTPUT_LINES
        ]
        # Redacted whole, before any window is chosen (a key block may start outside it).
        lines = redact_lines(before + failing + after)
        chain = _chain_from_detail(_stacks(_detail(records[authority])))
        block_start, block_end = len(before), len(before) + len(failing)
        late = [block_end + n for n in late]
        source: Source = "error_detail"
    else:
        late = []
        lines = redact_lines([ln for r in records for ln in _render_record(r)])
        block_start = _last_traceback_start(lines)
        block_end = None
        source = "traceback"
        if block_start is not None:
            chain, block_end, cut = _traceback_chain(lines, block_start)
            chain = [e for e in chain if e.type or e.message]
            if chain and cut:
                # Printed as the cause or context of a later exception whose exception line the log
                # lacks: the error that failed the task is unknown.
                source = "cut_off"
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return Excerpt(message="empty log", log_lines=0)

    causes: list[str] = []
    context: list[str] = []
    raised_from: list[str] = []
    if chain and block_start is not None:
        k, still_wrapper = _choose(chain)
        primary = chain[k]
        exc_type, message = primary.type, primary.message
        causes = [e.line for e in chain[k + 1 :]] + [e.line for e in chain[:k]]
        for cause in chain[k + 1 :]:
            if not cause.direct:
                break
            raised_from.append(cause.line)
        dbt = dbt_error(message)
        if dbt is not None:  # a cosmos wrapper carrying dbt's output: dbt's error is the primary one
            causes = [_dbt_wrapper(exc_type, message), *causes]
            exc_type, message, still_wrapper, source = None, dbt, False, "wrapped_output"
        context = [ln for ln in lines[max(0, block_start - CONTEXT_LINES) : block_start] if ln.strip()]
        if still_wrapper:
            # A wrapper without a chained cause: the error it reports was printed before it.
            output = lines[max(0, block_start - 200) : block_start]
            inner = [c for c in error_candidates(output) if not c[2]] or [
                (None, _strip_prefix(ln).strip()[:MAX_MESSAGE_CHARS], False)
                for ln in output
                if _FAILURE_HINTS.search(ln) and not _BOOKKEEPING.search(ln) and not _WRAPPER.search(ln)
            ]
            explicit = bool(_WRAPPER.search(primary.message) or _WRAPPER.search(primary.type or ""))
            if inner and (explicit or source == "traceback"):
                # The wrapper and every other failure the output printed are causes, oldest first: the
                # failure a wrapper reports is printed before whatever a cleanup step printed after it,
                # and a permanent one among them is evidence against a retry even when a
                # transient-looking line is last (issue #23 item 3).
                printed = _printed_failures(output, inner[-1])
                causes = [primary.line, *causes, *printed]
                exc_type, message = inner[-1][0], inner[-1][1]
                if source != "cut_off":
                    source = "wrapped_output" if explicit else "context"
        end = block_end if block_end is not None else len(lines)
        tail = [
            ln
            for n, ln in enumerate(lines[end : end + max(4, LATE_OUTPUT_SCAN)], start=end)
            if (n < end + 4 and _FAILURE_HINTS.search(ln)) or n in late
        ]
        chosen = context + lines[block_start:end] + tail
    else:
        hits = [i for i, ln in enumerate(lines) if _FAILURE_HINTS.search(ln) and not _BOOKKEEPING.search(ln)]
        last_hit = hits[-1] if hits else len(lines) - 1
        chosen = lines[max(0, last_hit - CONTEXT_LINES) : last_hit + 3]
        exc_type, message, causes = primary_error(error_candidates(chosen))
        context = [
            _strip_prefix(ln).strip()[:MAX_CONTEXT_CHARS]
            for ln in chosen
            if ln.strip() and ln.strip() not in _ELLIPSIS and not _BOOKKEEPING.search(ln)
        ][-MAX_CONTEXT_LINES:]
        source = "log_line"
        if message and _handled_before_a_cut_off_raise(lines, message):
            # The error was being handled when another was raised, and the log was cut before that
            # one's exception line: the error that failed the task is unknown.
            source = "cut_off"
        if not message:
            hits_text = [ln for ln in chosen if _FAILURE_HINTS.search(ln)]
            source = "log_line" if hits_text else "none"
            message = _strip_prefix((hits_text or chosen)[-1]).strip()
    operators = sorted(set(_OPERATOR.findall("\n".join(lines[-400:]))))
    forged = any(_looks_forged(line) for line in [f"{exc_type}: {message}" if exc_type else message, *causes])
    # Its lines were redacted with the whole log. A line of a huge message keeps its head (the type and
    # the first words) and tail, so the lines after it (notes, the next records) stay in the excerpt.
    text = "\n".join(
        ln if len(ln) <= MAX_EXCERPT_LINE_CHARS else _cut(ln, MAX_EXCERPT_LINE_CHARS) for ln in chosen
    )
    return Excerpt(
        exception_type=exc_type,
        message=redact(message[:MAX_MESSAGE_CHARS]),
        text=_bound(text, max_bytes),
        operator=", ".join(operators[:3])[:MAX_CONTEXT_CHARS] or None,
        causes=[redact(c) for c in causes[:MAX_CAUSES]],
        source=source,
        context=[redact(c) for c in context if c != message],
        raised_from=[redact(c) for c in raised_from[:MAX_CAUSES]],
        forged_names=forged,
        log_lines=len(lines),
    )


# A line of a wrapper's output that reports a failure, for its causes: the failure hints, an HTTP
# status line or word of a refused request (`HTTP/1.1 401 Unauthorized`, `403 Forbidden`), or words
# of a refusal or an absence that tools print without "error" (`column "x" does not exist`).
_PRINTED_FAILURE = re.compile(
    _FAILURE_HINTS.pattern + r"|\bHTTP/[\d.]+ [45]\d\d\b|"
    r"(?i:\bunauthori[sz]ed\b|\bforbidden\b|\bdoes(?: not|n't) exist\b|\brejected\b|"
    r"\bnot (?:permitted|allowed)\b)"
)


# What `_render_record` puts before an Airflow 3 record's event after its time: level, logger, " - ".
_RENDERED_PREFIX = re.compile(r"^(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|EXCEPTION|FATAL) [\w.]+ - ")


def _printed_failures(output: list[str], chosen: tuple[str | None, str, bool]) -> list[str]:
    """The failures a wrapper's output printed besides the one chosen as its primary error: each error
    line (`error_candidates`) and each other line that reports a failure (`_PRINTED_FAILURE`, not
    Airflow's bookkeeping, not a wrapper), oldest first, once each, without the log prefix, each at
    most MAX_MESSAGE_CHARS."""
    found: list[str] = []
    candidates = {m for _, m, wrapper in error_candidates(output) if not wrapper}
    skip = {chosen[1], f"{chosen[0]}: {chosen[1]}"}
    for raw in output:
        line = _strip_prefix(raw).strip()
        if line[:MAX_MESSAGE_CHARS] in skip:
            continue
        line = _RENDERED_PREFIX.sub("", line, count=1)
        if not line or line.startswith(("File ", "Traceback")):
            continue
        exception = _exception_line(line)
        text = f"{exception[0]}: {exception[1]}" if exception else line
        if line[:MAX_MESSAGE_CHARS] in candidates or (
            _PRINTED_FAILURE.search(line) and not _BOOKKEEPING.search(line) and not _WRAPPER.search(line)
        ):
            text = text[:MAX_MESSAGE_CHARS]
            if text not in found and text not in skip:
                found.append(text)
    return found


def _handled_before_a_cut_off_raise(lines: list[str], message: str) -> bool:
    """Whether the last line carrying `message` is followed by a chain marker ("During handling of
    the above exception ..." or "The above exception was the direct cause ..."): Python printed the
    exception as the cause or context of a later one, whose own exception line the log lacks."""
    needle = message.splitlines()[0][:80]
    at = next((i for i in range(len(lines) - 1, -1, -1) if needle and needle in lines[i]), None)
    return at is not None and any(ln.strip() in (_CHAIN_CAUSE, _CHAIN_CONTEXT) for ln in lines[at + 1 :])


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
    from airflow_doctor.logs.fingerprint import fingerprint, signature

    out = excerpt.model_dump()
    out["signature"] = signature(excerpt.exception_type, excerpt.message)
    out["fingerprint"] = fingerprint(excerpt.exception_type, excerpt.message)
    out["error"] = error
    return out


def fetch_failure_excerpt(ref_data: dict, *, api=None, keep_log: list | None = None) -> dict:
    """The fetch_logs stage: the failed try's log through the REST API, reduced to its excerpt.

    Args:
        ref_data: a FailureRef as dict.
        keep_log: a list the log's records are appended to, for a caller that reads them again
            (the task history's log diff), so the log is fetched once.
    Returns:
        an Excerpt as dict plus `fingerprint`, `signature` and `error` (None, or why the log could
        not be read; then the excerpt is empty and the failure is still diagnosed and escalated).
    """
    from airflow_doctor.hooks.airflow_api import AirflowAPI
    from airflow_doctor.models import FailureRef

    ref = FailureRef.model_validate(ref_data)
    error = None
    api = api or AirflowAPI()
    try:
        records = api.get_log(ref)
        if keep_log is not None:
            keep_log.extend(records)
        excerpt = extract_excerpt(records)
    except Exception as exc:  # noqa: BLE001 - a missing log is diagnosed as "unknown" and escalated
        error = f"log unavailable: {type(exc).__name__}: {exc}"[:500]
        excerpt = Excerpt(message=error)
    return excerpt_record(with_audit(excerpt, ref, api), error)


# Audit-log events that say what ended a try when no exception did, most telling first. Airflow
# 3.3's scheduler records "heartbeat timeout" when a running try's supervisor stopped heartbeating
# (the worker, its pod or its node went away; the task log itself just stops), and "state mismatch"
# when the executor reports a try failed that the task instance still says is running or queued
# (the supervisor never reported: it died, or never started). Both measured on the local stack by
# killing a running try's supervisor.
AUDIT_EVENTS = ("heartbeat timeout", "state mismatch")
_EXCEPTION_SOURCES = frozenset({"error_detail", "traceback", "wrapped_output", "cut_off"})


def with_audit(excerpt: Excerpt, ref, api) -> Excerpt:
    """The excerpt, or, when no exception failed the task (source not error_detail, traceback,
    wrapped_output or cut_off) and Airflow's audit log holds an AUDIT_EVENTS record for this very
    try, the excerpt whose primary error is that record (source `audit_log`): Airflow wrote it, not
    the task, so nothing the task printed can forge it. The log's own error line, if any, stays as
    context (an out-of-memory line there still reads as memory).

    Args:
        excerpt: the log's excerpt.
        ref: the FailureRef of the failed try.
        api: an AirflowAPI (`get_event_logs`).
    Returns:
        an Excerpt. Never raises: an audit log the API will not show (no permission, unreachable)
        leaves the excerpt as it was.
    """
    if excerpt.source in _EXCEPTION_SOURCES:
        return excerpt
    try:
        events = api.get_event_logs(ref, list(AUDIT_EVENTS))
    except Exception as exc:  # noqa: BLE001 - the log alone still makes a diagnosis
        _logger.info("Audit log of %s.%s not read: %s", ref.dag_id, ref.task_id, exc)
        return excerpt
    if not events:
        return excerpt
    event = min(
        events, key=lambda e: AUDIT_EVENTS.index(e["event"]) if e.get("event") in AUDIT_EVENTS else 99
    )
    message = to_text(f"Airflow audit log: {event.get('event')}: {event.get('extra') or ''}".strip(), 500)
    line = f"{to_text(event.get('when') or '', 64)[:23]} AUDIT airflow - {message}"
    context = [*excerpt.context, excerpt.message] if excerpt.message else list(excerpt.context)
    return excerpt.model_copy(
        update={
            "exception_type": None,
            "message": redact(message),
            "text": _bound(f"{excerpt.text}\n{redact(line)}".strip(), MAX_EXCERPT_BYTES),
            "source": "audit_log",
            "context": context[-MAX_CONTEXT_LINES:],
        }
    )

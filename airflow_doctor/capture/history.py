"""Task history: what Airflow itself recorded about a failed task instance and its task, read
through the REST API as evidence the failing task cannot write.

For one failed try (`read_history`): the DAG version it ran on, this task instance's earlier tries
(Airflow's own retries), the task's task instances in its other recent DAG runs with their DAG
versions, the newest successful try, and the line templates the failed try printed that the last
successful try's log did not (`new_line_templates`). The doctor's first task fills
`Group.history` with `read_histories`; the gate reads `TaskHistory.changed_since_success`,
`successes_on_version` and `earlier_tries`, and people and the LLM see `new_lines` (redacted log
text, untrusted).

Nothing here raises: what could not be read is left empty and `TaskHistory.error` says why, and the
gate treats the unknown as no corroboration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from airflow_doctor.logs.excerpt import parse_records, render_log, to_text
from airflow_doctor.logs.fingerprint import normalise
from airflow_doctor.logs.redact import MASK, redact, redact_lines
from airflow_doctor.models import FailureRef, TaskHistory, TryRecord

log = logging.getLogger(__name__)

MAX_NEW_LINES = 12  # new line templates kept per failure (what a message or prompt can carry)
MAX_NEW_LINE_CHARS = 300  # of one kept template
#: Rendered lines of each log compared: the failed try's tail, the success's head and tail.
MAX_DIFF_LINES = 5000
MAX_INPUT_LINE_CHARS = 1000  # of one line before it is normalised (`normalise` keeps at most 500)
MAX_ERROR_CHARS = 300  # of TaskHistory.error

# The doctor's own loggers: its listener runs in the failing task's process and logs there after the
# failure ("airflow-doctor reported ..."); that is not the task's output (as logs/excerpt.py).
_DOCTOR_LOGGER = "airflow_doctor"
# A rendered line of a record the doctor logged: "<timestamp> INFO airflow_doctor.x.y - ...".
_DOCTOR_LINE = re.compile(r"(?:^|\s)\{?airflow_doctor(?:\.\w+)*(?::\d+)?\}?\s+(?:[A-Z]+\s+)?-\s")
# Airflow's own lines around a try's end, which say that it failed (or succeeded), never why: the
# task runner's groups and its "Task failed with exception" record, the supervisor's exit records,
# and a traceback's header, frames and chain markers (the excerpt carries the traceback itself).
_FRAMEWORK_LINE = re.compile(
    r"(?i)::group::|::endgroup::|task failed with exception|marking task as|task exited\b|"
    r"process exited|exited with return code|retry policy decision|"
    r"^\s*traceback \(most recent call last\):|^\s*file \"[^\"]*\", line \d+|"
    r"^\s*the above exception was the direct cause of the following exception|"
    r"^\s*during handling of the above exception, another exception occurred"
)

# A line that is only a file path or URL: where Airflow read the log from ("Log message source
# details"), which names the run and the try and so differs on every run.
_SOURCE_LINE = re.compile(r"^\s*(?:[A-Za-z][\w+.-]*://|/)\S*\s*$")
# A number `normalise` leaves whole or in part because a unit is glued to it ("12ms", "0.52s" ->
# "<n>.52s"): one more placeholder, so durations and sizes do not make a line new. HTTP statuses and
# exit codes stand alone and stay.
_GLUED_NUMBER = re.compile(r"<n>\.\d+|\b\d+(?:\.\d+)?(?=[A-Za-z%])")


# -- the log diff (pure) ----------------------------------------------------------------------------


def _template(line: str) -> str:
    """A line's template: `fingerprint.normalise`, and numbers glued to a unit as `<n>`."""
    return _GLUED_NUMBER.sub("<n>", normalise(line))


def _clean(line: Any) -> str:
    """One line as bounded, printable text on one line (bytes decoded, control characters gone)."""
    return to_text(line, MAX_INPUT_LINE_CHARS).replace("\n", " ")


def _window(lines: Sequence[Any], *, tail_only: bool) -> list[Any]:
    """At most MAX_DIFF_LINES of `lines`: the tail, or the head and the tail halves."""
    if len(lines) <= MAX_DIFF_LINES:
        return list(lines)
    if tail_only:
        return list(lines[-MAX_DIFF_LINES:])
    half = MAX_DIFF_LINES // 2
    return list(lines[:half]) + list(lines[-(MAX_DIFF_LINES - half) :])


def _not_the_tasks(line: str) -> bool:
    """A line of the doctor's own loggers, of Airflow's bookkeeping around the try's end, or the
    log's source location."""
    return bool(_DOCTOR_LINE.search(line, 0, 200) or _FRAMEWORK_LINE.search(line) or _SOURCE_LINE.match(line))


def _emit(redacted_line: str) -> str:
    """The template of an already redacted line, redacted once more and cut to MAX_NEW_LINE_CHARS;
    "" when nothing but masks and placeholders is left of it."""
    template = redact(_template(redacted_line))
    if not template.replace(MASK, "").strip(" .,:;=-\"'"):
        return ""
    if len(template) > MAX_NEW_LINE_CHARS:
        template = template[: MAX_NEW_LINE_CHARS - 3] + "..."
    return template


def new_line_templates(
    failed_lines: Sequence[Any], success_lines: Sequence[Any], limit: int = MAX_NEW_LINES
) -> list[str]:
    """The line templates a failed try printed that a successful try of the same task did not.

    A template is a line with its volatile details replaced (`fingerprint.normalise`: timestamps,
    ids, hex, hosts, paths and numbers, also those glued to a unit as in "12ms", become
    placeholders; HTTP statuses and exit codes stay), so a line both tries printed with other
    numbers or times is not new. Lines of the doctor's own loggers (`airflow_doctor.*`) and
    Airflow's bookkeeping around a try's end (task runner groups, "Task failed with exception",
    exit records, traceback frames, a line that is only the log's source path or URL) are not
    counted.

    Args:
        failed_lines: the failed try's rendered log lines (`logs.excerpt.render_log`), oldest first;
            anything else (bytes, None) is turned into text. Only the last MAX_DIFF_LINES (5000)
            are compared: the failure sits at the end.
        success_lines: the successful try's rendered lines; its first and last 2500 are compared.
        limit: at most this many templates (12 by default, MAX_NEW_LINES); when more are new, the
            first limit//2 and the last limit - limit//2 are kept (where the tries parted and
            where the failed one ended).
    Returns:
        new templates in the failed log's order, each once, each at most MAX_NEW_LINE_CHARS (300)
        characters, redacted (`logs.redact`: the failed lines as one text, so a multi-line key
        block is found, and each template again); text from the log, untrusted. Empty when nothing
        is new or limit <= 0. Cost: one `normalise` per compared line and one redaction of the
        failed lines (measured: about 1-2 s for two 5000-line logs whose every line is new and
        carries a token).
    """
    if limit <= 0 or not failed_lines:
        return []
    failed = [_clean(line) for line in _window(failed_lines, tail_only=True)]
    seen_in_success = {_template(_clean(line)) for line in _window(success_lines or [], tail_only=False)}
    redacted = redact_lines(failed)
    # Each new raw template once, in order; only the kept ones are rendered as redacted templates.
    candidates: list[int] = []
    seen: set[str] = set()
    for i, raw in enumerate(failed):
        if not raw.strip() or _not_the_tasks(raw):
            continue
        template = _template(raw)
        if template not in seen_in_success and template not in seen:
            seen.add(template)
            candidates.append(i)
    kept: dict[int, str] = {}
    taken: set[str] = set()

    def take(indices: Iterable[int], want: int) -> int:
        """Keep templates of `indices` in turn until `want` are kept, looking at 4 x limit at most
        (redaction may make many alike); the last index looked at."""
        last = -1
        for looked, i in enumerate(indices):
            if len(kept) >= want or looked >= 4 * limit:
                break
            last = i
            template = _emit(redacted[i])
            if template and template not in taken:
                taken.add(template)
                kept[i] = template
        return last

    head_end = take(candidates, limit // 2)
    take((i for i in reversed(candidates) if i > head_end), limit)
    return [kept[i] for i in sorted(kept)]


def _doctors_own(record: Any) -> bool:
    """A structured record the doctor itself logged in the task's process (its listener)."""
    if not isinstance(record, dict):
        return False
    logger = str(record.get("logger") or record.get("logger_name") or "")
    return logger == _DOCTOR_LOGGER or logger.startswith(_DOCTOR_LOGGER + ".")


def log_lines(log_records: Any) -> list[str]:
    """A log as the REST API gives it (`AirflowAPI.get_log`: records and/or strings), or a text log,
    rendered to lines (`logs.excerpt.render_log`) without the doctor's own records.

    Returns:
        lines of text, oldest first, without ANSI codes or control characters (not yet redacted).
    """
    return render_log([r for r in parse_records(log_records) if not _doctors_own(r)])


#: The record Airflow's task runner logs when a task's retry policy (AIP-105, Airflow 3.3) gives a
#: reason: `log.info("Retry policy decision", action=..., reason=...)` in
#: airflow/sdk/execution_time/task_runner.py (`_evaluate_retry_policy`).
_POLICY_DECISION_EVENT = "Retry policy decision"
#: Loggers that carry what the task printed, never the runner's own records.
_PRINTED_LOGGERS = ("task.stdout", "task.stderr")


def policy_failed(log_records: Any) -> bool:
    """Whether the failed try's log holds the task runner's own record of a retry policy deciding FAIL.

    Only a structured record counts (event "Retry policy decision", action "fail", not from the
    task's stdout or stderr): a line the task printed is never one. A forged record can only make
    the doctor leave a failure to people, never clear one.

    Args:
        log_records: the log as `AirflowAPI.get_log` gives it (records and/or strings), or None.
    Returns:
        bool; False for a log without structured records.
    """
    if not isinstance(log_records, list):
        return False
    for record in log_records:
        if (
            isinstance(record, dict)
            and record.get("event") == _POLICY_DECISION_EVENT
            and str(record.get("action") or "").lower() == "fail"
            and str(record.get("logger") or "") not in _PRINTED_LOGGERS
        ):
            return True
    return False


# -- reading the history through the REST API -------------------------------------------------------


def _record(data: dict) -> TryRecord:
    """A task instance or try dict of the REST client as a TryRecord (its DAG version from
    `dag_version_number`, else the nested `dag_version.version_number`).

    Raises:
        pydantic.ValidationError: the dict names no run.
    """
    version = data.get("dag_version_number")
    nested = data.get("dag_version") if isinstance(data.get("dag_version"), dict) else {}
    if version is None:
        version = nested.get("version_number")
    return TryRecord(
        run_id=data.get("dag_run_id") or data.get("run_id"),
        try_number=int(data.get("try_number") or 0),
        state=data.get("state"),
        dag_version=version,
        bundle_version=nested.get("bundle_version"),
        start_date=data.get("start_date"),
        end_date=data.get("end_date"),
        max_tries=data.get("max_tries"),
    )


def _newest_success(records: Iterable[TryRecord]) -> TryRecord | None:
    """The successful try that ended last (its start when no end is recorded), or None."""

    def when(t: TryRecord) -> float:
        moment = t.end_date or t.start_date
        return moment.timestamp() if moment else float("-inf")

    successes = [t for t in records if t.state == "success"]
    return max(successes, key=when) if successes else None


def _read(
    api: Any, ref: FailureRef, *, runs: int, diff: bool, max_log_pages: int, failed_log: Any
) -> tuple[TaskHistory, Exception | None]:
    """`read_history`, plus the exception that stopped it (None when everything was read)."""
    found: dict[str, Any] = {}
    step = "client"
    try:
        if api is None:
            raise RuntimeError("no Airflow API client")
        step = "tries"
        tries = [_record(t) for t in api.list_tries(ref)]
        failed = next((t for t in tries if t.try_number == ref.try_number), None)
        if failed is None:  # not in the list (never expected): ask for the try itself
            step = "failed try"
            failed = _record(api.get_try(ref))
        found["failed_version"] = failed.dag_version
        found["failed_bundle_version"] = failed.bundle_version
        if failed.max_tries is not None:
            found["retries_left"] = max(0, failed.max_tries - failed.try_number + 1)
        found["policy_failed"] = policy_failed(failed_log)
        earlier = sorted((t for t in tries if t.try_number < ref.try_number), key=lambda t: t.try_number)
        found["earlier_tries"] = earlier
        recent: list[TryRecord] = []
        if runs > 0:
            step = "recent runs"
            recent = [
                _record(ti)
                for ti in api.task_history(
                    ref.dag_id, ref.task_id, map_index=ref.map_index, limit=runs, exclude_run_id=ref.run_id
                )
            ]
            found["recent"] = recent
        last = _newest_success([*earlier, *recent])
        if last is None and runs > 0 and len(recent) >= runs:
            step = "last success"  # older than the runs read: the newest success, one more request
            older = api.task_history(
                ref.dag_id,
                ref.task_id,
                map_index=ref.map_index,
                limit=1,
                exclude_run_id=ref.run_id,
                state=["success"],
            )
            last = _record(older[0]) if older else None
        found["last_success"] = last
        if diff and last is not None:
            step = "failed try's log"
            failed_records = (
                failed_log if failed_log is not None else api.get_log(ref, max_pages=max_log_pages)
            )
            step = "last success's log"
            success_ref = FailureRef(
                dag_id=ref.dag_id,
                run_id=last.run_id,
                task_id=ref.task_id,
                map_index=ref.map_index,
                try_number=last.try_number,
                source=ref.source,
            )
            success_records = api.get_log(success_ref, max_pages=max_log_pages)
            found["new_lines"] = new_line_templates(log_lines(failed_records), log_lines(success_records))
            found["compared_with"] = f"{last.run_id} try {last.try_number}"
    except Exception as exc:  # noqa: BLE001 - a history not read is no corroboration, never a failure
        found["error"] = f"{step}: {type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        log.info("History of %s (try %s) not fully read: %s", ref.label, ref.try_number, found["error"])
        return TaskHistory(**found), exc
    return TaskHistory(**found), None


def read_history(
    api: Any,
    ref: FailureRef,
    *,
    runs: int = 10,
    diff: bool = True,
    max_log_pages: int = 3,
    failed_log: Any = None,
) -> TaskHistory:
    """What Airflow recorded about a failed try's task instance and its task. Never raises.

    REST calls (through `api`, an `AirflowAPI` or anything with the same methods):
    1. `list_tries(ref)`: every try of this task instance: the failed try's DAG version
       (`failed_version`) and the earlier tries (`earlier_tries`, oldest first). Only when the
       failed try is missing from the answer, `get_try(ref)` as well.
    2. `task_history(dag_id, task_id, map_index=ref.map_index, limit=runs, exclude_run_id=run_id)`:
       the task's finished task instances in its other DAG runs, newest first (`recent`).
    3. Only when no success is among the earlier tries and the `runs` runs read (and more may
       exist): `task_history(..., limit=1, state=["success"])` for the newest success.
    4. When `diff` and a success exists: the failed try's log (`get_log`, at most `max_log_pages`
       pages; none when `failed_log` is given) and the last success's log (at most
       `max_log_pages` pages), compared by `new_line_templates`.
    So 2 requests, at most 4, plus at most 2 x max_log_pages log pages with `diff`.

    Args:
        api: the REST client; None gives a TaskHistory whose error says there is none.
        ref: the failed try.
        runs: how many other DAG runs of the task to read (the server caps it at [api]
            maximum_page_limit, 100 by default); 0 reads none.
        diff: compare the failed try's log with the last successful try's (`new_lines`).
        max_log_pages: bound of the pages read of each log (continuation tokens).
        failed_log: the failed try's log as `AirflowAPI.get_log` gave it, when the caller has read
            it already (saves its pages); None reads it.
    Returns:
        a TaskHistory: `last_success` is the newest successful try among the earlier tries and the
        other runs read; `compared_with` is "<run_id> try <n>" of the log compared with. When a
        call fails, `error` holds the step, the exception's type and message (at most 300
        characters) and the fields read before it are kept; the rest stay empty.
    """
    history, _ = _read(api, ref, runs=runs, diff=diff, max_log_pages=max_log_pages, failed_log=failed_log)
    return history


def _unreachable(exc: Exception | None) -> bool:
    """The API server could not be reached at all (after the client's own retries)."""
    if exc is None:
        return False
    import httpx  # ships with Airflow

    return isinstance(exc.__cause__, httpx.TransportError) or isinstance(exc, httpx.TransportError)


def read_histories(
    api: Any,
    refs: Iterable[FailureRef],
    *,
    runs: int = 10,
    diff_first: bool = True,
    max_members: int = 50,
    first_log: Any = None,
) -> dict[str, TaskHistory]:
    """The histories of a group's failed members (`read_history` each). Never raises.

    The log diff is read only for the first ref (the group's representative, when `diff_first`);
    the others get the cheap parts (2 REST requests each, at most 4). Once the API server could not
    be reached at all, the members not yet read are not tried: their history's error says so.

    Args:
        api: the REST client (None: every history's error says there is none).
        refs: the group's members, the representative first; a repeated member is read once.
        runs: as for `read_history`.
        diff_first: compare the representative's log with its task's last success.
        max_members: at most this many members are read; the rest are absent from the result.
        first_log: the representative's failed log as the caller read it already (fetch_logs), or
            None to read it.
    Returns:
        {FailureRef.member_key: TaskHistory}, in the order of `refs`.
    """
    out: dict[str, TaskHistory] = {}
    stopped: str | None = None
    for ref in refs:
        if len(out) >= max_members:
            break
        if ref.member_key in out:
            continue
        if stopped is not None:
            out[ref.member_key] = TaskHistory(error=stopped)
            continue
        history, exc = _read(
            api,
            ref,
            runs=runs,
            diff=diff_first and not out,
            max_log_pages=3,
            failed_log=None if out else first_log,
        )
        out[ref.member_key] = history
        if _unreachable(exc):
            stopped = f"not read: the Airflow API was unreachable for {ref.label}"[:MAX_ERROR_CHARS]
    return out

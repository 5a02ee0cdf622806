"""Excerpt extraction on real log shapes: Airflow 3 structured JSON and Airflow 2 plain text."""

from __future__ import annotations

from airflow_doctor.logs.excerpt import MAX_EXCERPT_BYTES, excerpt_record, extract_excerpt

AIRFLOW2_LOG = """\
[2024-06-17T19:33:10.101+0000] {taskinstance.py:1157} INFO - Dependencies all met for <TaskInstance: nba.fetch>
[2024-06-17T19:33:10.202+0000] {http.py:102} INFO - Calling HTTP method
[2024-06-17T19:33:12.430+0000] {taskinstance.py:2905} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/usr/lib/python3/site-packages/urllib3/connectionpool.py", line 537, in _make_request
    response = conn.getresponse()
TimeoutError: The read operation timed out

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/opt/airflow/dags/nba.py", line 40, in fetch
    r = requests.get(url, timeout=30)
requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='stats.nba.com', port=443): Read timed out. (read timeout=30)
[2024-06-17T19:33:12.440+0000] {taskinstance.py:1206} INFO - Marking task as FAILED. dag_id=nba, task_id=fetch
"""


def test_structured_log_gives_exception_and_traceback(structured_log):
    excerpt = extract_excerpt(structured_log)
    assert excerpt.exception_type == "OperationalError"
    assert "Connection refused" in excerpt.message
    assert "Traceback (most recent call last):" in excerpt.text
    assert "example_flaky_warehouse.py" in excerpt.text
    assert "Is the server running on that host" in excerpt.text


def test_plain_text_log_keeps_chained_causes_and_last_exception():
    excerpt = extract_excerpt(AIRFLOW2_LOG)
    assert excerpt.exception_type == "requests.exceptions.ReadTimeout"
    assert "Read timed out" in excerpt.message
    assert "TimeoutError: The read operation timed out" in excerpt.text  # the chained cause
    assert "Calling HTTP method" in excerpt.text  # context lines before the traceback


def test_huge_log_is_bounded_and_keeps_the_error():
    noise = "\n".join(
        f"[2024-01-01T00:00:{i % 60:02d}+0000] {{x.py:1}} INFO - row {i} loaded" for i in range(200_000)
    )
    excerpt = extract_excerpt(noise + "\n" + AIRFLOW2_LOG + "\n" + "x" * 50_000)
    assert len(excerpt.text.encode()) <= MAX_EXCERPT_BYTES
    assert excerpt.exception_type == "requests.exceptions.ReadTimeout"


def test_binary_and_ansi_log_is_decoded_and_cleaned():
    raw = (
        b"\x1b[31mERROR\x1b[0m - boom \xff\xfe\x00\nTraceback (most recent call last):\n"
        b'  File "t.py", line 1, in f\nValueError: bad \xc3\xa9 value\n'
    )
    excerpt = extract_excerpt(raw)
    assert excerpt.exception_type == "ValueError"
    assert "\x1b" not in excerpt.text and "\x00" not in excerpt.text
    assert "bad é value" in excerpt.message


def test_empty_log():
    assert extract_excerpt("").message == "empty log"
    assert extract_excerpt([]).text == ""


def test_log_without_traceback_uses_last_error_line():
    log = (
        "[2024-01-01 10:00:00,000] {bash.py:1} INFO - running\n"
        "[2024-01-01 10:00:01,000] {bash.py:2} ERROR - Bash command failed. The command returned a non-zero exit code 2.\n"
    )
    excerpt = extract_excerpt(log)
    assert "non-zero exit code" in excerpt.message


def test_secrets_in_the_log_are_redacted_in_the_excerpt():
    log = (
        'Traceback (most recent call last):\n  File "a.py", line 1, in f\n'
        "psycopg2.OperationalError: could not connect to postgresql://etl:S3cretPass@db:5432/x\n"
    )
    excerpt = extract_excerpt(log)
    assert "S3cretPass" not in excerpt.text and "S3cretPass" not in excerpt.message


BASH_WRAPPED = """\
[2024-04-01T05:34:07.245+0000] {subprocess.py:75} INFO - Running command: ['/bin/bash', '-c', 'python producer.py']
[2024-04-01T05:34:09.475+0000] {subprocess.py:93} INFO - Traceback (most recent call last):
[2024-04-01T05:34:09.475+0000] {subprocess.py:93} INFO -   File "producer.py", line 11, in <module>
[2024-04-01T05:34:09.476+0000] {subprocess.py:93} INFO - redis.exceptions.ConnectionError: Error 111 connecting to cache:6379.
[2024-04-01T05:34:09.483+0000] {subprocess.py:97} INFO - Command exited with return code 1
[2024-04-01T05:34:09.492+0000] {taskinstance.py:1935} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/usr/lib/airflow/operators/bash.py", line 210, in execute
airflow.exceptions.AirflowException: Bash command failed. The command returned a non-zero exit code 1.
[2024-04-01T05:34:09.494+0000] {taskinstance.py:1398} INFO - Marking task as FAILED. dag_id=d, task_id=t
"""

LOGGED_THEN_RAISED = """\
[2025-01-26T20:24:49.548+0000] {extract.py:45} ERROR - Error while fetching data: ConnectTimeout to api.example.com
[2025-01-26T20:24:49.551+0000] {taskinstance.py:3311} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/opt/airflow/dags/extract.py", line 48, in extract
    raise RuntimeError("Failed to fetch the data.")
RuntimeError: Failed to fetch the data.
"""


def test_a_wrapper_exception_gives_way_to_the_error_it_wraps():
    excerpt = extract_excerpt(BASH_WRAPPED)
    assert excerpt.exception_type == "redis.exceptions.ConnectionError"
    assert any("Bash command failed" in c for c in excerpt.causes)


def test_a_generic_reraise_gives_way_to_the_logged_error_before_it():
    excerpt = extract_excerpt(LOGGED_THEN_RAISED)
    assert "ConnectTimeout" in excerpt.message
    assert any("Failed to fetch the data" in c for c in excerpt.causes)


def test_a_bug_is_not_mistaken_for_a_wrapper():
    excerpt = extract_excerpt(
        LOGGED_THEN_RAISED.replace("RuntimeError: Failed to fetch the data.", "KeyError: 'id'")
    )
    assert excerpt.exception_type == "KeyError"


def test_log_fields_are_not_exceptions():
    log = (
        'Traceback (most recent call last):\n  File "a.py", line 1, in f\n'
        "psycopg2.errors.DeadlockDetected: deadlock detected\nDETAIL:  Process 1 waits for ShareLock\n"
        "HINT:  See server log for query details.\n"
    )
    assert extract_excerpt(log).exception_type == "psycopg2.errors.DeadlockDetected"


# -- the primary error from the authority (issue "Judgement that generalises") -------------------

import json  # noqa: E402

FRAME = {"filename": "/opt/airflow/dags/etl.py", "lineno": 12, "name": "load"}


def record(event: str, level: str = "info", logger: str = "task", **extra) -> dict:
    return {
        "timestamp": "2026-12-01T10:00:00.000000Z",
        "level": level,
        "event": event,
        "logger": logger,
        **extra,
    }


def exc(exc_type: str, value: str, is_cause: bool = False, **extra) -> dict:
    return {"exc_type": exc_type, "exc_value": value, "exc_notes": [], "syntax_error": None,
            "is_cause": is_cause, "frames": [FRAME], "is_group": False, "exceptions": [], **extra}  # fmt: skip


def failed(*chain: dict) -> dict:
    return record("Task failed with exception", "error", error_detail=list(chain))


def test_json_lines_text_is_read_like_the_api_records():
    records = [record("Running"), failed(exc("KeyError", "'order_id'"))]
    as_text = "\n".join(json.dumps(r) for r in records)
    for log in (records, as_text, as_text.encode()):
        excerpt = extract_excerpt(log)
        assert (excerpt.exception_type, excerpt.message, excerpt.source) == (
            "KeyError",
            "'order_id'",
            "error_detail",
        )
        assert "Traceback (most recent call last):" in excerpt.text


def test_printed_transient_tracebacks_around_the_failure_record_are_context_only():
    printed = "Traceback (most recent call last):\nConnectionResetError: [Errno 104] Connection reset by peer"
    log = [
        record(printed, logger="task.stdout"),
        failed(exc("KeyError", "'customer'")),
        record(printed, logger="task.stdout"),
        record("ERROR - ConnectionResetError: [Errno 104] Connection reset by peer", "error"),
    ]
    excerpt = extract_excerpt(log)
    assert excerpt.exception_type == "KeyError"
    assert not any("ConnectionResetError" in c for c in excerpt.causes)


def test_a_wrapper_gives_way_to_its_chained_cause_not_to_a_later_line():
    log = [
        failed(
            exc("AirflowException", "Failed to load the orders"),
            exc("OperationalError", "server closed the connection unexpectedly", is_cause=True),
        ),
        record("ValueError: something printed afterwards", "error"),
    ]
    excerpt = extract_excerpt(log)
    assert excerpt.exception_type == "OperationalError"
    assert excerpt.causes == ["AirflowException: Failed to load the orders"]


def test_a_bash_wrapper_gives_way_to_what_the_command_printed_before_it():
    log = [
        record('psql: error: FATAL:  password authentication failed for user "etl"', logger="task.stdout"),
        failed(exc("AirflowException", "Bash command failed. The command returned a non-zero exit code 2.")),
    ]
    excerpt = extract_excerpt(log)
    assert "password authentication failed" in excerpt.message
    assert excerpt.source == "wrapped_output"


def test_an_exception_group_is_read_from_its_first_member_and_notes_stay_context():
    group = exc(
        "ExceptionGroup",
        "2 loads failed (2 sub-exceptions)",
        is_group=True,
        exceptions=[[exc("KeyError", "'sku'")], [exc("TimeoutError", "timed out")]],
        exc_notes=["transient, please retry: ConnectionResetError"],
    )
    excerpt = extract_excerpt([failed(group)])
    assert excerpt.exception_type == "KeyError"
    assert "transient, please retry" in excerpt.text  # shown to people and the LLM, as context
    assert "please retry" not in excerpt.message


def test_the_traceback_after_airflows_failure_line_wins_over_a_later_printed_one():
    log = AIRFLOW2_LOG.replace(
        "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='stats.nba.com', port=443): Read timed out. "
        "(read timeout=30)",
        "KeyError: 'PLAYER_ID'",
    ) + (
        "[2024-06-17T19:33:12.450+0000] {taskinstance.py:1400} ERROR - Error when executing on_failure_callback\n"
        'Traceback (most recent call last):\n  File "/opt/airflow/dags/alert.py", line 3, in cb\n'
        "ConnectionResetError: [Errno 104] Connection reset by peer\n"
    )
    assert extract_excerpt(log).exception_type == "KeyError"


def test_a_multi_line_message_keeps_its_lines_in_the_message():
    log = (
        "[2026-12-01T10:00:00.000+0000] {taskinstance.py:2905} ERROR - Task failed with exception\n"
        'Traceback (most recent call last):\n  File "/opt/airflow/dags/etl.py", line 3, in run\n'
        "ValueError: the partition spec is invalid\nConnectionResetError: [Errno 104] Connection reset by peer\n"
        "[2026-12-01T10:00:00.100+0000] {taskinstance.py:1206} INFO - Marking task as FAILED.\n"
    )
    excerpt = extract_excerpt(log)
    assert excerpt.exception_type == "ValueError"
    assert excerpt.message.endswith("Connection reset by peer")  # part of the message, not another error


def test_look_alike_and_invisible_characters_in_exception_names_are_flagged():
    for name in ("ConnectionResetErr\u043er", "Connection\u200bResetError"):
        excerpt = extract_excerpt(f"{name}: [Errno 104] Connection reset by peer\n")
        assert excerpt.forged_names, name
        assert "\u200b" not in excerpt.text
    assert not extract_excerpt("ConnectionResetError: [Errno 104] Connection reset by peer\n").forged_names


def test_a_traceback_that_lost_its_indentation_keeps_source_lines_out_of_the_message():
    # Some log shippers strip leading spaces: a frame's source line then starts at column 0.
    cut = "\n".join(
        [
            "[2024-05-01 10:00:00,000] {jobs.py:80} ERROR - Worker heartbeat got an exception",
            "Traceback (most recent call last):",
            'File "/usr/lib/python3.8/site-packages/sqlalchemy/pool/base.py", line 600, in connect',
            "conn = self._invoke_creator(self)",
            'File "/usr/lib/python3.8/site-packages/psycopg2/__init__.py", line 122, in connect[...]',
        ]
    )
    excerpt = extract_excerpt(cut)
    # Without its exception line the traceback names no error: the error line it belongs to does.
    assert "conn = self" not in excerpt.message
    assert excerpt.message.endswith("Worker heartbeat got an exception")
    whole = cut.replace("[...]", "") + "\npsycopg2.OperationalError: SSL SYSCALL error: EOF detected"
    excerpt = extract_excerpt(whole)
    assert excerpt.exception_type == "psycopg2.OperationalError"
    assert excerpt.message == "SSL SYSCALL error: EOF detected"


def test_a_traceback_cut_before_the_exception_that_failed_the_task_is_marked_cut_off():
    handled = "\n".join(
        [
            "[2024-05-01 10:00:00,000] {taskinstance.py:1482} ERROR - Task failed with exception",
            "Traceback (most recent call last):",
            '  File "/usr/lib/python3.8/http/client.py", line 288, in _read_status',
            '    raise RemoteDisconnected("Remote end closed connection without response")',
            "http.client.RemoteDisconnected: Remote end closed connection without response",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            '  File "/opt/airflow/dags/export.py", line 40, in export',
            "    rows = cache[key]",
        ]
    )
    excerpt = extract_excerpt(handled)
    # The reset is only what was being handled when the (missing) exception was raised.
    assert excerpt.exception_type == "http.client.RemoteDisconnected"
    assert excerpt.source == "cut_off"
    whole = extract_excerpt(handled + "\nKeyError: 'orders-2024-05-01'")
    assert (whole.exception_type, whole.source) == ("KeyError", "traceback")
    # Cut so that even the first traceback's header is gone: the same.
    headless = extract_excerpt("\n".join(handled.splitlines()[2:]))
    assert headless.source == "cut_off"


def test_a_structured_record_s_timestamp_is_kept_to_the_millisecond_not_cut_in_the_middle():
    records = [
        {"timestamp": "2026-12-05T08:18:21.174824Z", "level": "info", "event": "Running statement: SELECT 1"},
        {
            "timestamp": "2026-12-05T08:18:21.372096Z",
            "level": "error",
            "event": "Task failed with exception",
            "logger": "task",
            "error_detail": [{"exc_type": "ValueError", "exc_value": "bad row", "frames": []}],
        },
    ]
    text = extract_excerpt(records).text
    assert "2026-12-05T08:18:21.372 ERROR task - Task failed with exception" in text
    assert "cut by airflow-doctor" not in text


def test_a_warning_or_error_record_says_its_own_fields_as_the_console_renderer_does():
    from airflow_doctor.logs.excerpt import render_log

    records = [
        {
            "timestamp": "2026-12-05T09:39:26.41Z",
            "level": "info",
            "event": "Filling up the DagBag",
            "bundle": "dags",
        },
        {
            "timestamp": "2026-12-05T09:39:27.42Z",
            "level": "warning",
            "event": "Process exited abnormally",
            "exit_code": -9,
            "pid": 4242,
            "ti_id": "0193a1b2-0000-7000-8000-000000000001",
            "logger": "supervisor",
        },
        {"level": "error", "event": "Server indicated", "detail": {"current_state": None}, "logger": "task"},
    ]
    lines = render_log(records)
    assert lines[0].endswith("Filling up the DagBag")  # an info record: the event only
    assert lines[1].endswith("Process exited abnormally exit_code=-9")  # no pid or ti_id: context, volatile
    assert lines[2] == 'ERROR task - Server indicated detail={"current_state": null}'


class _Audit:
    """Stands in for the Airflow API's log and audit-log endpoints."""

    def __init__(self, records: list, events: list[dict] | Exception) -> None:
        self.records, self.events, self.asked = records, events, []

    def get_log(self, ref) -> list:
        return self.records

    def get_event_logs(self, ref, events: list[str]) -> list[dict]:
        self.asked.append((ref.try_number, tuple(events)))
        if isinstance(self.events, Exception):
            raise self.events
        return self.events


_HEARTBEAT_TIMEOUT = {
    "event": "heartbeat timeout",
    "when": "2026-12-05T10:20:31.120000Z",
    "try_number": 1,
    "extra": "Task did not emit heartbeat within time limit (30 seconds) and will be terminated. See "
    "https://airflow.apache.org/docs/apache-airflow/stable/core-concepts/tasks.html#task-instance-heartbeat-timeout",
}


def _ref():
    from airflow_doctor.models import FailureRef

    return FailureRef(dag_id="exports", run_id="manual__1", task_id="export", try_number=1).model_dump(
        mode="json"
    )


def test_a_try_that_just_stopped_is_read_from_airflow_s_audit_log():
    """An Airflow 3 try whose worker went away leaves a log that just stops; the scheduler's audit
    record of the heartbeat timeout says what ended it, and reads as a lost worker."""
    from airflow_doctor.judgement.rules import classify
    from airflow_doctor.logs.excerpt import fetch_failure_excerpt

    records = [
        {
            "timestamp": "2026-12-05T10:19:58.41Z",
            "level": "info",
            "event": "exporting 41",
            "logger": "task.stdout",
        }
    ]
    mismatch = {
        "event": "state mismatch",
        "when": "2026-12-05T10:20:31.9Z",
        "try_number": 1,
        "extra": "Executor LocalExecutor(parallelism=8) reported that the task instance <TaskInstance: exports.export "
        "manual__1 [running]> finished with state failed, but the task instance's state attribute is running.",
    }
    api = _Audit(records, [_HEARTBEAT_TIMEOUT, mismatch])
    excerpt = fetch_failure_excerpt(_ref(), api=api)
    assert api.asked == [(1, ("heartbeat timeout", "state mismatch"))]
    assert excerpt["source"] == "audit_log"
    assert excerpt["message"].startswith("Airflow audit log: heartbeat timeout: Task did not emit heartbeat")
    assert "AUDIT airflow - Airflow audit log: heartbeat timeout" in excerpt["text"]
    assert classify(excerpt).error_class == "worker_lost"
    # the executor's report alone (no heartbeat timeout recorded yet) reads the same way
    excerpt = fetch_failure_excerpt(_ref(), api=_Audit(records, [mismatch]))
    assert excerpt["message"].startswith("Airflow audit log: state mismatch: Executor LocalExecutor")
    assert classify(excerpt).error_class == "worker_lost"

    # an out-of-memory line in the log still reads as memory
    oom = {
        "timestamp": "2026-12-05T10:19:59.0Z",
        "level": "error",
        "event": "Killed: out of memory",
        "logger": "task",
    }
    excerpt = fetch_failure_excerpt(_ref(), api=_Audit([*records, oom], [_HEARTBEAT_TIMEOUT]))
    assert excerpt["source"] == "audit_log" and classify(excerpt).error_class == "oom_killed_sigkill"


def test_the_audit_log_is_not_asked_when_an_exception_failed_the_task_and_its_absence_changes_nothing():
    from airflow_doctor.logs.excerpt import fetch_failure_excerpt

    failed = ["Traceback (most recent call last):", "KeyError: 'customer_id'"]
    api = _Audit(failed, [_HEARTBEAT_TIMEOUT])
    assert fetch_failure_excerpt(_ref(), api=api)["exception_type"] == "KeyError" and api.asked == []
    stopped = ["exporting 41"]
    for events in ([], PermissionError("403 Forbidden")):
        excerpt = fetch_failure_excerpt(_ref(), api=_Audit(stopped, events))
        assert excerpt["source"] != "audit_log" and "audit" not in excerpt["text"].lower()


def test_what_the_task_printed_reaches_the_excerpt_though_airflow_3_logs_it_after_the_failure_record():
    """Airflow 3's supervisor forwards the task's stdout after the failure record even when it was
    printed before the exception (measured on Airflow 3.3: print() lines before a raise land after
    `::group::Post Execute`). They are the task's last words: context after the failing block, never
    the primary error."""
    from tests.judgement.adversarial_logs import a3_failed, a3_started, exc, out, rec

    log = (
        a3_started(1, "sync")
        + a3_failed(3, exc("ValueError", "no rows for 2026-12-04", ("/opt/airflow/dags/sync.py", 40, "sync")))
        + [rec(3, "::group::Post Execute", logger="task")]
        + out(3, "querying partner API page 3 of 9\nreceived 0 rows")
    )
    excerpt = extract_excerpt(log)
    assert (excerpt.source, excerpt.exception_type, excerpt.message) == (
        "error_detail",
        "ValueError",
        "no rows for 2026-12-04",
    )
    text = excerpt.text
    assert "received 0 rows" in text and text.index("ValueError: no rows") < text.index(
        "querying partner API"
    )


def test_what_the_doctor_itself_logged_in_the_task_s_process_is_not_the_task_s_evidence():
    """The doctor's listener runs in the failing task's process and logs that it reported the failure
    (logger airflow_doctor.*): that line is in the task's log after the failure record, and must
    not be read as the task's output, an error line or a plea (it names the doctor)."""
    from airflow_doctor.judgement.disputes import pleas
    from tests.judgement.adversarial_logs import a3_failed, a3_started, exc, rec

    gaierror = exc(
        "socket.gaierror", "[Errno -2] Name or service not known", ("/opt/airflow/dags/p.py", 9, "pull")
    )
    log = (
        a3_started(1, "partner")
        + a3_failed(3, gaierror)
        + [
            rec(
                3,
                "airflow-doctor reported partner.pull (try 1), asset event 7",
                logger="airflow_doctor.capture.failures",
            )
        ]
        + [
            rec(
                3,
                "airflow-doctor could not post: failures queued",
                "error",
                "airflow_doctor.listeners.failures",
            )
        ]
    )
    excerpt = extract_excerpt(log)
    assert excerpt.exception_type == "socket.gaierror"
    assert "airflow-doctor" not in excerpt.text
    assert pleas(excerpt_record(excerpt)) == []

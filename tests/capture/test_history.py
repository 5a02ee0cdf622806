"""Task history: the pure log diff (new line templates) and read_history / read_histories against a
small fake of the REST client. The real API is exercised by the end-to-end tests (tests/e2e)."""

from __future__ import annotations

import string

import httpx
import pytest

from airflow_doctor.capture.history import (
    MAX_NEW_LINE_CHARS,
    log_lines,
    new_line_templates,
    read_histories,
    read_history,
)
from airflow_doctor.hooks.airflow_api import AirflowAPIError
from airflow_doctor.models import FailureRef

# -- the pure diff --------------------------------------------------------------------------------


def test_what_only_the_failure_printed_is_kept_and_shared_lines_with_other_numbers_are_not():
    success = [
        "2026-01-01T00:00:01.123 INFO task.stdout - Connecting to warehouse db.internal:5432",
        "2026-01-01T00:00:02.456 INFO task.stdout - Fetched 1234 rows from orders in 0.52s",
        "2026-01-01T00:00:03.000 INFO task.stdout - run id 5f0c2a1e-7a4b-4c1d-9e8f-0123456789ab",
    ]
    failed = [
        "2026-02-03T10:11:12.999 INFO task.stdout - Connecting to warehouse db.internal:5432",
        "2026-02-03T10:11:13.001 INFO task.stdout - Fetched 0 rows from orders in 12.01s",
        "2026-02-03T10:11:13.500 WARNING task.stdout - upstream schema changed: column 'amount' missing",
        "2026-02-03T10:11:14.000 INFO task.stdout - run id 0a1b2c3d-0000-4000-8000-ffffffffffff",
        "2026-02-03T10:11:14.100 ERROR task - KeyError: 'amount'",
        "2026-02-03T10:11:13.500 WARNING task.stdout - upstream schema changed: column 'amount' missing",
    ]
    new = new_line_templates(failed, success)
    assert new == [
        "<ts> WARNING task.stdout - upstream schema changed: column 'amount' missing",
        "<ts> ERROR task - KeyError: 'amount'",
    ]


def test_the_doctors_own_lines_and_airflows_bookkeeping_are_not_new():
    failed = [
        "2026-01-01T00:00:00.000 INFO task - ::group::Post Execute",
        "2026-01-01T00:00:00.000 ERROR task - Task failed with exception",
        "Traceback (most recent call last):",
        '  File "/opt/airflow/dags/etl.py", line 37, in load',
        "The above exception was the direct cause of the following exception:",
        "2026-01-01T00:00:00.000 INFO airflow_doctor.listeners.failures - airflow-doctor reported etl.load",
        "2026-01-01T00:00:00.000 INFO supervisor - Process exited pid=123 exit_code=1",
        "/opt/airflow/logs/dag_id=etl/run_id=manual__2026-01-01T00:00:00+00:00/task_id=load/attempt=1.log",
        "OperationalError: connection refused",
        "",
    ]
    assert new_line_templates(failed, []) == ["OperationalError: connection refused"]


def test_secrets_in_new_lines_are_redacted():
    failed = [
        "2026-01-01T00:00:00.000 INFO task.stdout - connecting with password=hunter2 as etl",
        "Authorization: Bearer sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEAs9Qw1u0F2mXk6q3VZrZQeVb8m7TzP2pQ9o5Lw8yqXkQx7nJd",
        "-----END RSA PRIVATE KEY-----",
    ]
    new = new_line_templates(failed, ["connecting with password=other as etl"])
    text = "\n".join(new)
    assert "hunter2" not in text and "sk-ant-api03" not in text and "MIIEowIBAAKCAQEA" not in text
    assert any("password=***" in line for line in new)


def test_output_is_bounded_in_lines_and_characters_keeping_the_start_and_the_end():
    def word(n: int) -> str:  # distinct letters-only words: numbers would normalise alike
        out = ""
        while True:
            out = string.ascii_lowercase[n % 26] + out
            n //= 26
            if not n:
                return out

    failed = [f"new thing {word(i)} happened" for i in range(100)] + ["x" * 10_000 + " tail"]
    new = new_line_templates(failed, [])
    assert len(new) == 12
    assert new[:6] == [f"new thing {word(i)} happened" for i in range(6)]
    assert new[6:11] == [f"new thing {word(i)} happened" for i in range(95, 100)]
    assert all(len(line) <= MAX_NEW_LINE_CHARS for line in new)
    assert new_line_templates(failed, [], limit=3) == [new[0], new[-2], new[-1]]
    assert new_line_templates(failed, [], limit=0) == [] and new_line_templates([], ["a"]) == []


def test_lines_alike_once_redacted_are_kept_once():
    failed = [f"retrying with token=x{i}y" for i in range(500)]
    assert new_line_templates(failed, []) == ["retrying with token=***"]


def test_binary_and_huge_input_stays_bounded():
    junk = bytes(range(256)) * 40
    failed = [junk, None, "\x00\x1b[31mred\x1b[0m \u202eevil", "y" * 1_000_000] + ["same line 1"] * 200_000
    success = ["same line 2"] * 200_000 + [junk]
    new = new_line_templates(failed, success)
    assert len(new) <= 12 and all(len(line) <= MAX_NEW_LINE_CHARS for line in new)
    assert all("\x00" not in line and "\x1b" not in line for line in new)
    assert "same line <n>" not in new  # shared with the success once the number is a placeholder


def test_log_lines_renders_records_without_the_doctors_own():
    records = [
        {
            "timestamp": "2026-01-01T00:00:00.123456Z",
            "level": "info",
            "event": "hello",
            "logger": "task.stdout",
        },
        {
            "timestamp": "2026-01-01T00:00:01Z",
            "level": "info",
            "event": "reported",
            "logger": "airflow_doctor.x",
        },
        "a plain line",
    ]
    assert log_lines(records) == ["2026-01-01T00:00:00.123 INFO task.stdout - hello", "a plain line"]


# -- read_history against a fake REST client ------------------------------------------------------

RUN = "manual__2026-03-01T00:00:00+00:00"


def _dag_version(number: int | None) -> dict | None:
    if number is None:
        return None
    return {"id": f"v{number}", "version_number": number, "dag_id": "etl", "bundle_name": "dags-folder"}


def _ti(run_id: str, try_number: int, state: str, version: int | None, day: int, map_index: int = -1) -> dict:
    """A task instance or try as AirflowAPI returns it (plain JSON data, nulls left out)."""
    data = {
        "dag_id": "etl",
        "dag_run_id": run_id,
        "task_id": "load",
        "map_index": map_index,
        "try_number": try_number,
        "state": state,
        "start_date": f"2026-02-{day:02d}T00:00:00Z",
        "end_date": f"2026-02-{day:02d}T00:01:00Z",
    }
    if version is not None:
        data["dag_version"] = _dag_version(version)
        data["dag_version_number"] = version
    return data


def _record(event: str, logger: str = "task.stdout", level: str = "info", second: int = 0) -> dict:
    return {
        "timestamp": f"2026-02-01T00:00:{second:02d}.000Z",
        "level": level,
        "event": event,
        "logger": logger,
    }


SUCCESS_LOG = [
    _record("Connecting to warehouse", second=1),
    _record("Fetched 1234 rows from orders", second=2),
    _record("::group::Post Execute", logger="task", second=3),
]
FAILED_LOG = [
    _record("Connecting to warehouse", second=5),
    _record("Fetched 0 rows from orders", second=6),
    _record("upstream schema changed: column amount missing api_key=abc123secret", level="warning", second=7),
    _record("Task failed with exception", logger="task", level="error", second=8),
    _record("airflow-doctor reported etl.load", logger="airflow_doctor.listeners.failures", second=9),
]


def _unreachable_error() -> AirflowAPIError:
    try:
        raise httpx.ConnectError("Connection refused")
    except httpx.ConnectError as exc:
        try:
            raise AirflowAPIError("GET /api/v2/...: ConnectError: Connection refused (3 attempt(s))") from exc
        except AirflowAPIError as err:
            return err


class FakeAPI:
    """The AirflowAPI methods read_history calls, answering as the real client does (dicts); every
    call is recorded as (method, args). `fail[method]` is raised by that method instead."""

    def __init__(
        self, tries: list[dict], history: list[dict], logs: dict[tuple[str, int], list] | None = None
    ):
        self.tries = tries
        self.history = history
        self.logs = logs or {}
        self.calls: list[tuple[str, tuple]] = []
        self.fail: dict[str, Exception] = {}

    def _enter(self, method: str, *args) -> None:
        self.calls.append((method, args))
        if method in self.fail:
            raise self.fail[method]

    def list_tries(self, ref: FailureRef) -> list[dict]:
        self._enter("list_tries", ref.run_id, ref.map_index)
        return [t for t in self.tries if t["dag_run_id"] == ref.run_id]

    def get_try(self, ref: FailureRef, try_number: int | None = None) -> dict:
        self._enter("get_try", ref.run_id, try_number or ref.try_number)
        return _ti(ref.run_id, ref.try_number, "failed", 9, 28)

    def task_history(self, dag_id, task_id, *, map_index=-1, limit=10, exclude_run_id=None, state=None):
        self._enter("task_history", dag_id, task_id, map_index, limit, exclude_run_id, tuple(state or ()))
        found = [t for t in self.history if t["dag_run_id"] != exclude_run_id]
        if state:
            found = [t for t in found if t["state"] in state]
        return found[:limit]

    def get_log(self, ref: FailureRef, max_pages: int = 20) -> list:
        self._enter("get_log", ref.run_id, ref.try_number, ref.map_index, max_pages)
        return self.logs[(ref.run_id, ref.try_number)]

    def called(self, method: str) -> list[tuple]:
        return [args for m, args in self.calls if m == method]


def _ref(try_number: int = 2, map_index: int = -1, run_id: str = RUN) -> FailureRef:
    return FailureRef(dag_id="etl", run_id=run_id, task_id="load", map_index=map_index, try_number=try_number)


def test_same_version_with_successes_reads_tries_runs_and_the_new_lines():
    api = FakeAPI(
        tries=[_ti(RUN, 2, "failed", 5, 27), _ti(RUN, 1, "up_for_retry", 5, 27)],
        history=[
            _ti("scheduled__b", 1, "success", 5, 26),
            _ti("scheduled__a", 2, "success", 5, 25),
            _ti("scheduled__z", 1, "failed", 4, 20),
        ],
        logs={(RUN, 2): FAILED_LOG, ("scheduled__b", 1): SUCCESS_LOG},
    )
    history = read_history(api, _ref())
    assert history.error is None
    assert history.failed_version == 5
    assert [(t.try_number, t.state) for t in history.earlier_tries] == [(1, "up_for_retry")]
    assert [(t.run_id, t.dag_version) for t in history.recent] == [
        ("scheduled__b", 5),
        ("scheduled__a", 5),
        ("scheduled__z", 4),
    ]
    assert history.last_success.run_id == "scheduled__b" and history.last_success.try_number == 1
    assert history.successes_on_version == 2 and not history.changed_since_success
    assert history.compared_with == "scheduled__b try 1"
    assert history.new_lines == [
        "<ts> WARNING task.stdout - upstream schema changed: column amount missing api_key=***"
    ]
    # 2 requests plus one page-bounded read of each log
    assert [m for m, _ in api.calls] == ["list_tries", "task_history", "get_log", "get_log"]
    assert api.called("task_history") == [("etl", "load", -1, 10, RUN, ())]
    assert api.called("get_log") == [(RUN, 2, -1, 3), ("scheduled__b", 1, -1, 3)]


def test_a_newer_version_than_the_last_success_is_a_change():
    api = FakeAPI(
        tries=[_ti(RUN, 1, "failed", 7, 27)],
        history=[_ti("scheduled__c", 1, "failed", 7, 26), _ti("scheduled__b", 1, "success", 6, 25)],
        logs={(RUN, 1): FAILED_LOG, ("scheduled__b", 1): SUCCESS_LOG},
    )
    history = read_history(api, _ref(try_number=1), diff=False)
    assert history.failed_version == 7 and history.last_success.dag_version == 6
    assert history.changed_since_success and history.successes_on_version == 0
    assert history.earlier_tries == [] and history.new_lines == [] and history.compared_with is None
    assert api.called("get_log") == []  # no diff asked for: no log read


def test_no_success_ever_reads_no_log():
    api = FakeAPI(
        tries=[_ti(RUN, 1, "failed", 3, 27)],
        history=[_ti("scheduled__a", 1, "failed", 3, 26)],
    )
    history = read_history(api, _ref(try_number=1))
    assert history.error is None and history.last_success is None
    assert not history.changed_since_success and history.successes_on_version == 0
    assert history.new_lines == [] and history.compared_with is None
    assert [m for m, _ in api.calls] == ["list_tries", "task_history"]  # fewer runs than asked: all seen


def test_a_success_older_than_the_runs_read_is_looked_up_once():
    failures = [_ti(f"scheduled__{n}", 1, "failed", 4, 20 + n) for n in range(3)]
    api = FakeAPI(
        tries=[_ti(RUN, 1, "failed", 4, 27)],
        history=[*failures, _ti("scheduled__old", 1, "success", 2, 10)],
        logs={(RUN, 1): FAILED_LOG, ("scheduled__old", 1): SUCCESS_LOG},
    )
    history = read_history(api, _ref(try_number=1), runs=3)
    assert len(history.recent) == 3 and history.last_success.run_id == "scheduled__old"
    assert history.changed_since_success and history.compared_with == "scheduled__old try 1"
    assert api.called("task_history")[1] == ("etl", "load", -1, 1, RUN, ("success",))


def test_an_earlier_successful_try_of_the_same_run_counts_as_the_last_success():
    api = FakeAPI(
        tries=[_ti(RUN, 1, "success", 3, 26), _ti(RUN, 2, "failed", 4, 27)],  # cleared after success
        history=[_ti("scheduled__a", 1, "success", 3, 20)],
        logs={(RUN, 2): FAILED_LOG, (RUN, 1): SUCCESS_LOG},
    )
    history = read_history(api, _ref(try_number=2))
    assert history.last_success.run_id == RUN and history.last_success.try_number == 1
    assert history.compared_with == f"{RUN} try 1" and history.changed_since_success


def test_a_mapped_instance_follows_its_map_index_and_a_given_failed_log_is_not_read_again():
    api = FakeAPI(
        tries=[_ti(RUN, 1, "failed", 2, 27, map_index=3)],
        history=[_ti("scheduled__a", 1, "success", 2, 26, map_index=3)],
        logs={("scheduled__a", 1): SUCCESS_LOG},
    )
    history = read_history(api, _ref(try_number=1, map_index=3), failed_log=FAILED_LOG, max_log_pages=1)
    assert history.error is None and history.successes_on_version == 1 and len(history.new_lines) == 1
    assert api.called("list_tries") == [(RUN, 3)]
    assert api.called("task_history")[0][2] == 3
    assert api.called("get_log") == [("scheduled__a", 1, 3, 1)]


def test_a_failed_try_missing_from_the_list_is_asked_for_itself():
    api = FakeAPI(tries=[_ti(RUN, 1, "up_for_retry", 8, 27)], history=[])
    history = read_history(api, _ref(try_number=2))
    assert history.failed_version == 9 and api.called("get_try") == [(RUN, 2)]


@pytest.mark.parametrize(
    ("failing", "step", "kept"),
    [
        pytest.param("list_tries", "tries", set(), id="tries"),
        pytest.param("task_history", "recent runs", {"failed_version", "earlier_tries"}, id="recent-runs"),
        pytest.param(
            "get_log",
            "failed try's log",
            {"failed_version", "earlier_tries", "recent", "last_success"},
            id="logs",
        ),
    ],
)
def test_an_api_error_midway_is_reported_and_what_was_read_is_kept(failing, step, kept):
    api = FakeAPI(
        tries=[_ti(RUN, 1, "up_for_retry", 5, 27), _ti(RUN, 2, "failed", 5, 27)],
        history=[_ti("scheduled__b", 1, "success", 5, 26)],
        logs={(RUN, 2): FAILED_LOG, ("scheduled__b", 1): SUCCESS_LOG},
    )
    api.fail[failing] = AirflowAPIError("GET /api/v2/x: HTTP 500: " + "boom " * 200, status=500)
    history = read_history(api, _ref())
    assert history.error.startswith(f"{step}: AirflowAPIError: GET /api/v2/x: HTTP 500: boom")
    assert len(history.error) <= 300
    read = {
        "failed_version": history.failed_version == 5,
        "earlier_tries": len(history.earlier_tries) == 1,
        "recent": len(history.recent) == 1,
        "last_success": history.last_success is not None,
    }
    assert {name for name, ok in read.items() if ok} == kept
    assert history.new_lines == [] and history.compared_with is None
    assert not history.changed_since_success


def test_without_a_client_the_history_says_so():
    history = read_history(None, _ref())
    assert history.error == "client: RuntimeError: no Airflow API client"
    assert history.failed_version is None and history.recent == []


# -- read_histories ---------------------------------------------------------------------------------


def test_read_histories_diffs_only_the_representative_and_keys_by_member():
    refs = [_ref(try_number=1, map_index=i) for i in range(4)]
    tries = [_ti(RUN, 1, "failed", 2, 27, map_index=i) for i in range(4)]
    api = FakeAPI(
        tries=tries,
        history=[_ti("scheduled__a", 1, "success", 2, 26)],
        logs={(RUN, 1): FAILED_LOG, ("scheduled__a", 1): SUCCESS_LOG},
    )
    histories = read_histories(api, [*refs, refs[0]], max_members=3)
    assert list(histories) == [r.member_key for r in refs[:3]]
    assert histories[refs[0].member_key].compared_with == "scheduled__a try 1"
    assert all(histories[r.member_key].compared_with is None for r in refs[1:3])
    assert all(h.last_success is not None and h.error is None for h in histories.values())
    assert len(api.called("get_log")) == 2 and len(api.called("list_tries")) == 3
    assert read_histories(api, refs, diff_first=False, max_members=0) == {}


def test_read_histories_stops_asking_an_unreachable_api():
    refs = [_ref(try_number=1, run_id=f"r{n}") for n in range(3)]
    api = FakeAPI(tries=[], history=[])
    api.fail["list_tries"] = _unreachable_error()
    histories = read_histories(api, refs)
    assert len(api.called("list_tries")) == 1 and list(histories) == [r.member_key for r in refs]
    assert "ConnectError" in histories[refs[0].member_key].error
    assert histories[refs[2].member_key].error == "not read: the Airflow API was unreachable for etl.load"

    api.fail["list_tries"] = AirflowAPIError("GET x: HTTP 404: not found", status=404)  # not unreachable
    assert all(h.error for h in read_histories(api, refs).values())
    assert len(api.called("list_tries")) == 1 + 3


@pytest.mark.parametrize(("max_tries", "left"), [(3, 2), (2, 1), (1, 0), (0, 0), (None, None)])
def test_retries_left_come_from_the_failed_trys_max_tries(max_tries, left):
    """Airflow retries a failed try while try_number <= max_tries: try 2 with max_tries 3 failed with
    2 retries left (AirflowFailException, a retry policy's FAIL, a person); max_tries is not the task's
    own field to write."""
    failed = _ti(RUN, 2, "failed", 2, 27)
    if max_tries is not None:
        failed["max_tries"] = max_tries
    history = read_history(FakeAPI(tries=[_ti(RUN, 1, "up_for_retry", 2, 27), failed], history=[]), _ref(2))
    assert history.retries_left == left


def test_a_retry_policys_fail_is_read_from_the_runners_record_not_from_what_the_task_printed():
    decision = {**_record("Retry policy decision", logger="task", second=8), "action": "fail", "reason": "r"}
    printed = {**decision, "logger": "task.stdout"}
    retry = {**decision, "action": "retry"}
    api = FakeAPI(tries=[_ti(RUN, 1, "failed", 2, 27)], history=[])
    assert read_history(api, _ref(1), failed_log=[*FAILED_LOG, decision]).policy_failed
    for log_records in (FAILED_LOG, [*FAILED_LOG, printed], [*FAILED_LOG, retry], "text log", None):
        assert not read_history(api, _ref(1), failed_log=log_records).policy_failed

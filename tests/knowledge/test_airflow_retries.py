"""Learning from Airflow's own retries: what the next try did becomes memory the gate reads.

judge_retry's table as pure unit tests; the rest against the real embedded Postgres, with a small
fake of the REST API whose answers are shaped like Airflow 3.3's (api_fastapi/core_api/datamodels:
TaskInstanceHistoryResponse, TaskInstanceResponse, EventLogResponse, DagVersionResponse). End-to-end
tests on a real Airflow are separate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from airflow_doctor.hooks.airflow_api import AirflowAPIError
from airflow_doctor.knowledge import airflow_retries
from airflow_doctor.knowledge.airflow_retries import (
    RetryVerdict,
    import_history,
    judge_retry,
    learn_during_sweep,
    learn_from_airflow,
)
from airflow_doctor.knowledge.store import KnowledgeBase, UIStore
from airflow_doctor.models import FailureRef

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
DAG, RUN, TASK = "etl", "scheduled__2026-01-05T00:00:00+00:00", "load"
RESET = [
    "Traceback (most recent call last):",
    '  File "/opt/airflow/dags/etl.py", line 12, in load',
    "ConnectionResetError: [Errno 104] Connection reset by peer",
]
KEY_ERROR = [
    "Traceback (most recent call last):",
    '  File "/opt/airflow/dags/etl.py", line 20, in load',
    "KeyError: 'customer_id'",
]


def dag_version(number: int | None) -> dict | None:
    """DagVersionResponse as the API serialises it."""
    if number is None:
        return None
    return {
        "id": f"0190c6a8-0000-7000-8000-{number:012d}",
        "version_number": number,
        "dag_id": DAG,
        "bundle_name": "dags-folder",
        "bundle_version": None,
        "created_at": "2026-01-01T00:00:00Z",
        "dag_display_name": DAG,
        "bundle_url": None,
    }


def a_try(
    n: int,
    state: str | None,
    version: int | None = 1,
    *,
    task: str = TASK,
    run: str = RUN,
    dag: str = DAG,
    map_index: int = -1,
    max_tries: int = 3,
) -> dict:
    """A TaskInstanceHistoryResponse: try n started at T0 + 10n minutes and ran one minute."""
    start = T0 + timedelta(minutes=10 * n)
    ended = state not in (None, "running", "queued", "scheduled")
    return {
        "task_id": task,
        "dag_id": dag,
        "dag_run_id": run,
        "map_index": map_index,
        "start_date": start.isoformat().replace("+00:00", "Z"),
        "end_date": (start + timedelta(minutes=1)).isoformat().replace("+00:00", "Z") if ended else None,
        "duration": 60.0 if ended else None,
        "state": state,
        "try_number": n,
        "max_tries": max_tries,
        "task_display_name": task,
        "dag_display_name": dag,
        "hostname": "worker-1",
        "unixname": "airflow",
        "pool": "default_pool",
        "pool_slots": 1,
        "queue": "default",
        "priority_weight": 1,
        "operator": "PythonOperator",
        "operator_name": "@task",
        "queued_when": None,
        "scheduled_when": None,
        "pid": 4242,
        "executor": None,
        "executor_config": "{}",
        "dag_version": dag_version(version),
    }


def event(name: str, minute: float, *, extra: dict | None = None, task: str | None = None, dag=DAG, run=RUN):
    """An EventLogResponse `minute` minutes after T0."""
    return {
        "event_log_id": int(minute * 100),
        "when": (T0 + timedelta(minutes=minute)).isoformat(),
        "dag_id": dag,
        "task_id": task,
        "run_id": run,
        "map_index": None,
        "try_number": None,
        "event": name,
        "logical_date": None,
        "owner": "alice",
        "extra": json.dumps({**(extra or {}), "method": "POST"}),
        "dag_display_name": dag,
        "task_display_name": task,
    }


# -- judge_retry ----------------------------------------------------------------------------------


def judge(next_try, events=(), fp_failed="fp-a", fp_next="fp-a", failed=None):
    return judge_retry(failed or a_try(1, "failed"), next_try, list(events), fp_failed, fp_next)


@pytest.mark.parametrize(
    "next_try",
    [
        pytest.param(None, id="no-next-try-yet"),
        pytest.param(a_try(2, None), id="just-cleared"),
        pytest.param(a_try(2, "scheduled"), id="scheduled"),
        pytest.param(a_try(2, "queued"), id="queued"),
        pytest.param(a_try(2, "running"), id="running"),
        pytest.param(a_try(2, "deferred"), id="deferred"),
    ],
)
def test_nothing_is_judged_before_the_next_try_has_ended(next_try):
    assert judge(next_try) is None


def test_a_success_on_the_same_dag_version_is_a_verified_transient_failure():
    verdict = judge(a_try(2, "success"))
    assert verdict == RetryVerdict(
        "succeeded",
        "succeeded",
        True,
        "Airflow's retry on the same DAG version succeeded: try 1 failed, try 2 succeeded on DAG version 1",
    )
    assert verdict.records


def test_a_success_on_a_newer_dag_version_was_fixed_by_a_change():
    verdict = judge(a_try(2, "success", version=2), events=[event("patch_variable", 15)])
    assert (verdict.kind, verdict.outcome, verdict.transient) == ("fixed_by_change", "fixed_by_change", False)
    assert "newer" in verdict.reason


def with_bundle(try_: dict, bundle: str) -> dict:
    """The try on a versioned bundle's commit `bundle` (its dag_version's bundle_version)."""
    return {**try_, "dag_version": {**(try_.get("dag_version") or {}), "bundle_version": bundle}}


def test_a_success_on_another_bundle_version_of_the_same_dag_version_was_fixed_by_a_change():
    """A commit that changed only task code keeps the DAG version number; Airflow moves the
    version's bundle pointer: that is a change too, not a passing cause."""
    failed = with_bundle(a_try(1, "failed"), "3f1c2a9")
    verdict = judge(with_bundle(a_try(2, "success"), "8be07d4"), failed=failed)
    assert (verdict.kind, verdict.transient) == ("fixed_by_change", False), verdict
    assert "8be07d4" in verdict.reason
    same = judge(with_bundle(a_try(2, "success"), "3f1c2a9"), failed=failed)
    assert same.kind == "succeeded"


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([event("post_clear_task_instances", 15, extra={"task_ids": [TASK]})], id="rest-clear"),
        pytest.param([event("post_clear_task_instances", 15)], id="clear-naming-no-tasks"),
        pytest.param(
            [event("patch_task_instance", 15, task=TASK, extra={"new_state": "failed"})], id="state-set"
        ),
        pytest.param([event("clear_dag_run", 15)], id="dag-run-clear"),
        pytest.param([event("cli_task_clear", 15, run=None)], id="cli-clear"),
        pytest.param([event("patch_variable", 15, dag=None, run=None)], id="variable-changed"),
        pytest.param([event("post_connection", 15, dag=None, run=None)], id="connection-created"),
        pytest.param([event("delete_connection", 15, dag=None, run=None)], id="connection-deleted"),
        pytest.param([event("bulk_variables", 15, dag=None, run=None)], id="variables-bulk"),
    ],
)
def test_a_success_after_a_persons_action_was_fixed_by_a_person(events):
    verdict = judge(a_try(2, "success"), events=events)
    assert (verdict.kind, verdict.outcome, verdict.transient) == ("fixed_by_person", "fixed_by_person", False)
    assert events[0]["event"] in verdict.reason and "alice" in verdict.reason


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([event("patch_variable", 0.5, dag=None, run=None)], id="before-the-failed-try-ended"),
        pytest.param([event("patch_variable", 25, dag=None, run=None)], id="after-the-next-try-started"),
        pytest.param(
            [event("post_clear_task_instances", 15, extra={"task_ids": ["other", ["load2", 0]]})],
            id="clear-of-other-tasks",
        ),
        pytest.param([event("post_clear_task_instances", 15, run="manual__2")], id="clear-of-another-run"),
        pytest.param(
            [event("patch_task_instance", 15, task="other", extra={"new_state": "success"})], id="other-task"
        ),
        pytest.param(
            [event("patch_task_instance", 15, task=TASK, extra={"note": "doctor"})], id="a-note-alone"
        ),
        pytest.param([event("get_task_instances_batch", 15)], id="a-read"),
    ],
)
def test_what_is_no_persons_action_on_this_task_instance_leaves_a_verified_success(events):
    assert judge(a_try(2, "success"), events=events).kind == "succeeded"


def test_a_mapped_clear_counts_for_its_own_map_index_only():
    failed = a_try(1, "failed", map_index=3)
    clear_3 = event("post_clear_task_instances", 15, extra={"task_ids": [[TASK, 3]]})
    clear_4 = event("post_clear_task_instances", 15, extra={"task_ids": [[TASK, 4]]})
    assert judge(a_try(2, "success", map_index=3), [clear_3], failed=failed).kind == "fixed_by_person"
    assert judge(a_try(2, "success", map_index=3), [clear_4], failed=failed).kind == "succeeded"


def test_a_failed_try_without_retries_left_was_followed_by_a_clear():
    """Its next try can only come from a clear (a person's, when the audit log does not show it)."""
    verdict = judge(a_try(2, "success"), failed=a_try(1, "failed", max_tries=0))
    assert verdict.kind == "fixed_by_person" and "no retries left" in verdict.reason


@pytest.mark.parametrize("state", ["failed", "up_for_retry"])
def test_a_retry_that_failed_the_same_way_on_the_same_version_did_not_help(state):
    verdict = judge(a_try(2, state))
    assert (verdict.kind, verdict.outcome, verdict.transient) == ("failed", "failed", None)
    assert "did not help" in verdict.reason


@pytest.mark.parametrize(
    ("next_try", "fp_failed", "fp_next", "why"),
    [
        pytest.param(a_try(2, "failed"), "fp-a", "fp-b", "another error", id="another-fingerprint"),
        pytest.param(
            a_try(2, "failed"), "fp-a", None, "fingerprint is unknown", id="next-fingerprint-unknown"
        ),
        pytest.param(a_try(2, "failed"), None, None, "fingerprint is unknown", id="no-fingerprints"),
        pytest.param(a_try(2, "failed", version=2), "fp-a", "fp-a", "not the same DAG", id="another-version"),
        pytest.param(
            a_try(2, "failed", version=None), "fp-a", "fp-a", "not the same DAG", id="version-unknown"
        ),
        pytest.param(
            a_try(2, "success", version=None), "fp-a", "fp-a", "version is unknown", id="ok-version-unknown"
        ),
        pytest.param(a_try(2, "success", version=0), "fp-a", "fp-a", "older", id="ok-on-an-older-version"),
        pytest.param(a_try(2, "skipped"), "fp-a", "fp-a", "without running", id="skipped"),
        pytest.param(a_try(2, "upstream_failed"), "fp-a", "fp-a", "without running", id="upstream-failed"),
        pytest.param(a_try(1, "success"), "fp-a", "fp-a", "without a new try", id="marked-success-same-try"),
    ],
)
def test_what_says_nothing_about_this_failure_records_nothing(next_try, fp_failed, fp_next, why):
    verdict = judge(next_try, fp_failed=fp_failed, fp_next=fp_next)
    assert (verdict.kind, verdict.outcome, verdict.transient) == ("other", None, None)
    assert not verdict.records and why in verdict.reason


def test_try_records_with_an_integer_dag_version_are_read_alike():
    """models.TryRecord carries the version_number itself."""
    failed = {"try_number": 1, "state": "failed", "dag_version": 4, "end_date": T0}
    assert judge_retry(
        failed, {"try_number": 2, "state": "success", "dag_version": 4}, [], None, None
    ).kind == ("succeeded")
    assert judge_retry(
        failed, {"try_number": 2, "state": "success", "dag_version": 5}, [], None, None
    ).kind == ("fixed_by_change")


# -- a fake REST API --------------------------------------------------------------------------------


class FakeAirflow:
    """`request_json` answering canned JSON shaped like Airflow 3.3's REST API, plus the two methods
    logs.excerpt.fetch_failure_excerpt calls (`get_log`, `get_event_logs`)."""

    def __init__(self) -> None:
        self.task_instances: list[dict] = []  # TaskInstanceResponse-like, for the history listing
        self.tries: dict[tuple, list[dict]] = {}  # (dag, run, task, map_index) -> tries
        self.events: list[dict] = []
        self.logs: dict[tuple, list[str]] = {}  # (dag, run, task, map_index, try) -> log lines
        self.tags: dict[str, list[str]] = {}
        self.fail: dict[str, Exception] = {}  # a path containing the key raises the exception
        self.calls: list[str] = []

    def add(self, *tries: dict) -> None:
        for t in tries:
            key = (t["dag_id"], t["dag_run_id"], t["task_id"], t["map_index"])
            self.tries.setdefault(key, []).append(t)

    def request_json(self, method: str, path: str, body: dict | None = None):
        assert method == "GET"
        self.calls.append(path)
        for needle, exc in self.fail.items():
            if needle in path:
                raise exc
        split = urlsplit(path)
        query = parse_qs(split.query)
        parts = [unquote(p) for p in split.path.split("/")[3:]]  # after /api/v2/
        if parts == ["eventLogs"]:
            return {"event_logs": self._events(query), "total_entries": 0}
        if parts[:1] == ["dags"] and len(parts) == 2:
            return {
                "dag_id": parts[1],
                "tags": [{"name": t, "dag_id": parts[1]} for t in self.tags.get(parts[1], [])],
            }
        if parts == ["dags", "~", "dagRuns", "~", "taskInstances"]:
            return self._list(query)
        if parts[-1] == "tries":
            dag, run, task = parts[1], parts[3], parts[5]
            map_index = int(parts[6]) if len(parts) == 8 else -1
            found = self.tries.get((dag, run, task, map_index))
            if not found:
                raise AirflowAPIError(f"GET {path}: HTTP 404: not found", status=404)
            return {"task_instances": found, "total_entries": len(found)}
        raise AssertionError(f"unexpected path {path}")

    def _events(self, query: dict) -> list[dict]:
        wanted = set(query.get("included_events", []))
        after = datetime.fromisoformat(query["after"][0]) if "after" in query else None
        before = datetime.fromisoformat(query["before"][0]) if "before" in query else None
        out = []
        for e in self.events:
            when = datetime.fromisoformat(e["when"])
            if wanted and e["event"] not in wanted:
                continue
            if "dag_id" in query and e["dag_id"] != query["dag_id"][0]:
                continue
            if (after and when <= after) or (before and when >= before):
                continue
            out.append(e)
        return out

    def _list(self, query: dict) -> dict:
        gte, gt, lte = (
            datetime.fromisoformat(query[k][0]) if k in query else None
            for k in ("end_date_gte", "end_date_gt", "end_date_lte")
        )
        numbers = {int(n) for n in query.get("try_number", [])}
        assert query["order_by"] == ["end_date"]
        rows = []
        for ti in sorted(self.task_instances, key=lambda t: t["end_date"]):
            ended = datetime.fromisoformat(ti["end_date"])
            if (gte and ended < gte) or (gt and ended <= gt) or (lte and ended > lte):
                continue
            if not numbers or ti["try_number"] in numbers:
                rows.append(ti)
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        return {"task_instances": rows[offset : offset + limit], "total_entries": len(rows)}

    def get_log(self, ref: FailureRef, max_pages: int = 20) -> list:
        self.calls.append(f"log {ref.task_id} {ref.try_number}")
        lines = self.logs.get((ref.dag_id, ref.run_id, ref.task_id, ref.map_index, ref.try_number))
        if lines is None:
            raise AirflowAPIError("GET logs: HTTP 404", status=404)
        return list(lines)

    def get_event_logs(self, ref: FailureRef, events: list[str], limit: int = 20) -> list[dict]:
        return []


def retried(api: FakeAirflow, *tries: dict, logs: dict[int, list[str]] | None = None) -> None:
    """A task instance's tries and their logs (try_number -> lines) in the fake API."""
    api.add(*tries)
    for n, lines in (logs or {}).items():
        t = tries[0]
        api.logs[(t["dag_id"], t["dag_run_id"], t["task_id"], t["map_index"], n)] = lines


def note(
    kb: KnowledgeBase, task: str = TASK, try_number: int = 1, run: str = RUN, map_index: int = -1
) -> None:
    """The listener's note of a try going to up_for_retry."""
    ref = FailureRef(dag_id=DAG, run_id=run, task_id=task, map_index=map_index, try_number=try_number)
    assert kb.record_retried_tries([ref], "listener") == 1


def rows(kb: KnowledgeBase) -> list[dict]:
    with kb.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT task_id, try_number, source, looked_at, learnt_at IS NOT NULL, verdict "
            "FROM doctor.retried_tries ORDER BY task_id, try_number"
        )
        return [
            dict(zip(("task_id", "try_number", "source", "looked_at", "learnt", "verdict"), r, strict=True))
            for r in cur.fetchall()
        ]


def airflow_cases(kb: KnowledgeBase) -> list[dict]:
    with kb.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT c.task_id, c.try_number, c.error_class, c.transient, c.recommended_action, c.fingerprint, "
            "c.embedding IS NOT NULL, c.doctor_run_id, r.decision, r.actor, r.outcome, r.cleared, "
            "(SELECT count(*) FROM doctor.diagnoses d WHERE d.case_id = c.id) "
            "FROM doctor.failure_cases c JOIN doctor.remediations r ON r.case_id = c.id "
            "WHERE r.actor = 'airflow' ORDER BY c.task_id, c.try_number"
        )
        names = (
            "task_id",
            "try_number",
            "error_class",
            "transient",
            "recommended_action",
            "fingerprint",
            "embedded",
            "doctor_run_id",
            "decision",
            "actor",
            "outcome",
            "cleared",
            "diagnoses",
        )
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def fingerprint_of(lines: list[str]) -> str:
    from airflow_doctor.logs.excerpt import excerpt_record, extract_excerpt

    return excerpt_record(extract_excerpt(lines))["fingerprint"]


def memory(kb: KnowledgeBase, run: str = "scheduled__2026-01-06T00:00:00+00:00", try_number: int = 3):
    """What the gate sees for a final failure with a connection reset: by default in the next DAG run."""
    return kb.find_by_fingerprint(
        fingerprint_of(RESET), FailureRef(dag_id=DAG, run_id=run, task_id=TASK, try_number=try_number)
    )


# -- the store round trip ----------------------------------------------------------------------------


def test_the_store_notes_each_try_once_and_leaves_the_doctors_own_out(kb: KnowledgeBase):
    note(kb, try_number=1)
    ref = FailureRef(dag_id=DAG, run_id=RUN, task_id=TASK, try_number=1)
    assert kb.record_retried_tries([ref], "history") == 0  # already noted
    kb.record_failures([FailureRef(dag_id=DAG, run_id=RUN, task_id=TASK, try_number=3)])
    final = {"dag_id": DAG, "run_id": RUN, "task_id": TASK, "try_number": 3, "failed_at": T0}
    assert kb.record_retried_tries([final], "history") == 0  # the doctor was told: its own record
    [row] = kb.unlearnt_retried_tries()
    assert (row["try_number"], row["source"], row["looked_at"], row["doctor_case"], row["recorded"]) == (
        1,
        "listener",
        0,
        False,
        False,
    )
    assert kb.mark_retried_try(row, None) is True
    assert kb.unlearnt_retried_tries()[0]["looked_at"] == 1
    assert kb.mark_retried_try(row, "succeeded") is True
    assert kb.unlearnt_retried_tries() == [] and kb.mark_retried_try(row, "other") is False
    assert rows(kb)[0]["verdict"] == "succeeded"


def test_history_import_progress_is_kept_and_resumed(kb: KnowledgeBase):
    assert kb.history_import_finished() is False
    job = kb.open_history_import(T0)
    assert job["cursor"] is None and job["since"] == T0
    kb.update_history_import(job["id"], cursor=T0 + timedelta(hours=1), task_instances=5, tries=2)
    kb.update_history_import(job["id"], cursor=T0, task_instances=1)  # never moved back
    again = kb.open_history_import(T0 - timedelta(days=9))  # resumed, not a new one
    assert (again["id"], again["cursor"], again["task_instances"], again["tries"]) == (
        job["id"],
        T0 + timedelta(hours=1),
        6,
        2,
    )
    kb.update_history_import(job["id"], cursor=None, finished=True)
    assert kb.history_import_finished() is True
    assert kb.open_history_import(T0)["id"] != job["id"]  # the next import is a new window


# -- learn_from_airflow ----------------------------------------------------------------------------


def test_a_succeeded_retry_becomes_a_verified_airflow_case_that_memory_finds(kb: KnowledgeBase):
    api = FakeAirflow()
    retried(api, a_try(1, "failed"), a_try(2, "success"), logs={1: RESET})
    note(kb)
    counts = learn_from_airflow(api=api, kb=kb)
    assert counts["succeeded"] == 1 and counts["looked_at"] == 1 and counts["errors"] == 0
    [case] = airflow_cases(kb)
    assert case == {
        "task_id": TASK,
        "try_number": 1,
        "error_class": "connection_reset_by_remote",
        "transient": True,
        "recommended_action": "retry",
        "fingerprint": fingerprint_of(RESET),
        "embedded": False,  # no stored vector, no embedding service: found by fingerprint
        "doctor_run_id": "airflow",
        "decision": "airflow_retry",
        "actor": "airflow",
        "outcome": "succeeded",
        "cleared": False,
        "diagnoses": 0,  # no diagnoser ran
    }
    assert rows(kb)[0]["verdict"] == "succeeded" and rows(kb)[0]["learnt"]
    [match] = memory(kb)
    assert match.actor == "airflow" and match.retry_verified and match.kind == "observed"
    assert not match.fixed and not match.retry_failed
    assert not any(c.endswith(" 2") for c in api.calls if c.startswith("log"))  # only the failed try's log


def test_memory_leaves_out_airflows_earlier_tries_of_the_task_instance_asking(kb: KnowledgeBase):
    api = FakeAirflow()
    retried(api, a_try(1, "failed"), a_try(2, "success"), logs={1: RESET})
    note(kb)
    learn_from_airflow(api=api, kb=kb)
    assert memory(kb, run=RUN, try_number=3) == []  # the same task instance: the same incident
    assert [m.actor for m in memory(kb)] == ["airflow"]  # another run: memory of another incident
    other_task = kb.find_by_fingerprint(
        fingerprint_of(RESET), FailureRef(dag_id=DAG, run_id=RUN, task_id="export", try_number=1)
    )
    assert [m.actor for m in other_task] == ["airflow"]


def test_a_success_on_a_newer_version_is_fixed_and_reused_the_stored_vector(kb: KnowledgeBase):
    vector = [1.0] + [0.0] * 383
    kb.record_case(
        ref=FailureRef(dag_id="other", run_id="r", task_id="t", try_number=1),
        case={
            "fingerprint": fingerprint_of(RESET),
            "embedding": vector,
            "embedding_model": "all-MiniLM-L6-v2",
        },
        diagnosis=None,
        decision={"verdict": "escalate", "reasons": []},
        cleared=False,
        doctor_run_id="doctor-run-1",
    )
    api = FakeAirflow()
    retried(api, a_try(1, "failed", version=1), a_try(2, "success", version=2), logs={1: RESET})
    note(kb)
    assert learn_from_airflow(api=api, kb=kb)["fixed_by_change"] == 1
    [case] = airflow_cases(kb)
    assert (case["outcome"], case["transient"], case["recommended_action"], case["embedded"]) == (
        "fixed_by_change",
        False,
        "notify",
        True,
    )
    fixed = [m for m in memory(kb) if m.actor == "airflow"]
    assert len(fixed) == 1 and fixed[0].fixed and not fixed[0].retry_verified
    assert not any("eventLogs" in c for c in api.calls)  # a new version decides: no audit log read


def test_a_success_after_a_variable_changed_is_fixed_by_a_person(kb: KnowledgeBase):
    api = FakeAirflow()
    retried(api, a_try(1, "failed"), a_try(2, "success"), logs={1: RESET})
    api.events = [
        event("patch_variable", 15, dag=None, run=None),
        event("post_variable", 30, dag=None, run=None),
    ]
    note(kb)
    assert learn_from_airflow(api=api, kb=kb)["fixed_by_person"] == 1
    [match] = [m for m in memory(kb) if m.actor == "airflow"]
    assert match.outcome == "fixed_by_person" and match.fixed and match.transient is False


def test_a_retry_that_failed_the_same_way_is_a_failed_retry(kb: KnowledgeBase):
    api = FakeAirflow()
    retried(api, a_try(1, "failed"), a_try(2, "failed"), logs={1: RESET, 2: RESET})
    note(kb)
    assert learn_from_airflow(api=api, kb=kb)["failed"] == 1
    [match] = memory(kb)
    assert match.retry_failed and match.transient is None
    assert not any("eventLogs" in c for c in api.calls)


def test_a_retry_that_failed_another_way_records_nothing(kb: KnowledgeBase):
    api = FakeAirflow()
    retried(api, a_try(1, "failed"), a_try(2, "failed"), logs={1: RESET, 2: KEY_ERROR})
    note(kb)
    counts = learn_from_airflow(api=api, kb=kb)
    assert counts["other"] == 1 and airflow_cases(kb) == []
    assert rows(kb)[0]["verdict"] == "other" and rows(kb)[0]["learnt"]


def test_a_try_still_waiting_for_its_next_is_looked_at_again_then_given_up(kb: KnowledgeBase):
    api = FakeAirflow()
    retried(api, a_try(1, "failed"), logs={1: RESET})  # try 2 not started: the API lists only try 1
    note(kb)
    assert learn_from_airflow(api=api, kb=kb)["waiting"] == 1
    api.add(a_try(2, "running"))
    assert learn_from_airflow(api=api, kb=kb)["waiting"] == 1
    assert rows(kb)[0]["looked_at"] == 2 and not rows(kb)[0]["learnt"]
    later = datetime.now(UTC) + airflow_retries.GIVE_UP_AFTER + timedelta(hours=1)
    assert learn_from_airflow(api=api, kb=kb, now=later)["skipped"] == 1
    assert rows(kb)[0]["verdict"] == "gave_up"


def test_once_the_next_try_ended_it_is_judged_once(kb: KnowledgeBase):
    api = FakeAirflow()
    retried(api, a_try(1, "failed"), a_try(2, "running"), logs={1: RESET})
    note(kb)
    learn_from_airflow(api=api, kb=kb)
    api.tries[(DAG, RUN, TASK, -1)][1] = a_try(2, "success")
    assert learn_from_airflow(api=api, kb=kb)["succeeded"] == 1
    calls = len(api.calls)
    assert learn_from_airflow(api=api, kb=kb)["looked_at"] == 0 and len(api.calls) == calls
    assert len(airflow_cases(kb)) == 1


def test_the_doctors_own_gone_and_already_recorded_tries_are_skipped(kb: KnowledgeBase):
    api = FakeAirflow()
    note(kb, task="handled")
    kb.record_failures([FailureRef(dag_id=DAG, run_id=RUN, task_id="handled", try_number=1)])  # told since
    note(kb, task="deleted")  # its DAG run was deleted: 404
    counts = learn_from_airflow(api=api, kb=kb)
    assert counts["skipped"] == 2 and counts["errors"] == 0
    assert {r["task_id"]: r["verdict"] for r in rows(kb)} == {"handled": "doctor_case", "deleted": "gone"}
    assert not any("handled" in c for c in api.calls)


def test_errors_leave_rows_for_the_next_sweep_and_three_in_a_row_stop_the_pass(kb: KnowledgeBase):
    api = FakeAirflow()
    for task in ("a", "b", "c", "d"):
        note(kb, task=task)
    api.fail["/taskInstances/"] = AirflowAPIError("GET tries: HTTP 503", status=503)
    counts = learn_from_airflow(api=api, kb=kb)
    assert (counts["looked_at"], counts["errors"]) == (3, 3)
    assert [r["looked_at"] for r in rows(kb)] == [1, 1, 1, 0]
    del api.fail["/taskInstances/"]
    for task in ("a", "b", "c", "d"):
        retried(api, a_try(1, "failed", task=task), a_try(2, "success", task=task), logs={1: RESET})
    api.logs.pop((DAG, RUN, "d", -1, 1))  # d's log is unreadable: d waits, the others are learnt
    counts = learn_from_airflow(api=api, kb=kb)
    assert (counts["looked_at"], counts["succeeded"], counts["errors"]) == (4, 3, 1)
    assert "log d 1" in api.calls
    assert [r["learnt"] for r in rows(kb)] == [True, True, True, False]


def test_a_dead_knowledge_base_is_logged_not_raised():
    dead = KnowledgeBase(dsn="postgresql://postgres@127.0.0.1:1/doctor", connect_timeout=1)
    api = FakeAirflow()
    assert learn_from_airflow(api=api, kb=dead)["errors"] == 1
    assert import_history(api=api, kb=dead, progress=None)["errors"] == 1
    assert api.calls == []


def test_the_dashboard_counts_the_doctors_decisions_not_airflows_retries(kb: KnowledgeBase):
    api = FakeAirflow()
    retried(api, a_try(1, "failed"), a_try(2, "success"), logs={1: RESET})
    note(kb)
    learn_from_airflow(api=api, kb=kb)
    kb.record_case(
        ref=FailureRef(dag_id=DAG, run_id=RUN, task_id=TASK, try_number=3),
        case={"fingerprint": fingerprint_of(RESET)},
        diagnosis=None,
        decision={"verdict": "escalate", "reasons": []},
        cleared=False,
        doctor_run_id="doctor-run-1",
    )
    ui = UIStore(dsn=kb.dsn)
    now = datetime.now(UTC)
    shown = ui.dashboard_cases(since=now - timedelta(hours=1), until=now + timedelta(hours=1), dag_ids=[DAG])
    assert [(c["decision"], c["dag_id"]) for c in shown] == [("escalate", DAG)]


# -- import_history --------------------------------------------------------------------------------


def listed(task: str, n: int, minute: int, *, dag: str = DAG, state: str = "success") -> dict:
    """A TaskInstanceResponse (the fields the import reads, and a few more) that ended at T0+minute."""
    return {
        "id": f"0190c6a8-0000-7000-8000-{minute:012d}",
        "task_id": task,
        "dag_id": dag,
        "dag_run_id": RUN,
        "map_index": -1,
        "try_number": n,
        "max_tries": 3,
        "state": state,
        "start_date": (T0 + timedelta(minutes=minute - 1)).isoformat(),
        "end_date": (T0 + timedelta(minutes=minute)).isoformat(),
        "operator": "PythonOperator",
        "dag_version": dag_version(1),
    }


def history_api() -> FakeAirflow:
    """Five task instances with more than one try (one of the doctor's own DAG, one of a DAG tagged
    doctor:off) and one with a single try."""
    api = FakeAirflow()
    api.tags = {"quiet": ["doctor:off"]}
    for i, task in enumerate(("t1", "t2", "t3")):
        retried(api, a_try(1, "failed", task=task), a_try(2, "success", task=task), logs={1: RESET})
        api.task_instances.append(listed(task, 2, 30 + i))
    retried(
        api,
        a_try(1, "failed", task="t4"),
        a_try(2, "failed", task="t4"),
        a_try(3, "failed", task="t4"),
        logs={1: RESET, 2: RESET, 3: RESET},
    )
    api.task_instances.append(listed("t4", 3, 40, state="failed"))
    api.task_instances.append(listed("once", 1, 41))
    for dag in ("doctor", "quiet"):
        retried(api, a_try(1, "failed", dag=dag), a_try(2, "success", dag=dag))
        api.task_instances.append(listed(TASK, 2, 42, dag=dag))
    return api


def test_import_history_notes_every_failed_try_another_try_followed(kb: KnowledgeBase):
    api = history_api()
    lines: list[str] = []
    now = T0 + timedelta(days=1)
    counts = import_history(7, api=api, kb=kb, sleep=0, progress=lines.append, now=now)
    assert counts["finished"] and counts["errors"] == 0
    assert (counts["task_instances"], counts["tries"], counts["new"]) == (6, 5, 5)
    assert [(r["task_id"], r["try_number"], r["source"]) for r in rows(kb)] == [
        ("t1", 1, "history"),
        ("t2", 1, "history"),
        ("t3", 1, "history"),
        ("t4", 1, "history"),
        ("t4", 2, "history"),  # try 3 failed for good: no later try, the doctor's business
    ]
    assert "finished" in lines[-1] and kb.history_import_finished()
    assert not any("/dags/doctor/" in c for c in api.calls)  # the doctor's own DAG is never read
    counts = learn_from_airflow(api=api, kb=kb, now=now)
    assert (counts["succeeded"], counts["failed"]) == (3, 2)
    assert sorted((c["task_id"], c["outcome"]) for c in airflow_cases(kb)) == [
        ("t1", "succeeded"),
        ("t2", "succeeded"),
        ("t3", "succeeded"),
        ("t4", "failed"),
        ("t4", "failed"),
    ]


def test_import_history_is_bounded_and_resumes_where_it_stopped(kb: KnowledgeBase):
    api = history_api()
    now = T0 + timedelta(days=1)
    first = import_history(7, api=api, kb=kb, max_task_instances=2, sleep=0, progress=None, now=now)
    assert (first["task_instances"], first["new"], first["finished"]) == (2, 2, False)
    assert not kb.history_import_finished()
    assert [r["task_id"] for r in rows(kb)] == ["t1", "t2"]
    api.calls.clear()
    second = import_history(7, api=api, kb=kb, sleep=0, progress=None, now=now + timedelta(hours=1))
    assert second["import_id"] == first["import_id"] and second["finished"]
    tries_read = [c for c in api.calls if c.endswith("/tries")]
    assert not any("/t1/" in c for c in tries_read)  # done work is not read again (t2: the cursor's own)
    assert second["new"] == 3
    assert [r["task_id"] for r in rows(kb)] == ["t1", "t2", "t3", "t4", "t4"]
    api.calls.clear()
    third = import_history(7, api=api, kb=kb, sleep=0, progress=None, now=now + timedelta(hours=2))
    assert third["import_id"] != first["import_id"] and third["new"] == 0  # a new window, nothing new


def test_import_history_stops_after_three_errors_in_a_row_and_resumes_before_them(kb: KnowledgeBase):
    api = history_api()
    now = T0 + timedelta(days=1)
    api.fail["/t2/"] = api.fail["/t3/"] = api.fail["/t4/"] = AirflowAPIError("HTTP 503", status=503)
    counts = import_history(7, api=api, kb=kb, sleep=0, progress=None, now=now)
    assert (counts["errors"], counts["finished"], counts["new"]) == (3, False, 1)
    api.fail.clear()
    counts = import_history(7, api=api, kb=kb, sleep=0, progress=None, now=now)
    assert counts["finished"] and counts["new"] == 4


def test_the_sweeper_imports_a_slice_until_an_import_has_finished(kb: KnowledgeBase, monkeypatch):
    monkeypatch.setattr(airflow_retries, "HISTORY_SLICE", 2)
    monkeypatch.setattr(airflow_retries, "HISTORY_DAYS", 3650)  # the fake's task instances are months old
    api = history_api()
    first = learn_during_sweep(api=api, kb=kb)
    assert first["history"]["task_instances"] == 2 and not first["history"]["finished"]
    assert first["learnt"]["succeeded"] == 2
    sweeps = [learn_during_sweep(api=api, kb=kb) for _ in range(4)]
    imported = [s["history"] for s in sweeps]
    assert imported[-1] is None  # a finished import: the sweeper imports no more
    assert any(h and h["finished"] for h in imported) and kb.history_import_finished()
    assert all(h is None or h["task_instances"] <= 2 for h in imported)
    assert len(airflow_cases(kb)) == 5


def test_a_group_of_task_instances_ending_together_is_never_split(kb: KnowledgeBase):
    """A DAG run marked failed ends all its task instances at once: a stop at the cap finishes the
    group, so the resumed import (after the cursor) misses none of it."""
    api = FakeAirflow()
    for task in ("g1", "g2", "g3"):
        retried(api, a_try(1, "failed", task=task), a_try(2, "failed", task=task))
        api.task_instances.append(listed(task, 2, 50))
    retried(api, a_try(1, "failed", task="later"), a_try(2, "failed", task="later"))
    api.task_instances.append(listed("later", 2, 51))
    now = T0 + timedelta(days=1)
    first = import_history(7, api=api, kb=kb, max_task_instances=1, sleep=0, progress=None, now=now)
    assert (first["task_instances"], first["new"], first["finished"]) == (3, 3, False)
    second = import_history(7, api=api, kb=kb, max_task_instances=1, sleep=0, progress=None, now=now)
    assert (second["task_instances"], second["new"], second["finished"]) == (1, 1, True)


def test_the_history_command_imports_then_learns(kb: KnowledgeBase, monkeypatch, capsys):
    from airflow_doctor import cli
    from airflow_doctor.hooks import airflow_api

    api = history_api()
    for t in api.task_instances:  # within the last 30 days
        for k in ("start_date", "end_date"):
            t[k] = (datetime.fromisoformat(t[k]) - T0 + datetime.now(UTC) - timedelta(days=2)).isoformat()
    monkeypatch.setattr(airflow_api, "default_api", lambda: api)
    assert cli.main(["history", "--dsn", kb.dsn, "--max-task-instances", "50"]) == 0
    out = capsys.readouterr().out
    assert "finished: 6 task instances read, 5 retried tries found" in out
    assert "succeeded 3" in out and "failed 2" in out
    assert len(airflow_cases(kb)) == 5

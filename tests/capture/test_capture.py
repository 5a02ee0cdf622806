"""Capture: FailureRefs from task instances, events and Params; the inbox claims each failure once."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from airflow_doctor.capture.failures import (
    claim_reported,
    failed_for_good,
    ref_from_params,
    refs_from_events,
    report_failures,
)
from airflow_doctor.knowledge.store import KnowledgeBase
from airflow_doctor.models import FailureRef


def collect_failures(events, params, doctor_run_id, *, kb, api=None) -> list[dict]:
    """What fetch_logs does when no storm is arriving: report the failures, then claim them."""
    return claim_reported(report_failures(events, params, kb=kb, api=api), doctor_run_id, kb=kb)


def test_failed_for_good_reads_enum_and_string_states():
    from airflow.sdk import TaskInstanceState

    assert failed_for_good(SimpleNamespace(state=TaskInstanceState.FAILED))
    assert not failed_for_good(SimpleNamespace(state=TaskInstanceState.UP_FOR_RETRY))
    assert failed_for_good(SimpleNamespace(state="failed"))


def test_malformed_events_are_reported_not_fatal():
    good = {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 2}
    refs, errors = refs_from_events(
        [
            {"extra": {"failure": good}},
            {"extra": {"failure": {"dag_id": "d"}}},
            {"extra": None},
            SimpleNamespace(extra={"failure": {**good, "try_number": "not a number"}}),
        ]
    )
    assert [r.try_number for r in refs] == [2]
    assert len(errors) == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"dag_id": "d", "task_id": "t"}, "run_id", id="missing-run-id"),
        pytest.param({"dag_id": "d", "run_id": "r"}, "task_id", id="missing-task-id"),
        pytest.param(
            {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1, "map_index": -5},
            "malformed",
            id="bad-map-index",
        ),
    ],
)
def test_malformed_manual_params_get_a_clear_error(params, message):
    with pytest.raises(ValueError, match=message):
        ref_from_params(params)


def test_collect_claims_event_refs_and_inbox_once(kb: KnowledgeBase):
    waiting = FailureRef(dag_id="d", run_id="r", task_id="left_behind", try_number=1)
    kb.record_failures([waiting])  # an event coalesced away: only the inbox knows
    event = {"extra": {"failure": {"dag_id": "d", "run_id": "r", "task_id": "evented", "try_number": 1}}}
    first = collect_failures([event, event], {"dag_id": ""}, "doctor-run-1", kb=kb)
    assert sorted(r["task_id"] for r in first) == ["evented", "left_behind"]
    assert collect_failures([event], {}, "doctor-run-2", kb=kb) == []


def test_dry_run_claims_nothing(kb: KnowledgeBase):
    params = {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 3, "map_index": -1, "dry_run": True}
    assert [r["try_number"] for r in collect_failures([], params, "dry", kb=kb)] == [3]
    assert [r.try_number for r in kb.claim_failures("real")] == []


class RecordingAPI:
    """Stands in for the Airflow API: records every call; a task instance's latest try is 4."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def get_task_instance(self, dag_id, run_id, task_id, map_index):
        self.calls.append(("get_task_instance", dag_id, run_id, task_id, map_index))
        return {"try_number": 4}

    def get_dag_tags(self, dag_id):
        self.calls.append(("get_dag_tags", dag_id))
        return []

    def ensure_pool(self, *args):
        self.calls.append(("ensure_pool",))
        return False


MANUAL = {"dag_id": "etl", "run_id": "manual__1", "task_id": "load"}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        pytest.param(
            {**MANUAL, "dag_id": "d" * 1_000_000}, "dag_id: String should have at most 250", id="1mb-dag-id"
        ),
        pytest.param(
            {**MANUAL, "run_id": "manual__\x00"}, "run_id: Value error, must not contain control", id="nul"
        ),
        pytest.param(
            {**MANUAL, "map_index": -5}, "map_index: Input should be greater than or equal to -1", id="-5"
        ),
        pytest.param(
            {**MANUAL, "map_index": 2**40}, "map_index: Input should be less than 2147483648", id="2^40"
        ),
        pytest.param({**MANUAL, "map_index": [1]}, "map_index: Input should be a valid integer", id="list"),
        pytest.param(
            {**MANUAL, "try_number": {"n": 1}}, "try_number: Input should be a valid integer", id="dict"
        ),
        pytest.param(
            {**MANUAL, "try_number": "abc"}, "try_number: Input should be a valid integer", id="abc"
        ),
        pytest.param({**MANUAL, "try_number": 1.7}, "try_number: Input should be a valid integer", id="1.7"),
        pytest.param(
            {**MANUAL, "try_number": -3}, "try_number: Input should be greater than or equal to 0", id="-3"
        ),
        pytest.param(
            {**MANUAL, "try_number": True}, "try_number: Value error, must be an integer", id="bool"
        ),
    ],
)
def test_malformed_params_are_refused_before_any_api_call(params, named):
    api = RecordingAPI()
    with pytest.raises(ValueError, match="malformed manual trigger params") as caught:
        ref_from_params(params, api=api)
    assert named in str(caught.value)
    assert len(str(caught.value)) < 300  # names the field, does not echo a 1 MB value
    assert api.calls == []


def test_try_number_zero_means_the_latest_try_read_once_the_params_are_valid():
    api = RecordingAPI()
    ref = ref_from_params({**MANUAL, "map_index": "2", "try_number": 0}, api=api)
    assert (ref.map_index, ref.try_number, ref.source) == (2, 4, "manual")
    assert api.calls == [("get_task_instance", "etl", "manual__1", "load", 2)]
    assert ref_from_params({**MANUAL, "try_number": "3"}, api=api).try_number == 3  # coerced, no call
    assert len(api.calls) == 1


@pytest.mark.parametrize("params", [pytest.param(None, id="none"), pytest.param({}, id="empty")])
def test_no_params_name_no_failure(params, kb: KnowledgeBase):
    assert ref_from_params(params) is None
    assert collect_failures([], params, "doctor-run", kb=kb, api=RecordingAPI()) == []


def _event(**failure) -> dict:
    return {"extra": {"failure": {"dag_id": "d", "run_id": "r", "try_number": 1, **failure}}}


def test_a_bad_ref_in_a_burst_is_reported_and_every_good_one_claimed_once(kb: KnowledgeBase, caplog):
    good = [_event(task_id="t", map_index=i) for i in range(6)]
    bad = [_event(task_id="t", run_id="r\x00"), _event(task_id="t", map_index=2**40)]
    burst = good[:3] + bad[:1] + good[3:] + bad[1:]

    with caplog.at_level("WARNING", logger="airflow_doctor.capture.failures"):
        first = collect_failures(burst + good, {}, "doctor-run-1", kb=kb, api=RecordingAPI())

    assert sorted(r["map_index"] for r in first) == list(range(6))
    reported = [r.getMessage() for r in caplog.records if "malformed FailureRef" in r.getMessage()]
    assert reported == [
        "Ignoring asset event: asset event 3 carries a malformed FailureRef: "
        "run_id: Value error, must not contain control characters (found U+0000)",
        "Ignoring asset event: asset event 7 carries a malformed FailureRef: "
        "map_index: Input should be less than 2147483648",
    ]
    assert collect_failures(burst, {}, "doctor-run-2", kb=kb, api=RecordingAPI()) == []


def test_the_inbox_write_skips_a_bad_ref_and_keeps_the_rest_of_the_batch(kb: KnowledgeBase, caplog):
    good = [FailureRef(dag_id="d", run_id="r", task_id="t", map_index=i, try_number=1) for i in range(5)]
    # Built without validation, as a caller that bypasses FailureRef's checks would.
    nul = FailureRef.model_construct(dag_id="d", run_id="r\x00", task_id="t", map_index=-1, try_number=1)
    huge = FailureRef.model_construct(dag_id="d", run_id="r", task_id="t", map_index=2**40, try_number=1)

    with caplog.at_level("ERROR", logger="airflow_doctor.knowledge.store"):
        new = kb.record_failures(good[:2] + [nul] + good[2:] + [huge, {"dag_id": "d"}])

    assert new == 5
    assert [r.getMessage() for r in caplog.records] == [
        "Not recording failure 2 of the batch ('t') in the inbox: "
        "run_id: Value error, must not contain control characters (found U+0000)",
        "Not recording failure 6 of the batch ('t') in the inbox: map_index: Input should be less than 2147483648",
        "Not recording failure 7 of the batch (None) in the inbox: "
        "run_id: Field required; task_id: Field required; try_number: Field required",
    ]
    assert sorted(r.map_index for r in kb.claim_failures("doctor-run-1")) == list(range(5))
    assert kb.claim_failures("doctor-run-2") == []


class FailedListing(RecordingAPI):
    """The API's list of failed task instances: one good, one with a NUL in its run_id."""

    def list_failed_task_instances(self, since):
        good = {"dag_id": "d", "dag_run_id": "r", "task_id": "t", "map_index": -1, "try_number": 0}
        return [good, {**good, "dag_run_id": "r\x00"}]

    def post_failure_event(self, ref):
        self.calls.append(("post_failure_event", ref.key))
        return 7


def test_the_sweeper_skips_a_malformed_task_instance_and_reports_the_rest(kb: KnowledgeBase, caplog):
    from airflow_doctor.capture.failures import sweep

    api = FailedListing()
    with caplog.at_level("WARNING", logger="airflow_doctor.capture.failures"):
        result = sweep(60, kb=kb, api=api)

    assert result == {"seen": 1, "new": 1, "event_id": 7}
    assert ("post_failure_event", ("d", "r", "t", -1, 1)) in api.calls  # try 0 (never ran) counts as 1
    assert [r.getMessage() for r in caplog.records] == [
        "Sweeper skipped a task instance of d: run_id: Value error, must not contain control characters "
        "(found U+0000)"
    ]


def test_a_storm_is_reported_for_the_caller_to_wait_out_and_then_claimed_whole(kb: KnowledgeBase):
    burst = [_event(task_id="t", map_index=i) for i in range(4)]
    reported = report_failures(burst, {}, kb=kb, api=RecordingAPI())
    assert (reported["storm"], reported["unclaimed"], reported["inbox"]) == (True, 4, True)
    carried = json.loads(json.dumps(reported))  # what a deferral carries to execute_complete
    # A straggler reported by another doctor run while this one waits is claimed with the storm.
    straggler = report_failures([_event(task_id="t", map_index=4)], {}, kb=kb, api=RecordingAPI())
    assert straggler["storm"] and straggler["unclaimed"] == 5
    claimed = claim_reported(carried, "doctor-run-1", kb=kb)
    assert sorted(r["map_index"] for r in claimed) == [0, 1, 2, 3, 4]
    assert claim_reported(straggler, "doctor-run-2", kb=kb) == []
    lone = report_failures([_event(task_id="u")], {}, kb=kb, api=RecordingAPI())
    assert (lone["storm"], lone["unclaimed"]) == (False, 1)


def test_without_the_knowledge_base_the_reported_failures_are_handled_as_they_came():
    dead = KnowledgeBase(dsn="postgresql://doctor@127.0.0.1:9/none?connect_timeout=2")
    events = [_event(task_id="t", map_index=i) for i in range(4)] * 2
    reported = report_failures(events, {}, kb=dead, api=RecordingAPI())
    assert (reported["inbox"], reported["storm"]) == (False, False)
    claimed = claim_reported(reported, "doctor-run", kb=dead)
    assert sorted(r["map_index"] for r in claimed) == [0, 1, 2, 3]


def test_malformed_params_do_not_cost_the_runs_valid_events(kb: KnowledgeBase, caplog):
    """A doctor run triggered by asset events with a malformed manual form (a person's typo, a
    whitespace id) still reports and claims what its events name, and says why the Params were not
    used; the same Params without events still fail the run with the message."""
    events = [_event(task_id="t", map_index=i) for i in range(3)]
    bad = {"dag_id": "d", "run_id": "   ", "task_id": "t"}
    with caplog.at_level("ERROR", logger="airflow_doctor.capture.failures"):
        reported = report_failures(events, bad, kb=kb, api=RecordingAPI())
    assert "other than whitespace" in reported["params_error"] and reported["manual"] is None
    assert any("Manual trigger params not used" in r.getMessage() for r in caplog.records)
    claimed = claim_reported(reported, "doctor-run-1", kb=kb)
    assert sorted(r["map_index"] for r in claimed) == [0, 1, 2]
    with pytest.raises(ValueError, match="malformed manual trigger params"):
        report_failures([], bad, kb=kb, api=RecordingAPI())

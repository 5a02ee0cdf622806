"""Capture: FailureRefs from task instances, events and Params; the inbox claims each failure once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from include.doctor.capture import collect_failures, failed_for_good, ref_from_params, refs_from_events
from include.doctor.models import FailureRef
from include.doctor.store import KnowledgeBase


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

"""The doctor DAG's classic operators: the gate skips the branches not taken of its own mapped
instance, clear_and_retry sleeps a short backoff remainder and defers a long one, and diagnose
preloads the LLM client only when the LLM connection exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException, DownstreamTasksSkipped, TaskDeferred

from airflow_doctor import pipeline
from airflow_doctor.models import Decision, FailureRef, Group, GroupDecision
from airflow_doctor.operators.doctor import ClearAndRetryOperator, backoff_plan

GROUP_ID = "handle_failures"  # the doctor DAG's mapped task group

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def doctor_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags" / "doctor.py"))
    assert bag.import_errors == {}
    return bag.dags["doctor"]


class BranchTI:
    """What SkipMixin reads of the running task instance: its task, map index and XCom pushes."""

    def __init__(self, task, map_index: int) -> None:
        self.task, self.map_index, self.pushed = task, map_index, []

    def xcom_push(self, key, value):
        self.pushed.append((key, value))


def _decided(*verdicts: str) -> GroupDecision:
    return GroupDecision(
        decisions=[Decision(verdict=v, reasons=["r"]) for v in verdicts],
        doctor_clears=[0] * len(verdicts),
        diagnosed_at="2026-12-05T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("verdicts", "skipped"),
    [
        pytest.param(["auto_retry"], {"prepare_approval", "escalate"}, id="auto-retry"),
        pytest.param(["escalate"], {"clear_and_retry", "prepare_approval"}, id="escalate"),
        pytest.param(["approval"], {"clear_and_retry", "escalate"}, id="approval"),
        pytest.param(["auto_retry", "escalate"], {"prepare_approval"}, id="both"),
    ],
)
def test_the_gate_follows_its_downstream_branch_per_verdict_and_skips_the_others_of_its_instance(
    doctor_dag, verdicts, skipped
):
    gate = doctor_dag.get_task(f"{GROUP_ID}.gate_on_confidence")
    ti = BranchTI(gate, map_index=3)
    follow = gate.branches(_decided(*verdicts))
    stages = {"auto_retry": "clear_and_retry", "approval": "prepare_approval", "escalate": "escalate"}
    assert follow == [f"{GROUP_ID}.{stages[v]}" for v in verdicts]

    with pytest.raises(DownstreamTasksSkipped) as raised:
        gate.skip_all_except(ti, follow)

    # The gate's downstream tasks are the three branches (the Graph view's edges go where the flow
    # goes); what follows a branch not taken (request_approval, act_on_approval, notify_humans) is
    # skipped by its trigger rule, and record_case, verify_retry and report_retry run after all_done.
    assert set(raised.value.tasks) == {(f"{GROUP_ID}.{t}", 3) for t in skipped}


class GateTI(BranchTI):
    """A running gate's task instance: XCom pushes recorded, nothing to pull."""

    def xcom_pull(self, *args, **kwargs):
        return None


def test_a_dry_run_gate_follows_no_branch_and_keeps_what_it_would_have_done(doctor_dag, monkeypatch):
    gate = doctor_dag.get_task(f"{GROUP_ID}.gate_on_confidence")
    group, decided = _group_failed(seconds_ago=5, backoff=0)
    monkeypatch.setattr(pipeline, "gate_on_confidence", lambda g, m, d: decided)
    monkeypatch.setattr(pipeline, "dry_run_verdict", lambda g, d: ["- d.t try 1: would clear it for retry"])
    monkeypatch.setattr(gate, "group", group)
    ti = GateTI(gate, map_index=0)

    assert gate.choose_branch({"ti": ti, "params": {"dry_run": True}}) == []
    assert ti.pushed == [("decided", decided), ("dry_run_verdict", ["- d.t try 1: would clear it for retry"])]
    ti.pushed.clear()
    assert gate.choose_branch({"ti": ti, "params": {"dry_run": False}}) == [f"{GROUP_ID}.clear_and_retry"]
    assert [key for key, _ in ti.pushed] == ["decided"]


def test_a_gate_wired_without_a_verdict_s_branch_says_so(doctor_dag):
    from airflow_doctor.operators.doctor import GateOperator

    lone = GateOperator(task_id="gate_on_confidence", group=None)
    with pytest.raises(ValueError, match="no downstream task 'escalate'"):
        lone.branches(_decided("escalate"))


def _group_failed(seconds_ago: float, backoff: float) -> tuple[Group, GroupDecision]:
    failed_at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    ref = FailureRef(dag_id="d", run_id="r", task_id="t", try_number=1, failed_at=failed_at)
    group = Group(
        key="k",
        label="d.t",
        members=[ref],
        excerpt={"exception_type": "TimeoutError", "message": "timed out", "text": "TimeoutError"},
    )
    decided = GroupDecision(
        decisions=[Decision(verdict="auto_retry", reasons=["r"], backoff_seconds=backoff)],
        doctor_clears=[0],
        diagnosed_at=datetime.now(UTC).isoformat(),
    )
    return group, decided


def test_a_long_backoff_remainder_is_deferred_to_the_triggerer():
    group, decided = _group_failed(seconds_ago=1, backoff=60)
    op = ClearAndRetryOperator(task_id="clear_and_retry", group=group, decided=decided)

    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"run_id": "doctor-run"})

    assert type(deferred.value.trigger).__name__ == "DateTimeTrigger"
    assert deferred.value.method_name == "execute_complete"
    assert abs((deferred.value.trigger.moment - pipeline.retry_at(group, decided)).total_seconds()) < 0.01


def test_a_short_backoff_remainder_is_slept_and_none_left_clears_at_once():
    now = datetime(2026, 12, 5, tzinfo=UTC)
    assert backoff_plan(None, now) == ("clear", 0.0)
    assert backoff_plan(now - timedelta(seconds=1), now) == ("clear", 0.0)
    assert backoff_plan(now + timedelta(seconds=2), now, sleep_max=3) == ("sleep", 2.0)
    assert backoff_plan(now + timedelta(seconds=3), now, sleep_max=3) == ("sleep", 3.0)
    assert backoff_plan(now + timedelta(seconds=3.5), now, sleep_max=3) == ("defer", 3.5)


def _modules_after_preload(env: dict[str, str]) -> bool:
    """Whether the `anthropic` SDK is loaded after preload_llm_client() in a fresh interpreter."""
    code = (
        "import sys\n"
        "from airflow_doctor.judgement.diagnosis import preload_llm_client\n"
        "preload_llm_client().join(60)\n"
        "print('anthropic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1] == "True"


def test_diagnose_preloads_the_llm_client_only_when_the_llm_connection_exists():
    conn = json.dumps({"conn_type": "anthropic", "host": "http://127.0.0.1:9", "password": "sk-ant-x"})
    assert _modules_after_preload({"AIRFLOW_CONN_DOCTOR_LLM": conn}) is True
    assert _modules_after_preload({}) is False


def _failure_event(map_index: int) -> dict:
    return {
        "extra": {
            "failure": {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": map_index, "try_number": 1}
        }
    }


class _NoAPI:
    """The REST calls fetch_logs' report makes (tags, the LLM pool), answered without a server."""

    def get_dag_tags(self, dag_id):
        return []

    def ensure_pool(self, *args):
        return False


def test_fetch_logs_defers_a_storm_to_the_triggerer_and_a_lone_failure_is_claimed_at_once(
    kb, doctor_db_conn, monkeypatch
):
    from airflow_doctor.hooks import airflow_api
    from airflow_doctor.operators.doctor import FetchLogsOperator
    from airflow_doctor.triggers.doctor import StormSettledTrigger

    monkeypatch.setattr(airflow_api, "default_api", _NoAPI)
    op = FetchLogsOperator(task_id="fetch_logs")
    storm = {
        "triggering_asset_events": {"doctor://task-failures": [_failure_event(i) for i in range(4)]},
        "params": {},
        "run_id": "doctor-run-1",
    }
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(storm)
    trigger = deferred.value.trigger
    assert isinstance(trigger, StormSettledTrigger) and trigger.unclaimed == 4
    assert deferred.value.method_name == "execute_complete"
    reported = deferred.value.kwargs["reported"]
    json.dumps(reported)  # serialisable into the task instance's next_kwargs
    assert kb.count_unclaimed() == 4  # reported, not yet claimed: the wait is the trigger's

    # Nothing else waits: a lone failure is claimed in the same process, no deferral.
    claimed = kb.claim_failures("elsewhere")
    assert len(claimed) == 4
    lone = {
        **storm,
        "triggering_asset_events": {"doctor://task-failures": [_failure_event(9)]},
        "run_id": "doctor-run-2",
    }
    monkeypatch.setattr(
        pipeline, "fetch_reported", lambda reported, run_id, **kw: ("claimed", reported["unclaimed"])
    )
    assert op.execute(lone) == ("claimed", 1)


def test_the_storm_trigger_fires_once_no_failure_arrived_for_the_quiet_time(kb, monkeypatch):
    import asyncio
    import time

    from airflow_doctor.triggers import doctor as triggers
    from airflow_doctor.triggers.doctor import StormSettledTrigger

    async def the_test_kb():
        return kb

    monkeypatch.setattr(triggers, "_knowledge_base", the_test_kb)
    kb.record_failures(
        [FailureRef(dag_id="d", run_id="r", task_id="t", map_index=i, try_number=1) for i in range(3)]
    )

    async def run(trigger: StormSettledTrigger, straggler_after: float | None) -> tuple[dict, float]:
        async def straggle():
            await asyncio.sleep(straggler_after)
            await asyncio.to_thread(
                kb.record_failures,
                [FailureRef(dag_id="d", run_id="r", task_id="t", map_index=7, try_number=1)],
            )

        extra = asyncio.create_task(straggle()) if straggler_after is not None else None
        start = time.monotonic()
        event = await anext(trigger.run())
        if extra:
            await extra
        return event.payload, time.monotonic() - start

    quiet = StormSettledTrigger(3, time.time(), quiet_seconds=0.6, max_wait_seconds=30, poll_seconds=0.1)
    payload, took = asyncio.run(run(quiet, None))
    assert payload["unclaimed"] == 3 and 0.5 <= took < 5
    # A failure arriving during the wait restarts the quiet time.
    busy = StormSettledTrigger(3, time.time(), quiet_seconds=0.6, max_wait_seconds=30, poll_seconds=0.1)
    payload, took = asyncio.run(run(busy, 0.4))
    assert payload["unclaimed"] == 4 and took >= 0.9
    # The longest wait ends it even while failures keep changing the count.
    capped = StormSettledTrigger(
        99, time.time() - 40, quiet_seconds=0.6, max_wait_seconds=30, poll_seconds=0.1
    )
    payload, took = asyncio.run(run(capped, None))
    assert payload["unclaimed"] == 4 and took < 1
    # A round trip through serialize() gives the same trigger.
    name, kwargs = busy.serialize()
    assert name == "airflow_doctor.triggers.doctor.StormSettledTrigger" and StormSettledTrigger(
        **kwargs
    ).serialize() == (name, kwargs)


class _TaskInstances:
    """The REST reads of the failed-state wait, answered from a script: each read of a task instance
    takes the next of its states (the last one repeats)."""

    def __init__(self, states: list[str]) -> None:
        self.states, self.reads = list(states), 0

    def get_task_instance(self, dag_id, run_id, task_id, map_index=-1):
        self.reads += 1
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"state": state, "try_number": 1}


def test_a_try_not_yet_recorded_as_failed_is_waited_for_in_the_triggerer(monkeypatch):
    import asyncio
    import time

    from airflow_doctor.triggers import doctor as triggers
    from airflow_doctor.triggers.doctor import FailedStateTrigger

    group, decided = _group_failed(seconds_ago=10, backoff=0)
    running = _TaskInstances(["running"])
    assert pipeline.members_not_failed_yet(group, decided, api=running) == [group.members[0]]
    assert pipeline.members_not_failed_yet(group, decided, api=_TaskInstances(["failed"])) == []

    monkeypatch.setattr(pipeline, "members_not_failed_yet", lambda g, d, **kw: [group.members[0]])
    op = ClearAndRetryOperator(task_id="clear_and_retry", group=group, decided=decided)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"run_id": "doctor-run"})
    assert isinstance(deferred.value.trigger, FailedStateTrigger)
    assert deferred.value.method_name == "execute_failed"

    async def the_api(api):
        return api

    def fire(api, deadline: float) -> dict:
        monkeypatch.setattr(triggers, "_api", lambda: the_api(api))
        trigger = FailedStateTrigger([group.members[0].model_dump(mode="json")], deadline, poll_seconds=0.05)
        return asyncio.run(anext(trigger.run())).payload

    api = _TaskInstances(["running", "running", "failed"])
    assert fire(api, time.time() + 30) == {"waiting": []} and api.reads == 3
    # Past its deadline it fires with what is still running; the clear then reports it.
    assert fire(_TaskInstances(["running"]), time.time() + 0.2)["waiting"] == [
        group.members[0].model_dump(mode="json")
    ]


def test_verify_and_report_after_record_case_are_skipped_by_the_scheduler_not_in_a_process(doctor_dag):
    # record_case is a branch whose only downstream task is verify_retry: a group with nothing to
    # verify follows no task, and the scheduler's not-previously-skipped dependency skips
    # verify_retry; report_retry's none_skipped rule then skips it too. Neither starts a process.
    record = doctor_dag.get_task(f"{GROUP_ID}.record_case")
    verify = doctor_dag.get_task(f"{GROUP_ID}.verify_retry")
    report = doctor_dag.get_task(f"{GROUP_ID}.report_retry")
    assert record.inherits_from_skipmixin
    assert [t.task_id for t in record.downstream_list] == [verify.task_id]
    assert [t.task_id for t in verify.upstream_list] == [record.task_id]
    assert verify.trigger_rule == "all_done"  # a record_case that failed still lets a retry be verified
    assert report.trigger_rule == "none_skipped"

    ti = BranchTI(record, map_index=2)
    with pytest.raises(DownstreamTasksSkipped) as raised:
        record.skip_all_except(ti, [])  # its own map index, in the mapped group
    assert raised.value.tasks == [(verify.task_id, 2)]
    record.skip_all_except(ti, [verify.task_id])  # followed: nothing skipped


class StagesTI(BranchTI):
    """A running record_case's task instance: each stage's XCom at its map index, pushes recorded."""

    def __init__(self, task, map_index: int, stages: dict) -> None:
        super().__init__(task, map_index)
        self.stages = stages

    def xcom_pull(self, task_ids, key="return_value", map_indexes=None):
        return self.stages.get((task_ids.rsplit(".", 1)[-1], key))


def test_record_case_records_then_follows_verify_retry_only_after_a_clear(doctor_dag, monkeypatch):
    record = doctor_dag.get_task(f"{GROUP_ID}.record_case")
    group, decided = _group_failed(seconds_ago=5, backoff=0)
    key = group.members[0].member_key
    recorded = []
    monkeypatch.setattr(pipeline, "record_case", lambda *args: recorded.append(args) or {key: 7})
    base = {("embed_failure", "group"): group, ("gate_on_confidence", "decided"): decided}

    cleared = StagesTI(
        record, 0, base | {("clear_and_retry", "return_value"): {"clears": {key: {"cleared": True}}}}
    )
    assert record.choose_branch({"ti": cleared, "run_id": "r", "params": {}}) == [f"{GROUP_ID}.verify_retry"]
    assert ("case_ids", {key: 7}) in cleared.pushed

    escalated = StagesTI(record, 0, base | {("escalate", "return_value"): {key: {"sent": True}}})
    assert record.choose_branch({"ti": escalated, "run_id": "r", "params": {}}) == []
    assert len(recorded) == 2 and recorded[1][6] == {key: {"sent": True}}  # the escalation is recorded

    with pytest.raises(AirflowSkipException):
        record.choose_branch({"ti": escalated, "run_id": "r", "params": {"dry_run": True}})
    assert len(recorded) == 2  # a dry run records nothing

"""The doctor's flow (airflow_doctor.pipeline): typed steps that never raise, the task results that
turn a stage that could not do its job red (StageError) with what it has, the stages after it
escalating every member, and branch tasks that skip themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from airflow_doctor import pipeline
from airflow_doctor.capture.failures import report_failures
from airflow_doctor.knowledge.store import KnowledgeBase
from airflow_doctor.models import Decision, Diagnosed, Diagnosis, FailureRef, Group, GroupDecision, Memory

DEAD_KB = KnowledgeBase(dsn="host=127.0.0.1 port=9 dbname=none user=none", connect_timeout=1)


class NoTags:
    """The Airflow API's DAG tags: none (the DAG is not opted out)."""

    def get_dag_tags(self, dag_id):
        return []


def _group(n: int = 2, **fields) -> Group:
    members = [FailureRef(dag_id="d", run_id="r", task_id="t", map_index=i, try_number=1) for i in range(n)]
    excerpt = {
        "exception_type": "ConnectionResetError",
        "message": "[Errno 104] Connection reset by peer",
        "source": "traceback",
        "fingerprint": "f" * 64,
        "signature": "ConnectionResetError: [Errno <n>] Connection reset by peer",
        "text": "ConnectionResetError: [Errno 104] Connection reset by peer",
    }
    return Group(
        key="fingerprint:" + "f" * 64, label="d.t[0] +1 more", members=members, excerpt=excerpt, **fields
    )


def _decided(*verdicts: str, backoff: float = 0.0) -> GroupDecision:
    return GroupDecision(
        decisions=[Decision(verdict=v, reasons=["r"], backoff_seconds=backoff) for v in verdicts],
        doctor_clears=[0] * len(verdicts),
        diagnosed_at="2026-12-05T00:00:00+00:00",
    )


def test_a_dead_knowledge_base_turns_retrieve_similar_red_and_the_gate_then_escalates_everyone():
    group = _group()
    memory = pipeline.retrieve_similar(group, None, kb=DEAD_KB)
    assert "knowledge base unavailable" in memory.error
    with pytest.raises(pipeline.StageError, match="knowledge base unavailable"):
        pipeline.stage_result(memory)
    # The stage's task is red; gate_on_confidence (trigger rule all_done) gets nothing from it.
    decided = pipeline.gate_on_confidence(group, None, None, api=NoTags())
    assert [d.verdict for d in decided.decisions] == ["escalate", "escalate"]
    assert decided.doctor_clears == [None, None]


def test_an_llm_that_fails_leaves_no_diagnosis_and_turns_the_diagnose_task_red(llm):
    from tests.fakes.anthropic_server import error

    llm.script(*[error(529, "overloaded_error", "Overloaded")] * 10)
    diagnosed = pipeline.diagnose(_group(1), Memory(doctor_clears=[0]))
    assert diagnosed.diagnosis is None and diagnosed.diagnoser == "llm" and diagnosed.error
    with pytest.raises(pipeline.StageError, match="no diagnosis \\(llm\\)"):
        pipeline.stage_result(diagnosed)


def test_a_diagnoser_function_is_the_diagnosis_the_gate_reads():
    """eval's oracle: the label as the diagnosis, through the same gate the DAG runs."""
    label = Diagnosis(
        error_class="connection_reset_by_remote",
        root_cause="r",
        transient=True,
        recommended_action="retry_with_backoff",
        confidence=0.95,
    )
    group = _group(1, dag_tags={"d": []})
    diagnosed = pipeline.diagnose(group, Memory(doctor_clears=[0]), diagnoser=lambda g: label)
    assert diagnosed == Diagnosed(diagnosis=label, diagnoser="oracle")
    decided = pipeline.gate_on_confidence(group, Memory(doctor_clears=[0]), diagnosed)
    assert decided.decisions[0].verdict == "auto_retry"
    assert pipeline.gate_on_confidence(group, Memory(doctor_clears=[2]), diagnosed).decisions[0].verdict != (
        "auto_retry"
    )  # the retry budget (max_auto_retries 2) is the member's own


def test_each_branch_task_skips_without_its_verdict():
    group = _group(3)
    decided = _decided("auto_retry", "escalate", "escalate")
    with pytest.raises(AirflowSkipException):
        pipeline.act_on_approval(group, decided, None, None, "run")
    with pytest.raises(AirflowSkipException):
        pipeline.prepare_approval(group, None, None, decided, "run")
    escalations = pipeline.escalate(group, decided, None, dry_run=True)
    assert set(escalations) == {group.members[1].member_key, group.members[2].member_key}
    with pytest.raises(AirflowSkipException):
        pipeline.clear_and_retry(group, _decided("escalate", "escalate", "escalate"), None, "run")


def test_a_backoff_counts_from_the_latest_failure_of_the_auto_retried_members():
    t0 = datetime(2026, 12, 5, tzinfo=UTC)
    group = _group(2)
    group.members[0].failed_at = t0
    group.members[1].failed_at = t0 + timedelta(seconds=3)
    assert pipeline.retry_at(group, _decided("auto_retry", "auto_retry", backoff=10)) == t0 + timedelta(
        seconds=13
    )
    assert pipeline.retry_at(group, _decided("auto_retry", "auto_retry")) is None


class LogsUnreadableAPI:
    """The Airflow API of a doctor run whose failures' logs cannot be read (no log endpoint here):
    DAG tags are readable (no opt-out), the LLM pool exists. `task_instances` answers the reads of
    one task instance ({"state", "try_number", "end_date"}), `failed` the list of failed ones,
    `doctor_runs` the state of doctor runs."""

    def __init__(self, task_instances=None, failed=(), doctor_runs=None) -> None:
        self.task_instances, self.failed = task_instances or {}, list(failed)
        self.doctor_runs = doctor_runs or {}

    def get_dag_tags(self, dag_id):
        return []

    def ensure_pool(self, *args):
        return False

    def get_task_instance(self, dag_id, run_id, task_id, map_index=-1):
        return self.task_instances.get((dag_id, run_id, task_id, map_index), {"try_number": 1})

    def list_task_instances(self, dag_id="~", run_id="~", *, task_id=None, state=None, **kw):
        return [ti for ti in self.failed if ti["dag_id"] == dag_id and ti["task_id"] == task_id]

    def get_dag_run(self, dag_id, run_id):
        return {"state": self.doctor_runs.get(run_id, "success")}


def _fetch_logs(events, params, doctor_run_id, *, kb, api=None, remarks=None):
    """fetch_logs as FetchLogsOperator runs it when no storm is arriving."""
    api = api or LogsUnreadableAPI()
    reported = report_failures(events, params, kb=kb, api=api)
    return pipeline.fetch_reported(reported, doctor_run_id, kb=kb, api=api, remarks=remarks)


#: What Airflow's trigger form sends when a person leaves every field empty.
EMPTY_FORM = {
    "dag_id": None,
    "run_id": None,
    "task_id": None,
    "map_index": None,
    "try_number": None,
    "dry_run": False,
}


def test_fetch_logs_claims_each_failure_once_and_groups_what_it_claimed(kb):
    event = {"extra": {"failure": {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1}}}
    waiting = FailureRef(dag_id="d", run_id="r", task_id="left_behind", try_number=1)
    kb.record_failures([waiting])  # its event was coalesced into another run: only the inbox knows

    groups = _fetch_logs([event, event], {}, "doctor-run-1", kb=kb)

    assert sorted(m.task_id for g in groups for m in g.members) == ["left_behind", "t"]
    assert all(g.settings for g in groups)  # the run's settings, read once here
    assert all(g.dag_tags == {"d": []} for g in groups)  # and the DAGs' tags, for the gate
    # Claimed: another doctor run triggered by the same event gets nothing, and its note says who
    # took the failure (issue #24: half the runs said only "no unhandled failure").
    remarks: list[str] = []
    assert _fetch_logs([event], {}, "doctor-run-2", kb=kb, remarks=remarks) == []
    assert remarks[1:] == ["d.t try 1: already taken by doctor run doctor-run-1"]
    assert kb.claim_failures("doctor-run-3") == []


def test_an_empty_trigger_form_handles_what_waits_in_the_inbox(kb):
    kb.record_failures([FailureRef(dag_id="d", run_id="r", task_id="waiting", try_number=1)])
    remarks: list[str] = []
    groups = _fetch_logs([], EMPTY_FORM, "doctor-run", kb=kb, remarks=remarks)
    assert [m.task_id for g in groups for m in g.members] == ["waiting"] and remarks == []


@pytest.mark.parametrize(
    ("params", "named"),
    [
        pytest.param({"dag_id": "d", "run_id": "r"}, "names dag_id, run_id but not task_id", id="no-task-id"),
        pytest.param({"task_id": "t"}, "names task_id but not dag_id, run_id", id="task-id-alone"),
        pytest.param(
            {"run_id": "r", "dag_id": ""}, "names run_id but not dag_id, task_id", id="run-id-alone"
        ),
    ],
)
def test_a_half_filled_form_fails_fetch_logs_with_the_fields_named(kb, params, named):
    with pytest.raises(ValueError, match=named):
        _fetch_logs([], {**EMPTY_FORM, **params}, "doctor-run", kb=kb)


def test_a_dag_id_and_task_id_alone_mean_the_task_s_latest_failed_try(kb):
    failed = [
        {
            "dag_id": "d",
            "task_id": "t",
            "dag_run_id": "old",
            "map_index": -1,
            "end_date": "2026-12-01T00:00:00Z",
        },
        {
            "dag_id": "d",
            "task_id": "t",
            "dag_run_id": "new",
            "map_index": -1,
            "end_date": "2026-12-07T00:00:00Z",
        },
    ]
    ended = "2026-12-07T00:00:00+00:00"
    latest = {("d", "new", "t", -1): {"state": "failed", "try_number": 2, "end_date": ended}}
    api = LogsUnreadableAPI(latest, failed)
    groups = _fetch_logs([], {**EMPTY_FORM, "dag_id": "d", "task_id": "t"}, "doctor-run", kb=kb, api=api)
    (member,) = [m for g in groups for m in g.members]
    assert (member.run_id, member.try_number, member.source) == ("new", 2, "manual")
    assert member.failed_at == datetime(2026, 12, 7, tzinfo=UTC)  # Airflow's end_date, not the trigger's
    with pytest.raises(ValueError, match="has no failed task instance: copy the run id"):
        _fetch_logs([], {**EMPTY_FORM, "dag_id": "d", "task_id": "other"}, "doctor-run-2", kb=kb, api=api)


def test_a_failure_handled_before_is_re_diagnosed_when_a_person_names_it(kb):
    failed = {("d", "r", "t", -1): {"state": "failed", "try_number": 1}}
    api = LogsUnreadableAPI(failed, doctor_runs={"doctor-run-1": "success"})
    event = {"extra": {"failure": {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1}}}
    assert len(_fetch_logs([event], {}, "doctor-run-1", kb=kb, api=api)) == 1

    remarks: list[str] = []
    form = {**EMPTY_FORM, "dag_id": "d", "run_id": "r", "task_id": "t"}
    groups = _fetch_logs([], form, "doctor-run-2", kb=kb, api=api, remarks=remarks)

    assert [m.task_id for g in groups for m in g.members] == ["t"]
    assert remarks == [
        "d.t try 1 was handled by doctor run doctor-run-1; re-diagnosed here on request. The earlier case "
        "stays in the knowledge base and on the Doctor tab"
    ]
    # While the run holding it is still at work, it is not handled twice at once.
    api.doctor_runs["doctor-run-1"] = "running"
    remarks.clear()
    assert _fetch_logs([], form, "doctor-run-3", kb=kb, api=api, remarks=remarks) == []
    assert "doctor run doctor-run-1 is handling it right now" in remarks[0]


@pytest.mark.parametrize("state", ["success", "running", "up_for_retry"])
def test_a_task_instance_no_longer_failed_is_not_diagnosed_and_the_note_says_why(kb, state):
    api = LogsUnreadableAPI({("d", "r", "t", -1): {"state": state, "try_number": 2}})
    remarks: list[str] = []
    form = {**EMPTY_FORM, "dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1}
    assert _fetch_logs([], form, "doctor-run", kb=kb, api=api, remarks=remarks) == []
    assert remarks == [
        f"d.t try 1 was not diagnosed: the task instance is no longer failed (it is {state} at try 2); "
        "only a failed try can be diagnosed and retried"
    ]


def test_the_gate_uses_the_tags_fetch_logs_read_and_reads_them_itself_when_none_were_carried():
    memory = Memory(doctor_clears=[0, 0])
    decided = pipeline.gate_on_confidence(_group(dag_tags={"d": ["doctor:notify-only"]}), memory, None)
    assert all("policy: the DAG is tagged doctor:notify-only" in d.reasons for d in decided.decisions)

    # Nothing carried and no API connection here: the tags are unknown and the gate fails closed.
    decided = pipeline.gate_on_confidence(_group(), memory, None)
    assert all("policy: the DAG's tags could not be read" in d.reasons for d in decided.decisions)
    assert {d.verdict for d in decided.decisions} == {"escalate"}


def test_per_member_results_name_their_member_whatever_the_order():
    group = _group(3)
    first, second, third = (m.member_key for m in group.members)
    retried = {"clears": {third: {"cleared": True}, first: {"cleared": False, "reason": "409"}}}
    approved = {"clears": {first: {"cleared": True, "approved_by": "ana"}}}
    clears = pipeline.cleared_members(retried, approved, group)
    assert clears == {first: {"cleared": True, "approved_by": "ana"}, third: {"cleared": True}}
    assert second not in clears  # nothing happened to it here: absent, not a None in a slot
    assert len({m.member_key for m in group.members}) == 3  # map_index tells the members apart


class DagDetails:
    """The REST API's DAG details: the DAG's owners' email and its tags."""

    def get_dag_details(self, dag_id):
        return {"default_args": {"email": ["owner@example.com"]}, "tags": []}


def test_a_dry_run_verdict_says_what_would_have_been_done_why_and_who_would_have_been_told():
    group = _group()
    decided = GroupDecision(
        decisions=[
            Decision(verdict="escalate", reasons=["a permanent error"]),
            Decision(verdict="auto_retry", reasons=["transient"], backoff_seconds=5),
        ],
        doctor_clears=[0, 0],
        diagnosed_at="2026-12-05T00:00:00+00:00",
    )
    escalated, retried = pipeline.dry_run_verdict(group, decided, api=DagDetails())
    assert escalated == (
        "- d.t[0] try 1: would leave it failed for a person (escalate). Why: a permanent error. "
        "Would tell: owner@example.com by email, Slack connection doctor_slack"
    )
    assert retried.startswith("- d.t[1] try 1: would clear it for retry after a 5 s backoff. Why: transient.")
    assert "owner@example.com" in retried


def test_a_try_named_by_hand_that_a_later_failed_try_superseded_diagnoses_the_later_one(kb):
    """ "Diagnose now" on the Doctor tab names try 1 by default; the task instance failed again since."""
    api = LogsUnreadableAPI({("d", "r", "t", -1): {"state": "failed", "try_number": 3}})
    remarks: list[str] = []
    form = {**EMPTY_FORM, "dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1}
    groups = _fetch_logs([], form, "doctor-run", kb=kb, api=api, remarks=remarks)
    assert [m.try_number for g in groups for m in g.members] == [3]
    assert remarks == ["d.t: try 1 is not the latest, try 3 failed since and is diagnosed"]


def test_record_case_follows_verify_retry_only_for_a_group_with_a_clear_to_verify():
    group = _group(2)
    first, second = (m.member_key for m in group.members)
    verify = ["handle_failures.verify_retry"]
    # Escalated (no branch of clear or approval ran) or rejected: nothing to verify, nothing followed.
    assert pipeline.follow_after_record(None, None, group) == []
    assert pipeline.follow_after_record(None, {"clears": {first: {"cleared": False}}}, group) == []
    # A clear that was attempted and refused is not a retry to wait for.
    assert (
        pipeline.follow_after_record({"clears": {first: {"cleared": False, "reason": "409"}}}, None, group)
        == []
    )
    # One member cleared, automatically or after an approval: its retried try is verified.
    assert pipeline.follow_after_record({"clears": {second: {"cleared": True}}}, None, group) == verify
    assert (
        pipeline.follow_after_record(
            None, {"clears": {first: {"cleared": True, "approved_by": "ana"}}}, group
        )
        == verify
    )

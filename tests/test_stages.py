"""The doctor DAG's stages as functions: a stage that cannot do its job fails (StageError) with what
it has, and the stages after it, given nothing, escalate every member; branch tasks skip themselves."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from airflow_doctor import pipeline as stages
from airflow_doctor.knowledge.store import KnowledgeBase
from airflow_doctor.models import FailureRef

DEAD_KB = KnowledgeBase(dsn="host=127.0.0.1 port=9 dbname=none user=none", connect_timeout=1)


class NoTags:
    """The Airflow API's DAG tags: none (the DAG is not opted out)."""

    def get_dag_tags(self, dag_id):
        return []


def _group(n: int = 2) -> dict:
    members = [
        FailureRef(dag_id="d", run_id="r", task_id="t", map_index=i, try_number=1).model_dump(mode="json")
        for i in range(n)
    ]
    excerpt = {
        "exception_type": "ConnectionResetError",
        "message": "[Errno 104] Connection reset by peer",
        "source": "traceback",
        "fingerprint": "f" * 64,
        "signature": "ConnectionResetError: [Errno <n>] Connection reset by peer",
        "text": "ConnectionResetError: [Errno 104] Connection reset by peer",
    }
    return {
        "key": "fingerprint:" + "f" * 64,
        "label": "d.t[0] +1 more",
        "members": members,
        "excerpt": excerpt,
    }


def test_a_dead_knowledge_base_fails_retrieve_similar_and_the_gate_then_escalates_everyone():
    group = _group()
    with pytest.raises(stages.StageError, match="knowledge base unavailable"):
        stages.retrieve_similar(group, None, kb=DEAD_KB)
    # The stage's task is red; gate_on_confidence (trigger rule all_done) gets nothing from it.
    decided, follow = stages.gate_on_confidence(group, None, None, api=NoTags())
    assert [d["verdict"] for d in decided["decisions"]] == ["escalate", "escalate"]
    assert decided["doctor_clears"] == [None, None]
    assert follow == [stages.ESCALATE]


def test_an_llm_that_fails_fails_the_diagnose_stage_with_its_error(llm):
    from tests.fakes.anthropic_server import error

    llm.script(*[error(529, "overloaded_error", "Overloaded")] * 10)
    with pytest.raises(stages.StageError, match="no diagnosis \\(llm\\)"):
        stages.diagnose(_group(1), {"neighbours": [], "fingerprint_matches": [], "doctor_clears": [0]})


def test_the_gate_branches_to_every_verdict_present_and_each_branch_task_skips_without_its_verdict():
    group = _group(3)
    decided = {
        "decisions": [
            {"verdict": "auto_retry", "reasons": ["r"]},
            {"verdict": "escalate", "reasons": ["r"]},
            {"verdict": "escalate", "reasons": ["r"]},
        ],
        "doctor_clears": [0, 0, 0],
        "diagnosed_at": "2026-12-05T00:00:00+00:00",
    }
    from airflow_doctor.models import GroupDecision

    assert stages.branches(GroupDecision.model_validate(decided)) == [stages.CLEAR, stages.ESCALATE]
    with pytest.raises(AirflowSkipException):
        stages.act_on_approval(group, decided, None, None, "run")
    with pytest.raises(AirflowSkipException):
        stages.prepare_approval(group, None, None, decided, "run")
    escalations = stages.escalate(group, decided, None, dry_run=True)
    assert [e is not None for e in escalations] == [False, True, True]
    only_escalated = {**decided, "decisions": [{"verdict": "escalate", "reasons": ["r"]}] * 3}
    with pytest.raises(AirflowSkipException):
        stages.clear_and_retry(group, only_escalated, None, "run")


def test_a_backoff_counts_from_the_latest_failure_of_the_auto_retried_members():
    from datetime import UTC, datetime, timedelta

    group = _group(2)
    t0 = datetime(2026, 12, 5, tzinfo=UTC)
    group["members"][0]["failed_at"] = t0.isoformat()
    group["members"][1]["failed_at"] = (t0 + timedelta(seconds=3)).isoformat()
    decided = {
        "decisions": [
            {"verdict": "auto_retry", "reasons": ["r"], "backoff_seconds": 10},
            {"verdict": "auto_retry", "reasons": ["r"], "backoff_seconds": 10},
        ],
        "doctor_clears": [0, 0],
        "diagnosed_at": t0.isoformat(),
    }
    assert stages.retry_at(group, decided) == t0 + timedelta(seconds=13)
    no_backoff = {**decided, "decisions": [{"verdict": "auto_retry", "reasons": ["r"]}] * 2}
    assert stages.retry_at(group, no_backoff) is None


class LogsUnreadableAPI:
    """The Airflow API of a doctor run whose failures' logs cannot be read (no log endpoint here):
    DAG tags are readable (no opt-out), the LLM pool exists."""

    def get_dag_tags(self, dag_id):
        return []

    def ensure_pool(self, *args):
        return False


def test_fetch_logs_claims_each_failure_once_and_groups_what_it_claimed(kb):
    event = {"extra": {"failure": {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1}}}
    waiting = FailureRef(dag_id="d", run_id="r", task_id="left_behind", try_number=1)
    kb.record_failures([waiting])  # its event was coalesced into another run: only the inbox knows

    groups = stages.fetch_logs([event, event], {}, "doctor-run-1", kb=kb, api=LogsUnreadableAPI())

    members = sorted(m["task_id"] for g in groups for m in g["members"])
    assert members == ["left_behind", "t"]
    assert all(g["settings"] for g in groups)  # the run's settings, read once here
    # Claimed: another doctor run triggered by the same event gets nothing.
    assert stages.fetch_logs([event], {}, "doctor-run-2", kb=kb, api=LogsUnreadableAPI()) == []
    assert kb.claim_failures("doctor-run-3") == []


def test_malformed_manual_params_fail_fetch_logs_with_the_field_named(kb):
    with pytest.raises(ValueError, match="run_id"):
        stages.fetch_logs([], {"dag_id": "d", "task_id": "t"}, "doctor-run", kb=kb, api=LogsUnreadableAPI())


def test_the_gate_uses_the_tags_fetch_logs_read_and_reads_them_itself_when_none_were_carried():
    memory = {"neighbours": [], "fingerprint_matches": [], "doctor_clears": [0, 0]}
    tagged = {**_group(), "dag_tags": {"d": ["doctor:notify-only"]}}
    decided, _ = stages.gate_on_confidence(tagged, memory, None)
    assert all("policy: the DAG is tagged doctor:notify-only" in d["reasons"] for d in decided["decisions"])

    # Nothing carried and no API connection here: the tags are unknown and the gate fails closed.
    decided, follow = stages.gate_on_confidence(_group(), memory, None)
    assert follow == [stages.ESCALATE]
    assert all("policy: the DAG's tags could not be read" in d["reasons"] for d in decided["decisions"])

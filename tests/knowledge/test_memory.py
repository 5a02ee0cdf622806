"""Memory's rules in one place (airflow_doctor/knowledge/memory.py): what vouches for a retry, what speaks
against one, what memory recognises, and when it decides without an LLM call."""

from __future__ import annotations

from airflow_doctor.knowledge.memory import Recall
from airflow_doctor.models import Action, Neighbour


def case(
    case_id: int, similarity: float, *, kind: str = "observed", outcome: str = "none", **kw
) -> Neighbour:
    defaults = {"error_class": "http_5xx_server_error", "transient": True, "recommended_action": Action.retry}
    return Neighbour(case_id=case_id, kind=kind, similarity=similarity, outcome=outcome, **(defaults | kw))


def test_a_close_case_whose_retry_worked_vouches_and_a_far_one_does_not():
    assert Recall.of([case(1, 0.9, outcome="succeeded")], [], 0.82).vouches
    assert not Recall.of([case(1, 0.7, outcome="succeeded")], [], 0.82).vouches
    assert Recall.of([case(1, 0.9, kind="runbook")], [], 0.82).vouches  # a transient runbook entry


def test_a_case_still_being_retried_is_not_counted_either_way():
    recall = Recall.of([case(1, 0.99, outcome="pending"), case(2, 0.85, outcome="succeeded")], [], 0.82)
    assert [n.case_id for n in recall.in_flight] == [1]
    assert recall.best.case_id == 2 and recall.vouches


def test_a_person_s_permanent_outweighs_a_verified_retry_of_the_same_fingerprint():
    healed = case(1, 1.0, outcome="succeeded")
    said = case(2, 1.0, outcome="escalated", actor="human", transient=False)
    recall = Recall.of([], [healed, said], 0.82)
    assert recall.verified_fingerprint and recall.said_permanent and not recall.vouches


def test_a_similar_case_s_failed_retry_speaks_against_unless_this_fingerprint_heals():
    failed = case(7, 0.9, outcome="failed")
    assert [n.case_id for n in Recall.of([failed], [], 0.82).failed_retries] == [7]
    healed = case(1, 1.0, outcome="succeeded")
    assert Recall.of([failed], [healed], 0.82).failed_retries == []
    same_fp_failed = case(3, 1.0, outcome="failed")
    assert [n.case_id for n in Recall.of([failed], [healed, same_fp_failed], 0.82).failed_retries] == [3]


def test_memory_recognises_the_fingerprint_first_then_the_closest_known_case():
    fp = case(1, 1.0, error_class="db_deadlock")
    near = case(2, 0.9, error_class="db_connection_lost")
    assert Recall.of([near], [fp], 0.82).recognised()[:2] == (fp, 0.9)
    n, confidence, why = Recall.of([near], [], 0.82).recognised()
    assert n == near and confidence == 0.9 and "0.90 similar" in why
    assert Recall.of([case(2, 0.5)], [], 0.82).recognised() is None


def test_only_a_near_copy_or_a_known_outcome_of_the_fingerprint_skips_the_llm():
    assert Recall.of([], [case(1, 1.0, outcome="failed")], 0.82).decides_without_llm()
    assert Recall.of([case(1, 0.97, kind="runbook")], [], 0.82).decides_without_llm()
    assert not Recall.of([case(1, 0.9, kind="runbook")], [], 0.82).decides_without_llm()
    assert not Recall.of([case(1, 0.99, outcome="none")], [], 0.82).decides_without_llm()


def test_memory_says_whether_this_deployment_s_own_cases_vouch_or_only_a_runbook_entry():
    assert not Recall.of([case(1, 0.9, kind="runbook")], [], 0.82).vouches_by_observation
    assert Recall.of([case(1, 0.9, outcome="succeeded")], [], 0.82).vouches_by_observation
    healed_fingerprint = case(2, 1.0, outcome="succeeded")
    assert Recall.of([case(1, 0.9, kind="runbook")], [healed_fingerprint], 0.82).vouches_by_observation
    assert not Recall.of([case(1, 0.7, outcome="succeeded")], [], 0.82).vouches_by_observation

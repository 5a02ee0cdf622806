"""Memory's rules in one place (airflow_doctor/knowledge/memory.py): what vouches for a retry, what speaks
against one, what memory recognises, what happened to this very error, and when memory decides without
an LLM call."""

from __future__ import annotations

import pytest

from airflow_doctor.knowledge.memory import Recall, is_outcome_of_this_error
from airflow_doctor.models import Action, Neighbour


def case(
    case_id: int, similarity: float, *, kind: str = "observed", outcome: str = "none", **kw
) -> Neighbour:
    defaults = {"error_class": "http_5xx_server_error", "transient": True, "recommended_action": Action.retry}
    return Neighbour(case_id=case_id, kind=kind, similarity=similarity, outcome=outcome, **(defaults | kw))


def test_a_close_case_whose_retry_worked_vouches_and_a_far_one_does_not():
    assert Recall.of([case(1, 0.9, outcome="succeeded")], [], 0.82).vouches
    assert not Recall.of([case(1, 0.7, outcome="succeeded")], [], 0.82).vouches
    # a transient runbook entry is curated text, not a retry made here: it never vouches
    assert not Recall.of([case(1, 0.9, kind="runbook")], [], 0.82).vouches
    assert not Recall.of([], [case(1, 1.0, kind="runbook")], 0.82).vouches


def test_airflows_own_verified_retry_vouches_and_a_fix_by_a_change_speaks_against():
    by_airflow = case(1, 1.0, outcome="succeeded", actor="airflow")
    recall = Recall.of([], [by_airflow], 0.82)
    assert recall.vouches and recall.healed_here and recall.healed_by_airflow == [by_airflow]
    for how in ("fixed_by_change", "fixed_by_person"):
        fixed = case(2, 1.0, outcome=how, actor="airflow", transient=False)
        assert fixed.fixed and is_outcome_of_this_error(fixed)
        both = Recall.of([], [fixed, by_airflow], 0.82)
        assert both.fixed == [fixed] and not both.vouches


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


def test_the_doctor_s_own_unanswered_escalation_does_not_hide_what_happened_to_the_fingerprint():
    # Newest first: an escalation nobody answered (its diagnosis made on a person's "permanent" since
    # undone, say), then the retry of the same error that verifiably worked.
    escalated = case(3, 1.0, outcome="escalated", transient=False, recommended_action=Action.notify)
    healed = case(1, 1.0, outcome="succeeded")
    assert not is_outcome_of_this_error(escalated) and is_outcome_of_this_error(healed)
    recall = Recall.of([], [escalated, healed], 0.82)
    assert recall.recognised()[:2] == (healed, 0.9) and recall.known_outcome() == healed
    # With no outcome among them, the newest case of the fingerprint is still what memory recognises.
    unanswered = case(4, 1.0, outcome="escalated", transient=False)
    assert Recall.of([], [unanswered, escalated], 0.82).recognised()[0] == unanswered


def test_only_a_near_copy_or_a_known_outcome_of_the_fingerprint_skips_the_llm():
    assert Recall.of([], [case(1, 1.0, outcome="failed")], 0.82).decides_without_llm()
    assert Recall.of([case(1, 0.97, outcome="succeeded")], [], 0.82).decides_without_llm()
    # a runbook entry's text never decides without the model, however close, nor as a fingerprint match
    assert not Recall.of([case(1, 0.97, kind="runbook")], [], 0.82).decides_without_llm()
    assert not Recall.of([], [case(1, 1.0, kind="runbook")], 0.82).decides_without_llm()
    assert not Recall.of([case(1, 0.99, outcome="none")], [], 0.82).decides_without_llm()


def test_memory_says_whether_this_deployment_s_own_cases_vouch_or_only_a_runbook_entry():
    assert not Recall.of([case(1, 0.9, kind="runbook")], [], 0.82).vouches_by_observation
    assert Recall.of([case(1, 0.9, outcome="succeeded")], [], 0.82).vouches_by_observation
    healed_fingerprint = case(2, 1.0, outcome="succeeded")
    assert Recall.of([case(1, 0.9, kind="runbook")], [healed_fingerprint], 0.82).vouches_by_observation
    assert not Recall.of([case(1, 0.7, outcome="succeeded")], [], 0.82).vouches_by_observation


# -- what happened to this very error: one rule, three readers ----------------------------------


@pytest.mark.parametrize(
    ("earlier", "is_outcome"),
    [
        pytest.param(case(1, 1.0, outcome="succeeded"), True, id="a-retry-that-succeeded"),
        pytest.param(case(1, 1.0, outcome="failed"), True, id="a-retry-that-failed"),
        pytest.param(
            case(1, 1.0, outcome="escalated", actor="human", transient=False), True, id="a-persons-permanent"
        ),
        pytest.param(
            case(1, 1.0, outcome="escalated", actor="doctor"),
            False,
            id="the-doctors-own-unanswered-escalation",
        ),
        pytest.param(case(1, 1.0, outcome="pending"), False, id="a-retry-still-in-flight"),
        pytest.param(case(1, 1.0, outcome="unverified"), False, id="a-retry-never-verified"),
        pytest.param(case(1, 1.0, kind="runbook"), False, id="a-runbook-entry-knows-a-class-not-an-outcome"),
    ],
)
def test_what_happened_to_an_error_is_a_verified_retry_or_a_persons_permanent(earlier, is_outcome):
    assert is_outcome_of_this_error(earlier) is is_outcome
    assert (Recall.of([], [earlier], 0.82).known_outcome() is earlier) is is_outcome


KEY_ERROR = {"exception_type": "KeyError", "message": "'order_id'", "causes": [], "source": "traceback"}
RESET = {
    "exception_type": "ConnectionResetError",
    "message": "[Errno 104] Connection reset by peer",
    "causes": [],
    "source": "traceback",
}


def test_the_doctors_own_escalation_is_not_what_happened_so_the_rules_reading_is_not_outweighed():
    """The case the three versions disagreed on. This fingerprint's only earlier case is one the doctor
    escalated and nobody answered; memory labelled it transient, the rules read this KeyError as
    permanent. The offline diagnoser used to count the escalation as an outcome (memory at 0.9: a
    transient diagnosis), while the memory-first check did not (it asked the LLM). Chosen answer: no
    outcome (the doctor's decision would confirm itself), so both treat it as a disagreement."""
    from airflow_doctor.judgement.diagnosis import diagnose_offline, rules_dispute_memory

    escalated = case(7, 1.0, outcome="escalated", actor="doctor", error_class="http_5xx_server_error")
    recall = Recall.of([], [escalated], 0.82)
    assert recall.known_outcome() is None
    assert rules_dispute_memory(recall, KEY_ERROR)  # the LLM is asked
    diagnosis = diagnose_offline(KEY_ERROR, [], [escalated], 0.82)
    assert diagnosis.confidence == 0.5 and "memory and rules disagree" in diagnosis.root_cause


def test_a_persons_permanent_is_what_happened_so_memory_decides_without_the_llm():
    """The other disagreement: the memory-first shortcut (`decides_without_llm`) ignored a person's
    "permanent" for this fingerprint, which the memory-first check already counted as an outcome.
    Chosen answer: it is an outcome, so memory diagnoses it (the gate escalates it either way: a
    person's "permanent" is a veto)."""
    from airflow_doctor.judgement.diagnosis import diagnose_offline, rules_dispute_memory

    said = case(8, 1.0, outcome="escalated", actor="human", transient=False, error_class="access_denied")
    recall = Recall.of([], [said], 0.82)
    assert recall.known_outcome() is said and recall.decides_without_llm()
    assert not rules_dispute_memory(recall, RESET)  # the rules read a transient reset: memory still decides
    diagnosis = diagnose_offline(RESET, [], [said], 0.82)
    assert not diagnosis.transient and diagnosis.confidence == 0.9


def test_memory_vouches_for_a_cut_off_log_or_an_uncatalogued_reading_only_through_observed_retries():
    runbook = case(1, 0.97, kind="runbook")
    healed = case(2, 1.0, outcome="succeeded")
    close = case(3, 0.9, outcome="succeeded")
    assert not Recall.of([runbook], [], 0.82).vouches_for(cut_off=False, uncatalogued=False)
    assert Recall.of([close], [], 0.82).vouches_for(cut_off=False, uncatalogued=True)
    assert not Recall.of([close], [], 0.82).vouches_for(cut_off=True, uncatalogued=False)
    assert not Recall.of([runbook], [], 0.82).vouches_for(cut_off=True, uncatalogued=False)
    assert not Recall.of([runbook], [], 0.82).vouches_for(cut_off=False, uncatalogued=True)
    assert Recall.of([runbook], [healed], 0.82).vouches_for(cut_off=True, uncatalogued=True)
    assert Recall.of([], [healed], 0.82).healed_here
    assert not Recall.of([], [case(3, 1.0, kind="runbook")], 0.82).healed_here


def test_a_failed_retry_after_the_doctors_own_clear_is_most_likely_its_own():
    failed = Recall.of([], [case(1, 1.0, outcome="failed")], 0.82)
    assert failed.own_retry_failed(1) and not failed.own_retry_failed(0) and not failed.own_retry_failed(None)
    assert not Recall.of([], [], 0.82).own_retry_failed(1)
